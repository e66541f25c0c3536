#!/usr/bin/env bash
# Every benchmark of BENCHMARKS.md that compares the bridge with its peers or with its targets, in
# one run, on one machine, one after the other (none disturbs another):
#
#   1. ingest against its peers: bench/peers/run.sh (dvc-bridge, dlt into duckdb with its default
#      loader and with parquet, the airbyte-cdk declarative source; installed from PyPI by that
#      script) on one simulated feed of N records: records/s, peak memory, CPU, ratios;
#   2. freshness: `dvc-bridge bench freshness`, a change upstream to the portal's acknowledgement,
#      p50/p90/p99/max at a steady load, polling every 1 s and then every 60 s;
#   3. a full re-sync: `dvc-bridge bench resync`, a store of N dossiers walked and merged again
#      (time, peak memory, database size, rows queued).
#
#   bench/run.sh [--records N] [--dossiers N] [--freshness-minutes M] [--only peers,freshness,resync]
#
# Defaults are the figures' own: 100,000 records, 3 minutes of changes, 1,000,000 dossiers; about
# 20 minutes on 2 quiet cores, 7 GB of disk at the peak (the re-sync's store). Run from anywhere;
# every step's output goes to stderr as it runs; stdout gets only the summary at the end (the peers'
# table, the freshness and re-sync lines) with the commit, the date and the load average.
set -euo pipefail

RECORDS=100000
DOSSIERS=1000000
MINUTES=3
ONLY="peers,freshness,resync"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --records) RECORDS="$2"; shift 2 ;;
        --dossiers) DOSSIERS="$2"; shift 2 ;;
        --freshness-minutes) MINUTES="$2"; shift 2 ;;
        --only) ONLY="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set /{/^#/p}' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }

cd "$(dirname "$0")/.."
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/dvc-bridge
OUT=$(mktemp -d "${TMPDIR:-/tmp}/dvc-bridge-bench.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
started=$(date -u +%Y-%m-%dT%H:%MZ)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

echo "== cargo build --release" >&2
cargo build --release >&2

if want peers; then
    echo "== 1. ingest against dlt and airbyte-cdk ($RECORDS records)" >&2
    bench/peers/run.sh --records "$RECORDS" | tee "$OUT/peers" >&2
fi
if want freshness; then
    echo "== 2. freshness ($MINUTES minutes of changes per poll interval)" >&2
    "$BIN" bench freshness --minutes "$MINUTES" | tee "$OUT/freshness" >&2
fi
if want resync; then
    echo "== 3. full re-sync ($DOSSIERS dossiers)" >&2
    "$BIN" bench resync --dossiers "$DOSSIERS" | tee "$OUT/resync" >&2
fi

echo
echo "== summary: commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores," \
    "started $started, load average $load_before before and $(cut -d' ' -f1-3 /proc/loadavg) after"
if [[ -f $OUT/peers ]]; then grep -E '^\|' "$OUT/peers"; fi
if [[ -f $OUT/freshness ]]; then grep -E '^freshness' "$OUT/freshness"; fi
if [[ -f $OUT/resync ]]; then grep -E '^(first sync|re-sync)' "$OUT/resync"; fi
