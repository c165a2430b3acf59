"""Input pipeline throughput alone (no training): batches/s of ``task.make_data`` for a config's data section.

    python benchmarks/loader.py [--config configs/edsr.py:x2,demo] [--batches 50] [--threads 1,4]

Uses the built-in photos when the config's data is not prepared (``source=builtin``), writes the sample images
to a temporary ``JAXGEN_DATA_DIR``, skips the first 3 batches (pool start-up) and reports batches/s and
images/s per ``data.num_threads`` setting. Compare with the train step's images/s (``compare_torch.py``): the
loader never starves the step when its images/s is well above the step's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs" / "edsr.py") + ":x2")
    ap.add_argument("--batches", type=int, default=50)
    ap.add_argument("--threads", default="1,4")
    ap.add_argument("--batch-size", type=int, default=0, help="override config.batch_size (0: keep)")
    args = ap.parse_args()
    os.environ.setdefault("JAXGEN_DATA_DIR", tempfile.mkdtemp(prefix="jaxgen_loader_"))
    from jaxgen.config import load_config
    from jaxgen.tasks import get_task
    from jaxgen.tasks.sr_common import resolve_data_config

    results = []
    for threads in [int(t) for t in args.threads.split(",")]:
        overrides = [("data.source", "builtin"), ("data.num_threads", str(threads))]
        overrides += [("batch_size", str(args.batch_size))] if args.batch_size else []
        config = load_config(args.config, overrides)
        config = resolve_data_config(config)
        it = get_task(config.task)(config).make_data(0, 1)
        for _ in range(3):
            next(it)
        t0 = time.perf_counter()
        for _ in range(args.batches):
            batch = next(it)
        dt = time.perf_counter() - t0
        shapes = {k: list(v.shape) for k, v in batch.items()}
        r = {"config": args.config, "num_threads": threads, "batches_per_s": args.batches / dt,
             "images_per_s": args.batches * config.batch_size / dt, "batch": shapes, "load": os.getloadavg()[0]}
        results.append(r)
        print(json.dumps(r), flush=True)
        if hasattr(it, "close"):
            it.close()


if __name__ == "__main__":
    main()
