"""``W/report.html``: a self-contained page for a sweep folder (opens offline: no network, no CDN).

Sections: the results table (click a header to sort; the best trial by the sweep's metric is marked), the
metric curves of every trial (training loss and each validation metric against the step, from
``metrics.jsonl``), the ranking metric against each swept hyper-parameter, and each trial's latest image grid.
Plots are inline SVG drawn by matplotlib (text kept as text); images are inline JPEG data URIs (scaled to at
most ``IMAGE_WIDTH`` px wide). The only script is the small inline table sorter.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
import time
from pathlib import Path
from typing import Any

from jaxgen.sweeps import results as results_lib
from jaxgen.sweeps import trial_runner

IMAGE_WIDTH = 1024
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf"]

SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var asc = th.dataset.order !== 'asc';
    table.querySelectorAll('th').forEach(function (h) { delete h.dataset.order; });
    th.dataset.order = asc ? 'asc' : 'desc';
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v !== undefined ? a.cells[col].dataset.v : a.cells[col].textContent;
      var y = b.cells[col].dataset.v !== undefined ? b.cells[col].dataset.v : b.cells[col].textContent;
      if (x === '' || y === '') { return (x === '') - (y === ''); }  // empty cells last either way
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table.sortable { border-collapse: collapse; font-size: 0.85em; }
table.sortable th, table.sortable td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
table.sortable th { background: #f0f0f0; cursor: pointer; position: sticky; top: 0; }
table.sortable th[data-order=asc]::after { content: ' \\25B2'; }
table.sortable th[data-order=desc]::after { content: ' \\25BC'; }
table.sortable td.text { text-align: left; }
tr.best td { background: #e6f4ea; font-weight: bold; }
tr.failed td { color: #a00; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
.plot svg { width: 480px; height: auto; }
figure { margin: 0 0 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #ccc; }
"""


