#!/usr/bin/env bash
# Soak test of the release proxy (not run in CI): mixed requests (plain, streamed, cancelled,
# inline image, erroring) with a config save every 3 s, then checks for unexpected answers and
# for growth of the proxy's RSS and open descriptors. Writes the "## Soak" section of
# docs/benchmarks.md and exits non-zero when a target is missed.
#
#   bench/soak/run.sh              1,000,000 requests
#   bench/soak/run.sh 300000       fewer
#
# Extra arguments after the count go to the soak binary (e.g. --connections 64).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

requests="${1:-1000000}"
shift || true

# Separate builds, so that `proxy` is built exactly as `cargo build --release -p proxy` builds it.
cargo build --release --quiet -p proxy
cargo build --release --quiet -p soak

bin_dir="${CARGO_TARGET_DIR:-$root/target}/release"
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
SOAK_DATE="$(date -u '+%Y-%m-%d %H:%M UTC')" RUSTC_VERSION="$(rustc --version)" "$bin_dir/soak" \
  --proxy "$bin_dir/proxy" \
  --work "$here/.work" \
  --out "$root/docs/benchmarks.md" \
  --requests "$requests" "$@"
