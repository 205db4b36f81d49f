"""The record schema: the typed content of every results file, shared by writer and reader.

=======================  ===================================  =========================
file                     record                               written by
=======================  ===================================  =========================
``run.json`` (source)    :class:`SourceRecord`                :func:`rl_transfer.train.train_source`
``run.json`` (target)    :class:`TargetRecord`                :func:`rl_transfer.train.train_target`
``transfer_report.json`` :class:`TransferReport`              the target run and its method
``summary.json``         :class:`Summary`                     :mod:`rl_transfer.reports`
``experiment.yaml``      :class:`ExperimentRecord`            the runner
=======================  ===================================  =========================

Each file carries ``schema_version`` (:data:`SCHEMA_VERSION`). A file without one is version 1
(written before the field existed) and is read with the renames listed in :data:`RENAMED`; a
version newer than this reader knows raises :class:`~rl_transfer.errors.RecordError` saying
to upgrade. Keys a record does not declare are kept (``extra``) and written back unchanged.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from rl_transfer.errors import RecordError, SchemaVersionError, yaml_error_message
from rl_transfer.io import write_json

SCHEMA_VERSION = 2
"""2: ``schema_version`` written; run.json's ``method_knobs`` renamed ``knobs``."""
RENAMED: dict[int, dict[str, str]] = {1: {"method_knobs": "knobs"}}
"""Per older version: old key -> current key."""
RESULTS_FORMAT = 1
"""The format of a run's results, part of the scratch cache's key
(:func:`rl_transfer.spec.scratch_key`): a cached scratch baseline is reused only by experiments
whose rl_transfer writes the same results. Bump it whenever a change would make a run's
results differ with everything else equal: evaluation (which steps are evaluated, the episodes,
their seeds, the policy's mode), the content or layout of run.json or evaluations.npz, the
step budget's rounding, the built-in env families. Scratch runs cached under an older format are
then never reused (they stay in the cache until deleted). Version 1: scratch baselines cached
for the first time (t = 0 row first, evaluation at the first update boundary at or after each
multiple of eval_every and after the final update)."""

R = TypeVar("R", bound="Record")


