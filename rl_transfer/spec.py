"""The experiment specification: what to run, validated before anything is written."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents import get_adapter
from envs import EnvPair, get_pair
from rl_transfer.errors import SpecError
from rl_transfer.methods import get_method
from rl_transfer.versions import package_versions

DEFAULT_PAIR = "cartpole-long-pole"
DEFAULT_METHODS = ("policy", "value")


@dataclass
class ExperimentSpec:
    """An experiment: every (pair, method, seed) for one algorithm, beside the scratch baseline.

    Attributes:
        pairs: env pair names (``rl-transfer pairs`` lists them).
        algo: ``"ppo"`` or ``"dqn"``.
        methods: transfer methods; ``scratch`` is always added as the baseline.
        seeds: number of seeds; seed i's target runs start from source seed i.
        source_steps, target_steps, eval_every: env steps; None takes the pair's budget.
        eval_episodes: fixed evaluation episodes per evaluation.
        threshold: time-to-threshold level; None takes the pair's.
        out: experiment folder; None -> ``runs/<name>``.
        source_cache: shared folder of pretrained sources (``runs/sources``).
        workers: parallel processes; None -> the number of cores.
        asymptote_window: last k evaluations averaged for asymptotic gain.
        name: experiment name; None -> ``<pair>-<algo>-<date>-<time>``.
    """

    pairs: list[str] = field(default_factory=lambda: [DEFAULT_PAIR])
    algo: str = "ppo"
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    seeds: int = 3
    source_steps: int | None = None
    target_steps: int | None = None
    eval_every: int | None = None
    eval_episodes: int = 10
    threshold: float | None = None
    out: Path | None = None
    source_cache: Path = Path("runs/sources")
    workers: int | None = None
    asymptote_window: int = 5
    name: str | None = None

    def validate(self) -> None:
        """Check every field; raise :class:`SpecError` (or an envs / agents error) naming the bad
        value. Nothing is written."""
        if not self.pairs:
            raise SpecError("no pair given; `rl-transfer pairs` lists them")
        for p in self.pairs:
            get_pair(p)
        get_adapter(self.algo)
        if not self.methods:
            raise SpecError("no method given; for example --methods policy,value")
        for m in self.methods:
            get_method(m)
        for label, value in (
            ("seeds", self.seeds),
            ("source_steps", self.source_steps),
            ("target_steps", self.target_steps),
            ("eval_every", self.eval_every),
            ("eval_episodes", self.eval_episodes),
            ("workers", self.workers),
            ("asymptote_window", self.asymptote_window),
        ):
            if value is not None and (isinstance(value, bool) or int(value) != value or value <= 0):
                raise SpecError(f"{label} must be a positive integer, got {value!r}")
        for pair in self.pair_objects():
            if self.budget(pair)["eval_every"] > self.budget(pair)["target_steps"]:
                raise SpecError(
                    f"eval_every ({self.budget(pair)['eval_every']}) is larger than target_steps "
                    f"({self.budget(pair)['target_steps']}): no evaluation after t = 0"
                )
        _check_writable(self.output_dir(), "--out")
        _check_writable(Path(self.source_cache), "--source-cache")
        out = self.output_dir()
        if out.exists() and any(out.iterdir()):
            raise SpecError(
                f"--out {out} already holds results; choose a new folder (resuming is not "
                "supported yet)"
            )

    def pair_objects(self) -> list[EnvPair]:
        return [get_pair(p) for p in self.pairs]

    def all_methods(self) -> list[str]:
        return ["scratch"] + [m for m in self.methods if m != "scratch"]

    def budget(self, pair: EnvPair) -> dict[str, int]:
        """Source steps, target steps and evaluation interval in force for ``pair``."""
        b = pair.budget(self.algo)
        default = {"source_steps": 50_000, "target_steps": 50_000, "eval_every": 2_000}
        base = (
            {
                "source_steps": b.source_steps,
                "target_steps": b.target_steps,
                "eval_every": b.eval_every,
            }
            if b
            else default
        )
        for key in base:
            if getattr(self, key) is not None:
                base[key] = int(getattr(self, key))
        return base

    def experiment_name(self) -> str:
        if self.name is None:
            self.name = f"{self.pairs[0]}-{self.algo}-{time.strftime('%Y%m%d-%H%M%S')}"
        return self.name

    def output_dir(self) -> Path:
        return Path(self.out) if self.out is not None else Path("runs") / self.experiment_name()

    def resolved(self) -> dict[str, Any]:
        """The resolved spec as written to experiment.yaml (pairs inlined, budgets filled)."""
        pairs = {
            p.name: {**p.to_dict(), "budget_in_force": self.budget(p)} for p in self.pair_objects()
        }
        return {
            "name": self.experiment_name(),
            "algo": self.algo,
            "methods": self.all_methods(),
            "seeds": list(range(self.seeds)),
            "eval_episodes": self.eval_episodes,
            "threshold": self.threshold,
            "asymptote_window": self.asymptote_window,
            "source_cache": str(Path(self.source_cache).resolve()),
            "hyperparams": {
                p.name: get_adapter(self.algo).hyperparams(p.target.family)
                for p in self.pair_objects()
            },
            "pairs": pairs,
            "versions": package_versions(),
            "git_commit": _git_commit(),
        }


def _check_writable(path: Path, flag: str) -> None:
    """Raise SpecError unless ``path`` exists as a writable folder or could be created."""
    probe = Path(path).absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise SpecError(f"{flag} {path} is not usable: {probe} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise SpecError(
            f"{flag} {path} is not writable ({exc.strerror}); choose another folder"
        ) from None


def _git_commit() -> str | None:
    head = Path(__file__).resolve().parent.parent / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return (head.parent / ref[5:]).read_text().strip()
        return ref
    except OSError:
        return None


def source_key(
    pair: EnvPair, algo: str, hyperparams: dict[str, Any], seed: int, steps: int, eval_episodes: int
) -> str:
    """Content hash of a source run: source variant, algo, hyperparameters, seed, steps and the
    package versions (first 16 hex digits of SHA-256)."""
    payload = {
        "source": {
            "family": pair.source.family,
            "params": dict(sorted(pair.source.params.items())),
        },
        "algo": algo,
        "hyperparams": hyperparams,
        "seed": seed,
        "steps": steps,
        "eval_episodes": eval_episodes,
        "versions": {k: v for k, v in package_versions().items() if k != "rl-transfer"},
        "format": 1,
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)
