"""The transfer-method interface: what a method is, and what it sees of a target run.

A method is a :class:`TransferMethod` subclass. The target run
(:func:`rl_transfer.train.train_target`)
calls its hooks in this order, and has no branch of its own for any method:

1. :meth:`~TransferMethod.missing` -- before anything runs, what the method needs of an
   algorithm that the agent adapter lacks (the experiment is refused with it);
   :meth:`~TransferMethod.models_problem` -- before anything runs too, when the source's and
   the arm's hyperparameters differ: what about the two models makes the transfer impossible;
2. :meth:`~TransferMethod.hyperparam_overrides` -- hyperparameters the transferred arm starts
   with instead of the target's own;
3. :meth:`~TransferMethod.env_wrapper` -- a wrapper around each training env's Monitor;
4. :meth:`~TransferMethod.before_learning` -- the target model is built: move what the method
   moves (weights, a replay buffer), install hooks, return report entries and SB3 callbacks;
5. :meth:`~TransferMethod.after_learning` -- after ``learn()``: remove hooks (the saved model is
   plain SB3), return the method's section of transfer_report.json, and raise
   :class:`~rl_transfer.errors.TransferError` when the transfer moved nothing (a transfer that
   moved nothing is an error, never a success).

Methods combine with ``+`` (:class:`Combined`). A user's package adds methods through the
``rl_transfer.methods`` entry-point group (see :mod:`rl_transfer.methods`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rl_transfer.errors import SpecError

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.callbacks import BaseCallback

    from agents.base import AgentAdapter
    from envs import EnvPair
    from rl_transfer.budget import StepBudget

Wrapper = Callable[[Any], Any]
"""``wrapper(env) -> env``: put around each training env's Monitor."""


@dataclass(frozen=True)
class Knob:
    """A method's setting: default, bounds and what it does (``--knob METHOD.KNOB=VALUE``,
    study key ``knobs``)."""

    default: float | str
    low: float
    high: float
    doc: str
    inert: float | None = None
    """A value at which the method would transfer nothing (refused: a transfer that moves
    nothing is an error, never a success)."""
    flag: bool = False
    """0 or 1 only."""
    choices: tuple[str, ...] = ()
    """For a knob that takes one of these words instead of a number (``low``/``high`` unused);
    see :meth:`choice`."""

    @classmethod
    def choice(cls, default: str, choices: tuple[str, ...], doc: str) -> Knob:
        """A knob whose value is one of ``choices`` (``default`` among them)."""
        return cls(default, 0.0, 0.0, doc, choices=choices)

    def show(self, value: float | str | None = None) -> str:
        """``value`` (default: the knob's default) as written on the command line."""
        value = self.default if value is None else value
        return value if isinstance(value, str) else f"{value:g}"


VECNORMALIZE = Knob.choice(
    "carry",
    ("carry", "fresh", "freeze"),
    "the target's VecNormalize statistics (hyperparameters with zoo's normalize): carry = "
    "start from the source's and keep updating them, fresh = start new ones (as scratch), "
    "freeze = the source's, never updated",
)
"""The statistics choice of every method that takes a source (:mod:`rl_transfer.normalization`).
Default ``carry``: the copied weights meet the inputs they were trained on at t = 0, and the
statistics then follow the target's observations and returns."""
SOURCE_KNOBS: Mapping[str, Knob] = {"vecnormalize": VECNORMALIZE}
"""Knobs that every method with ``needs_source`` has (added to its ``knobs`` when its class is
defined). One run has one value: in a combination, the value given for any component holds."""


@dataclass
class TargetRun:
    """What a method sees of the target run it is part of.

    Attributes:
        pair, algo, seed: the run's env pair, algorithm name and seed.
        hyperparams: the target's raw hyperparameters (schedules as ``lin_X``).
        adapter: the algorithm's agent adapter (:class:`agents.base.AgentAdapter`).
        knobs: knob values in force (every component's, by knob name).
        source: the source model, loaded on the CPU; None for methods that need none. It takes
            raw observations: a source trained with ``VecNormalize`` applies its own frozen
            statistics inside its policy (:class:`rl_transfer.normalization.SourceInputs`).
        source_dir: the source's folder in the source cache (model.zip, replay_buffer.pkl,
            vecnormalize.pkl).
        source_inputs: the statistics ``source`` applies to its inputs; None when it was trained
            without ``VecNormalize``.
        model: the target model; set before :meth:`TransferMethod.before_learning`.
        budget: the run's step budget; set with ``model``.
    """

    pair: EnvPair
    algo: str
    seed: int
    hyperparams: Mapping[str, Any]
    adapter: AgentAdapter
    knobs: Mapping[str, float | str]
    source: BaseAlgorithm | None = None
    source_dir: Path | None = None
    source_inputs: Any = None
    model: BaseAlgorithm | None = None
    budget: StepBudget | None = None
    extra: dict[str, Any] = field(default_factory=dict)


TENSOR_LISTS = ("copied", "synced", "frozen", "notes")
"""Report entries that several components of a combination may each write: joined."""


