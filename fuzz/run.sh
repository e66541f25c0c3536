#!/usr/bin/env bash
# Coverage-guided fuzzing of where bad input enters (see fuzz/fuzz_targets/*.rs):
#   map_record   records mapped through the shipped descriptors
#   parse_time   time values through every date format, and formatting them back
#   load_config  the daemon's configuration through the loader; descriptors, calendar, procedures
#                and cutover files through their parsers
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 seconds, every target)
#   fuzz/run.sh --coverage [TARGET...]                how much of its code each target's corpus reaches
#
# Installs cargo-fuzz (pinned) when it is missing, builds the targets with libFuzzer on the stable
# toolchain (RUSTC_BOOTSTRAP=1: cargo-fuzz passes -Z flags), then runs each target for the given time
# from its committed seeds (fuzz/seeds/<target>) and the corpus grown by earlier runs
# (fuzz/corpus/<target>, not committed), and prints per target: executions, executions per second,
# libFuzzer's coverage (cov: edges, ft: features) and corpus size at the end, and crashes. Any crash,
# timeout or out-of-memory exits non-zero, naming the reproducer; rerun one with
#   <binary printed below> <reproducer>
#
# --coverage fuzzes nothing: it builds each target with source-based coverage (`cargo fuzz coverage`,
# -C instrument-coverage), replays its seeds and corpus once, and prints with llvm-cov the lines,
# functions and regions reached in the source files the target is for. rustup's llvm-tools are not
# available here; LLVM 19 or later reads rustc's coverage format, and the script installs Debian's
# llvm-19 when no such LLVM is found (LLVM_PATH=<dir of llvm-cov> picks another).
#
# Environment: CARGO_TARGET_DIR (default fuzz/target), FUZZ_SANITIZER (default none: the code under
# test is safe Rust; "address" also works), FUZZ_TIMEOUT (seconds one input may take, default 10).
set -euo pipefail
cd "$(dirname "$0")"
FUZZ_DIR=$PWD

COVERAGE=0
if [ "${1:-}" = "--coverage" ]; then
    COVERAGE=1
    shift
    SECONDS_PER_TARGET=0
else
    SECONDS_PER_TARGET=${1:-60}
    shift || true
fi
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


# load_config writes a configuration folder per process: keep them out of the way and remove them.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dvc-bridge-fuzz.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

mkdir -p logs

# The files each target is for: its coverage is reported over these (the rest of the crate is
# linked in but not the target's business).
target_files() {
    case $1 in
        map_record) echo src/core/mapping.rs src/core/timefmt.rs ;;
        parse_time) echo src/core/timefmt.rs ;;
        load_config) echo src/config/mod.rs src/core/descriptor.rs src/core/calendar.rs \
            src/core/procedures.rs src/core/cutover.rs ;;
    esac
}
# Functions of other files a target is for, as file:function (the rest of their file is not).
target_functions() {
    case $1 in
        parse_time) echo src/source/fetch.rs:since_filter ;;
    esac
}

if [ "$COVERAGE" -eq 1 ]; then
    llvm=${LLVM_PATH:-}
    if [ -z "$llvm" ]; then
        for d in $(ls -d /usr/lib/llvm-*/bin 2>/dev/null | sort -t- -k2 -n -r); do
            v=${d#/usr/lib/llvm-}; v=${v%/bin}
            if [ "$v" -ge 19 ] && [ -x "$d/llvm-cov" ] && [ -x "$d/llvm-profdata" ]; then llvm=$d; break; fi
        done
    fi
    if [ -z "$llvm" ]; then
        if command -v apt-get >/dev/null && [ "$(id -u)" -eq 0 ]; then
            echo "== installing Debian's llvm-19 (llvm-cov, llvm-profdata)"
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends llvm-19 >/dev/null
            llvm=/usr/lib/llvm-19/bin
        else
            echo "!! --coverage needs llvm-cov and llvm-profdata of LLVM 19 or later: apt-get install llvm-19, or set LLVM_PATH" >&2
            exit 2
        fi
    fi
    for t in "${TARGETS[@]}"; do
        mkdir -p "corpus/$t"
        inputs=$(find "corpus/$t" "seeds/$t" -type f | wc -l)
        log=logs/$t.coverage.log
        echo "== $t: coverage of its seeds and corpus ($inputs inputs; building with -C instrument-coverage)"
        TMPDIR=$WORK cargo fuzz coverage --llvm-path "$llvm" --sanitizer none --debug-assertions \
            --codegen-units 16 "$t" "corpus/$t" "seeds/$t" >"$log" 2>&1 \
            || { echo "!! $t: the coverage run failed: see $FUZZ_DIR/$log"; exit 1; }
        bin=$CARGO_TARGET_DIR/$TRIPLE/coverage/$TRIPLE/release/$t
        profile=coverage/$t/coverage.profdata
        files=()
        for f in $(target_files "$t"); do files+=("../$f"); done
        # Per file and in all: lines, functions and regions reached (llvm-cov's summary, as JSON).
        "$llvm/llvm-cov" export -summary-only "$bin" -instr-profile="$profile" "${files[@]}" | python3 -c '
import json, os, sys
data = json.load(sys.stdin)["data"][0]
rows = [(os.path.relpath(f["filename"], sys.argv[1]), f["summary"]) for f in data["files"]]
rows.append(("all of the above", data["totals"]))
for name, s in rows:
    cells = []
    for kind in ("lines", "functions", "regions"):
        covered, count, percent = s[kind]["covered"], s[kind]["count"], s[kind]["percent"]
        cells.append(f"{kind} {covered:>5}/{count:<5} {percent:5.1f} %")
    print(f"   {name:<26} " + "   ".join(cells))
' "$FUZZ_DIR/.."
        for pair in $(target_functions "$t"); do
            # Names are mangled (v0): a function's own entry ends in its length-prefixed name.
            "$llvm/llvm-cov" report "$bin" -instr-profile="$profile" -show-functions "../${pair%%:*}" \
                | awk -v fn="${pair#*:}" '$1 ~ ("[0-9]" fn "$") { printf "   %-28s lines %6s/%-6s %8s\n", fn "()", $5-$6, $5, $7 }'
        done
        echo "   lines not reached: $llvm/llvm-cov show $bin -instr-profile=fuzz/$profile ${files[*]#../} -show-line-counts -region-coverage-lt=100"
    done
    exit 0
fi

echo "== building the fuzz targets ($(cargo fuzz --version), sanitizer $SANITIZER, debug assertions on)"
# 16 codegen units: a much shorter build for a slightly slower target.
build_start=$SECONDS
cargo fuzz build --sanitizer "$SANITIZER" --debug-assertions --codegen-units 16
echo "   built in $(( SECONDS - build_start )) s"
BIN_DIR=$CARGO_TARGET_DIR/$TRIPLE/release

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
