#!/bin/sh
# The container's entrypoint: prepares the data dir, then runs supervisord with Caddy, proxy and
# control (supervisord.conf). Every path and port is an environment variable with its default
# here, so the whole-stack tests run this same script outside a container.
set -eu

export GATEWAY_HOME="${GATEWAY_HOME:-/app}"
export DATA_DIR="${DATA_DIR:-/app/data}"
export CONFIG_PATH="${CONFIG_PATH:-$DATA_DIR/config.json}"
# Caddy takes the public ports; the proxy and control listen on loopback only. These are the
# binaries' own defaults; they are set here so that an operator's config.json with the
# original's server.host/server.port (0.0.0.0:3000) cannot take Caddy's port. control reads
# the same PROXY_LISTEN to find the proxy (and PROXY_OPS_LISTEN, when set, for its ops
# listener), and Caddy and control read the same CADDY_ADMIN.
export PROXY_LISTEN="${PROXY_LISTEN:-127.0.0.1:3003}"
export CONTROL_LISTEN="${CONTROL_LISTEN:-127.0.0.1:3001}"
export CADDY_ADMIN="${CADDY_ADMIN:-127.0.0.1:2019}"
export CADDY_HTTP_PORT="${CADDY_HTTP_PORT:-3000}"
export CADDYFILE_PATH="${CADDYFILE_PATH:-$DATA_DIR/Caddyfile}"
export CADDY_BOOTSTRAP="${CADDY_BOOTSTRAP:-$GATEWAY_HOME/caddy/bootstrap.Caddyfile}"
# A stop drains streams this long; `docker stop` waits 10 s unless told otherwise.
export SHUTDOWN_GRACE_SECS="${SHUTDOWN_GRACE_SECS:-8}"
export PROXY_STOP_WAIT_SECS=$((SHUTDOWN_GRACE_SECS + 5))
export SUPERVISOR_RUN_DIR="${SUPERVISOR_RUN_DIR:-/tmp}"
# Image work frees large buffers on threads that then sit idle; with these the allocators give
# such memory back to the system at once (glibc's, used by the JPEG and WebP codecs, maps every
# block over 128 KiB on its own; mimalloc purges freed pages without delay). See docs/images.md.
export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-131072}"
export MIMALLOC_PURGE_DELAY="${MIMALLOC_PURGE_DELAY:-0}"

say() { echo "entrypoint | $*"; }

# As root with GATEWAY_USER set (the image sets it), everything runs as a user without
# privileges: the owner of the data dir when that is not root (a directory bind-mounted from the
# host keeps its owner, so its files stay editable there), else GATEWAY_USER, which then gets
# the data dir.
run_as=""
if [ "$(id -u)" = 0 ] && [ -n "${GATEWAY_USER:-}" ]; then
    mkdir -p "$DATA_DIR"
    uid=$(stat -c %u "$DATA_DIR")
    gid=$(stat -c %g "$DATA_DIR")
    if [ "$uid" = 0 ]; then
        uid=$(id -u "$GATEWAY_USER")
        gid=$(id -g "$GATEWAY_USER")
        chown -R "$uid:$gid" "$DATA_DIR" 2>/dev/null || true
    fi
    run_as="$uid:$gid"
fi
# Files made here belong to the user the programs run as.
own() { [ -z "$run_as" ] || chown "$run_as" "$@" 2>/dev/null || true; }

if [ ! -d "$DATA_DIR/caddy" ]; then
    mkdir -p "$DATA_DIR/caddy"
    own "$DATA_DIR/caddy"
fi
# A missing config.json is created from the example by the proxy and control themselves, as
# the user they run as, so that it belongs to that user.

supervisord_cmd="supervisord --configuration $GATEWAY_HOME/supervisord.conf"
if [ -n "$run_as" ]; then
    uid=${run_as%:*}
    gid=${run_as#*:}
    drop="setpriv --reuid=$uid --regid=$gid --clear-groups --"
    # supervisord opens /dev/stdout again for the log prefixer; the container runtime's pipe (or
    # terminal) behind it belongs to root.
    for fd in 1 2; do
        if [ -p "/proc/self/fd/$fd" ] || [ -t "$fd" ]; then
            chown "$run_as" "/proc/self/fd/$fd" 2>/dev/null || true
        fi
    done
    # A share that does not take ownership (some SMB mounts) may still be writable by anyone.
    if $drop sh -c 'test -w "$1" && test -w "$1/caddy" && { test -w "$2" || test ! -e "$2"; }' \
        check "$DATA_DIR" "$CONFIG_PATH"; then
        say "running as uid $uid, gid $gid"
        # shellcheck disable=SC2086
        exec $drop $supervisord_cmd
    fi
    say "WARNING: $DATA_DIR is not writable by uid $uid; running as root"
fi
# shellcheck disable=SC2086
exec $supervisord_cmd
