"""The report's TensorBoard views of an experiment, rebuilt from disk on every report.

They live in a tree of their own under the experiment folder, never in the run folders (which
training owns)::

    <exp>/report_views/events.out.tfevents.report          Custom Scalars layout, HParams summary
    <exp>/report_views/<pair>/<algo>/<method>/seed_<k>/events.out.tfevents.report
                                                           compare/<pair>/<algo>, final/*, hparams
    <exp>/report_views/<pair>/<algo>/<method>/iqm/events.out.tfevents.report
                                                           iqm/<pair>/<algo>/<method>[/lower|/upper]

so ``tensorboard --logdir <exp>`` shows, beside each training run ``<pair>/<algo>/<method>/
seed_<k>``, its report run ``report_views/<pair>/<algo>/<method>/seed_<k>``, and per arm
(every method and scratch) one aggregate run ``report_views/<pair>/<algo>/<method>/iqm``:

- Custom Scalars, category "transfer vs scratch: IQM over seeds, 95% bootstrap band": one
  margin chart per (pair, algo) with one series per arm, scratch first: the IQM over seeds of
  the evaluation curve at each step of scratch's evaluation grid, with its 95% percentile
  bootstrap band, the very numbers the curves PNG draws
  (:func:`rl_transfer.reports.plots.arm_bands`, :func:`rl_transfer.stats.iqm_band`).
- Custom Scalars, category "transfer vs scratch: every seed" (collapsed): one chart per
  (pair, algo) holding every method and seed, from the tag ``compare/<pair>/<algo>`` that each
  per-seed report run carries (its evaluation curve).
- HParams: each per-seed report run is a session with hparams experiment (its name), pair,
  algo, method, seed and its final metrics (``final/*``) as metric columns. The experiment
  summary at the root is the same for every experiment (hparam names and types, the metric
  columns, no domains of values), so with ``tensorboard --logdir`` over a folder of several
  experiments, whichever summary TensorBoard reads lists every session of every experiment.

Each view is one events file with a fixed name (``events.out.tfevents.report``), replaced
atomically on every report, so re-reporting never duplicates points; views of runs no longer
finished are removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from rl_transfer.reports.plots import Band, arm_bands
from rl_transfer.reports.summary import Loaded, load_experiment

VIEWS_DIR = "report_views"
"""The folder, under the experiment folder, that holds the report's TensorBoard views."""
REPORT_EVENTS = "events.out.tfevents.report"
"""The name of every events file the report writes."""
FINAL_METRICS = (
    "jumpstart",
    "asymptotic_gain",
    "time_to_threshold_speedup",
    "forward_transfer",
    "forward_transfer_total_time",
)
"""summary.json metrics shown per run as ``final/<name>`` (beside ``final/mean_reward``)."""


AGGREGATE_RUN = "iqm"
"""The folder name, beside an arm's ``seed_<k>`` report runs, of its aggregate curve's run."""


def compare_tag(pair: str, algo: str) -> str:
    """The tag under which every report run of (pair, algo) repeats its evaluation curve."""
    return f"compare/{pair}/{algo}"


def iqm_tags(pair: str, algo: str, method: str) -> tuple[str, str, str]:
    """The tags of an arm's aggregate curve: (IQM, lower, upper end of its 95% bootstrap band),
    ``iqm/<pair>/<algo>/<method>`` and that with ``/lower`` and ``/upper``."""
    value = f"iqm/{pair}/{algo}/{method}"
    return value, f"{value}/lower", f"{value}/upper"


def views_dir(root: Path) -> Path:
    """The folder of the report's TensorBoard views of the experiment at ``root``."""
    return Path(root) / VIEWS_DIR


