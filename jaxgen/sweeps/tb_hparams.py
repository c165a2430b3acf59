"""TensorBoard HParams view of a sweep (tensorboardX's hparams protos; no TensorFlow).

``tensorboard --logdir W`` then shows every trial as a run ``<trial>/tensorboard`` (the trainer's scalars) with
its session (hyper-parameters = the trial's overrides; status: finished = success, failed = failure,
interrupted/running = running, pruned = unknown: tensorboard's ``Status`` has only UNKNOWN, SUCCESS, FAILURE and
RUNNING, so a pruned trial cannot be "aborted"; its row in ``results.md`` says ``pruned``), and the sweep-level experiment in ``W/hparams_experiment`` (every swept key with its values, and the
validation metrics as the view's metric columns, read from the trials' own scalars).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from jaxgen.sweeps import naming

STATUS = {"finished": "STATUS_SUCCESS", "failed": "STATUS_FAILURE", "pruned": "STATUS_UNKNOWN",
          "interrupted": "STATUS_RUNNING", "running": "STATUS_RUNNING"}
EXPERIMENT_DIR = "hparams_experiment"


def hparam_value(value: Any) -> Any:
    """A value the HParams plugin accepts (bool, number, string); tuples become their literal text."""
    if isinstance(value, (list, tuple)):
        return naming.format_value(tuple(value))
    return value


def _summaries(hparams: dict[str, Any], metrics: list[str], status: str):
    from tensorboardX.proto.api_pb2 import Status
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData, SessionEndInfo
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboardX.summary import hparams as hparams_summary

    exp, ssi, _ = hparams_summary({k: hparam_value(v) for k, v in hparams.items()}, dict.fromkeys(metrics, 0.0))
    name = STATUS.get(status, "STATUS_UNKNOWN")
    sei = SessionEndInfo(status=Status.Value(name if name in Status.keys() else "STATUS_UNKNOWN"))
    content = HParamsPluginData(session_end_info=sei, version=0)
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="hparams",
                                                                        content=content.SerializeToString()))
    sei = Summary(value=[Summary.Value(tag="_hparams_/session_end_info", metadata=metadata)])
    return exp, ssi, sei


def write_trial(trial_dir: str | Path, overrides: dict[str, Any], status: str) -> None:
    """The trial's session (start + end info) in ``trial_dir/tensorboard``, beside the trainer's scalars."""
    from tensorboardX.writer import FileWriter

    _, ssi, sei = _summaries(overrides, [], status)
    writer = FileWriter(str(Path(trial_dir) / "tensorboard"), filename_suffix=".hparams")
    writer.add_summary(ssi)
    writer.add_summary(sei)
    writer.close()


def write_experiment(workdir: str | Path, rows: list[dict[str, Any]], swept: list[str], metrics: list[str]) -> None:
    """(Re)writes ``W/hparams_experiment``: the swept keys with their values and the metric tags."""
    from tensorboardX.writer import FileWriter

    folder = Path(workdir) / EXPERIMENT_DIR
    shutil.rmtree(folder, ignore_errors=True)
    example = {}
    for key in swept:
        values = [hparam_value(r.get(key)) for r in rows if r.get(key) is not None]
        if values:
            example[key] = values[0]
    if not example:
        return
    exp, _, _ = _summaries(example, metrics, "finished")
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

    data = HParamsPluginData.FromString(exp.value[0].metadata.plugin_data.content)
    for info in data.experiment.hparam_infos:
        values = sorted({hparam_value(r.get(info.name)) for r in rows if r.get(info.name) is not None}, key=str)
        _set_domain(info, values)
    exp.value[0].metadata.plugin_data.content = data.SerializeToString()
    writer = FileWriter(str(folder))
    writer.add_summary(exp)
    writer.close()


def _set_domain(info: Any, values: list[Any]) -> None:
    """The discrete domain of one hyper-parameter (the values the sweep used)."""
    for value in values:
        item = info.domain_discrete.values.add()
        if isinstance(value, bool):
            item.bool_value = value
        elif isinstance(value, (int, float)):
            item.number_value = float(value)
        else:
            item.string_value = str(value)
