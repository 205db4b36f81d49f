"""The report's TensorBoard views of an experiment, rebuilt from disk on every report.

They live in a tree of their own under the experiment folder, never in the run folders (which
training owns)::

    <exp>/report_views/events.out.tfevents.report          Custom Scalars layout, HParams summary
    <exp>/report_views/<pair>/<algo>/<method>/seed_<k>/events.out.tfevents.report
                                                           compare/<pair>/<algo>, final/*, hparams

so ``tensorboard --logdir <exp>`` shows, beside each training run ``<pair>/<algo>/<method>/
seed_<k>``, its report run ``report_views/<pair>/<algo>/<method>/seed_<k>``:

- Custom Scalars: one chart per (pair, algo) holding every method and seed, from the tag
  ``compare/<pair>/<algo>`` that each report run carries (its evaluation curve).
- HParams: each report run lists pair, algo, method, seed and its final metrics (``final/*``).

Each view is one events file with a fixed name (``events.out.tfevents.report``), replaced
atomically on every report, so re-reporting never duplicates points; views of runs no longer
finished are removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

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


def compare_tag(pair: str, algo: str) -> str:
    """The tag under which every report run of (pair, algo) repeats its evaluation curve."""
    return f"compare/{pair}/{algo}"


def views_dir(root: Path) -> Path:
    """The folder of the report's TensorBoard views of the experiment at ``root``."""
    return Path(root) / VIEWS_DIR


def _write_events(folder: Path, write: Callable[[Any], None]) -> None:
    """Write one events file with ``write(writer)`` (a torch ``SummaryWriter``) and move it to
    ``folder/REPORT_EVENTS`` (created if missing), replacing the previous one atomically."""
    from torch.utils.tensorboard import SummaryWriter

    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".tb-"))
    try:
        writer = SummaryWriter(log_dir=str(tmp))
        write(writer)
        writer.close()
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
) -> None:
    """One run's report events: the ``compare/<pair>/<algo>`` curve and the hparams entry.

    Args:
        view_dir: the run's report folder, ``<exp>/report_views/<pair>/<algo>/<method>/seed_<k>``
            (created if missing; never the run folder itself).
        info: its run.json content (pair, algo, method, seed).
        timesteps, means: its evaluation curve (target steps, mean return), shape [n_evals].
        final_metrics: ``final/<name>`` -> value (None values are left out).
    """
    from torch.utils.tensorboard.summary import hparams

    tag = compare_tag(info["pair"], info["algo"])
    metrics = {f"final/{k}": float(v) for k, v in final_metrics.items() if v is not None}
    hp = {k: info[k] for k in ("pair", "algo", "method", "seed")}

    def write(w: Any) -> None:
        for t, m in zip(timesteps, means):
            w.add_scalar(tag, float(m), int(t))
        _, ssi, sei = hparams(hp, metrics)  # the experiment summary is written once, at the root
        w.file_writer.add_summary(ssi)
        w.file_writer.add_summary(sei)
        for k, v in metrics.items():
            w.add_scalar(k, v, 0)

    _write_events(view_dir, write)


def write_layout(
    views: Path,
    groups: Iterable[tuple[str, str]],
    hparam_values: Mapping[str, list[Any]],
    metric_names: Iterable[str],
) -> None:
    """At the root of the views (``<exp>/report_views``): the Custom Scalars layout (one chart per
    (pair, algo)) and the HParams experiment summary (hyperparameter domains and every
    ``final/*`` metric).

    Args:
        views: the views folder (:func:`views_dir`).
        groups: (pair, algo) of every chart.
        hparam_values: ``pair``, ``algo``, ``method``, ``seed`` -> the values present, sorted.
        metric_names: final metrics, without the ``final/`` prefix.
    """
    from torch.utils.tensorboard.summary import hparams

    groups = list(groups)
    layout = {
        "transfer vs scratch": {
            f"{pair} / {algo}: eval/mean_reward, every method and seed": [
                "Multiline",
                [f"^{compare_tag(pair, algo)}$"],
            ]
            for pair, algo in groups
        }
    }
    example = {k: v[0] for k, v in hparam_values.items()}
    discrete = {k: v for k, v in hparam_values.items() if all(isinstance(x, str) for x in v)}
    exp, _, _ = hparams(example, {f"final/{m}": 0.0 for m in metric_names}, discrete)

    def write(w: Any) -> None:
        w.add_custom_scalars(layout)
        w.file_writer.add_summary(exp)

    _write_events(views, write)


def _remove_stale(views: Path, keep: set[Path]) -> None:
    """Remove report folders of runs that are no longer finished (not in ``keep``)."""
    for folder in views.glob("*/*/*/seed_*"):
        if folder not in keep:
            shutil.rmtree(folder, ignore_errors=True)


def _remove_legacy(root: Path, run_dirs: Iterable[Path]) -> None:
    """Earlier versions wrote the views into the run folders and the experiment root, under
    the same fixed name; remove those copies so TensorBoard does not show every point twice."""
    for folder in (root, *run_dirs):
        (folder / REPORT_EVENTS).unlink(missing_ok=True)


def write_tensorboard_views(
    root: Path, summary: dict[str, Any], loaded: Loaded | None = None
) -> Path:
    """Write the report's TensorBoard views of the experiment at ``root`` under
    ``root/report_views`` (see the module's description): one report run per finished run, the
    Custom Scalars layout and the HParams summary; views of runs no longer finished are removed.

    Args:
        root: the experiment folder.
        summary: its summary (per-seed metrics for ``final/*``).
        loaded: :func:`~rl_transfer.reports.summary.load_experiment`'s result, to save reading
            the folder again.

    Returns:
        The views folder, ``root/report_views``.
    """
    _, runs = loaded or load_experiment(root)
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
        write_run_views(view, i, run.curve.t, run.curve.f, final)
        written.add(view)
    _remove_stale(views, written)
    done = [r.info for r in runs if r.curve is not None]
    if not done:
        (views / REPORT_EVENTS).unlink(missing_ok=True)
        return views
    values = {k: sorted({i[k] for i in done}) for k in ("pair", "algo", "method", "seed")}
    write_layout(
        views,
        sorted({(i["pair"], i["algo"]) for i in done}),
        values,
        ("mean_reward", *FINAL_METRICS),
    )
    return views
