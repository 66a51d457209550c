#!/bin/sh
# Starts Caddy with the Caddyfile control rendered into the data dir when there is a usable one,
# so a restarted Caddy serves at once, else with the bootstrap config (the admin API only).
# control loads the current Caddyfile through the admin API either way.
set -eu

# Caddy's own data and config dirs (certificates, ACME account, autosave) are under
# $DATA_DIR/caddy, the storage the rendered Caddyfile names, so they survive a new container.
export XDG_DATA_HOME="$DATA_DIR" XDG_CONFIG_HOME="$DATA_DIR"
# CADDY_ADMIN is the admin address Caddy reads itself (host:port), and control with it.
# CADDY_ADMIN_LISTEN is its former name; an http:// URL (which control also takes) is cut to
# host:port for Caddy.
if [ -z "${CADDY_ADMIN:-}" ] && [ -n "${CADDY_ADMIN_LISTEN:-}" ]; then
    echo "run-caddy | CADDY_ADMIN_LISTEN is deprecated: set CADDY_ADMIN (for Caddy and control alike)"
    CADDY_ADMIN="$CADDY_ADMIN_LISTEN"
fi
admin="${CADDY_ADMIN:-127.0.0.1:2019}"
admin="${admin#*://}"
export CADDY_ADMIN="${admin%/}"

if [ -s "$CADDYFILE_PATH" ] &&
    caddy adapt --config "$CADDYFILE_PATH" --adapter caddyfile >/dev/null 2>&1; then
    exec caddy run --config "$CADDYFILE_PATH" --adapter caddyfile
fi
exec caddy run --config "$CADDY_BOOTSTRAP" --adapter caddyfile