class _Events:
    """One events file written with TensorBoard's own writer and protocol buffers (the same
    records ``torch.utils.tensorboard`` writes, without importing torch or TensorFlow)."""

    def __init__(self, folder: Path) -> None:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._writer = EventFileWriter(str(folder))

    def summary(self, summary: Any, step: int = 0) -> None:
        from tensorboard.compat.proto.event_pb2 import Event

        self._writer.add_event(Event(summary=summary, wall_time=time.time(), step=int(step)))

    def scalar(self, tag: str, value: float, step: int) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        self.summary(Summary(value=[Summary.Value(tag=tag, simple_value=float(value))]), step)

    def close(self) -> None:
        self._writer.close()


def _plugin_summary(tag: str, plugin: str, content: bytes = b"", tensor: Any = None) -> Any:
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata

    meta = SummaryMetadata(
        plugin_data=SummaryMetadata.PluginData(plugin_name=plugin, content=content)
    )
    return Summary(value=[Summary.Value(tag=tag, metadata=meta, tensor=tensor)])


HPARAMS: dict[str, str] = {
    "experiment": "DATA_TYPE_STRING",
    "pair": "DATA_TYPE_STRING",
    "algo": "DATA_TYPE_STRING",
    "method": "DATA_TYPE_STRING",
    "seed": "DATA_TYPE_FLOAT64",
}
"""The hyperparameters of every report run's HParams session (``experiment``: experiment.yaml's
``name``), with their type."""
HPARAMS_METRICS = ("final/mean_reward", *(f"final/{m}" for m in FINAL_METRICS))
"""The metric columns of the HParams dashboard."""


def _hparams(values: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """The HParams plugin's three summaries (experiment, session start, session end) for one
    run's hyperparameter ``values`` (:data:`HPARAMS`), as ``torch.utils.tensorboard.summary.
    hparams`` builds them.

    The experiment summary is the same for every experiment, whatever its runs: the plugin
    reads one experiment summary per ``--logdir`` (the first it finds) and filters every session
    by it, so it names the hyperparameters and :data:`HPARAMS_METRICS` and no domain of values
    (a domain from one experiment would hide the sessions of another whose pairs or methods lie
    outside it). The dashboard then lists each session's own values."""
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    start = plugin_data_pb2.SessionStartInfo()
    for k, v in values.items():
        if HPARAMS[k] == "DATA_TYPE_STRING":
            start.hparams[k].string_value = str(v)
        else:
            start.hparams[k].number_value = float(v)
    experiment = api_pb2.Experiment(
        hparam_infos=[
            api_pb2.HParamInfo(name=k, type=api_pb2.DataType.Value(kind))
            for k, kind in HPARAMS.items()
        ],
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m)) for m in HPARAMS_METRICS],
    )
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.Status.Value("STATUS_SUCCESS"))
    version = metadata.PLUGIN_DATA_VERSION

    def wrap(tag: str, **content: Any) -> Any:
        data = plugin_data_pb2.HParamsPluginData(version=version, **content)
        return _plugin_summary(tag, metadata.PLUGIN_NAME, data.SerializeToString())

    return (
        wrap(metadata.EXPERIMENT_TAG, experiment=experiment),
        wrap(metadata.SESSION_START_INFO_TAG, session_start_info=start),
        wrap(metadata.SESSION_END_INFO_TAG, session_end_info=end),
    )


def _custom_scalars(categories: Iterable[Any]) -> Any:
    """The Custom Scalars layout summary holding ``categories`` (``layout_pb2.Category``)."""
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.plugins.custom_scalar import layout_pb2

    proto = layout_pb2.Layout(category=list(categories))
    tensor = TensorProto(
        dtype="DT_STRING", string_val=[proto.SerializeToString()], tensor_shape=TensorShapeProto()
    )
    return _plugin_summary("custom_scalars__config__", "custom_scalars", tensor=tensor)


AGGREGATE_CATEGORY = "transfer vs scratch: IQM over seeds, 95% bootstrap band"
PER_SEED_CATEGORY = "transfer vs scratch: every seed"