def merge_entries(report: dict[str, Any], entries: Mapping[str, Any]) -> None:
    """Merge one component's report entries into ``report``: the tensor lists of
    :data:`TENSOR_LISTS` are joined, ``reinitialised`` keeps only the tensors that every copy
    left fresh, anything else is set."""
    for key, value in entries.items():
        if key in TENSOR_LISTS and key in report:
            report[key] = report[key] + [v for v in value if v not in report[key]]
        elif key == "reinitialised" and key in report:
            report[key] = [t for t in report[key] if t in value]
        else:
            report[key] = value
    moved = {t["name"] for k in ("copied", "synced") for t in report.get(k, [])}
    if "reinitialised" in report:
        report["reinitialised"] = [t for t in report["reinitialised"] if t["name"] not in moved]


def chain(wrappers: list[Wrapper | None]) -> Wrapper | None:
    """One wrapper applying the given ones in order, the first innermost (None entries are
    skipped); None when there is none."""
    given = [w for w in wrappers if w is not None]
    if not given:
        return None

    def wrap(env: Any) -> Any:
        for w in given:
            env = w(env)
        return env

    return wrap


class TransferMethod:
    """Base class of transfer methods; subclasses set the class attributes and the hooks they
    need (every hook has a do-nothing default).

    Class attributes:
        name: the method's name on the command line, in run folders and reports.
        doc: one line for listings and docs.
        moves: a few words on what moves from the source (``rl-transfer methods``).
        reference: the paper or library it comes from.
        knobs: settings with defaults and bounds.
        needs_source: False only for the from-scratch baseline.
        source_acts: the source's policy takes steps in the target env (they count toward t).
        source_sees_learner_inputs: the source is queried on the learner's own inputs (its
            minibatch observations, normalized by the target's ``VecNormalize`` when the
            hyperparameters normalize) rather than on raw observations.
        parts: adapter parts whose tensors are copied from the source (weight transfers).
        freeze: parts frozen after copying.
    """

    name: ClassVar[str]
    doc: ClassVar[str]
    moves: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    knobs: ClassVar[Mapping[str, Knob]] = {}
    needs_source: ClassVar[bool] = True
    source_acts: ClassVar[bool] = False
    source_sees_learner_inputs: ClassVar[bool] = False
    parts: tuple[str, ...] = ()
    freeze: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A method that takes a source gets :data:`SOURCE_KNOBS` after its own knobs."""
        super().__init_subclass__(**kwargs)
        if cls.needs_source:
            extra = {k: v for k, v in SOURCE_KNOBS.items() if k not in cls.knobs}
            cls.knobs = {**cls.knobs, **extra}

    @property
    def components(self) -> tuple[TransferMethod, ...]:
        """The single methods this one is made of (itself, unless combined)."""
        return (self,)

    def fresh(self) -> TransferMethod:
        """A copy for one run (hooks keep per-run state on the instance)."""
        return copy.deepcopy(self)

    # -- before anything runs --------------------------------------------------------------
    def missing(self, adapter: AgentAdapter | type[AgentAdapter]) -> list[str]:
        """What this method needs of an algorithm that ``adapter`` (class or instance) lacks,
        as phrases ("a replay buffer"); empty when supported."""
        return []

    def settings(self, given: Mapping[str, Any] | None = None) -> dict[str, float | str]:
        """The knob values in force: defaults, replaced by ``given``.

        Raises:
            SpecError: an unknown knob, a value that is not a number or is outside its bounds,
                a switch that is not 0 or 1, a word outside a knob's choices, or a value at
                which the method moves nothing.
        """
        out = {k: v.default for k, v in self.knobs.items()}
        for key, value in (given or {}).items():
            if key not in self.knobs:
                known = ", ".join(self.knobs) or "none"
                raise SpecError(f"method {self.name!r} has no knob {key!r}; its knobs: {known}")
            knob = self.knobs[key]
            if knob.choices:
                if value not in knob.choices:
                    raise SpecError(
                        f"{self.name}.{key} must be one of {', '.join(knob.choices)}, got {value!r}"
                    )
                out[key] = value
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise SpecError(f"{self.name}.{key} must be a number, got {value!r}") from None
            if not knob.low <= number <= knob.high:
                raise SpecError(
                    f"{self.name}.{key} = {number:g} is outside [{knob.low:g}, {knob.high:g}]"
                )
            if knob.flag and number not in (0.0, 1.0):
                raise SpecError(f"{self.name}.{key} is a switch: 0 or 1, got {value!r}")
            if knob.inert is not None and number == knob.inert:
                raise SpecError(
                    f"{self.name}.{key} = {number:g} would transfer nothing; use a value in "
                    f"({knob.low:g}, {knob.high:g}]"
                    if knob.inert == knob.low
                    else f"{self.name}.{key} = {number:g} would transfer nothing"
                )
            out[key] = number
        return out

    def settings_from(
        self, knobs: Mapping[str, Mapping[str, Any]] | None
    ) -> dict[str, float | str]:
        """Knob values in force, each component reading its own ``knobs[component name]``; a
        knob of :data:`SOURCE_KNOBS` given for any component holds for the whole run.

        Raises:
            SpecError: see :meth:`settings`; or two components given different values of one
                knob of :data:`SOURCE_KNOBS`.
        """
        out: dict[str, float | str] = {}
        shared: dict[str, tuple[str, float | str]] = {}
        for c in self.components:
            given = (knobs or {}).get(c.name) or {}
            values = c.settings(given)
            for key in SOURCE_KNOBS:
                if key not in given:
                    continue
                if key in shared and shared[key][1] != values[key]:
                    first, value = shared[key]
                    raise SpecError(
                        f"{first}.{key}={value} and {c.name}.{key}={values[key]}: one run of "
                        f"{self.name!r} has one {key}; give one value"
                    )
                shared[key] = (c.name, values[key])
            out.update(values)
        out.update({key: value for key, (_, value) in shared.items()})
        return out

    def hyperparam_overrides(
        self, adapter: AgentAdapter, hyperparams: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Hyperparameters the transferred arm starts with instead of the target's own."""
        return {}

    def models_problem(
        self, source: BaseAlgorithm, target: BaseAlgorithm, knobs: Mapping[str, Any]
    ) -> str | None:
        """Before anything runs, when the source and this arm have different hyperparameters:
        what about the two models (built, never trained) makes the transfer impossible, in
        words; None when nothing does. ``knobs``: the arm's knob values in force."""
        return None

    # -- the run ---------------------------------------------------------------------------
    def env_wrapper(self, run: TargetRun) -> Wrapper | None:
        """A wrapper around each training env's Monitor (evaluation envs stay plain)."""
        return None

    def before_learning(self, run: TargetRun) -> tuple[dict[str, Any], list[BaseCallback]]:
        """Called with ``run.model`` built and ``run.budget`` set, before evaluation at t = 0.

        Returns:
            ``(report entries, callbacks)``: entries merged into transfer_report.json, and SB3
            callbacks run before the budget, evaluation and progress callbacks.
        """
        return {}, []

    def after_learning(self, run: TargetRun, steps: int) -> dict[str, Any]:
        """Called after ``learn()`` (``steps``: target env steps taken). Remove hooks; return
        report entries.

        Raises:
            TransferError: the method moved nothing in the run.
        """
        return {}


