"""Remote workdirs (``gs://``) end to end, without network: a GCS emulator (gcp-storage-emulator) on 127.0.0.1.

What talks to it: etils.epath through fsspec/gcsfs (``STORAGE_EMULATOR_HOST``) for every file of the run, and
TensorStore's ``gcs`` driver -- Orbax's array writes and reads -- through ``TENSORSTORE_GCS_HTTP_URL`` with
``GOOGLE_AUTH_TOKEN_FOR_TESTING`` (no Google credentials). Everything that touches the emulator runs in a
subprocess, with that environment: gcsfs chooses its file-system class when it is first imported
(``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false``: the emulator has no gRPC bucket-layout API).

The emulator is gcp-storage-emulator with the generation headers and ``ifGenerationMatch`` preconditions of the
real API added (``tests/gcs_emulator.py``). The truths: a straight local run of the same config (bitwise
parameters, images and config files), the local run's ``upscale`` output (bytes) and ``eval`` numbers, and the
lock rules of ``jaxgen.workdir_lock``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxgen import image, storage, workdir_lock
from jaxgen.train.checkpoint import restore_numpy
from tests.inprocess_cli import run_jaxgen

pytest.importorskip("gcsfs", reason="remote workdirs need the `remote` extra (gcsfs)")
pytest.importorskip("gcp_storage_emulator", reason="the GCS emulator is in the `test` extra")

REPO = Path(__file__).resolve().parents[1]
TINY = f"{REPO / 'configs' / 'edsr.py'}:x2,tiny"
QUIET = ["--config.progress_bar=False"]
BUCKET = "jaxgen-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gcs(tmp_path_factory) -> dict[str, str]:
    """The emulator (in memory, bucket ``jaxgen-test``; ``tests/gcs_emulator.py``) for this module; yields the
    environment of the subprocesses that use it."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("gcs") / "emulator.log", "w")
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "gcs_emulator.py"), str(port), BUCKET],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        pytest.fail(f"the GCS emulator did not start ({proc.wait()})")
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(REPO), STORAGE_EMULATOR_HOST=url, TENSORSTORE_GCS_HTTP_URL=url,
               GOOGLE_AUTH_TOKEN_FOR_TESTING="emulator", GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT="false")
    yield env
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def run(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)


