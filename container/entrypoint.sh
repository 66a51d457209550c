#!/bin/sh
# The container's entrypoint: prepares the data dir, then runs supervisord with Caddy, proxy and
# control (supervisord.conf). Every path and port is an environment variable with its default
# here, so the whole-stack tests run this same script outside a container.
set -eu

export GATEWAY_HOME="${GATEWAY_HOME:-/app}"
export DATA_DIR="${DATA_DIR:-/app/data}"
export CONFIG_PATH="${CONFIG_PATH:-$DATA_DIR/config.json}"
# Caddy takes the public ports; the proxy and control listen on loopback only.
export PROXY_LISTEN="${PROXY_LISTEN:-127.0.0.1:8080}"
export PROXY_URL="${PROXY_URL:-http://$PROXY_LISTEN}"
export PROXY_UPSTREAM="${PROXY_UPSTREAM:-$PROXY_LISTEN}"
export CONTROL_LISTEN="${CONTROL_LISTEN:-127.0.0.1:3001}"
export CADDY_ADMIN="${CADDY_ADMIN:-http://127.0.0.1:2019}"
export CADDY_HTTP_PORT="${CADDY_HTTP_PORT:-3000}"
export CADDYFILE_PATH="${CADDYFILE_PATH:-$DATA_DIR/Caddyfile}"
export CADDY_BOOTSTRAP="${CADDY_BOOTSTRAP:-$GATEWAY_HOME/caddy/bootstrap.Caddyfile}"
# A stop drains streams this long; `docker stop` waits 10 s unless told otherwise.
export SHUTDOWN_GRACE_SECS="${SHUTDOWN_GRACE_SECS:-8}"
export PROXY_STOP_WAIT_SECS=$((SHUTDOWN_GRACE_SECS + 5))
export SUPERVISOR_RUN_DIR="${SUPERVISOR_RUN_DIR:-/tmp}"
default_config="${DEFAULT_CONFIG:-$GATEWAY_HOME/defaults/config.json}"

say() { echo "entrypoint | $*"; }

mkdir -p "$DATA_DIR/caddy"
if [ ! -e "$CONFIG_PATH" ]; then
    cp "$default_config" "$CONFIG_PATH.first-start"
    mv "$CONFIG_PATH.first-start" "$CONFIG_PATH"
    say "no config at $CONFIG_PATH: wrote the default one (admin login admin/admin and client key CHANGEME: change both)"
fi

supervisord_cmd="supervisord --configuration $GATEWAY_HOME/supervisord.conf"

# As root with GATEWAY_USER set (the image sets it), run everything as a user without privileges:
# the owner of the data dir when that is not root (a directory bind-mounted from the host keeps
# its owner, so its files stay editable there), else GATEWAY_USER, which then gets the data dir.
if [ "$(id -u)" = 0 ] && [ -n "${GATEWAY_USER:-}" ]; then
    uid=$(stat -c %u "$DATA_DIR")
    gid=$(stat -c %g "$DATA_DIR")
    if [ "$uid" = 0 ]; then
        uid=$(id -u "$GATEWAY_USER")
        gid=$(id -g "$GATEWAY_USER")
        chown -R "$uid:$gid" "$DATA_DIR" 2>/dev/null || true
    fi
    drop="setpriv --reuid=$uid --regid=$gid --clear-groups --"
    # A share that does not take ownership (some SMB mounts) may still be writable by anyone.
    if $drop sh -c 'test -w "$1" && test -w "$1/caddy" && test -w "$2"' check "$DATA_DIR" "$CONFIG_PATH"; then
        say "running as uid $uid, gid $gid"
        # shellcheck disable=SC2086
        exec $drop $supervisord_cmd
    fi
    say "WARNING: $DATA_DIR is not writable by uid $uid; running as root"
fi
# shellcheck disable=SC2086
exec $supervisord_cmd
