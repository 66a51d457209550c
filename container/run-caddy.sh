#!/bin/sh
# Starts Caddy with the Caddyfile control rendered into the data dir when there is a usable one,
# so a restarted Caddy serves at once, else with the bootstrap config (the admin API only).
# control loads the current Caddyfile through the admin API either way.
set -eu

# Caddy's own data and config dirs (certificates, ACME account, autosave) are under
# $DATA_DIR/caddy, the storage the rendered Caddyfile names, so they survive a new container.
export XDG_DATA_HOME="$DATA_DIR" XDG_CONFIG_HOME="$DATA_DIR"
admin="${CADDY_ADMIN#*://}"
export CADDY_ADMIN_LISTEN="${admin%/}"

if [ -s "$CADDYFILE_PATH" ] &&
    caddy adapt --config "$CADDYFILE_PATH" --adapter caddyfile >/dev/null 2>&1; then
    exec caddy run --config "$CADDYFILE_PATH" --adapter caddyfile
fi
exec caddy run --config "$CADDY_BOOTSTRAP" --adapter caddyfile
