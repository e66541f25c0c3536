#!/usr/bin/env bash
# Coverage-guided fuzzing of where bad input enters (see fuzz/fuzz_targets/*.rs):
#   map_record   records mapped through the shipped descriptors
#   parse_time   time values through every date format, and formatting them back
#   load_config  the daemon's configuration through the loader; descriptors, calendar, procedures
#                and cutover files through their parsers
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 seconds, every target)
#
# Installs cargo-fuzz (pinned) when it is missing, builds the targets with libFuzzer on the stable
# toolchain (RUSTC_BOOTSTRAP=1: cargo-fuzz passes -Z flags), then runs each target for the given time
# from its committed seeds (fuzz/seeds/<target>) and the corpus grown by earlier runs
# (fuzz/corpus/<target>, not committed), and prints per target: executions, executions per second,
# libFuzzer's coverage (cov: edges, ft: features) and corpus size at the end, and crashes. Any crash,
# timeout or out-of-memory exits non-zero, naming the reproducer; rerun one with
#   <binary printed below> <reproducer>
#
# Environment: CARGO_TARGET_DIR (default fuzz/target), FUZZ_SANITIZER (default none: the code under
# test is safe Rust; "address" also works), FUZZ_TIMEOUT (seconds one input may take, default 10).
set -euo pipefail
cd "$(dirname "$0")"
FUZZ_DIR=$PWD

SECONDS_PER_TARGET=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(map_record parse_time load_config)
CARGO_FUZZ_VERSION=0.13.2
SANITIZER=${FUZZ_SANITIZER:-none}
TIMEOUT=${FUZZ_TIMEOUT:-10}
TRIPLE=x86_64-unknown-linux-gnu
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$FUZZ_DIR/target}
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

echo "== building the fuzz targets ($(cargo fuzz --version), sanitizer $SANITIZER, debug assertions on)"
# 16 codegen units: a much shorter build for a slightly slower target.
build_start=$SECONDS
cargo fuzz build --sanitizer "$SANITIZER" --debug-assertions --codegen-units 16
echo "   built in $(( SECONDS - build_start )) s"
BIN_DIR=$CARGO_TARGET_DIR/$TRIPLE/release

# load_config writes a configuration folder per process: keep them out of the way and remove them.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dvc-bridge-fuzz.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

mkdir -p logs
failed=0
summary=()
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    # Longest input: a configuration file is some 9 KB, a record 4; a time value is short.
    case $t in
        load_config) max_len=16384 ;;
        map_record) max_len=8192 ;;
        *) max_len=512 ;;
    esac
    log=logs/$t.log
    echo "== $t: $SECONDS_PER_TARGET s"
    status=0
    TMPDIR=$WORK "$BIN_DIR/$t" "corpus/$t" "seeds/$t" \
        -dict="dicts/$t.dict" \
        -max_total_time="$SECONDS_PER_TARGET" \
        -max_len="$max_len" \
        -timeout="$TIMEOUT" \
        -rss_limit_mb=2048 \
        -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" \
        </dev/null >"$log" 2>&1 || status=$?
    # The last status line libFuzzer printed: "#N DONE cov: C ft: F corp: U/S ...".
    line=$(grep -E '^#[0-9]+[[:space:]].*cov: ' "$log" | tail -1 || true)
    field() { sed -nE "s/.*$1: ([0-9]+[a-zA-Z]*).*/\1/p" <<<"$line"; }
    execs=$(sed -nE 's/^stat::number_of_executed_units:[[:space:]]+([0-9]+)/\1/p' "$log")
    rate=$(sed -nE 's/^stat::average_exec_per_sec:[[:space:]]+([0-9]+)/\1/p' "$log")
    corpus_files=$(find "corpus/$t" -type f | wc -l)
    crashes=$(grep -Eo "Test unit written to [^ ]+" "$log" | sed 's/Test unit written to //' || true)
    n_crashes=$(grep -c . <<<"$crashes" || true)
    row=$(printf '%-12s execs %-10s exec/s %-7s cov %-6s ft %-7s corpus %-5s crashes %s' \
        "$t" "${execs:-?}" "${rate:-?}" "$(field cov)" "$(field ft)" "$corpus_files" "$n_crashes")
    echo "   $row"
    summary+=("$row")
    if [ "$status" -ne 0 ] || [ "$n_crashes" -ne 0 ]; then
        failed=1
        echo "!! $t failed (libFuzzer exit $status); the end of $FUZZ_DIR/$log:"
        grep -vE '^(#[0-9]+|INFO:|MERGE)' "$log" | tail -40 | sed 's/^/   | /'
        for c in $crashes; do
            echo "!! reproducer: $FUZZ_DIR/$c   (rerun: $BIN_DIR/$t $FUZZ_DIR/$c)"
        done
    fi
done

echo "== summary ($SECONDS_PER_TARGET s per target, sanitizer $SANITIZER)"
printf '   %s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
    echo "!! the fuzzers found a crash: see above"
    exit 1
fi