@dataclass(kw_only=True)
class Record:
    """Base of the records: ``to_dict`` / ``from_dict`` / ``write`` / ``read``."""

    FILE: ClassVar[str] = ""
    OPTIONAL: ClassVar[tuple[str, ...]] = ()
    """Fields left out of the file when None."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys the record does not declare, kept as read."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready content: ``schema_version`` first, then the fields in order, then
        ``extra``."""
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "extra" and not (value is None and f.name in self.OPTIONAL):
                out[f.name] = value
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any], where: str = "record") -> R:
        """Parse ``data`` (a file's content).

        Raises:
            RecordError: not a mapping, a ``schema_version`` this reader does not know, or a
                required field missing (``where`` names the file in the message).
        """
        if not isinstance(data, dict):
            raise RecordError(f"{where}: expected a JSON object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("schema_version", 1)
        if not isinstance(version, int) or version < 1:
            raise RecordError(
                f"{where}: schema_version must be a positive integer, got {version!r}"
            )
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{where} has schema_version {version}, newer than this rl_transfer reads "
                f"(up to {SCHEMA_VERSION}): upgrade rl_transfer to read it"
            )
        for old_version in range(version, SCHEMA_VERSION):
            for old, new in RENAMED.get(old_version, {}).items():
                if old in data and new not in data:
                    data[new] = data.pop(old)
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.name != "extra"
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        }
        missing = sorted(required - set(data))
        if missing:
            raise RecordError(f"{where}: missing {', '.join(missing)}")
        known = {k: v for k, v in data.items() if k in names}
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})

    def write(self, folder: Path) -> Path:
        """Write atomically to ``folder / FILE``; return the path."""
        path = Path(folder) / self.FILE
        write_json(path, self.to_dict())
        return path

    @classmethod
    def read(cls: type[R], path: Path) -> R:
        """Read and parse a file.

        Raises:
            RecordError: unreadable, not JSON, or see :meth:`from_dict`.
        """
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except OSError as exc:
            raise RecordError(f"cannot read {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise RecordError(f"{path} is not valid JSON ({exc})") from None
        return cls.from_dict(data, str(path))


@dataclass(kw_only=True)
class SourceRecord(Record):
    """``run.json`` of a pretrained source in the source cache. Steps are source env steps."""

    FILE: ClassVar[str] = "run.json"
    OPTIONAL: ClassVar[tuple[str, ...]] = ("attempts", "replaced_objects", "normalization")
    kind: str = "source"
    key: str
    pair: str
    source: dict[str, Any]
    algo: str
    seed: int
    source_steps: int
    requested_steps: int
    checkpoint_every: int | None = None
    imported_from: str | None = None
    replaced_objects: list[str] | None = None
    """Saved objects of an imported model that could not be unpickled here (zoo's schedules,
    pickled as rl_zoo3 objects) and were replaced by a constant schedule of 0 through SB3's
    ``custom_objects``; absent: none. ``hyperparams`` are then the model's own values read from
    the zip, these marked as replaced."""
    final_eval_mean_return_on_source: float | None = None
    hyperparams: dict[str, Any] = field(default_factory=dict)
    normalization: dict[str, Any] | None = None
    """The source's ``VecNormalize`` statistics, saved as vecnormalize.pkl beside model.zip:
    ``file``, ``from`` (``"trained"`` or the imported file zoo's layout pairs with the model),
    their settings and sample counts (:func:`rl_transfer.normalization.describe`); absent:
    trained without ``VecNormalize``."""
    versions: dict[str, str] = field(default_factory=dict)
    wall_time_s: float = 0.0
    status: str = "done"
    attempts: int | None = None
    """Times the pretraining was started when its worker died (absent: once)."""


@dataclass(kw_only=True)
class TargetRecord(Record):
    """``run.json`` of one target run (transfer or scratch), written last: ``status`` is
    ``"done"`` only when every other file of the run is complete, ``"failed"`` with ``error``
    otherwise. Steps are target env steps; times in seconds."""

    FILE: ClassVar[str] = "run.json"
    OPTIONAL: ClassVar[tuple[str, ...]] = (
        "error",
        "traceback",
        "attempts",
        "hyperparams_origin",
        "normalization",
        "scratch_key",
    )
    kind: str = "target"
    pair: str
    algo: str
    method: str
    seed: int
    status: str
    error: str | None = None
    traceback: str | None = None
    source_steps: int = 0
    target_steps: int = 0
    requested_target_steps: int = 0
    rollout_steps: int | None = None
    steps_note: str | None = None
    eval_every: int = 0
    eval_episodes: int = 0
    source_key: str | None = None
    scratch_key: str | None = None
    """Scratch runs: the key of the run in the scratch cache (:func:`rl_transfer.spec.scratch_key`);
    absent for transfer runs and for scratch runs written before the scratch cache existed."""
    hyperparams: dict[str, Any] = field(default_factory=dict)
    """The hyperparameters in force (zoo's form: ``lin_X`` schedules, ``policy_kwargs`` with
    names such as ``nn.ReLU``) before the method's own overrides."""
    hyperparams_origin: dict[str, str] | None = None
    """Where each value that is not the package's default came from; absent: all are."""
    hyperparameter_overrides: dict[str, Any] = field(default_factory=dict)
    knobs: dict[str, float | str] = field(default_factory=dict)
    normalization: str | None = None
    """What the run did with ``VecNormalize`` statistics, in one line (``carry: ...``, ``fresh:
    ...``, ``freeze: ...``); absent: no ``VecNormalize``. Details in transfer_report.json."""
    versions: dict[str, str] = field(default_factory=dict)
    wall_time_s: float = 0.0
    eval_time_s: float = 0.0
    n_evaluations: int = 0
    attempts: int | None = None
    """Times the run was started when its worker died (absent: once)."""

    @property
    def done(self) -> bool:
        return self.status == "done"

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.status != "done":  # a failed run records what it is and why, nothing else
            keep = ("schema_version", "kind", "pair", "algo", "method", "seed", "status")
            keep += self.OPTIONAL + tuple(self.extra)
            out = {k: v for k, v in out.items() if k in keep}
        return out


@dataclass(kw_only=True)
class TransferReport(Record):
    """``transfer_report.json``: what the method moved, tensor by tensor, and what its hooks
    did. ``sections`` holds the method-owned entries (the weight copy's ``copied`` /
    ``reinitialised`` / ``synced`` / ``frozen`` lists, ``shaping``, ``replay``, ``jsrl``,
    ``reuse``, ``kickstart``, a plugin's own), written at the top level beside the fields."""

    FILE: ClassVar[str] = "transfer_report.json"
    OPTIONAL: ClassVar[tuple[str, ...]] = ("source", "source_segment")  # scratch has no source
    method: str
    doc: str
    parts: list[str] = field(default_factory=list)
    frozen_parts: list[str] = field(default_factory=list)
    knobs: dict[str, float | str] = field(default_factory=dict)
    hyperparameter_overrides: dict[str, Any] = field(default_factory=dict)
    optimizer_state: Any = "fresh (not transferred; finetune.optimizer=1 carries it)"
    normalization: str | dict[str, Any] = (
        "none: no VecNormalize, observations and rewards reach the networks raw"
    )
    """What the run did with ``VecNormalize`` statistics
    (:func:`rl_transfer.normalization.start_statistics`): the choice (``carry``, ``fresh``,
    ``freeze``), the source's file, the statistics at the start and at the ``end``."""
    source: dict[str, Any] | None = None
    source_segment: str | None = None

    @property
    def sections(self) -> dict[str, Any]:
        return self.extra

    def add(self, entries: dict[str, Any]) -> None:
        """Merge a method's entries (a declared field, such as ``optimizer_state``, is set)."""
        names = {f.name for f in dataclasses.fields(self)} - {"extra"}
        for k, v in entries.items():
            if k in names:
                setattr(self, k, v)
            else:
                self.extra[k] = v


@dataclass(kw_only=True)
class Summary(Record):
    """``summary.json``: one entry per (pair, algo, method) comparison in ``results`` (metrics
    with intervals and p-values, verdicts), and the verdict family."""

    FILE: ClassVar[str] = "summary.json"
    experiment: str | None
    results: list[dict[str, Any]]
    verdict_rule: str = ""
    family: dict[str, Any] = field(default_factory=dict)
    transfer_ratio_form: str = ""
    probability_of_improvement_score: str = ""


@dataclass(kw_only=True)
class ExperimentRecord(Record):
    """``experiment.yaml``: the resolved spec; ``identity`` decides whether a folder holds the
    same experiment (resume) or another one (refused)."""

    FILE: ClassVar[str] = "experiment.yaml"
    name: str
    identity: dict[str, Any]
    algos: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    seeds: Any = None
    eval_episodes: int = 10
    threshold: float | None = None
    asymptote_window: int = 5
    source_cache: str = ""
    scratch_cache: str = ""
    source_model: str | None = None
    backend: str = "local"
    pairs: dict[str, Any] = field(default_factory=dict)
    hyperparams_in_force: dict[str, Any] = field(default_factory=dict)
    """algo -> pair -> run kind (``source``, ``scratch``, each method) -> the hyperparameters
    it is built with (overrides, a user's file and an imported model's architecture applied)."""
    versions: dict[str, str] = field(default_factory=dict)
    git_commit: str | None = None

    def write(self, folder: Path) -> Path:
        """Write as YAML (no anchors: a shared value is written out) atomically."""
        import yaml

        from rl_transfer.io import write_text

        class _NoAliases(yaml.SafeDumper):
            def ignore_aliases(self, data: Any) -> bool:
                return True

        path = Path(folder) / self.FILE
        write_text(path, yaml.dump(self.to_dict(), Dumper=_NoAliases, sort_keys=False))
        return path

    @classmethod
    def read(cls, path: Path) -> ExperimentRecord:
        """Raises:
        RecordError: unreadable or invalid YAML (with its line and column), or see
            :meth:`Record.from_dict`."""
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise RecordError(f"cannot read {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise RecordError(f"invalid YAML: {yaml_error_message(path, exc)}") from None
        return cls.from_dict(data, str(path))


def run_status(folder: Path) -> str | None:
    """``status`` of the run.json in ``folder`` (``"done"`` / ``"failed"``), or None when there
    is none or it cannot be parsed (a run interrupted before writing it: run.json is written
    last and atomically).

    Raises:
        RecordError: the run.json has a ``schema_version`` newer than this reader knows.
    """
    try:
        with open(Path(folder) / "run.json", encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("schema_version"), int) and data["schema_version"] > SCHEMA_VERSION:
        Record.from_dict(data, str(Path(folder) / "run.json"))  # raises, naming the file
    status = data.get("status")
    return status if isinstance(status, str) else None
