#!/usr/bin/env bash
# dvc-bridge's ingest against the tools a data team would reach for instead, on one simulated feed.
#
#   bench/peers/run.sh [--records N] [--page-size P] [--only dvc-bridge,dlt,dlt+parquet,airbyte] [--setup-only]
#
# Run from the repository root. Builds the release binary, installs pinned versions of dlt (with
# duckdb) and airbyte-cdk from PyPI into virtualenvs under target/peers-venv (one per tool, so that
# neither's dependencies are chosen for the other's sake; reused when already installed), starts ONE simulator
# (`dvc-bridge simulate --bulk city=N`) and walks its city system (VNPT iGate dialect) in full with
# each tool in turn, same page size, same machine:
#
#   dvc-bridge  `dvc-bridge bench ingest --city-url ... --api-key-file ...`: the production poller,
#               mapping, validation, linking, merging, due-time reckoning, SQLite store and outbox;
#   dlt         bench/peers/dlt_city.py: dlt's REST API source (page-number paginator, `content`
#               selector, X-API-Key header), normalised and loaded into duckdb in a temporary folder,
#               with duckdb's default loader file format (insert_values);
#   dlt+parquet the same with `loader_file_format="parquet"` (the `parquet` extra: pyarrow);
#   airbyte     bench/peers/airbyte_city.yaml, a declarative (low-code) manifest, `read` through the
#               CDK's entrypoint with a configured catalog; RECORD messages counted, no destination.
#
# Each tool must read every record the feed holds (N bulk records plus the city fixtures), or the
# script fails. Seconds are those of the walk alone (process start and imports excluded for all
# three); peak memory is each process's peak resident set (VmHWM / ru_maxrss), simulator excluded;
# CPU seconds are those the tool's process used during the walk (all its threads), which depend
# less than wall time on what else the machine is doing.
set -euo pipefail

RECORDS=100000
PAGE_SIZE=500
ONLY="dvc-bridge,dlt,dlt+parquet,airbyte"
SETUP_ONLY=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --records) RECORDS="$2"; shift 2 ;;
        --page-size) PAGE_SIZE="$2"; shift 2 ;;
        --only) ONLY="$2"; shift 2 ;;
        --setup-only) SETUP_ONLY=1; shift ;;
        -h|--help) sed -n '2,/^set /{/^#/p}' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

# The versions measured (BENCHMARKS.md, "Peers"). The constraints files pin every transitive
# dependency as installed when the figures were made.
DLT_VERSION=1.31.0
AIRBYTE_CDK_VERSION=7.39.1

cd "$(dirname "$0")/../.."
ROOT=$PWD
HERE=$ROOT/bench/peers
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENVS=$TARGET/peers-venv
PYTHON=${PYTHON:-python3}

log() { echo "== $*" >&2; }

# A virtualenv at $1 holding the requirement $2 (with the constraints file $3), reused when its
# stamp says it already does.
venv() {
    local dir=$1 req=$2 constraints=$3
    local stamp="$req $(sha256sum "$constraints" | cut -c1-16)"
    if [[ -f $dir/stamp && $(cat "$dir/stamp") == "$stamp" ]]; then
        log "reusing $dir ($req)"
        return
    fi
    log "installing $req into $dir"
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --upgrade pip
    "$dir/bin/python" -m pip install --quiet "$req" -c "$constraints"
    echo "$stamp" >"$dir/stamp"
}

log "cargo build --release"
cargo build --release
BIN=$TARGET/release/dvc-bridge

want() { [[ ",$ONLY," == *",$1,"* ]]; }
(want dlt || want dlt+parquet) && venv "$VENVS/dlt" "dlt[duckdb,parquet]==$DLT_VERSION" "$HERE/constraints-dlt.txt"
want airbyte && venv "$VENVS/airbyte" "airbyte-cdk==$AIRBYTE_CDK_VERSION" "$HERE/constraints-airbyte.txt"
if [[ $SETUP_ONLY == 1 ]]; then
    exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dvc-bridge-peers.XXXXXX")
SIM_PID=
cleanup() {
    if [[ -n $SIM_PID ]]; then
        kill "$SIM_PID" 2>/dev/null || true
        wait "$SIM_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# The simulator's city API key (`SimOptions::demo(..).city_api_key` in src/sim/mod.rs).
printf '%s' "city-demo-key" >"$WORK/city-api-key"

log "starting the simulator with $RECORDS bulk city records"
mkfifo "$WORK/sim.out"
"$BIN" simulate --ports 0 0 0 --tick-ms 0 --bulk "city=$RECORDS" >"$WORK/sim.out" &
SIM_PID=$!
CITY_URL=
exec 3<"$WORK/sim.out"
while IFS= read -r line <&3; do
    case "$line" in
        "city "*) CITY_URL=${line##* } ;;
        ready) break ;;
    esac
done
[[ -n $CITY_URL ]] || { echo "run.sh: the simulator did not report the city system's address" >&2; exit 1; }
# Keep reading the simulator's stdout so that it never blocks on a full pipe.
cat <&3 >/dev/null &
exec 3<&-