def layout_categories(arms: Iterable[tuple[str, str, str]]) -> list[Any]:
    """The Custom Scalars categories for the arms (pair, algo, method) with an aggregate run:

    1. :data:`AGGREGATE_CATEGORY`, open: one margin chart per (pair, algo), one series per arm
       (scratch first, then the methods in order), each the arm's IQM curve with its band
       (:func:`iqm_tags`);
    2. :data:`PER_SEED_CATEGORY`, closed: one multiline chart per (pair, algo) of every seed's
       curve (:func:`compare_tag`).
    """
    from tensorboard.plugins.custom_scalar import layout_pb2

    groups: dict[tuple[str, str], list[str]] = {}
    for pair, algo, method in arms:
        groups.setdefault((pair, algo), []).append(method)
    margin, per_seed = [], []
    for (pair, algo), methods in sorted(groups.items()):
        order = sorted(set(methods), key=lambda m: (m != "scratch", m))
        series = [
            layout_pb2.MarginChartContent.Series(value=v, lower=lo, upper=hi)
            for v, lo, hi in (iqm_tags(pair, algo, m) for m in order)
        ]
        margin.append(
            layout_pb2.Chart(
                title=f"{pair} / {algo}: eval/mean_reward, IQM and 95% band per method",
                margin=layout_pb2.MarginChartContent(series=series),
            )
        )
        per_seed.append(
            layout_pb2.Chart(
                title=f"{pair} / {algo}: eval/mean_reward, every method and seed",
                multiline=layout_pb2.MultilineChartContent(tag=[f"^{compare_tag(pair, algo)}$"]),
            )
        )
    return [
        layout_pb2.Category(title=AGGREGATE_CATEGORY, chart=margin),
        layout_pb2.Category(title=PER_SEED_CATEGORY, chart=per_seed, closed=True),
    ]