def cli(env: dict[str, str], *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = run(env, "-m", "jaxgen.cli", *args, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"jaxgen {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def one_error_line(proc: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("jaxgen: error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def download(env: dict[str, str], prefix: str, dest: Path) -> list[str]:
    """Copies ``gs://jaxgen-test/<prefix>`` to ``dest``; returns the object names under it (sorted)."""
    code = ("import gcsfs, json, sys\n"
            "fs = gcsfs.GCSFileSystem(token='anon')\n"
            f"root = '{BUCKET}/{prefix}'\n"
            "names = sorted(p[len(root) + 1:] for p in fs.find(root))\n"
            "for n in names:\n"
            "    fs.get_file(root + '/' + n, sys.argv[1] + '/' + n)\n"
            "print(json.dumps(names))\n")
    dest.mkdir(parents=True, exist_ok=True)
    proc = run(env, "-c", code, str(dest), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def generator_params(checkpoints: Path, step: int) -> dict[str, np.ndarray]:
    state = restore_numpy(checkpoints, step)
    flat = jax.tree_util.tree_flatten_with_path(state["players"]["generator"]["params"])[0]
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in flat}


# ------------------------------------------------------------------------------------------ train / resume / read


@pytest.mark.slow
def test_train_resume_evaluate_and_upscale_on_a_gs_workdir(gcs, tmp_path):
    """10 steps on gs://, resumed to 20 == 20 straight steps in a local folder: parameters, validation images
    and config files bitwise; logs appended across the resume; eval and upscale read the gs:// run like the local
    one."""
    local, remote = tmp_path / "local", f"gs://{BUCKET}/runs/a"
    cli(gcs, "train", f"--config={TINY}", f"--workdir={local}", *QUIET)
    first = cli(gcs, "train", f"--config={TINY}", f"--workdir={remote}", *QUIET, "--config.total_steps=10")
    assert "steps 0 -> 10" in first.stdout
    second = cli(gcs, "train", f"--config={TINY}", f"--workdir={remote}", *QUIET, "--config.total_steps=20")
    assert "steps 10 -> 20" in second.stdout  # resumed from the checkpoint in the bucket
    assert not (REPO / "gs:").exists() and not (tmp_path / "gs:").exists()  # nothing went to a local "gs:" folder

    copy = tmp_path / "copy"
    names = download(gcs, "runs/a", copy)
    assert workdir_lock.LOCK_NAME not in names  # released
    assert not [n for n in names if n.endswith(".tmp") or "tmp" in n.split("/")[-1]], names
    steps = sorted({int(n.split("/")[1]) for n in names if n.startswith("checkpoints/") and n.split("/")[1].isdigit()})
    assert steps == [10, 20]
    a, b = generator_params(copy / "checkpoints", 20), generator_params(local / "checkpoints", 20)
    assert a.keys() == b.keys() and a
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), f"{k} differs"
    for name in ("config.json", "task.json", "images/lr_bicubic_sr_hr_0000010.png",
                 "images/lr_bicubic_sr_hr_0000020.png"):
        assert (copy / name).read_bytes() == (local / name).read_bytes(), name
    summary = json.loads((copy / "summary.json").read_text())
    assert summary["start_step"] == 10 and summary["final_step"] == 20 and summary["finished"]
    records = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [5, 10, 15, 20]  # the second run appended
    local_records = [json.loads(line) for line in (local / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("val_psnr") for r in records] == [r.get("val_psnr") for r in local_records]
    assert len(list((copy / "tensorboard").glob("events.out.tfevents.*"))) == 2  # one per run, as locally

    src = tmp_path / "in.png"
    image.write_image(src, np.random.default_rng(1).integers(0, 256, (45, 38, 3), dtype=np.uint8))
    outs = {}
    for key, workdir in (("remote", remote), ("local", str(local))):
        outs[key] = tmp_path / f"up_{key}.png"
        cli(gcs, "upscale", "--workdir", workdir, str(src), "-o", str(outs[key]))
    assert outs["remote"].read_bytes() == outs["local"].read_bytes()

    data = tmp_path / "hr"
    rng = np.random.default_rng(0)
    for i in range(2):
        smooth = np.cumsum(np.cumsum(rng.random((40, 36, 3)), 0), 1)
        image.write_image(data / f"img_{i}.png", (smooth / smooth.max() * 255).astype(np.uint8))
    results = {}
    for key, workdir in (("remote", remote), ("local", str(local))):
        out = tmp_path / f"eval_{key}.json"
        cli(gcs, "eval", "--workdir", workdir, "--data", str(data), "--out", str(out))
        results[key] = json.loads(out.read_text())
    source = results["remote"]["source"]
    assert source["step"] == 20 and source["workdir"] == remote  # not "gs:/jaxgen-test/..."
    assert results["remote"]["datasets"] == results["local"]["datasets"]


WRITER = """
import json, sys
from etils import epath
from jaxgen.train.metric_writer import MetricWriter
W = epath.Path(sys.argv[1])
(W / "metrics.jsonl").write_text('{"step": 1, "time": 0.0, "loss": 1.0}\\n')  # an earlier run's line
writer = MetricWriter(sys.argv[1], sync_every_s=0)  # every write uploads
writer.write_scalars(2, {"loss": 0.5})
during = (W / "metrics.jsonl").read_text().splitlines()  # uploaded during the run, not only at close
writer.write_image(2, "val/grid", [[[0, 0, 0]]])
staging = writer._staging
writer.close()
print(json.dumps({"during": [json.loads(x)["step"] for x in during],
                  "events": [p.name[:20] for p in (W / "tensorboard").iterdir()],
                  "staging_left": staging.exists()}))
"""


def test_metric_writer_uploads_logs_during_the_run_and_keeps_earlier_lines(gcs):
    proc = run(gcs, "-c", WRITER, f"gs://{BUCKET}/runs/writer", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"during": [1, 2], "events": ["events.out.tfevents."], "staging_left": False}


# ------------------------------------------------------------------------------------------ the lock object

HOLD = ("import sys, time\n"
        "from jaxgen import workdir_lock\n"
        "lock = workdir_lock.WorkdirLock(sys.argv[1], 'jaxgen train').acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(120)\n")


def test_second_trainer_on_a_gs_workdir_is_refused_in_one_line_and_a_killed_holder_is_taken_over(gcs):
    workdir = f"gs://{BUCKET}/runs/busy"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, workdir], cwd=REPO, env=gcs, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held", holder.stderr.read()[-3000:]
        t0 = time.perf_counter()
        second = cli(gcs, "train", f"--config={TINY}", f"--workdir={workdir}", *QUIET, "--config.total_steps=5",
                     check=False, timeout=60)
        elapsed = time.perf_counter() - t0
        one_error_line(second, 2, workdir, f"pid {holder.pid}", "another --workdir", f"{workdir}/.jaxgen.lock")
        assert elapsed < 5, elapsed
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    # SIGKILL left the lock object; its process is gone on this host: the next run takes it over
    take = run(gcs, "-c", "import sys, json, os\n"
                          "from jaxgen import workdir_lock\n"
                          "lock = workdir_lock.WorkdirLock(sys.argv[1], 'jaxgen train').acquire()\n"
                          "import fsspec\n"
                          "fs, key = fsspec.core.url_to_fs(str(lock.path))\n"
                          "record = json.loads(fs.cat_file(key))\n"
                          "lock.release()\n"
                          "print(json.dumps([record['pid'] == os.getpid(), fs.exists(key)]))\n", workdir)
    assert take.returncode == 0, take.stderr[-3000:]
    assert json.loads(take.stdout.strip().splitlines()[-1]) == [True, False]  # held by the new process; released


RULES = """
import json, os, socket, sys, time
import fsspec
from jaxgen import workdir_lock
W = sys.argv[1]
fs, key = fsspec.core.url_to_fs(W + "/" + workdir_lock.LOCK_NAME)
out = {"pid": os.getpid()}

def attempt(name):
    lock = workdir_lock.WorkdirLock(W, "jaxgen train")
    try:
        lock.acquire()
    except workdir_lock.WorkdirBusyError as e:
        out[name] = "busy: " + str(e)
        return None
    out[name] = "held"
    return lock

other = {"pid": 1, "host": "another-host", "command": "jaxgen train", "time": time.time()}
fs.pipe_file(key, json.dumps(dict(other, heartbeat=time.time())).encode())
attempt("fresh record of another host")
fs.pipe_file(key, json.dumps(dict(other, heartbeat=time.time() - 60)).encode())
lock = attempt("record of another host without heartbeat for 60 s")
out["record after take-over"] = json.loads(fs.cat_file(key))["pid"] == os.getpid()
time.sleep(3 * workdir_lock.remote_stale_s())  # the heartbeat keeps it fresh meanwhile
attempt("held for 3x the stale time")
lock.release()
out["released"] = not fs.exists(key)
fs.pipe_file(key, b"")
lock = attempt("empty lock object")
lock.release()
# another run creates the lock between this run's look and its create: the create-only upload must refuse
fs.pipe_file(key, json.dumps(dict(other, heartbeat=time.time())).encode())
racer = workdir_lock.WorkdirLock(W, "jaxgen train")
look, looks = racer._read_remote, []
racer._read_remote = lambda *a: looks.append(1) or (None if len(looks) == 1 else look(*a))
try:
    racer.acquire()
    out["created meanwhile"] = "held"
except workdir_lock.WorkdirBusyError as e:
    out["created meanwhile"] = "busy: " + str(e)
out["holder after the race"] = json.loads(fs.cat_file(key))["host"]
fs.rm_file(key)
print(json.dumps(out))
"""


def test_remote_lock_heartbeat_and_stale_records(gcs):
    proc = run(dict(gcs, JAXGEN_REMOTE_LOCK_STALE_S="1"), "-c", RULES, f"gs://{BUCKET}/runs/rules", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["fresh record of another host"].startswith("busy: ") and "another-host" in out["fresh record of another host"]
    assert out["record of another host without heartbeat for 60 s"] == "held"
    assert out["record after take-over"] is True
    assert out["held for 3x the stale time"].startswith("busy: ")  # refreshed every stale/5 s: not stale
    assert f"pid {out['pid']} on host" in out["held for 3x the stale time"]  # held by the first lock of that process
    assert out["released"] is True
    assert out["empty lock object"] == "held"
    assert out["created meanwhile"].startswith("busy: ") and "another-host" in out["created meanwhile"]
    assert out["holder after the race"] == "another-host"  # not overwritten


# ------------------------------------------------------------------------------------------ one-line refusals


def test_missing_bucket_is_one_line(gcs, tmp_path):
    proc = cli(gcs, "train", f"--config={TINY}", "--workdir=gs://no-such-bucket/run", *QUIET, check=False,
               timeout=120)
    one_error_line(proc, 2, "gs://no-such-bucket/run", "bucket exists")


def test_url_without_a_file_system_is_one_line_and_creates_no_local_folder(tmp_path):
    # the commands run in-process from tmp_path, where a "ftp:" or "s3:" folder would appear
    proc = run_jaxgen("train", f"--config={TINY}", "--workdir=ftp://host/run", *QUIET, cwd=tmp_path)
    one_error_line(proc, 2, "ftp://host/run", "not supported", "gs://")
    assert not (tmp_path / "ftp:").exists()
    if importlib.util.find_spec("s3fs") is None:  # no S3 file system installed: what to install
        image.write_image(tmp_path / "in.png", np.zeros((8, 8, 3), np.uint8))
        proc = run_jaxgen("upscale", "--workdir", "s3://b/run", "in.png", "-o", "out.png", cwd=tmp_path)
        one_error_line(proc, 2, "s3://b/run", "install s3fs")
        assert not (tmp_path / "s3:").exists()


def test_stylize_reads_a_gs_workdirs_config(gcs, tmp_path):
    """``stylize --workdir gs://...`` reads the run's config.json from the bucket: an SR run is refused by its
    task, with the URL intact (``pathlib`` would read a local ``gs:/...`` and say "no config.json")."""
    workdir = f"gs://{BUCKET}/runs/an_sr_run"
    # the run's config.json, uploaded with the JSON API's simple upload (no gcsfs here: see the module doc)
    api = f"{gcs['STORAGE_EMULATOR_HOST']}/upload/storage/v1/b/{BUCKET}/o"
    upload = urllib.request.Request(
        f"{api}?uploadType=media&name=runs/an_sr_run/config.json",
        data=b'{"task": "sr"}', headers={"Content-Type": "application/octet-stream"}, method="POST")
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(upload, timeout=60) as response:
        assert response.status == 200
    image.write_image(tmp_path / "c.png", np.zeros((8, 8, 3), np.uint8))
    proc = cli(gcs, "stylize", "--method", "fast", "--workdir", workdir, str(tmp_path / "c.png"), "-o",
               str(tmp_path / "out.png"), check=False, timeout=120)
    one_error_line(proc, 2, f"wrong checkpoint kind: {workdir} is a 'sr' run")


def test_sweep_folder_must_be_local(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "jaxgen.cli", "sweep", str(tmp_path / "grid.py"), "--workdir",
                           f"gs://{BUCKET}/sweep"], capture_output=True, text=True, timeout=120, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    one_error_line(proc, 2, f"gs://{BUCKET}/sweep", "must be local")


def test_storage_paths_keep_urls_and_local_paths_as_pathlib(tmp_path):
    remote = storage.as_path(f"gs://{BUCKET}/runs/a") / "images" / "x.png"
    assert str(remote) == f"gs://{BUCKET}/runs/a/images/x.png" and storage.is_remote(remote)
    local = storage.as_path(tmp_path / "w")
    assert type(local) is type(Path()) and local == tmp_path / "w" and not storage.is_remote(local)
    assert str(workdir_lock.WorkdirLock(f"gs://{BUCKET}/r", "jaxgen train").path) == f"gs://{BUCKET}/r/.jaxgen.lock"
    with pytest.raises(ValueError, match="not supported"):
        storage.as_path("memory://x")  # epath would make it a local folder "memory:/x"