EXPECTED=$(curl -sf -H "X-API-Key: $(cat "$WORK/city-api-key")" \
    "$CITY_URL/pa/dossier/search?page=0&size=1&sort=updatedDate,desc" | jq .totalElements)
log "city system at $CITY_URL holds $EXPECTED records ($RECORDS bulk + fixtures); page size $PAGE_SIZE"

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# Results, one line per tool: name records seconds peak_mib cpu_seconds.
RESULTS=$WORK/results
: >"$RESULTS"
check() {
    local tool=$1 records=$2
    echo "$tool read $records records (expected $EXPECTED)" >&2
    if [[ $records != "$EXPECTED" ]]; then
        echo "run.sh: $tool read $records records, not the $EXPECTED the feed holds" >&2
        exit 1
    fi
}

if want dvc-bridge; then
    log "dvc-bridge"
    line=$("$BIN" bench ingest --city-url "$CITY_URL" --api-key-file "$WORK/city-api-key" \
        --page-size "$PAGE_SIZE" --data-dir "$WORK/dvc-bridge" | tee "$WORK/out" >&2 && grep '^ingest: ' "$WORK/out")
    # ingest: 100150 records in 201 pages, 3.58 s: 28006 records/s; peak RSS 141 MiB; ...
    records=$(sed -E 's/^ingest: ([0-9]+) records.*/\1/' <<<"$line")
    secs=$(sed -E 's/.* pages, ([0-9.]+) s:.*/\1/' <<<"$line")
    peak=$(sed -E 's/.*peak RSS ([0-9.]+) MiB.*/\1/' <<<"$line")
    cpu=$(sed -E 's/.*; CPU ([0-9.]+) s;.*/\1/' <<<"$line")
    check dvc-bridge "$records"
    echo "dvc-bridge $records $secs $peak $cpu" >>"$RESULTS"
    rm -rf "$WORK/dvc-bridge"
fi

# The Python tools print one line: "result RECORDS SECONDS PEAK_MIB CPU_SECONDS".
dlt_run() {
    local tool=$1
    shift
    log "$tool $DLT_VERSION (rest_api → duckdb${*:+ $*})"
    line=$("$VENVS/dlt/bin/python" "$HERE/dlt_city.py" --url "$CITY_URL" --api-key-file "$WORK/city-api-key" \
        --page-size "$PAGE_SIZE" --dir "$WORK/dlt" "$@" | tee "$WORK/out" >&2 && grep '^result ' "$WORK/out")
    read -r _ records secs peak cpu <<<"$line"
    check "$tool" "$records"
    echo "$tool $records $secs $peak $cpu" >>"$RESULTS"
    rm -rf "$WORK/dlt"
}
# dlt's default for duckdb (SQL INSERT statements), then the parquet files its documentation
# recommends for speed.
if want dlt; then dlt_run dlt; fi
if want dlt+parquet; then dlt_run dlt+parquet --loader-file-format parquet; fi

if want airbyte; then
    log "airbyte-cdk $AIRBYTE_CDK_VERSION (declarative manifest, read)"
    line=$("$VENVS/airbyte/bin/python" "$HERE/airbyte_city.py" --manifest "$HERE/airbyte_city.yaml" \
        --url "$CITY_URL" --api-key-file "$WORK/city-api-key" --page-size "$PAGE_SIZE" --dir "$WORK/airbyte" \
        | tee "$WORK/out" >&2 && grep '^result ' "$WORK/out")
    read -r _ records secs peak cpu <<<"$line"
    check airbyte-cdk "$records"
    echo "airbyte-cdk $records $secs $peak $cpu" >>"$RESULTS"
    rm -rf "$WORK/airbyte"
fi

echo
echo "Peers: $EXPECTED records ($RECORDS bulk + fixtures), page size $PAGE_SIZE, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)," \
    "load average $LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after"
awk '
    NR == FNR { if ($1 == "dvc-bridge") { base = $2 / $3; base_cpu = $5 / $2 }; next }
    FNR == 1 {
        printf "| %-11s | %9s | %8s | %9s | %8s | %s | %5s | %s |\n", "tool", "records", "seconds", "records/s", \
            "peak MiB", "dvc-bridge ÷ tool", "CPU s", "CPU ÷ dvc-bridge CPU"
        printf "|%s|%s|%s|%s|%s|%s|%s|%s|\n", "-------------", "----------:", "---------:", "----------:", \
            "---------:", "---:", "------:", "---:"
    }
    {
        rate = $2 / $3
        ratio = base ? sprintf("%.1f×", base / rate) : "–"
        cpu_ratio = base_cpu ? sprintf("%.1f×", ($5 / $2) / base_cpu) : "–"
        printf "| %-11s | %9d | %8.2f | %9.0f | %8.0f | %s | %5.2f | %s |\n", $1, $2, $3, rate, $4, ratio, $5, cpu_ratio
    }
' "$RESULTS" "$RESULTS"