def _write_events(folder: Path, write: Callable[[_Events], None]) -> None:
    """Write one events file with ``write(events)`` and move it to ``folder/REPORT_EVENTS``
    (created if missing), replacing the previous one atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".tb-"))
    try:
        events = _Events(tmp)
        write(events)
        events.close()
        (produced,) = list(tmp.glob("events.out.tfevents.*"))
        os.replace(produced, folder / REPORT_EVENTS)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_run_views(
    view_dir: Path,
    info: Mapping[str, Any],
    timesteps: Iterable[int],
    means: Iterable[float],
    final_metrics: Mapping[str, float | None],
    experiment: str = "",
) -> None:
    """One run's report events: the ``compare/<pair>/<algo>`` curve and the hparams entry.

    Args:
        view_dir: the run's report folder, ``<exp>/report_views/<pair>/<algo>/<method>/seed_<k>``
            (created if missing; never the run folder itself).
        info: its run.json content (pair, algo, method, seed).
        timesteps, means: its evaluation curve (target steps, mean return), shape [n_evals].
        final_metrics: ``final/<name>`` -> value (None values are left out).
        experiment: the experiment's name (the ``experiment`` hparam).
    """
    tag = compare_tag(info["pair"], info["algo"])
    metrics = {f"final/{k}": float(v) for k, v in final_metrics.items() if v is not None}
    hp = {"experiment": experiment, **{k: info[k] for k in ("pair", "algo", "method", "seed")}}

    def write(w: _Events) -> None:
        for t, m in zip(timesteps, means):
            w.scalar(tag, float(m), int(t))
        _, start, end = _hparams(hp)  # the experiment summary is at the root
        w.summary(start)
        w.summary(end)
        for k, v in metrics.items():
            w.scalar(k, v, 0)

    _write_events(view_dir, write)


def write_aggregate_views(view_dir: Path, pair: str, algo: str, method: str, band: Band) -> None:
    """An arm's aggregate run: its IQM curve and band under :func:`iqm_tags`, one point per step
    of the grid.

    Args:
        view_dir: ``<exp>/report_views/<pair>/<algo>/<method>/iqm`` (created if missing).
        pair, algo, method: the arm (``scratch`` included).
        band: its aggregate curve (:func:`~rl_transfer.reports.plots.arm_bands`), target env
            steps and mean return.
    """
    tags = iqm_tags(pair, algo, method)

    def write(w: _Events) -> None:
        for tag, values in zip(tags, (band.iqm, band.lower, band.upper)):
            for t, v in zip(band.t, values):
                w.scalar(tag, float(v), int(t))

    _write_events(view_dir, write)


def write_layout(views: Path, arms: Iterable[tuple[str, str, str]]) -> None:
    """At the root of the views (``<exp>/report_views``): the Custom Scalars layout
    (:func:`layout_categories`) and the HParams experiment summary (:func:`_hparams`: the same
    in every experiment, so that every experiment's sessions show under one ``--logdir``).

    Args:
        views: the views folder (:func:`views_dir`).
        arms: (pair, algo, method) of every aggregate run.
    """
    layout = layout_categories(arms)
    experiment, _, _ = _hparams({})

    def write(w: _Events) -> None:
        w.summary(_custom_scalars(layout))
        w.summary(experiment)

    _write_events(views, write)


def _remove_stale(views: Path, keep: set[Path]) -> None:
    """Remove report folders (per seed, aggregate) of runs no longer finished (not in
    ``keep``)."""
    for folder in (*views.glob("*/*/*/seed_*"), *views.glob(f"*/*/*/{AGGREGATE_RUN}")):
        if folder not in keep:
            shutil.rmtree(folder, ignore_errors=True)


def _remove_legacy(root: Path, run_dirs: Iterable[Path]) -> None:
    """Earlier versions wrote the views into the run folders and the experiment root, under
    the same fixed name; remove those copies so TensorBoard does not show every point twice."""
    for folder in (root, *run_dirs):
        (folder / REPORT_EVENTS).unlink(missing_ok=True)


def write_tensorboard_views(
    root: Path,
    summary: dict[str, Any],
    loaded: Loaded | None = None,
    bands: dict[tuple[str, str, str], Band] | None = None,
) -> Path:
    """Write the report's TensorBoard views of the experiment at ``root`` under
    ``root/report_views`` (see the module's description): one report run per finished run, one
    aggregate run per arm (scratch included), the Custom Scalars layout and the HParams
    summary; views of runs no longer finished are removed.

    Args:
        root: the experiment folder.
        summary: its summary (per-seed metrics for ``final/*``).
        loaded: :func:`~rl_transfer.reports.summary.load_experiment`'s result, to save reading
            the folder again.
        bands: :func:`~rl_transfer.reports.plots.arm_bands`' result (the curves the PNG
            draws), to save computing them again.

    Returns:
        The views folder, ``root/report_views``.
    """
    spec, runs = loaded or load_experiment(root)
    views = views_dir(root)
    per_seed: dict[tuple[str, str, str, int], dict[str, float | None]] = {}
    for r in summary["results"]:
        for i, seed in enumerate(r["seeds"]):
            per_seed[(r["pair"], r["algo"], r["method"], seed)] = {
                k: r["metrics"][k]["per_seed"][i] for k in FINAL_METRICS
            }
    _remove_legacy(root, [run.dir for run in runs])
    written = set()
    for run in runs:
        if run.curve is None:
            continue
        i = run.info
        final: dict[str, float | None] = {"mean_reward": float(run.curve.f[-1])}
        final.update(per_seed.get((i["pair"], i["algo"], i["method"], int(i["seed"])), {}))
        view = views / run.dir.relative_to(root)
        write_run_views(view, i, run.curve.t, run.curve.f, final, str(spec.get("name") or ""))
        written.add(view)
    bands = arm_bands(runs) if bands is None else bands
    for (pair, algo, method), band in bands.items():
        view = views / pair / algo / method / AGGREGATE_RUN
        write_aggregate_views(view, pair, algo, method, band)
        written.add(view)
    _remove_stale(views, written)
    done = [r.info for r in runs if r.curve is not None]
    if not done:
        (views / REPORT_EVENTS).unlink(missing_ok=True)
        return views
    write_layout(views, sorted(bands))
    return views