def _svg(fig: Any) -> str:
    """A matplotlib figure as inline ``<svg>`` (no XML prolog)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "jaxgen"}):
        fig.savefig(buf, format="svg", bbox_inches="tight",
                    metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _figure():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.6), dpi=100)
    return fig, fig.add_subplot(1, 1, 1)


def curve_plot(metric: str, series: dict[str, tuple[list[int], list[float], int]]) -> str:
    """One line per trial (``name: (steps, values, trial index)``): ``metric`` against the step."""
    fig, ax = _figure()
    for name, (steps, values, i) in series.items():
        ax.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, lw=1.2,
                color=COLORS[i % len(COLORS)], label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_title(metric)
    ax.grid(alpha=0.3)
    if metric == "loss" and all(v > 0 for _, values, _ in series.values() for v in values):
        ax.set_yscale("log")
    if len(series) <= 12:
        ax.legend(fontsize=6, loc="best")
    return _svg(fig)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def hparam_plot(key: str, metric: str, points: list[tuple[Any, float, int]]) -> str:
    """``metric`` of every trial against the value of one swept key (log axis for positive numbers spanning
    more than a decade; categories otherwise). ``points``: ``(value, metric, trial index)``; a trial's colour is
    the same as in the curves."""
    fig, ax = _figure()
    numeric = all(_is_number(x) for x, _, _ in points)
    if numeric:
        xs = [float(x) for x, _, _ in points]
        if min(xs) > 0 and max(xs) / min(xs) > 10:
            ax.set_xscale("log")
    else:
        labels = sorted({results_lib.cell(x, True) for x, _, _ in points})
        xs = [labels.index(results_lib.cell(x, True)) for x, _, _ in points]
        ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=8)
    ys = [y for _, y, _ in points]
    ax.scatter(xs, ys, s=30, c=[COLORS[i % len(COLORS)] for _, _, i in points], zorder=3)
    ax.set_xlabel(key)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs {key}")
    ax.grid(alpha=0.3)
    return _svg(fig)


def effective_value(trial_dir: Path, row: dict[str, Any], key: str) -> Any:
    """The trial's value of ``key``: its override, else what its saved ``config.json`` holds, else ``'unset'``
    (e.g. ``losses.mse`` of a trial that swept only ``losses.l1``)."""
    if row.get(key) is not None:
        return row[key]
    node: Any = trial_runner.saved_config(trial_dir)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return "unset"
        node = node[part]
    return tuple(node) if isinstance(node, list) else node


def latest_images(trial_dir: Path) -> dict[str, tuple[int, Path]]:
    """``{grid name: (step, path)}`` of the newest ``images/<name>_<step>.png`` per name."""
    out: dict[str, tuple[int, Path]] = {}
    for path in sorted((trial_dir / "images").glob("*.png")):
        match = re.fullmatch(r"(.+)_(\d+)", path.stem)
        if match:
            name, step = match.group(1), int(match.group(2))
            if name not in out or step > out[name][0]:
                out[name] = (step, path)
    return out


def image_data_uri(path: Path, width: int = IMAGE_WIDTH) -> str:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.width > width:
            im = im.resize((width, max(1, round(im.height * width / im.width))), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _table(rows: list[dict[str, Any]], swept: list[str], best: str | None) -> str:
    cols = results_lib.columns(rows)
    out = ['<table class="sortable" id="results"><thead><tr>']
    out += [f"<th>{html.escape(c)}</th>" for c in cols]
    out.append("</tr></thead><tbody>")
    for row in rows:
        cls = "best" if row["trial"] == best else ("failed" if row["status"] == "failed" else "")
        out.append(f'<tr class="{cls}">')
        for c in cols:
            value = row.get(c)
            text = html.escape(results_lib.cell(value, c in swept))
            sort_key = f' data-v="{value}"' if _is_number(value) else ""
            kind = "" if _is_number(value) else ' class="text"'
            out.append(f"<td{kind}{sort_key}>{text}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def best_trial(rows: list[dict[str, Any]], metric: str, mode: str) -> str | None:
    scored = [r for r in rows if _is_number(r.get(f"best_{metric}"))]
    if not scored:
        return None
    pick = max if mode == "max" else min
    return pick(scored, key=lambda r: r[f"best_{metric}"])["trial"]


def build_report(workdir: str | Path) -> str:
    """The report's HTML text (see the module docstring)."""
    workdir = Path(workdir)
    rows, sweep = results_lib.collect(workdir)
    swept, metric, mode = sweep["swept_keys"], sweep.get("metric", "val_psnr"), sweep.get("mode", "max")
    best = best_trial(rows, metric, mode)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Sweep {html.escape(workdir.name)}</title>"
             f"<style>{STYLE}</style></head><body>"]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    parts.append(f"<h1>Sweep <code>{html.escape(str(workdir))}</code></h1>")
    parts.append(f"<p>Sweep file <code>{html.escape(sweep.get('file', '?'))}</code>, base config "
                 f"<code>{html.escape(sweep.get('base_config', '?'))}</code>, search {html.escape(sweep.get('search', 'grid'))}. "
                 f"{len(rows)} trials ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}). Ranking metric: "
                 f"<b>{html.escape(metric)}</b> ({mode}); best trial: <b>{html.escape(best or 'none yet')}</b>. "
                 f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')}.</p>")
    if sweep.get("doc"):
        parts.append(f"<details><summary>About this sweep</summary><pre>{html.escape(sweep['doc'])}</pre></details>")
    if sweep.get("base_overrides"):
        fixed = ", ".join(f"{k}={v}" for k, v in sweep["base_overrides"].items())
        parts.append(f"<p>Fixed overrides: <code>{html.escape(fixed)}</code></p>")
    parts.append("<h2>Results</h2>")
    parts.append(_table(rows, swept, best))

    # Curves.
    series: dict[str, dict[str, tuple[list[int], list[float], int]]] = {}
    for index, row in enumerate(rows):
        train, evals = results_lib.read_metrics(workdir / row["trial"])
        for records, names in ((train, ["loss"]), (evals, results_lib.metric_names(evals))):
            for name in names:
                pts = [(int(r["step"]), float(r[name])) for r in records if _is_number(r.get(name))]
                if pts:
                    series.setdefault(name, {})[row["trial"]] = ([p[0] for p in pts], [p[1] for p in pts], index)
    order = ["loss", metric] + sorted(k for k in series if k not in ("loss", metric))
    parts.append('<h2>Metric curves</h2><div class="plots" id="curves">')
    for name in order:
        if name in series:
            parts.append(f'<div class="plot" data-metric="{html.escape(name)}">{curve_plot(name, series[name])}</div>')
    parts.append("</div>")

    # Metric vs each swept hyper-parameter.
    parts.append(f'<h2>{html.escape(metric)} vs each swept hyper-parameter</h2><div class="plots" id="hparams">')
    for key in swept:
        points = [(effective_value(workdir / r["trial"], r, key), float(r[f"best_{metric}"]), i)
                  for i, r in enumerate(rows) if _is_number(r.get(f"best_{metric}"))]
        if points:
            parts.append(f'<div class="plot" data-key="{html.escape(key)}">{hparam_plot(key, f"best {metric}", points)}</div>')
    parts.append("</div>")

    # Latest image grid of every trial.
    parts.append('<h2>Latest image grids</h2><div id="images">')
    for row in rows:
        for name, (step, path) in latest_images(workdir / row["trial"]).items():
            parts.append(f"<figure><figcaption>{html.escape(row['trial'])}: {html.escape(name)} at step {step}</figcaption>"
                         f"<img alt='{html.escape(row['trial'])}' "
                         f"src='{image_data_uri(path)}'></figure>")
    parts.append("</div>")
    parts.append(f"<script>{SORT_SCRIPT}</script></body></html>")
    return "".join(parts)


def write_report(workdir: str | Path) -> Path:
    """Writes ``W/results.*`` (fresh) and ``W/report.html``; returns the report's path."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError("the report's plots need matplotlib: pip install 'jaxgen[report]'") from None
    workdir = Path(workdir)
    results_lib.write_results(workdir)
    path = workdir / "report.html"
    path.write_text(build_report(workdir), encoding="utf-8")
    return path

