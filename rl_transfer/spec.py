"""The experiment specification: what to run, validated before anything is written.

A spec comes from keyword arguments (``Experiment(...)``), from CLI flags, or from a study file
(YAML, validated with pydantic; see :class:`StudyFile`); flags override the file.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rl_transfer.errors import SpecError, TransferError

if TYPE_CHECKING:  # envs imports gymnasium, agents torch: imported where they are used
    from envs import EnvPair

DEFAULT_PAIR = "cartpole-long-pole"
DEFAULT_METHODS = ("policy", "value")
MIN_SEEDS = 3
"""Seeds of the first look of an adaptive experiment."""
BACKENDS = ("local", "ray")
PAIR_BUDGET = "the pair's budget (`rl-transfer pairs show NAME`)"


# ----------------------------------------------------------------------------------------------
# How a field's value is written: on the command line and in a study file


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def _seeds(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or 'auto', got {text!r}"
        ) from None


def _names(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _knob(text: str) -> tuple[str, str, str]:
    key, sep, value = text.partition("=")
    method, dot, knob = key.partition(".")
    if not sep or not dot or not method or not knob:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected METHOD.KNOB=VALUE, e.g. shaping.scale=0.5"
        )
    return method, knob, value


def _collect_knobs(items: list[tuple[str, str, str]]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for method, knob, value in items:
        out.setdefault(method, {})[knob] = value
    return out


def _assignment(text: str) -> tuple[str, Any]:
    from rl_transfer.hyperparams import parse_assignment

    try:
        return parse_assignment(text)
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _collect_assignments(items: list[list[tuple[str, Any]]]) -> dict[str, Any]:
    return {k: v for group in items for k, v in group}


def _file_arg(text: str) -> tuple[str, Path]:
    from rl_transfer.hyperparams import parse_file_arg

    return parse_file_arg(text)


def _collect_files(items: list[tuple[str, Path]]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for algo, path in items:
        if algo in out:
            raise SpecError(
                f"--hyperparams-file given twice for {algo or 'the algorithm'} ({out[algo]}, "
                f"{path}): give one file per algorithm"
            )
        out[algo] = path
    return out


def _pydantic(name: str) -> Callable[[], Any]:
    """A study-file type built on first use (pydantic is imported only to read study files)."""

    def build() -> Any:
        from typing import Literal

        from pydantic import NonNegativeInt, PositiveInt

        return {
            "names": list[str],
            "positive_int": PositiveInt,
            "non_negative_int": NonNegativeInt,
            "seeds": PositiveInt | Literal["auto"],
            "float": float,
            "str": str,
            "path": Path,
            "knobs": dict[str, dict[str, float | str]],
            "hyperparams": dict[str, Any],
            "hyperparams_file": str | dict[str, str],
        }[name]

    return build


@dataclass(frozen=True)
class Kind:
    """How values of one sort are written.

    Attributes:
        parse: command-line text -> value (raises ``argparse.ArgumentTypeError``).
        study_type: returns the pydantic annotation of the value in a study file.
        collect: for a repeatable flag, the list of parsed values -> the field's value.
    """

    parse: Callable[[str], Any]
    study_type: Callable[[], Any]
    collect: Callable[[list[Any]], Any] | None = None
    nargs: str | None = None
    """argparse's ``nargs`` of the flag (``"+"``: several values after one flag, as zoo's
    ``--hyperparams``)."""


NAMES = Kind(_names, _pydantic("names"))
POSITIVE_INT = Kind(_positive_int, _pydantic("positive_int"))
NON_NEGATIVE_INT = Kind(_non_negative_int, _pydantic("non_negative_int"))
SEEDS = Kind(_seeds, _pydantic("seeds"))
FLOAT = Kind(float, _pydantic("float"))
STR = Kind(str, _pydantic("str"))
PATH = Kind(Path, _pydantic("path"))
KNOBS = Kind(_knob, _pydantic("knobs"), collect=_collect_knobs)
HYPERPARAMS = Kind(_assignment, _pydantic("hyperparams"), collect=_collect_assignments, nargs="+")
HYPERPARAMS_FILE = Kind(_file_arg, _pydantic("hyperparams_file"), collect=_collect_files)


@dataclass(frozen=True)
class Option:
    """What the user sees of one :class:`ExperimentSpec` field (its dataclass ``metadata``):
    the ``run`` flag, the study-file key (the field's name) and the keyword of
    ``Experiment(...)`` are all derived from it.

    Attributes:
        help: the flag's help text.
        default: the default as shown in ``--help`` (``(default: ...)``).
        kind: how the value is parsed on the command line and typed in a study file.
        flags: the flag and, after it, former spellings still accepted (hidden from help);
            empty: ``--`` + the field name with dashes.
        metavar: the flag's placeholder in ``--help``.
        choices: the values the flag accepts (None: any).
        study: whether a study file may set it.
        aliases: other names of the study key and keyword (a former name, or the singular
            ``algo``/``pair`` whose value may be one name).
    """

    help: str
    default: str
    kind: Kind
    flags: tuple[str, ...] = ()
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    study: bool = True
    aliases: tuple[str, ...] = ()


def _option(**kwargs: Any) -> dict[str, Option]:
    return {"option": Option(**kwargs)}


@dataclass
class ExperimentSpec:
    """An experiment: every (pair, algo, method, seed), each beside the scratch baseline.

    Every field is declared once, with its flag, study-file key and help text in its
    ``metadata["option"]`` (:class:`Option`; :func:`options` lists them).

    Attributes:
        pairs: env pair names (``rl-transfer pairs`` lists them).
        algos: algorithm names (``ppo``, ``dqn``).
        methods: transfer methods; ``scratch`` is always added as the baseline.
        seeds: number of seeds, or ``"auto"`` (the default): seeds run in rounds (3, then
            about 1.5x more each round, up to ``max_seeds``) and a comparison stops once
            decided or futile
            (sequential testing with alpha spending; docs/metrics.md). Seed i's target runs
            start from source seed i.
        max_seeds: the most seeds ``seeds="auto"`` runs.
        seed_offset: the first seed (seeds are ``seed_offset .. seed_offset + n - 1``).
        source_steps, target_steps, eval_every: env steps; None takes the pair's budget.
        eval_episodes: fixed evaluation episodes per evaluation.
        threshold: time-to-threshold level; None takes the pair's.
        out: experiment folder; None -> ``runs/<name>``.
        source_cache: shared folder of pretrained sources (``runs/sources``).
        scratch_cache: shared folder of finished scratch baselines, keyed by
            :func:`scratch_key`; None -> ``scratch`` beside ``source_cache`` (``runs/scratch``).
        source_model: a source agent trained elsewhere (model.zip) used for every seed, instead of
            pretraining; checked against the pair's source spaces.
        workers: parallel processes; None -> the number of cores.
        backend: ``local`` (process pool) or ``ray``.
        ray_address: address of a running Ray cluster; None starts a local Ray.
        asymptote_window: last k evaluations averaged for asymptotic gain.
        name: experiment name; None -> ``<pair>-<algos>-<hash of what is run>``, so the same
            command finds (and resumes) the same folder.
        knobs: knob values per method name, e.g. ``{"shaping": {"scale": 0.5}}`` (formerly
            ``method_args``, still accepted by :func:`spec_from` and ``Experiment``).
    """

    pairs: list[str] = field(
        default_factory=lambda: [DEFAULT_PAIR],
        metadata=_option(
            help="env pair(s), comma-separated; `rl-transfer pairs` lists them",
            default=DEFAULT_PAIR,
            kind=NAMES,
            flags=("--pair",),
            metavar="NAME[,NAME]",
            aliases=("pair",),
        ),
    )
    algos: list[str] = field(
        default_factory=lambda: ["ppo"],
        metadata=_option(
            help="ppo, a2c, dqn, sac, td3; several comma-separated",
            default="ppo",
            kind=NAMES,
            flags=("--algo",),
            metavar="ALGO[,ALGO]",
            aliases=("algo",),
        ),
    )
    methods: list[str] = field(
        default_factory=lambda: list(DEFAULT_METHODS),
        metadata=_option(
            help="transfer methods, comma-separated; scratch always runs as the baseline",
            default=",".join(DEFAULT_METHODS),
            kind=NAMES,
            metavar="A,B",
        ),
    )
    seeds: int | str = field(
        default="auto",
        metadata=_option(
            help="number of seeds, or auto: rounds of 3, 5, 8, ... seeds until each "
            "comparison is decided or futile, at most --max-seeds",
            default="auto",
            kind=SEEDS,
            metavar="N|auto",
        ),
    )
    max_seeds: int = field(
        default=10,
        metadata=_option(
            help="the most seeds --seeds auto runs; a comparison stops earlier when "
            "decided, or as futile when it would need more than twice this",
            default="10",
            kind=POSITIVE_INT,
            metavar="N",
        ),
    )
    seed_offset: int = field(
        default=0,
        metadata=_option(
            help="first seed: seeds K, K+1, ...",
            default="0",
            kind=NON_NEGATIVE_INT,
            metavar="K",
        ),
    )
    source_steps: int | None = field(
        default=None,
        metadata=_option(
            help="source pretraining env steps",
            default=PAIR_BUDGET,
            kind=POSITIVE_INT,
            metavar="N",
        ),
    )
    target_steps: int | None = field(
        default=None,
        metadata=_option(
            help="target env steps per run",
            default=PAIR_BUDGET,
            kind=POSITIVE_INT,
            metavar="N",
        ),
    )
    eval_every: int | None = field(
        default=None,
        metadata=_option(
            help="target steps between evaluations",
            default=PAIR_BUDGET,
            kind=POSITIVE_INT,
            metavar="N",
        ),
    )
    eval_episodes: int = field(
        default=10,
        metadata=_option(
            help="fixed evaluation episodes per evaluation",
            default="10",
            kind=POSITIVE_INT,
            metavar="N",
        ),
    )
    threshold: float | None = field(
        default=None,
        metadata=_option(
            help="time-to-threshold return level",
            default="the pair's threshold (`rl-transfer pairs` lists them)",
            kind=FLOAT,
            metavar="R",
        ),
    )
    out: Path | None = field(
        default=None,
        metadata=_option(
            help="experiment folder",
            default="runs/<name>",
            kind=PATH,
            metavar="DIR",
            study=False,
        ),
    )
    source_cache: Path = field(
        default=Path("runs/sources"),
        metadata=_option(
            help="shared cache of pretrained sources",
            default="runs/sources",
            kind=PATH,
            metavar="DIR",
            study=False,
        ),
    )
    scratch_cache: Path | None = field(
        default=None,
        metadata=_option(
            help="shared cache of scratch baselines, reused by every experiment with the same "
            "target, algo, hyperparameters, seed, budget and evaluation",
            default="scratch beside the source cache (runs/scratch)",
            kind=PATH,
            metavar="DIR",
            study=False,
        ),
    )
    source_model: Path | None = field(
        default=None,
        metadata=_option(
            help="a trained source agent (for example from rl-baselines3-zoo) used for "
            "every seed instead of pretraining",
            default="none: sources are pretrained",
            kind=PATH,
            metavar="MODEL.zip",
            study=False,
        ),
    )
    workers: int | None = field(
        default=None,
        metadata=_option(
            help="parallel processes",
            default="the number of cores",
            kind=POSITIVE_INT,
            metavar="N",
        ),
    )
    backend: str = field(
        default="local",
        metadata=_option(
            help="local processes or Ray tasks",
            default="local",
            kind=STR,
            choices=BACKENDS,
        ),
    )
    ray_address: str | None = field(
        default=None,
        metadata=_option(
            help="a running Ray cluster",
            default="start a local Ray",
            kind=STR,
            metavar="ADDRESS",
            study=False,
        ),
    )
    asymptote_window: int = field(
        default=5,
        metadata=_option(
            help="last k evaluations averaged for the asymptotic gain",
            default="5",
            kind=POSITIVE_INT,
            metavar="K",
        ),
    )
    name: str | None = field(
        default=None,
        metadata=_option(
            help="experiment name",
            default="<pair>-<algo>-<hash of the spec>",
            kind=STR,
        ),
    )
    knobs: dict[str, dict[str, Any]] = field(
        default_factory=dict,
        metadata=_option(
            help="a method's knob, e.g. shaping.scale=0.5 (repeatable; docs/methods.md "
            "lists the knobs)",
            default="each knob's own default",
            kind=KNOBS,
            flags=("--knob", "--method-arg"),
            metavar="METHOD.KNOB=VALUE",
            aliases=("method_args",),
        ),
    )

    hyperparams: dict[str, Any] = field(
        default_factory=dict,
        metadata=_option(
            help="hyperparameters as rl-baselines3-zoo's train script takes them, KEY:VALUE "
            '(learning_rate:1e-4, learning_rate:lin_1e-3, policy_kwargs:"dict(net_arch=[32, '
            "32])\"); a prefix addresses one run kind: source., target. or a method's name "
            "(finetune.learning_rate:1e-4), an algorithm's name one algorithm",
            default="agents/hyperparams/<algo>.yml, the target family's entry",
            kind=HYPERPARAMS,
            metavar="KEY:VALUE",
        ),
    )
    hyperparams_file: dict[str, Path] = field(
        default_factory=dict,
        metadata=_option(
            help="a hyperparameters yml in rl-baselines3-zoo's layout (env id or family name "
            "-> entry), replacing the package's entries; ALGO= names its algorithm when the "
            "experiment has several (repeatable)",
            default="none",
            kind=HYPERPARAMS_FILE,
            metavar="[ALGO=]FILE",
        ),
    )

    @property
    def method_args(self) -> dict[str, dict[str, Any]]:
        """Former name of :attr:`knobs`."""
        return self.knobs

    given_as: ClassVar[dict[str, str]] = {}
    """Fields given under an alias (field -> alias), set by :func:`spec_from` on the instance:
    messages then name the flag spelled that way (``--method-arg`` for ``method_args``)."""

    def flag(self, name: str) -> str:
        """The command-line flag of field ``name``, as the user spelled it."""
        option = options()[name]
        flags = option.flags or ("--" + name.replace("_", "-"),)
        alias = self.given_as.get(name)
        if alias in option.aliases and option.aliases.index(alias) + 1 < len(flags):
            return flags[option.aliases.index(alias) + 1]
        return flags[0]

    def validate(self) -> None:
        """Check every field; raise :class:`SpecError` (or an envs / agents error) naming the bad
        value. Nothing is written.

        Raises:
            SpecError: a bad value (the flag to change is named).
            UnknownPairError, UnknownAlgoError: an unknown name; the closest ones suggested.
        """
        from agents import ADAPTERS, get_adapter
        from envs import get_pair
        from rl_transfer.methods import get_method

        if self.name is not None:
            from rl_transfer.names import check_name

            check_name("experiment", self.name, SpecError)
        if not self.pairs:
            raise SpecError("no pair given; `rl-transfer pairs` lists them")
        for p in self.pairs:
            get_pair(p)
        if not self.algos:
            raise SpecError("no algo given; for example --algo ppo")
        action_spaces = {}
        for p in self.pair_objects():
            env = p.make_source()  # source and target act alike (after the pair's mappings)
            action_spaces[p.name] = env.action_space
            env.close()
        for a in self.algos:
            adapter = get_adapter(a)
            for p in self.pair_objects():
                adapter.check_action_space(action_spaces[p.name], f"pair {p.name!r}")
        if not self.methods:
            raise SpecError("no method given; for example --methods policy,value")
        for m in self.methods:
            get_method(m)
        self._check_knobs()
        for algo in self.algos:
            adapter = get_adapter(algo)
            for m in self.methods:
                missing = get_method(m).missing(adapter)
                if missing:
                    able = [a for a, cls in ADAPTERS.items() if not get_method(m).missing(cls)]
                    raise SpecError(
                        f"method {m!r} is not supported by {algo}: it needs "
                        f"{', '.join(missing)}; algorithms that support it: {', '.join(able)}"
                    )
        if self.seeds == "auto":
            if not [m for m in self.methods if m != "scratch"]:
                raise SpecError(
                    "seeds 'auto' decides transfer-vs-scratch comparisons and there is none "
                    "(only scratch): give a number of seeds, e.g. --seeds 10"
                )
            if self.max_seeds < MIN_SEEDS:
                raise SpecError(
                    f"{self.flag('max_seeds')} must be at least {MIN_SEEDS} with seeds 'auto', "
                    f"got {self.max_seeds}"
                )
        elif isinstance(self.seeds, str):
            raise SpecError(f"seeds must be a positive integer or 'auto', got {self.seeds!r}")
        if (
            isinstance(self.seed_offset, bool)
            or not isinstance(self.seed_offset, int)
            or (self.seed_offset < 0)
        ):
            raise SpecError(f"seed_offset must be an integer >= 0, got {self.seed_offset!r}")
        for label, value in (
            ("seeds", None if self.seeds == "auto" else self.seeds),
            ("max_seeds", self.max_seeds),
            ("source_steps", self.source_steps),
            ("target_steps", self.target_steps),
            ("eval_every", self.eval_every),
            ("eval_episodes", self.eval_episodes),
            ("workers", self.workers),
            ("asymptote_window", self.asymptote_window),
        ):
            if value is not None and (isinstance(value, bool) or int(value) != value or value <= 0):
                raise SpecError(f"{label} must be a positive integer, got {value!r}")
        if self.backend not in BACKENDS:
            raise SpecError(f"unknown backend {self.backend!r}; valid backends: local, ray")
        for pair in self.pair_objects():
            for algo in self.algos:
                self._check_eval_interval(pair, algo)
            if self.threshold is not None and not pair.r_min <= self.threshold <= pair.r_max:
                why = (
                    "no policy can reach it"
                    if self.threshold > pair.r_max
                    else "the random policy already does better on average"
                )
                raise SpecError(
                    f"--threshold {self.threshold:g} lies outside [R_min {pair.r_min:g}, R_max "
                    f"{pair.r_max:g}] of pair {pair.name!r}: {why}; give a level inside it"
                )
        if self.source_model is not None:
            self._check_source_model()
        self._check_hyperparams()
        from rl_transfer.normalization import check_spec as check_statistics

        check_statistics(self, lambda p, a, kind: self.hyperparams_in_force(p, a)[kind])
        _check_writable(self.output_dir(), "--out")
        _check_writable(Path(self.source_cache), "--source-cache")
        _check_writable(self.scratch_dir(), "--scratch-cache")
        self.check_resumable()

    def _check_eval_interval(self, pair: EnvPair, algo: str) -> None:
        """Raise SpecError when the evaluation interval in force exceeds the target budget in
        force (either may come from the pair's budget rather than a flag)."""
        b = self.budget(pair, algo)
        every, steps = b["eval_every"], b["target_steps"]
        if every <= steps:
            return
        where = f"{pair.name}/{algo}"
        every_from = (
            f"--eval-every {every}"
            if self.eval_every is not None
            else f"the evaluation interval of {where}'s budget ({every} steps)"
        )
        steps_from = (
            f"--target-steps {steps}"
            if self.target_steps is not None
            else f"the target steps of {where}'s budget ({steps})"
        )
        raise SpecError(
            f"{every_from} is larger than {steps_from}: no evaluation after t = 0; "
            f"pass --eval-every {steps} or less, or raise --target-steps to {every} or more"
        )

    def _check_knobs(self) -> None:
        from rl_transfer.methods import get_method

        used = {c for m in self.methods for c in m.split("+")}
        for name, knobs in self.knobs.items():
            if name not in used:
                raise SpecError(
                    f"{self.flag('knobs')} for {name!r}, which is not among the methods "
                    f"({', '.join(self.methods)})"
                )
            get_method(name).settings(knobs)

    def _check_source_model(self) -> None:
        from rl_transfer.normalization import check_imported

        path = Path(self.source_model)  # type: ignore[arg-type]
        if not path.is_file():
            raise SpecError(f"--source-model {path} does not exist")
        from agents import sb3

        try:
            saved = sb3.saved_algorithm(sb3.saved_data(path))
        except Exception as exc:  # noqa: BLE001  (not a zip, no data, not JSON)
            raise SpecError(
                f"--source-model {path} is not a stable-baselines3 model zip ({exc})"
            ) from None
        for algo in self.algos:
            if saved is not None and saved != algo:
                raise SpecError(
                    f"--source-model {path} is {'an' if saved == 'a2c' else 'a'} "
                    f"{saved.upper()} model and the experiment runs "
                    f"{algo}: run it with --algo {saved}"
                )
            try:
                model = self._imported_model(algo)
            except Exception as exc:  # noqa: BLE001  (SB3 raises many types on a foreign zip)
                raise SpecError(
                    f"--source-model {path} cannot be loaded as a {algo} model "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                ) from None
            for pair in self.pair_objects():
                env = pair.make_source()
                try:
                    for what in ("observation_space", "action_space"):
                        a, b = getattr(model, what), getattr(env, what)
                        if a != b:
                            raise SpecError(
                                f"--source-model {path}: its {what.replace('_', ' ')} {a} differs "
                                f"from the source task of {pair.name!r} ({b})"
                            )
                    check_imported(path, model, env.observation_space)  # VecNormalize statistics
                finally:
                    env.close()

    def check_resumable(self) -> bool:
        """True when ``out`` already holds this same experiment (it will be resumed).

        Raises:
            SpecError: ``out`` holds a different experiment, or files that are not one.
        """
        out = self.output_dir()
        if not out.exists() or not [p for p in out.iterdir() if p.name != ".lock"]:
            return False
        old_path = out / "experiment.yaml"
        if not old_path.is_file():
            raise SpecError(
                f"--out {out} already holds files that are not an experiment; choose a new folder"
            )
        from rl_transfer.records import ExperimentRecord

        old = dict(ExperimentRecord.read(old_path).identity or {})
        if "method_args" in old and "knobs" not in old:  # written before knobs had this name
            old["knobs"] = old.pop("method_args")
        if not self._needs_source():  # scratch only: written before source steps were left out
            for pair in (old.get("pairs") or {}).values():
                for budget in (pair.get("budgets") or {}).values():
                    budget.pop("source_steps", None)
        new = self.identity()
        if old != new:
            diff = ", ".join(_differences(old, new)[:4])
            raise SpecError(
                f"--out {out} already holds results of a different experiment (differs in: "
                f"{diff}); choose a new folder, or run the same spec to resume it"
            )
        return True

    def pair_objects(self) -> list[EnvPair]:
        """The registered pairs named by :attr:`pairs`.

        Raises:
            UnknownPairError: a name that is not registered.
        """
        from envs import get_pair

        return [get_pair(p) for p in self.pairs]

    @property
    def adaptive(self) -> bool:
        """True with ``seeds="auto"``."""
        return self.seeds == "auto"

    def seed_list(self) -> list[int]:
        """Every seed the experiment may run (with ``auto``: up to ``max_seeds``)."""
        n = self.max_seeds if self.adaptive else int(self.seeds)
        return list(range(self.seed_offset, self.seed_offset + n))

    def all_methods(self) -> list[str]:
        return ["scratch"] + [m for m in self.methods if m != "scratch"]

    def budget(self, pair: EnvPair, algo: str) -> dict[str, int]:
        """Source steps, target steps and evaluation interval in force for (pair, algo)."""
        b = pair.budget(algo)
        base = (
            {
                "source_steps": b.source_steps,
                "target_steps": b.target_steps,
                "eval_every": b.eval_every,
            }
            if b
            else {"source_steps": 50_000, "target_steps": 50_000, "eval_every": 2_000}
        )
        for key in base:
            if getattr(self, key) is not None:
                base[key] = int(getattr(self, key))
        return base

    # -- hyperparameters ---------------------------------------------------------------------
    def hyperparam_overrides(self) -> dict[str, Any]:
        """The user's overrides, flat: ``{"[ALGO.][ARM.]KEY": value}`` (the study key's
        per-algorithm form flattened, zoo's string forms parsed).

        Raises:
            SpecError: a value that cannot be parsed (:func:`rl_transfer.hyperparams.parse_value`).
        """
        from rl_transfer.hyperparams import flatten_study, parse_value

        flat = flatten_study(self.hyperparams or {}, self.algos)
        return {k: parse_value(v, k) if isinstance(v, str) else v for k, v in flat.items()}

    def hyperparams_files(self) -> dict[str, Path]:
        """``--hyperparams-file`` by algorithm name.

        Raises:
            SpecError: a file given without ``ALGO=`` while the experiment has several
                algorithms, or for an algorithm it does not run.
        """
        given = self.hyperparams_file or {}
        if isinstance(given, str | Path):
            given = {"": Path(given)}
        out: dict[str, Path] = {}
        for algo, path in given.items():
            if not algo:
                if len(self.algos) != 1:
                    raise SpecError(
                        f"--hyperparams-file {path}: the experiment runs {', '.join(self.algos)}; "
                        f"say which algorithm it is for, e.g. --hyperparams-file "
                        f"{self.algos[0]}={path}"
                    )
                algo = self.algos[0]
            if algo not in self.algos:
                raise SpecError(
                    f"--hyperparams-file {algo}={path}: {algo} is not among the algorithms "
                    f"({', '.join(self.algos)})"
                )
            out[algo] = Path(path)
        return out

    def base_hyperparams(self, pair: EnvPair, algo: str) -> tuple[dict[str, Any], str | None]:
        """``(entry, origin)``: the algorithm's hyperparameters for the pair's target family
        before any ``--hyperparams`` override -- the user's zoo-layout file's entry when one is
        given for ``algo`` (``origin`` names the file), else the package's
        (``agents/hyperparams/<algo>.yml``; ``origin`` None). Source and target share it, so
        that their networks have the same architecture.

        Raises:
            SpecError: the user's file has no entry for the family (its keys listed).
        """
        from agents import get_adapter
        from rl_transfer.hyperparams import load_zoo_file, zoo_entry

        path = self.hyperparams_files().get(algo)
        if path is None:
            return get_adapter(algo).hyperparams(pair.target.family), None
        family = pair.target.env_family
        entry = zoo_entry(load_zoo_file(path), family)
        if entry is None:
            from rl_transfer.hyperparams import zoo_keys

            raise SpecError(
                f"hyperparameters file {path} has no entry for the target of {pair.name!r} "
                f"(family {family.name!r}): add one under "
                f"{' or '.join(repr(k) for k in zoo_keys(family)[:2])} "
                f"(its keys: {', '.join(load_zoo_file(path)) or 'none'})"
            )
        return entry, f"hyperparameters file {path}"

    def hyperparams_in_force(self, pair: EnvPair, algo: str) -> dict[str, dict[str, Any]]:
        """The hyperparameters each run kind of (pair, algo) is built with: ``"source"`` and
        every method of :meth:`all_methods` (``"scratch"`` first) -> entry (canonical form:
        :func:`rl_transfer.hyperparams.canonical`). With ``source_model``, every arm takes the
        model's architecture (:meth:`_adopt_model_architecture`).

        Raises:
            SpecError: a bad prefix or value, or an imported model's architecture that an
                override contradicts.
        """
        return {arm: hp for arm, (hp, _) in self._hyperparams_with_origin(pair, algo).items()}

    def hyperparams_origin(self, pair: EnvPair, algo: str, arm: str) -> dict[str, str]:
        """Where each value of ``arm``'s hyperparameters that is not the package's came from
        (key -> ``--hyperparams finetune.learning_rate``, ``hyperparameters file F``, ``source
        model M``)."""
        return self._hyperparams_with_origin(pair, algo)[arm][1]

    def _hyperparams_with_origin(
        self, pair: EnvPair, algo: str
    ) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
        from agents import get_adapter
        from rl_transfer.hyperparams import arm_hyperparams

        cache = self.__dict__.setdefault("_hp_cache", {})
        key = (pair.name, algo)
        if key in cache:
            return cache[key]
        base, origin = self.base_hyperparams(pair, algo)
        overrides = self.hyperparam_overrides()
        out = {}
        kinds = self.run_kinds()
        for arm in ["source", *self.all_methods()]:
            hp, given = arm_hyperparams(base, overrides, algo, arm, self.algos, kinds)
            study = self.__dict__.get("_hp_study", {})
            where = {k: study.get(v, f"--hyperparams {v}") for k, v in given.items()}
            if origin is not None:
                where = {**{k: origin for k in base}, **where}
            out[arm] = (hp, where)
        if self.source_model is not None:
            out = self._adopt_model_architecture(pair, algo, out)
            model = self._imported_model(algo)
            path = Path(self.source_model)  # type: ignore[arg-type]
            saved = get_adapter(algo).saved_hyperparams(
                model, get_adapter(algo).replaced_objects(path)
            )
            out["source"] = (saved, {k: f"source model {path}" for k in saved})
        cache[key] = out
        return out

    def run_kinds(self) -> list[str]:
        """The run kinds a hyperparameter prefix may address: ``source`` when a source is
        pretrained (some method needs one and no ``source_model`` is given), ``target``, and
        every method (``scratch`` first)."""
        pretrained = self.source_model is None and self._needs_source()
        return (["source"] if pretrained else []) + ["target", *self.all_methods()]

    def _adopt_model_architecture(
        self,
        pair: EnvPair,
        algo: str,
        arms: dict[str, tuple[dict[str, Any], dict[str, str]]],
    ) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
        """Every target arm takes the imported model's architecture (``policy_kwargs``' net_arch,
        activation_fn, log_std_init, ortho_init, ... and ``use_sde``), read from the zip; a value
        the user set explicitly that contradicts it is refused, naming the key and both values.

        Raises:
            SpecError: see above.
        """
        from agents import get_adapter
        from agents.normalize import vecnormalize_kwargs
        from rl_transfer.hyperparams import from_sb3
        from rl_transfer.normalization import load_statistics, paired_statistics

        adapter = get_adapter(algo)
        model = self._imported_model(algo)
        wanted = _architecture(model)
        path = self.source_model
        paired = paired_statistics(Path(path))  # type: ignore[arg-type]
        normalize = None
        if paired is not None:
            try:
                stats = load_statistics(paired)
            except TransferError as exc:
                raise SpecError(str(exc)) from None
            normalize = {"norm_obs": stats.norm_obs, "norm_reward": stats.norm_reward}
        out = dict(arms)
        for arm, (hp, where) in arms.items():
            if arm == "source":
                continue
            label = f"the {arm} arm of {pair.name}/{algo}"
            if normalize and "normalize" not in where and not vecnormalize_kwargs(hp):
                # weights that expect normalized observations get them in every arm
                hp = {**hp, "normalize": normalize}
                where = {**where, "normalize": f"source model statistics {paired}"}
            have = _architecture(self._built(adapter, pair, hp, label))
            hp, where = dict(hp), dict(where)
            for key, value in wanted.items():
                if have.get(key) == value:
                    continue
                if key == "use_sde":
                    spelled = where.get("use_sde")
                elif key in (hp.get("policy_kwargs") or {}):
                    spelled = where.get("policy_kwargs")
                else:
                    spelled = None
                if spelled is not None:
                    raise SpecError(
                        f"--source-model {path} was built with {key} {value!r} and the {arm} "
                        f"arm's hyperparameters set {have.get(key)!r} ({spelled}): every arm "
                        "is built with the model's architecture; drop the override, or import "
                        "a model built with it"
                    )
                if key == "use_sde":
                    hp["use_sde"] = value
                else:
                    hp["policy_kwargs"] = {**hp.get("policy_kwargs", {}), key: from_sb3(value)}
                where[key] = f"source model {path}"
            check = _architecture(self._built(adapter, pair, hp, label))
            left = {k: (check.get(k), v) for k, v in wanted.items() if check.get(k) != v}
            if left:
                key, (a, b) = next(iter(left.items()))
                raise SpecError(
                    f"--source-model {path}: the {arm} arm cannot be built with the model's "
                    f"{key} ({b!r}; built: {a!r})"
                )
            out[arm] = (hp, where)
        return out

    def _built(
        self, adapter: Any, pair: EnvPair, hp: dict[str, Any], where: str, source: bool = False
    ) -> Any:
        """:func:`_build`, once per distinct (pair, algorithm, task, hyperparameters): arms
        with equal hyperparameters share one model (validation builds, never trains)."""
        cache = self.__dict__.setdefault("_built_cache", {})
        key = json.dumps([pair.name, adapter.algo, source, hp], sort_keys=True, default=str)
        if key not in cache:
            cache[key] = _build(adapter, pair, hp, where, source=source)
        return cache[key]

    def _imported_model(self, algo: str) -> Any:
        cache = self.__dict__.setdefault("_imported_cache", {})
        if algo not in cache:
            from agents import get_adapter

            cache[algo] = get_adapter(algo).load(Path(self.source_model))  # type: ignore[arg-type]
        return cache[algo]

    def _check_hyperparams(self) -> None:
        """Every run kind's hyperparameters: keys the algorithm takes, and -- when the user
        gave any -- values stable-baselines3 accepts (each distinct entry is built once on its
        task) and a source whose architecture matches each weight-transfer arm's.

        Raises:
            SpecError: an unknown key (the valid ones listed), a prefix that addresses no run,
                a value SB3 refuses, or architectures that differ.
        """
        from agents import get_adapter
        from rl_transfer.hyperparams import check_entry
        from rl_transfer.methods import get_method

        user = bool(self.hyperparam_overrides() or self.hyperparams_files())
        for pair in self.pair_objects():
            for algo in self.algos:
                adapter = get_adapter(algo)
                _, origin = self.base_hyperparams(pair, algo)
                in_force = self.hyperparams_in_force(pair, algo)
                if self.source_model is not None:  # the imported model's own, as saved
                    in_force = {k: v for k, v in in_force.items() if k != "source"}
                for arm, hp in in_force.items():
                    where = f"{algo} hyperparameters of the {arm} run on {pair.name}"
                    check_entry(adapter, hp, where, file=origin is not None)
                    adapter.check_hyperparams(hp)
                if not user:
                    continue
                models = {
                    arm: self._built(
                        adapter,
                        pair,
                        hp,
                        f"the {algo} hyperparameters of the {arm} run on {pair.name}",
                        source=arm == "source",
                    )
                    for arm, hp in in_force.items()
                }
                arch = {arm: _architecture(model) for arm, model in models.items()}
                if self.source_model is not None:
                    continue
                for m in self.methods:
                    method = get_method(m)
                    if method.needs_source and models[m] is not models["source"]:
                        problem = method.models_problem(
                            models["source"], models[m], method.settings_from(self.knobs)
                        )
                        if problem:
                            raise SpecError(f"{pair.name}/{algo}: {problem}")
                    if not method.parts:
                        continue
                    for key, value in arch["source"].items():
                        if value != arch[m].get(key):
                            raise SpecError(
                                f"{pair.name}/{algo}: the source is built with {key} {value!r} "
                                f"and the {m} arm with {arch[m].get(key)!r}: a weight transfer "
                                f"needs the same architecture; give the override to both (no "
                                f"source. or {m}. prefix)"
                            )

    def identity(self) -> dict[str, Any]:
        """What determines the results: two specs with equal identity run the same runs."""
        return {
            "pairs": {
                p.name: {
                    **p.to_dict(),
                    "budgets": {a: self._budget_identity(p, a) for a in self.algos},
                }
                for p in self.pair_objects()
            },
            "algos": list(self.algos),
            "methods": self.all_methods(),
            "seeds": (
                {"auto": True, "max_seeds": self.max_seeds, "first": self.seed_offset}
                if self.adaptive
                else self.seed_list()
            ),
            "eval_episodes": self.eval_episodes,
            "threshold": self.threshold,
            "asymptote_window": self.asymptote_window,
            "hyperparams": {
                a: {p.name: self.base_hyperparams(p, a)[0] for p in self.pair_objects()}
                for a in self.algos
            },
            "source_model": _model_digest(self.source_model) if self.source_model else None,
            "knobs": {k: dict(v) for k, v in sorted(self.knobs.items())},
            # only when overrides are given (so that folders named before they existed keep
            # their name), as the values in force: one experiment spelled two ways is one
            **(
                {
                    "hyperparams_in_force": {
                        a: {p.name: self.hyperparams_in_force(p, a) for p in self.pair_objects()}
                        for a in self.algos
                    }
                }
                if self.hyperparam_overrides()
                else {}
            ),
        }

    def _needs_source(self) -> bool:
        from rl_transfer.methods import get_method

        return any(get_method(m).needs_source for m in self.all_methods())

    def _budget_identity(self, pair: EnvPair, algo: str) -> dict[str, int]:
        """The budget in force as far as it determines the results: without a method that
        uses a source (scratch only) no source is trained, so its steps are left out (a changed
        source budget of the pair does not make the experiment another one)."""
        budget = self.budget(pair, algo)
        if not self._needs_source():
            budget.pop("source_steps")
        return budget

    def experiment_name(self) -> str:
        if self.name is None:
            identity = self.identity()
            # hashed under the key's former name, so that the same command keeps finding the
            # folder it named before the rename
            identity["method_args"] = identity.pop("knobs")
            blob = json.dumps(identity, sort_keys=True, default=str).encode()
            digest = hashlib.sha256(blob).hexdigest()[:8]
            self.name = f"{self.pairs[0]}-{'-'.join(self.algos)}-{digest}"
        return self.name

    def output_dir(self) -> Path:
        return Path(self.out) if self.out is not None else Path("runs") / self.experiment_name()

    def scratch_dir(self) -> Path:
        """The scratch cache: :attr:`scratch_cache`, else ``scratch`` beside the source cache."""
        if self.scratch_cache is not None:
            return Path(self.scratch_cache)
        return Path(self.source_cache).parent / "scratch"

    def resolved(self) -> dict[str, Any]:
        """The resolved spec as written to experiment.yaml."""
        from rl_transfer.versions import package_versions

        identity = self.identity()
        return {
            "name": self.experiment_name(),
            "algos": identity["algos"],
            "methods": identity["methods"],
            "seeds": identity["seeds"],
            "eval_episodes": self.eval_episodes,
            "threshold": self.threshold,
            "asymptote_window": self.asymptote_window,
            "source_cache": str(Path(self.source_cache).resolve()),
            "scratch_cache": str(self.scratch_dir().resolve()),
            "source_model": str(self.source_model) if self.source_model else None,
            "backend": self.backend,
            "pairs": identity["pairs"],
            "hyperparams_in_force": {
                a: {p.name: self.hyperparams_in_force(p, a) for p in self.pair_objects()}
                for a in self.algos
            },
            "versions": package_versions(),
            "git_commit": _git_commit(),
            "identity": identity,
        }


# ----------------------------------------------------------------------------------------------
# Study files


def options() -> dict[str, Option]:
    """Every field of :class:`ExperimentSpec` with its :class:`Option`, in declaration order."""
    return {f.name: f.metadata["option"] for f in fields(ExperimentSpec)}


STUDY_KEYS: tuple[str, ...] = tuple(k for k, o in options().items() if o.study)
"""The keys a study file may set (the names of the fields it may set)."""

STUDY_EXPERIMENTS = "experiments"
"""The study-file key that lists several experiments (each a mapping of study keys)."""

ALIASES: dict[str, str] = {a: k for k, o in options().items() for a in o.aliases}
"""Other names of study keys and keywords -> the field's name (``algo`` -> ``algos``,
``method_args`` -> ``knobs``)."""


def _canonical(given: dict[str, Any], where: str) -> dict[str, Any]:
    """``given`` with aliases replaced by the field's name; a list field given one name (or a
    tuple) gets a list.

    Raises:
        SpecError: a key given under two names.
    """
    out = dict(given)
    for alias, key in ALIASES.items():
        if alias not in out:
            continue
        if key in out:
            raise SpecError(f"{where}: {alias!r} and {key!r} are the same setting; give one")
        out[key] = out.pop(alias)
    for key, value in out.items():
        if key in options() and options()[key].kind is NAMES and isinstance(value, str | tuple):
            out[key] = [value] if isinstance(value, str) else list(value)
    return out


def _study_model() -> Any:
    """The pydantic model of a study file, derived from the fields' :class:`Option` (built on
    first use: pydantic is imported only for study files)."""
    from pydantic import ConfigDict, create_model

    return create_model(  # type: ignore[call-overload]
        "StudyFile",
        __config__=ConfigDict(extra="forbid"),
        **{
            name: (option.kind.study_type() | None, None)
            for name, option in options().items()
            if option.study
        },
    )


def _read_study(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """A study file's top-level keys and its ``experiments`` list (None when it has none)."""
    from rl_transfer.errors import read_yaml

    data = read_yaml(path, "study", SpecError)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"study file {path} must be a mapping of keys to values")
    data = dict(data)
    if STUDY_EXPERIMENTS not in data:
        return data, None
    entries = data.pop(STUDY_EXPERIMENTS)
    if (
        not isinstance(entries, list)
        or not entries
        or not all(isinstance(e, dict) and e for e in entries)
    ):
        raise SpecError(
            f"study file {path}: {STUDY_EXPERIMENTS}: expected a non-empty list of mappings of "
            f"keys to values, one per experiment (got {entries!r})"
        )
    return data, entries


def study_size(path: Path) -> int:
    """How many experiments a study file holds: the length of its ``experiments`` list, or 0
    for a file of one experiment (keys at the top level only).

    Raises:
        SpecError: unreadable file, invalid YAML, or an ``experiments`` value that is not a
            non-empty list of mappings.
    """
    return len(_read_study(path)[1] or [])


MERGED_KEYS = ("hyperparams", "knobs", "hyperparams_file")
"""Study keys whose value is a mapping: an experiment's entry is merged into the top level's key
by key (one level deep: ``{ppo: {learning_rate: ...}}`` and ``{ppo: {n_epochs: ...}}`` give
both), as a ``--hyperparams`` flag is merged into a study's; the entry wins where both set one."""


def _merge_entry(top: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """An experiment's keys over the study's top-level keys (:data:`MERGED_KEYS` merged)."""
    out = {**top, **entry}
    for key in MERGED_KEYS:
        a, b = top.get(key), entry.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            merged = dict(a)
            for k, v in b.items():
                old = merged.get(k)
                merged[k] = {**old, **v} if isinstance(old, dict) and isinstance(v, dict) else v
            out[key] = merged
    return out


def load_study(path: Path, entry: int | None = None) -> dict[str, Any]:
    """Read and validate a study file; return the spec keyword arguments it sets.

    A study file of several experiments lists them under ``experiments``; the keys at its top
    level apply to each, and an experiment's own keys replace them (``hyperparams``, ``knobs``
    and ``hyperparams_file`` are merged key by key: :data:`MERGED_KEYS`). ``entry`` picks one
    (from 0).

    Raises:
        SpecError: unreadable file, invalid YAML (``file:line:column: problem``), an unknown
            key (closest valid key suggested) or a value of the wrong type, in one line naming
            the file (and experiment) and the key; ``entry`` missing for a file of several
            experiments, given for a file of one, or out of range.
    """
    data, entries = _read_study(path)
    where = f"study file {path}"
    if entries is None:
        if entry is not None:
            raise SpecError(f"{where} holds one experiment (no {STUDY_EXPERIMENTS!r} list)")
        data = _canonical(data, where)
    else:
        if entry is None or not 0 <= entry < len(entries):
            raise SpecError(
                f"{where} holds {len(entries)} experiments: pick one with entry=0.."
                f"{len(entries) - 1}, or run them all with `rl-transfer run {path}`"
            )
        top = _canonical(data, where)
        _parse_study(top, where)  # a bad top-level key is named there, not in an experiment
        where = f"{where}: {STUDY_EXPERIMENTS}[{entry}]"
        data = _merge_entry(top, _canonical(entries[entry], where))
    out = _parse_study(data, where)
    files = out.get("hyperparams_file")
    if files is not None:  # a path in a study file is relative to the study file
        base = Path(path).parent
        if isinstance(files, dict):
            out["hyperparams_file"] = {a: base / Path(f) for a, f in files.items()}
        else:
            out["hyperparams_file"] = {"": base / Path(files)}
    return out


def _parse_study(data: dict[str, Any], where: str) -> dict[str, Any]:
    """A study file's keys (aliases already replaced) checked against the study model; the
    keys given, with values of the fields' types.

    Raises:
        SpecError: an unknown key or a value of the wrong type, in one line starting with
            ``where``.
    """
    from pydantic import ValidationError

    try:
        parsed = _study_model()(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(key, STUDY_KEYS, n=1, cutoff=0.5)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else f"; valid keys: {', '.join(STUDY_KEYS)}"
            )
            raise SpecError(f"{where}: unknown key {key!r}{hint}") from None
        if err["loc"][0] == "hyperparams_file":
            raise SpecError(
                f"{where}: hyperparams_file: expected a file path or "
                f"{{algo: path}} (got {data.get('hyperparams_file')!r})"
            ) from None
        if err["loc"][0] == "hyperparams":
            raise SpecError(
                f"{where}: hyperparams: expected {{algo: {{key: value}}}} or "
                f"{{key: value}} (got {data.get('hyperparams')!r})"
            ) from None
        if err["loc"][0] == "seeds":
            raise SpecError(
                f"{where}: seeds: expected a positive integer or 'auto' (got {data.get('seeds')!r})"
            ) from None
        raise SpecError(f"{where}: {key}: {err['msg']} (got {err.get('input')!r})") from None
    return {k: v for k, v in parsed.model_dump().items() if v is not None}


def spec_from(
    study: Path | None = None, entry: int | None = None, **overrides: Any
) -> ExperimentSpec:
    """Build a spec from an optional study file (``entry``: which of its experiments, when it
    lists several) and keyword overrides (None = not given).

    The keywords are :class:`ExperimentSpec`'s fields; ``algo``/``pair`` are accepted for
    ``algos``/``pairs`` (one name or a list), ``method_args`` for ``knobs``.

    Raises:
        SpecError: an unknown keyword argument, or one given under two names.
    """
    kwargs = load_study(study, entry) if study is not None else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    given_as = {ALIASES[k]: k for k in given if k in ALIASES}
    overrides = _canonical(given, "experiment arguments")
    known = set(options())
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise SpecError(f"unknown experiment argument(s) {unknown}; valid: {sorted(known)}")
    from_study = kwargs.get("hyperparams") or {}
    if from_study:  # merged key by key with the flag's: the flag wins where both set one
        from rl_transfer.hyperparams import flatten_study

        algos = overrides.get("algos") or kwargs.get("algos") or ["ppo"]
        from_study = flatten_study(from_study, algos)
        overrides["hyperparams"] = {
            **from_study,
            **flatten_study(overrides.get("hyperparams") or {}, algos),
        }
    kwargs.update(overrides)
    for key in ("out", "source_cache", "scratch_cache", "source_model"):
        if kwargs.get(key) is not None:
            kwargs[key] = Path(kwargs[key])
    spec = ExperimentSpec(**kwargs)
    if given_as:
        spec.given_as = given_as
    flag_keys = set(given.get("hyperparams") or {})
    spec.__dict__["_hp_study"] = {
        k: f"study file {study}: hyperparams {k}" for k in from_study if k not in flag_keys
    }
    return spec


# ----------------------------------------------------------------------------------------------


def _differences(old: Any, new: Any, at: str = "") -> list[str]:
    """Where two identities differ, as dotted paths to the innermost values, with both values
    (``pairs.cartpole-long-pole.budgets.ppo.target_steps: 50000 -> 1000``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(key), new.get(key), f"{at}.{key}" if at else str(key))
        return out
    if old == new:
        return []
    return [f"{at}: {old!r} -> {new!r}"]


def _build(
    adapter: Any, pair: EnvPair, hp: dict[str, Any], where: str, source: bool = False
) -> Any:
    """A model of ``hp`` on the pair's target (or source) task, to see what SB3 makes of it.

    Raises:
        SpecError: stable-baselines3 refuses the hyperparameters (its message, first line).
    """
    import warnings

    env_fn = pair.make_source if source else pair.make_target
    try:
        with warnings.catch_warnings():  # SB3's advice on batch sizes is the runs' to give
            warnings.simplefilter("ignore")
            model = adapter.make_model(env_fn, hp, seed=0)
    except SpecError:
        raise
    except Exception as exc:  # noqa: BLE001  (SB3 and torch raise many types on bad values)
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise SpecError(
            f"{where}: stable-baselines3 refuses them ({type(exc).__name__}: {first})"
        ) from None
    model.get_env().close()
    return model


def _architecture(model: Any) -> dict[str, Any]:
    """What decides the shape and function of ``model``'s networks (the keys of
    :data:`rl_transfer.hyperparams.ARCHITECTURE` the policy was built with), recorded form."""
    from agents import sb3
    from rl_transfer.hyperparams import ARCHITECTURE, from_sb3

    params = sb3.constructor_parameters(model.policy)
    out = {k: from_sb3(params[k]) for k in ARCHITECTURE if k in params}
    if hasattr(model, "use_sde"):
        out["use_sde"] = bool(model.use_sde)
    return out


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


def _model_digest(path: Path) -> str:
    """An imported model's digest: its zip's, and the statistics file its layout pairs with it
    (a changed ``vecnormalize.pkl`` is another source)."""
    from rl_transfer.normalization import paired_statistics

    paired = paired_statistics(Path(path))
    if paired is None:
        return _file_digest(path)
    return f"{_file_digest(path)}+{_file_digest(paired)}"


def _file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


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
    pair: EnvPair,
    algo: str,
    hyperparams: dict[str, Any],
    seed: int,
    steps: int,
    eval_episodes: int,
    source_model: Path | None = None,
    eval_every: int | None = None,
) -> str:
    """Content hash of a source run: source variant (with its own horizon, if any), algo,
    hyperparameters, seed, steps, the checkpoint interval and the package versions -- or, for an
    imported model, the model file's digest (first 16 hex digits of SHA-256)."""
    from rl_transfer.versions import package_versions

    payload: dict[str, Any] = {
        "source": pair.source.to_dict(),  # family, params (+ max_episode_steps when set)
        "algo": algo,
        "eval_episodes": eval_episodes,
        # 2: off-policy sources keep their replay buffer; 3: checkpoints for total-time
        "format": 3,
    }
    if source_model is not None:
        payload["imported_model"] = _file_digest(source_model)
        from rl_transfer.normalization import paired_statistics

        statistics = paired_statistics(source_model)  # the VecNormalize file zoo pairs with it
        if statistics is not None:
            payload["imported_statistics"] = _file_digest(statistics)
    else:
        payload.update(
            {
                "hyperparams": hyperparams,
                "seed": seed,
                "steps": steps,
                "checkpoint_every": eval_every,
                "versions": {k: v for k, v in package_versions().items() if k != "rl-transfer"},
            }
        )
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def scratch_key(
    pair: EnvPair,
    algo: str,
    hyperparams: Mapping[str, Any],
    seed: int,
    target_steps: int,
    eval_every: int,
    eval_episodes: int,
    knobs: Mapping[str, Any] | None = None,
) -> str:
    """Content hash of a scratch baseline (first 16 hex digits of SHA-256): everything its
    results depend on, so that a run under this key may stand in for one trained now.

    It holds the pair's name (run.json names it and the report groups runs by it), the target
    variant (``pair.target.to_dict()``: family, params, horizon, a user family's definition
    digest) and the pair's mappings (the scratch arm learns through them), ``algo``, the scratch
    arm's hyperparameters in force (``normalize`` and an imported model's adopted architecture
    included), ``seed``, the requested ``target_steps`` (the steps taken follow from them and
    the hyperparameters), ``eval_every``, ``eval_episodes``, the scratch arm's knob values
    (``knobs``: none today), the package versions except rl-transfer's own (as
    :func:`source_key`) and :data:`rl_transfer.records.RESULTS_FORMAT`. Left out, because the
    run does not depend on them: the threshold, R_min and R_max, the asymptote window, the
    other methods, the source (scratch has none), workers and backend. Floating-point results
    differ between CPU vendors, as the source cache's do: the key does not name the machine."""
    from rl_transfer import records
    from rl_transfer.versions import package_versions

    payload: dict[str, Any] = {
        "pair": pair.name,
        "target": pair.target.to_dict(),
        "mappings": pair.mappings.to_dict(),
        "algo": algo,
        "hyperparams": dict(hyperparams),
        "knobs": dict(knobs or {}),
        "seed": seed,
        "target_steps": target_steps,
        "eval_every": eval_every,
        "eval_episodes": eval_episodes,
        "versions": {k: v for k, v in package_versions().items() if k != "rl-transfer"},
        "results_format": records.RESULTS_FORMAT,
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)
