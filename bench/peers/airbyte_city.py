"""The simulated city system read with airbyte-cdk's declarative source (bench/peers/airbyte_city.yaml).

Run by bench/peers/run.sh in target/peers-venv/airbyte. Does what the CDK's own
`source-declarative-manifest read --config C --catalog K --manifest-path M` does (the same source
built by `create_declarative_source`, the same `AirbyteEntrypoint.run` generator that `launch`
prints), except that the serialised messages are written to a file in the temporary folder instead
of stdout, and RECORD messages are counted as they go. There is no destination: the CDK is the
source half of an Airbyte sync.

Timed: the `read` (every message of the walk, serialised and written). Prints
`result RECORDS SECONDS PEAK_MIB CPU_SECS`
(CPU_SECS: user and system time of every thread during the read).
"""

import argparse
import json
import os
import resource
import time

parser = argparse.ArgumentParser()
parser.add_argument("--manifest", required=True)
parser.add_argument("--url", required=True)
parser.add_argument("--api-key-file", required=True)
parser.add_argument("--page-size", type=int, default=500)
parser.add_argument("--dir", required=True)
args = parser.parse_args()

from airbyte_cdk.cli.source_declarative_manifest._run import create_declarative_source  # noqa: E402
from airbyte_cdk.entrypoint import AirbyteEntrypoint  # noqa: E402

os.makedirs(args.dir, exist_ok=True)
with open(args.api_key_file) as f:
    api_key = f.read().strip()
config_path = os.path.join(args.dir, "config.json")
catalog_path = os.path.join(args.dir, "catalog.json")
with open(config_path, "w") as f:
    json.dump({"base_url": args.url, "api_key": api_key, "page_size": args.page_size}, f)
with open(catalog_path, "w") as f:
    json.dump(
        {
            "streams": [
                {
                    "stream": {
                        "name": "dossiers",
                        "json_schema": {"type": "object"},
                        "supported_sync_modes": ["full_refresh"],
                        "source_defined_primary_key": [["id"]],
                    },
                    "sync_mode": "full_refresh",
                    "destination_sync_mode": "overwrite",
                }
            ]
        },
        f,
    )

argv = ["read", "--config", config_path, "--catalog", catalog_path, "--manifest-path", args.manifest]
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


started, cpu_before = time.perf_counter(), cpu()
source = create_declarative_source(argv)
entrypoint = AirbyteEntrypoint(source)
parsed = entrypoint.parse_args(argv)
records, other, kinds = 0, 0, {}
with open(os.path.join(args.dir, "messages.jsonl"), "w") as out:
    for message in entrypoint.run(parsed):
        out.write(f"{message}\n")
        if message.startswith('{"type":"RECORD"'):
            records += 1
        else:
            other += 1
            kind = json.loads(message).get("type")
            kinds[kind] = kinds.get(kind, 0) + 1
            if kind == "TRACE" and '"ERROR"' in message:
                print(message)
secs = time.perf_counter() - started
cpu_secs = cpu() - cpu_before
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"airbyte-cdk: {records} RECORD messages, other messages {kinds}; output {os.path.getsize(out.name) / 2**20:.0f} MiB")
print(f"result {records} {secs:.2f} {peak:.0f} {cpu_secs:.2f}")