class Combined(TransferMethod):
    """Methods applied together (``policy+shaping``): their hooks run in registry order, their
    report entries and callbacks are joined, and weight transfers merge into one copy.

    Raises (at construction):
        SpecError: two components declare a knob of the same name.
    """

    def __init__(self, name: str, components: list[TransferMethod]) -> None:
        self.name = name  # type: ignore[misc]
        self.doc = "; ".join(c.doc for c in components)  # type: ignore[misc]
        self._components = tuple(components)
        seen: dict[str, str] = {}
        for c in (m for part in components for m in part.components):
            for k in c.knobs:
                if k in seen and k not in SOURCE_KNOBS:
                    raise SpecError(
                        f"method {name!r}: {seen[k]} and {c.name} both have a knob {k!r}; "
                        "they cannot be combined"
                    )
                seen[k] = c.name
        self.knobs = {k: v for c in components for k, v in c.knobs.items()}  # type: ignore[misc]
        self.parts = tuple(dict.fromkeys(p for c in components for p in c.parts))
        self.freeze = tuple(dict.fromkeys(p for c in components for p in c.freeze))
        self.needs_source = any(c.needs_source for c in components)  # type: ignore[misc]
        self.source_acts = any(c.source_acts for c in components)  # type: ignore[misc]
        self.source_sees_learner_inputs = any(  # type: ignore[misc]
            c.source_sees_learner_inputs for c in components
        )

    @property
    def components(self) -> tuple[TransferMethod, ...]:
        out: list[TransferMethod] = []
        for c in self._components:
            out.extend(c.components)
        return tuple(out)

    def missing(self, adapter: Any) -> list[str]:
        return list(dict.fromkeys(m for c in self._components for m in c.missing(adapter)))

    def models_problem(
        self, source: BaseAlgorithm, target: BaseAlgorithm, knobs: Mapping[str, Any]
    ) -> str | None:
        problems = (c.models_problem(source, target, knobs) for c in self._components)
        return next((p for p in problems if p), None)

    def hyperparam_overrides(self, adapter: Any, hyperparams: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for c in self._components:
            out.update(c.hyperparam_overrides(adapter, hyperparams))
        return out

    def env_wrapper(self, run: TargetRun) -> Wrapper | None:
        return chain([c.env_wrapper(run) for c in self._components])

    def before_learning(self, run: TargetRun) -> tuple[dict[str, Any], list[BaseCallback]]:
        """Every component's entries and callbacks; the callbacks of components whose source
        acts in the target env come first (they add its steps to t before others read t)."""
        report: dict[str, Any] = {}
        first: list[BaseCallback] = []
        rest: list[BaseCallback] = []
        for c in self._components:
            entries, cbs = c.before_learning(run)
            merge_entries(report, entries)
            (first if c.source_acts else rest).extend(cbs)
        return report, first + rest

    def after_learning(self, run: TargetRun, steps: int) -> dict[str, Any]:
        report: dict[str, Any] = {}
        for c in self._components:
            report.update(c.after_learning(run, steps))
        return report
