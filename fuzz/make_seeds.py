#!/usr/bin/env python3
"""Write the fuzz targets' seed corpora (fuzz/seeds/<target>/) and dictionaries (fuzz/dicts/) from
the project's real files: the shipped descriptors and configuration, and the recorded fixtures.
Run again when those change; the output is committed. Each seed's first byte picks what the rest is
(see the comment at the top of each target). It only writes: inputs kept from fuzzing runs
(seeds/parse_time/negative-year.bin) stay."""

import json
import re
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
SYSTEMS = [("city", "city-igate"), ("moj", "moj"), ("moc", "moc"), ("mae", "mae"), ("mof", "mof"), ("mps", "mps")]


def write(target, name, data):
    d = FUZZ / "seeds" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def compact(v):
    return json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode()


def dict_line(token):
    esc = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "".join(f"\\x{b:02x}" for b in c.encode()) for c in token)
    return f'"{esc}"'


def write_dict(name, tokens):
    tokens = sorted({t for t in tokens if 0 < len(t.encode()) <= 64})
    (FUZZ / "dicts").mkdir(exist_ok=True)
    (FUZZ / "dicts" / name).write_text("".join(dict_line(t) + "\n" for t in tokens))


# map_record: per system, its first record, its largest and its newest (the malformed one) as JSON
# text; and three runs of edits of fixture records.
json_tokens = set()
for i, (system, _) in enumerate(SYSTEMS):
    records = json.loads((ROOT / "fixtures" / f"{system}.json").read_text())
    picks = {"first": records[0], "largest": max(records, key=lambda r: len(compact(r))), "last": records[-1]}
    for what, rec in picks.items():
        write("map_record", f"{system}-{what}.json", bytes([i]) + compact(rec))
    for k, edits in enumerate([b"\x00" * 16, bytes(range(1, 64)), bytes(range(255, 128, -3))]):
        write("map_record", f"{system}-edits-{k}.bin", bytes([0x80 | i]) + edits)

    def walk(v):
        if isinstance(v, dict):
            for key, c in v.items():
                json_tokens.add(f'"{key}":')
                walk(c)
        elif isinstance(v, list):
            for c in v:
                walk(c)
        elif isinstance(v, str) and re.fullmatch(r"[A-Z_]{2,24}", v):
            # Vocabulary values (statuses, channels, applicant kinds), not names and numbers.
            json_tokens.add(json.dumps(v, ensure_ascii=False))

    for r in records:
        walk(r)
json_tokens |= {"null", "true", "false", "[]", "{}", "-1", "1e400", "0.5", '""', '" "'}
write_dict("map_record.dict", json_tokens)

# parse_time: [format][zone][shape][instant: i64 seconds, i32 nanoseconds][value text].
instant = struct.pack("<qi", 1773018900, 500_000_000)
samples = [
    (0, "2026-03-09T01:15:00.000Z"),
    (0, "2026-03-09T08:15:00+07:00"),
    (1, "1773018900000"),
    (2, "1773018900"),
    (3, "09/03/2026 08:15:00"),
    (4, "2026-01-16 08:00:00"),
    (5, "20260309081500"),
    (6, "09/03/2026"),
    (7, "%Y-%m-%dT%H:%M:%S%z\x002026-03-09T08:15:00+0700"),
    (7, "%d.%m.%y %I:%M %p\x0009.03.26 08:15 AM"),
]
for k, (fmt, text) in enumerate(samples):
    write("parse_time", f"sample-{k}.bin", bytes([fmt, k % 6, 0]) + instant + text.encode())
write("parse_time", "number.bin", bytes([1, 0, 4]) + instant + struct.pack("<q", 1773018900000))
write_dict(
    "parse_time.dict",
    ["%Y", "%m", "%d", "%H", "%M", "%S", "%z", "%:z", "%Z", "%f", "%.f", "%s", "%y", "%b", "%p", "%I", "%j", "%Q",
     "%%", "T", "Z", "+07:00", "-00:00", "2026", "02-29", "23:59:60", "9999", "-0001"],
)

# load_config: [0 configuration | 1 descriptor | 2 calendar | 3 procedures | 4 cutover][text].
config = (ROOT / "config" / "dvc-bridge.toml").read_text().replace("/usr/share/dvc-bridge/adapters", "../adapters")
write("load_config", "0-dvc-bridge.toml", b"\x00" + config.encode())
# As `dvc-bridge demo` writes it: a simulated clock, secrets in files, identity linking on.
demo = (
    config.replace('mode = "system"', 'mode = "simulated"\nstart = "2026-03-09T00:30:00Z"\nanchor = "2026-03-09T00:30:00Z"\nspeed = 60.0')
    .replace("identity_procedures = []", 'identity_procedures = ["*"]\nidentity_key = { env = "DVC_BRIDGE_IDENTITY_KEY" }')
)
demo = re.sub(r'\{ credential = "([^"]+)" \}', r'{ file = "/run/dvc-bridge-demo/secrets/\1" }', demo)
demo = "\n".join(line for line in demo.splitlines() if not line.lstrip().startswith("#")) + "\n"
write("load_config", "0-demo.toml", b"\x00" + demo.encode())
toml_tokens = set()
for _, adapter in SYSTEMS:
    text = (ROOT / "adapters" / f"{adapter}.toml").read_text()
    write("load_config", f"1-{adapter}.toml", b"\x01" + text.encode())
for k, name in [(2, "calendar"), (3, "procedures"), (4, "cutover")]:
    write("load_config", f"{k}-{name}.toml", bytes([k]) + (ROOT / "config" / f"{name}.toml").read_text().encode())
for f in list((ROOT / "adapters").glob("*.toml")) + list((ROOT / "config").glob("*.toml")):
    for line in f.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            toml_tokens.add(line.split("#")[0].strip())
        m = re.match(r"([A-Za-z_\"][^=]*?)\s*=", line)
        if m and not line.startswith("#"):
            toml_tokens.add(m.group(1).strip() + " = ")
toml_tokens |= {'"', "'", '"""', "'''", "[", "]", "{", "}", ",", "=", "\n", "true", "false", "0", "-1", "1e400", "nan",
                "inf", "2026-02-29", "2026-13-01", "07:00", "24:00", "1979-05-27T07:32:00Z", '{ env = "X" }',
                '{ file = "/dev/null" }', '{ credential = "c" }', "\\u0000", "# "}
write_dict("load_config.dict", toml_tokens)
