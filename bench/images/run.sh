#!/usr/bin/env bash
# Benchmarks request image compression against sharp (the original gateway's library) on the
# same generated inputs and settings, in one run, scores every output against its source
# (SSIM and butteraugli, computed the same way for both), and writes the figures into
# docs/benchmarks.md between the image-compression markers.
#
#   bench/images/run.sh            ITERATIONS=40 bench/images/run.sh
#
# Needs cargo, node (20.9 or later) and npm. sharp is installed from the npm registry into
# bench/images/.work (git-ignored), together with the generated inputs and raw results.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$here/.work"
sharp_version="${SHARP_VERSION:-0.35.5}"
iterations="${ITERATIONS:-20}"
threads="$(nproc)"

mkdir -p "$work/inputs"
installed="$(node -p "try { require('$work/node_modules/sharp/package.json').version } catch { '' }")"
if [ "$installed" != "$sharp_version" ]; then
  npm install --prefix "$work" --no-save --no-package-lock --no-audit --no-fund "sharp@$sharp_version"
fi

cargo build --release --quiet -p image-bench --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/release/image-bench"

"$bin" generate "$work/inputs"
echo "gateway: $iterations iterations per input, then $threads threads" >&2
"$bin" run "$work/inputs" --iterations "$iterations" > "$work/gateway.json"
echo "sharp: $iterations iterations per input, then $threads parallel images" >&2
UV_THREADPOOL_SIZE="$threads" SHARP_PREFIX="$work" \
  node "$here/sharp.cjs" "$work/inputs" "$iterations" "$threads" > "$work/sharp.json"

echo "quality: every output against its source" >&2
"$bin" quality "$work/inputs" > "$work/quality.json"

RUSTC_VERSION="$(rustc --version)" node "$here/report.cjs" \
  "$work/gateway.json" "$work/sharp.json" "$work/quality.json" "$root/docs/benchmarks.md"
echo "wrote $root/docs/benchmarks.md" >&2
