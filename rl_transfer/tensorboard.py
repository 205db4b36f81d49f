"""TensorBoard pieces that training and the command line use: the text a transfer run shows
in the Text dashboard (:func:`transfer_text`), and a TensorBoard server bound to localhost
(:func:`serve`, :func:`tensorboard_command`, :func:`free_port`).

The report's own views (Custom Scalars, HParams) are written by
:mod:`rl_transfer.reports.tensorboard`.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it)."""
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
