"""The machine a benchmark ran on: ``lscpu``'s model name and ISA flags (every record carries them: timings on
one CPU kind say nothing of another), the core count and the load, and
:func:`write_record` (the record with the load at its end, as JSON)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time


def cpu_info() -> dict:
    """``{"cpu_model", "cpu_flags", "isa", "cores", "load_1min", "date", "platform"}`` for this machine."""
    fields: dict[str, str] = {}
    if shutil.which("lscpu"):
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    flags = fields.get("Flags", "").split()
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "amx_int8") if f in flags]
    return {"cpu_model": fields.get("Model name") or platform.processor(), "cpu_flags": " ".join(flags), "isa": isa,
            "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "load_1min": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "platform": platform.platform()}


def write_record(record: dict, out: str) -> None:
    """Adds the load at the end (``load_1min_end``) to ``record`` and writes it as JSON to ``out`` when given."""
    record["load_1min_end"] = os.getloadavg()[0]
    if out:
        with open(out, "w") as f:
            f.write(json.dumps(record, indent=1) + "\n")
