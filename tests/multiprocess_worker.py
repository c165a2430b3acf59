"""One process of a multi-process CPU training run (used by ``tests/test_multiprocess.py``).

    JAX_PLATFORMS=cpu XLA_FLAGS=--xla_force_host_platform_device_count=1 \
        python tests/multiprocess_worker.py PROCESS_ID NUM_PROCESSES PORT SUMMARY.json WORKDIR CONFIG \
        [key=value ...]

Connects to the coordinator on ``127.0.0.1:PORT`` (process 0 hosts it) with gloo CPU collectives *before* the
library runs, so the loop's ``config.distributed=True`` finds JAX already initialised; then runs
``jaxgen.train.train`` on the config (``key=value`` are ``--config.key=value`` overrides) and writes the
summary (without the state) as JSON, plus ``process_index``/``process_count``/``device_count``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    process_id, num_processes, port = int(argv[1]), int(argv[2]), int(argv[3])
    summary_path, workdir, spec = Path(argv[4]), argv[5], argv[6]
    overrides = [tuple(a.split("=", 1)) for a in argv[7:]]

    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}", num_processes=num_processes, process_id=process_id,
        initialization_timeout=120,
    )

    from jaxgen.config import load_config
    from jaxgen.tasks import get_task
    from jaxgen.train import train

    config = load_config(spec, overrides)
    summary = train(config, workdir, get_task(config.task)(config))
    summary.pop("state")
    summary.update(process_index=jax.process_index(), process_count=jax.process_count(),
                   device_count=jax.device_count(), local_device_count=jax.local_device_count())
    tmp = summary_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, default=float))
    tmp.replace(summary_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
