"""TensorBoard views of an experiment, rebuilt from disk by the report step.

- Run names are the run folders, ``<pair>/<algo>/<method>/seed_<k>``, so transfer and scratch
  curves of ``eval/mean_reward`` overlay in the Scalars dashboard.
- Custom Scalars: one chart per (pair, algo) holding every method and seed, from the tag
  ``compare/<pair>/<algo>`` that each run carries (its evaluation curve).
- HParams: each run lists pair, algo, method, seed and its final metrics (``final/*``).

These are written into one events file per run folder with a fixed name
(``events.out.tfevents.report``), replaced atomically on every report, so re-reporting never
duplicates points. ``serve`` starts a TensorBoard server bound to localhost.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REPORT_EVENTS = "events.out.tfevents.report"
EVAL_TAG = "eval/mean_reward"


def transfer_text(transfer: Mapping[str, Any]) -> str:
    """Markdown for TensorBoard's Text dashboard (tag ``transfer/report``, step 0): the facts
    of ``transfer_report.json`` known before training, with one table row per tensor copied,
    synced, frozen or left fresh."""
    lines = [f"**method `{transfer['method']}`**: {transfer['doc']}", ""]
    for key in ("knobs", "hyperparameter_overrides", "optimizer_state", "normalization"):
        if key in transfer:
            lines.append(f"- {key}: `{transfer[key] if transfer[key] != {} else 'none'}`")
    if "source" in transfer:
        src = transfer["source"]
        lines.append(f"- source: `{src['dir']}` ({src['steps']} steps)")
    for key in ("shaping", "replay"):
        if key in transfer:
            lines.append(f"- {key}: `{transfer[key]}`")
    rows = [
        (action, t["name"], t["shape"])
        for action in ("copied", "synced", "frozen", "reinitialised")
        for t in transfer.get(action, [])
    ]
    if rows:
        lines += ["", "| tensor | shape | action |", "|---|---|---|"]
        lines += [f"| `{name}` | {shape} | {action} |" for action, name, shape in rows]
    return "\n".join(lines)


def compare_tag(pair: str, algo: str) -> str:
    """The tag under which every run of (pair, algo) repeats its evaluation curve."""
    return f"compare/{pair}/{algo}"


def _write_events(folder: Path, write) -> None:  # noqa: ANN001  (write: SummaryWriter -> None)
    """Write one events file with ``write(writer)`` and move it to ``folder/REPORT_EVENTS``."""
    from torch.utils.tensorboard import SummaryWriter

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
    run_dir: Path,
    info: Mapping[str, Any],
    timesteps: Iterable[int],
    means: Iterable[float],
    final_metrics: Mapping[str, float | None],
) -> None:
    """Per-run report events: the ``compare/<pair>/<algo>`` curve and the hparams entry.

    Args:
        run_dir: the run folder.
        info: its run.json content (pair, algo, method, seed).
        timesteps, means: its evaluation curve (target steps, mean return), shape [n_evals].
        final_metrics: ``final/<name>`` -> value (None values are left out).
    """
    from torch.utils.tensorboard.summary import hparams

    tag = compare_tag(info["pair"], info["algo"])
    metrics = {f"final/{k}": float(v) for k, v in final_metrics.items() if v is not None}
    hp = {k: info[k] for k in ("pair", "algo", "method", "seed")}

    def write(w) -> None:  # noqa: ANN001
        for t, m in zip(timesteps, means):
            w.add_scalar(tag, float(m), int(t))
        _, ssi, sei = hparams(hp, metrics)  # the experiment summary is written once, at the root
        w.file_writer.add_summary(ssi)
        w.file_writer.add_summary(sei)
        for k, v in metrics.items():
            w.add_scalar(k, v, 0)

    _write_events(run_dir, write)


def write_layout(
    root: Path,
    groups: Iterable[tuple[str, str]],
    hparam_values: Mapping[str, list[Any]],
    metric_names: Iterable[str],
) -> None:
    """At the experiment root: the Custom Scalars layout (one chart per (pair, algo)) and the
    HParams experiment summary (hyperparameter domains and every ``final/*`` metric)."""
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

    def write(w) -> None:  # noqa: ANN001
        w.add_custom_scalars(layout)
        w.file_writer.add_summary(exp)

    _write_events(root, write)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def tensorboard_command(logdir: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """The command line that serves ``logdir`` on ``host:port`` (localhost only by default)."""
    return [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        str(logdir),
        "--host",
        host,
        "--port",
        str(port),
        "--reload_interval",
        "5",
    ]


def serve(logdir: Path, port: int | None = None, host: str = "127.0.0.1") -> subprocess.Popen:
    """Start TensorBoard on ``logdir`` in a child process bound to ``host``; return it."""
    port = port or free_port(host)
    return subprocess.Popen(tensorboard_command(logdir, port, host))
