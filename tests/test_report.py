"""``jaxgen report W`` on a sweep folder with known metrics (no training): the results table's numbers, the
TensorBoard HParams sessions read back by TensorBoard's own parser, and ``report.html`` rendered by a real
headless Chromium (one table row per trial, sorting by a header click, the plots and images present, no
network)."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxgen import image
from jaxgen.sweeps import results, tb_hparams, trial_runner

REPO = Path(__file__).resolve().parents[1]

# name -> (overrides, status, val_psnr per eval step, error)
TRIALS = {
    "losses=l1,optim.lr=0.001": ({"losses": "l1", "optim.lr": 0.001}, "finished", [20.0, 24.5, 24.0], ""),
    "losses=l1,optim.lr=0.0001": ({"losses": "l1", "optim.lr": 0.0001}, "finished", [19.0, 21.0, 23.0], ""),
    "losses=mse,optim.lr=0.001": ({"losses": "mse", "optim.lr": 0.001}, "interrupted", [18.0], ""),
    "losses=mse,optim.lr=0.0001": ({"losses": "mse", "optim.lr": 0.0001}, "failed", [],
                                   "non-finite loss at step 3 (loss=nan)"),
}
EVAL_STEPS = [10, 20, 30]


def make_sweep_folder(w: Path) -> None:
    w.mkdir()
    (w / "sweep.json").write_text(json.dumps({
        "base_config": "/x/configs/edsr.py:x2,tiny", "base_overrides": {"total_steps": "30"}, "file": "/x/s.py",
        "metric": "val_psnr", "mode": "max", "search": "grid", "swept_keys": ["losses", "optim.lr"],
        "trials": [{"name": n, "overrides": o, "index": i} for i, (n, (o, *_)) in enumerate(TRIALS.items())]}))
    rng = np.random.default_rng(0)
    for i, (name, (overrides, state, vals, error)) in enumerate(TRIALS.items()):
        d = w / name
        d.mkdir()
        steps = EVAL_STEPS[: len(vals)]
        with open(d / "metrics.jsonl", "w") as f:
            for step in range(1, (steps[-1] if steps else 3) + 1):
                f.write(json.dumps({"step": step, "time": 0.0, "loss": 1.0 / step}) + "\n")
                if step in steps:
                    v = vals[steps.index(step)]
                    f.write(json.dumps({"step": step, "time": 0.0, "val_psnr": v, "Set5/psnr": v + 1}) + "\n")
        for step in steps:
            grid = rng.integers(0, 256, size=(16, 64, 3), dtype=np.uint8)
            image.write_image(d / "images" / f"lr_bicubic_sr_hr_{step:07d}.png", grid)
        (d / "checkpoints" / str(steps[-1] if steps else 0)).mkdir(parents=True)
        trial_runner.write_status(d, {"name": name, "overrides": overrides, "index": i, "status": state,
                                      "error": error, "total_steps": 30, "wall_s": 10.0 * (i + 1), "attempts": 1})


def test_results_table_has_the_known_numbers(tmp_path):
    w = tmp_path / "w"
    make_sweep_folder(w)
    rows = results.write_results(w)
    assert [r["trial"] for r in rows] == list(TRIALS)
    with open(w / "results.csv") as f:
        table = {r["trial"]: r for r in csv.DictReader(f)}
    for name, (overrides, state, vals, error) in TRIALS.items():
        row = table[name]
        assert row["status"] == state and row["error"] == error
        assert row["losses"] == overrides["losses"] and float(row["optim.lr"]) == overrides["optim.lr"]
        if vals:
            assert float(row["final_val_psnr"]) == vals[-1] and float(row["final_Set5/psnr"]) == vals[-1] + 1
            assert float(row["best_val_psnr"]) == max(vals)
            assert int(row["best_step"]) == EVAL_STEPS[vals.index(max(vals))]
        else:
            assert row["best_val_psnr"] == "" and "final_val_psnr" not in row or row["final_val_psnr"] == ""
    md = (w / "results.md").read_text().splitlines()
    assert len(md) == 2 + len(TRIALS) and "| 0.0001 |" in md[3]  # swept values as the command line writes them
    payload = json.loads((w / "results.json").read_text())
    assert len(payload["trials"]) == len(TRIALS) and payload["sweep"]["metric"] == "val_psnr"


def test_hparams_sessions_read_back_by_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.plugins.hparams import api_pb2, metadata

    w = tmp_path / "w"
    make_sweep_folder(w)
    for name, (overrides, state, *_) in TRIALS.items():
        tb_hparams.write_trial(w / name, overrides, state)
    rows = results.write_results(w)
    tb_hparams.write_experiment(w, rows, ["losses", "optim.lr"], ["val_psnr"])
    expected = {"finished": api_pb2.STATUS_SUCCESS, "failed": api_pb2.STATUS_FAILURE,
                "interrupted": api_pb2.STATUS_RUNNING}
    for name, (overrides, state, *_) in TRIALS.items():
        acc = event_accumulator.EventAccumulator(str(w / name / "tensorboard"))
        acc.Reload()
        start = metadata.parse_session_start_info_plugin_data(
            acc.SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data.content)
        assert start.hparams["losses"].string_value == overrides["losses"]
        assert start.hparams["optim.lr"].number_value == overrides["optim.lr"]
        end = metadata.parse_session_end_info_plugin_data(
            acc.SummaryMetadata(metadata.SESSION_END_INFO_TAG).plugin_data.content)
        assert end.status == expected[state]
    acc = event_accumulator.EventAccumulator(str(w / tb_hparams.EXPERIMENT_DIR))
    acc.Reload()
    experiment = metadata.parse_experiment_plugin_data(acc.SummaryMetadata(metadata.EXPERIMENT_TAG).plugin_data.content)
    infos = {i.name: i for i in experiment.hparam_infos}
    assert sorted(v.number_value for v in infos["optim.lr"].domain_discrete.values) == [0.0001, 0.001]
    assert sorted(v.string_value for v in infos["losses"].domain_discrete.values) == ["l1", "mse"]
    assert [m.name.tag for m in experiment.metric_infos] == ["val_psnr"]


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium (Debian: apt-get install -y chromium)")


PROBE = """
<script>
window.addEventListener('load', function () {
  var out = {};
  var table = document.getElementById('results');
  out.rows = table.tBodies[0].rows.length;
  out.headers = Array.prototype.map.call(table.tHead.rows[0].cells, function (c) { return c.textContent; });
  var col = out.headers.indexOf('best_val_psnr');
  table.tHead.rows[0].cells[col].click();  // ascending
  table.tHead.rows[0].cells[col].click();  // descending
  out.sorted = Array.prototype.map.call(table.tBodies[0].rows, function (r) { return r.cells[0].textContent; });
  out.curves = document.querySelectorAll('#curves svg').length;
  out.hparams = document.querySelectorAll('#hparams svg').length;
  out.curve_lines = document.querySelectorAll('#curves svg path').length;
  var imgs = document.querySelectorAll('#images img');
  out.images = imgs.length;
  out.images_decoded = Array.prototype.filter.call(imgs, function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var probe = document.createElement('pre');
  probe.id = 'probe';
  probe.textContent = JSON.stringify(out);
  document.body.appendChild(probe);
});
</script>
"""


def test_report_renders_in_headless_chromium(tmp_path):
    pytest.importorskip("matplotlib")
    chromium = find_chromium()
    w = tmp_path / "w"
    make_sweep_folder(w)
    proc = subprocess.run([sys.executable, "-m", "jaxgen.cli", "report", str(w)], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    html = (w / "report.html").read_text()
    # Self-contained: nothing fetched (XML namespaces are names, not requests).
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html), "the report references the network"
    assert "<script src" not in html and "<link" not in html
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(html.replace("</body>", PROBE + "</body>"))
    profile = tmp_path / "profile"
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=5000"]
    dom = subprocess.run(base + ["--dump-dom", probe_page.as_uri()], capture_output=True, text=True, timeout=120)
    match = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert match, dom.stderr[-2000:]
    out = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert out["rows"] == len(TRIALS)
    assert out["headers"][:4] == ["trial", "status", "losses", "optim.lr"]
    # Descending by best val_psnr: 24.5, 23.0, 18.0, then the failed trial without a value.
    assert out["sorted"] == ["losses=l1,optim.lr=0.001", "losses=l1,optim.lr=0.0001", "losses=mse,optim.lr=0.001",
                             "losses=mse,optim.lr=0.0001"]
    assert out["curves"] == 3  # loss, val_psnr, Set5/psnr
    assert out["hparams"] == 2 and out["curve_lines"] > 3 * 3
    assert out["images"] == 3 and out["images_decoded"] == 3  # the failed trial has no grid
    shot = tmp_path / "shot.png"
    subprocess.run(base + [f"--screenshot={shot}", "--window-size=1200,1600", (w / "report.html").as_uri()],
                   capture_output=True, timeout=120)
    pixels = image.read_image(shot) if shot.is_file() else None
    assert pixels is not None and pixels.shape[:2] == (1600, 1200)
    assert pixels.reshape(-1, pixels.shape[-1]).std(axis=0).mean() > 10  # something was drawn, not a blank page
