"""The simulated city system (VNPT iGate dialect) loaded with dlt's REST API source into duckdb.

Run by bench/peers/run.sh in target/peers-venv/dlt. The source is configured as a data team would
configure it for this API: page-number paging from page 0 (`page`, the page size in `size`, the
number of pages in `totalPages`), records under `content`, the key in the `X-API-Key` header.
dlt's defaults otherwise: append, nested lists (tasks, attachments, fees, ...) normalised into
child tables, duckdb as the destination, in a fresh folder; `--loader-file-format parquet` for the
format dlt recommends for speed instead of duckdb's default `insert_values`.

Timed: `pipeline.run` (extract, normalise, load). Prints `result RECORDS SECONDS PEAK_MIB CPU_SECS`,
RECORDS being the rows of the top-level table in duckdb after the run, PEAK_MIB the process's peak
resident set and CPU_SECS the CPU time (user and system, every thread) the run used.
"""

import argparse
import os
import resource
import time

parser = argparse.ArgumentParser()
parser.add_argument("--url", required=True)
parser.add_argument("--api-key-file", required=True)
parser.add_argument("--page-size", type=int, default=500)
parser.add_argument("--dir", required=True)
# dlt's default for duckdb is `insert_values` (SQL INSERT statements); `parquet` (with the `parquet`
# extra, pyarrow) is what dlt's documentation suggests for speed.
parser.add_argument("--loader-file-format", default=None)
args = parser.parse_args()

os.makedirs(args.dir, exist_ok=True)
# Everything dlt keeps (pipeline state, extracted and normalised files) in the temporary folder.
os.environ["DLT_DATA_DIR"] = os.path.join(args.dir, "dlt-data")
os.environ["DLT_PROJECT_DIR"] = args.dir
os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")

import dlt  # noqa: E402
from dlt.sources.rest_api import rest_api_source  # noqa: E402

with open(args.api_key_file) as f:
    api_key = f.read().strip()

source = rest_api_source(
    {
        "client": {
            "base_url": args.url,
            "auth": {"type": "api_key", "name": "X-API-Key", "api_key": api_key, "location": "header"},
            "paginator": {
                "type": "page_number",
                "page_param": "page",
                "base_page": 0,
                "total_path": "totalPages",
            },
        },
        "resources": [
            {
                "name": "dossiers",
                "endpoint": {
                    "path": "pa/dossier/search",
                    "params": {"size": args.page_size, "sort": "updatedDate,desc"},
                    "data_selector": "content",
                },
            }
        ],
    }
)

db = os.path.join(args.dir, "peers.duckdb")
pipeline = dlt.pipeline(
    pipeline_name="city_bench",
    destination=dlt.destinations.duckdb(db),
    dataset_name="city",
    pipelines_dir=os.path.join(args.dir, "pipelines"),
)

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


started, cpu_before = time.perf_counter(), cpu()
info = pipeline.run(source, loader_file_format=args.loader_file_format)
secs = time.perf_counter() - started
cpu_secs = cpu() - cpu_before
peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024

steps = ", ".join(
    f"{step.step} {(step.finished_at - step.started_at).total_seconds():.1f} s" for step in pipeline.last_trace.steps
)
formats = sorted({job.job_file_info.file_format for p in info.load_packages for job in p.jobs["completed_jobs"]})
print(f"dlt: steps {steps}; loader file formats {', '.join(formats)}")
with pipeline.sql_client() as client:
    records = client.execute_sql("SELECT count(*) FROM dossiers")[0][0]
    tables = [r[0] for r in client.execute_sql("SELECT table_name FROM information_schema.tables WHERE table_schema = 'city'")]
print(f"dlt: {records} rows in city.dossiers, {len(tables)} tables ({', '.join(sorted(tables))}); duckdb {os.path.getsize(db) / 2**20:.0f} MiB")
print(f"result {records} {secs:.2f} {peak:.0f} {cpu_secs:.2f}")
