#!/usr/bin/env bash
# Builds the fuzz targets and runs each for the given time, one after another, at the lowest CPU
# priority. Exits non-zero when a target finds a crash (its input is left in
# fuzz/artifacts/<target>/) or the build fails.
#
#   fuzz/run.sh [seconds-per-target] [target...]   (default: 600 seconds, every target)
#   fuzz/run.sh --merge [target...]                 fold the inputs the runs found into the
#                                                   committed corpora, minimised (only what
#                                                   reaches code the seeds do not is kept)
#
# Inputs: fuzz/seeds/<target> (hand-picked) and fuzz/corpus/<target> (minimised, committed).
# New inputs a run finds go to fuzz/work/<target> (not committed); per-target logs and a
# summary to fuzz/logs/.
#
# FUZZ_PROFILE=release (default) builds optimised with AddressSanitizer; FUZZ_PROFILE=dev builds
# unoptimised (the image codecs optimised) without a sanitizer: the project's own crates rebuild
# in about a minute instead of eight, for short runs. FUZZ_TARGET_DIR (default fuzz/target) is
# where builds go.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${FUZZ_PROFILE:-release}" in
  release) build_flags=() ;;
  dev) build_flags=(--dev --sanitizer none) ;;
  *)
    echo "fuzz/run.sh: FUZZ_PROFILE is release or dev, not ${FUZZ_PROFILE}" >&2
    exit 2
    ;;
esac
build_flags+=(--target-dir "${FUZZ_TARGET_DIR:-fuzz/target}")

TARGETS=(sse config splice image_spans image_codec caddyfile)

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

fuzz() {
  local command="$1"
  shift
  nice -n 19 cargo +nightly fuzz "$command" --fuzz-dir fuzz "${build_flags[@]}" "$@"
}

# Options per target besides the time: larger inputs where they matter, and a per-input time
# limit that reports a hang as a crash.
options() {
  case "$1" in
    image_codec) echo "-max_len=65536 -timeout=20" ;;
    image_spans | splice) echo "-max_len=65536 -timeout=10" ;;
    *) echo "-max_len=16384 -timeout=10" ;;
  esac
}

if [[ "${1:-}" == "--merge" ]]; then
  # libFuzzer's merge into a copy of the seeds keeps, of the committed corpus and the runs'
  # finds, only the inputs that reach code the seeds do not (edges, not hit counts, so that the
  # corpus stays small); the seeds are then taken out.
  shift
  mkdir -p fuzz/logs
  for target in "${@:-${TARGETS[@]}}"; do
    merged=$(mktemp -d)
    cp "fuzz/seeds/$target/"* "$merged/"
    mkdir -p "fuzz/corpus/$target" "fuzz/work/$target"
    # shellcheck disable=SC2046
    fuzz run "$target" "$merged" "fuzz/corpus/$target" "fuzz/work/$target" -- -merge=1 \
      -use_counters=0 -rss_limit_mb=4096 $(options "$target") >"fuzz/logs/$target.merge.log" 2>&1
    for seed in "fuzz/seeds/$target/"*; do
      rm -f "$merged/$(basename "$seed")"
    done
    rm -rf "fuzz/corpus/$target"
    mv "$merged" "fuzz/corpus/$target"
    chmod 755 "fuzz/corpus/$target"
    echo "$target: $(find "fuzz/corpus/$target" -type f | wc -l) inputs," \
      "$(du -sk --apparent-size "fuzz/corpus/$target" | cut -f1) KiB"
  done
  exit 0
fi

seconds="${1:-600}"
shift || true
selected=("${@:-${TARGETS[@]}}")

started=$(date +%s)
fuzz build
built=$(date +%s)
echo "fuzz/run.sh: built in $((built - started)) s; ${seconds} s per target"

mkdir -p fuzz/logs
summary="fuzz/logs/summary.txt"
printf '%-12s %12s %10s %8s %8s %8s  %s\n' target execs execs/s cov ft rss_mb result >"$summary"
failed=()
for target in "${selected[@]}"; do
  mkdir -p "fuzz/work/$target" "fuzz/corpus/$target" "fuzz/seeds/$target"
  log="fuzz/logs/$target.log"
  echo "fuzz/run.sh: $target for ${seconds} s (log: $log)"
  result=ok
  # shellcheck disable=SC2046
  if ! fuzz run "$target" "fuzz/work/$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 $(options "$target") \
    >"$log" 2>&1; then
    result=CRASH
    failed+=("$target")
    grep -E "panicked at|ERROR: libFuzzer|SUMMARY|Test unit written|^thread" "$log" | head -20 >&2 || true
  fi
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)
  rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)
  rss=$(grep -oE 'stat::peak_rss_mb: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)
  cov=$(grep -oE ' cov: [0-9]+' "$log" | grep -oE '[0-9]+' | tail -1 || true)
  ft=$(grep -oE ' ft: [0-9]+' "$log" | grep -oE '[0-9]+' | tail -1 || true)
  printf '%-12s %12s %10s %8s %8s %8s  %s\n' "$target" "${execs:--}" "${rate:--}" "${cov:--}" \
    "${ft:--}" "${rss:--}" "$result" >>"$summary"
done
cat "$summary"
echo "fuzz/run.sh: $(($(date +%s) - started)) s in all"
if ((${#failed[@]})); then
  echo "fuzz/run.sh: crashes in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
  exit 1
fi
