"""The experiment specification: what to run, validated before anything is written.

A spec comes from keyword arguments (``Experiment(...)``), from CLI flags, or from a study file
(YAML, validated with pydantic; see :class:`StudyFile`); flags override the file.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from agents import ADAPTERS, get_adapter
from envs import EnvPair, get_pair
from rl_transfer.errors import SpecError
from rl_transfer.methods import get_method
from rl_transfer.versions import package_versions

DEFAULT_PAIR = "cartpole-long-pole"
DEFAULT_METHODS = ("policy", "value")
MIN_SEEDS = 3
"""Seeds of the first look of an adaptive experiment."""
BACKENDS = ("local", "ray")


@dataclass
class ExperimentSpec:
    """An experiment: every (pair, algo, method, seed), each beside the scratch baseline.

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
        source_model: a source agent trained elsewhere (model.zip) used for every seed, instead of
            pretraining; checked against the pair's source spaces.
        workers: parallel processes; None -> the number of cores.
        backend: ``local`` (process pool) or ``ray``.
        ray_address: address of a running Ray cluster; None starts a local Ray.
        asymptote_window: last k evaluations averaged for asymptotic gain.
        name: experiment name; None -> ``<pair>-<algos>-<hash of what is run>``, so the same
            command finds (and resumes) the same folder.
        method_args: knob values per method name, e.g. ``{"shaping": {"scale": 0.5}}``.
    """

    pairs: list[str] = field(default_factory=lambda: [DEFAULT_PAIR])
    algos: list[str] = field(default_factory=lambda: ["ppo"])
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    seeds: int | str = "auto"
    max_seeds: int = 10
    seed_offset: int = 0
    source_steps: int | None = None
    target_steps: int | None = None
    eval_every: int | None = None
    eval_episodes: int = 10
    threshold: float | None = None
    out: Path | None = None
    source_cache: Path = Path("runs/sources")
    source_model: Path | None = None
    workers: int | None = None
    backend: str = "local"
    ray_address: str | None = None
    asymptote_window: int = 5
    name: str | None = None
    method_args: dict[str, dict[str, Any]] = field(default_factory=dict)

    def validate(self) -> None:
        """Check every field; raise :class:`SpecError` (or an envs / agents error) naming the bad
        value. Nothing is written."""
        if not self.pairs:
            raise SpecError("no pair given; `rl-transfer pairs` lists them")
        for p in self.pairs:
            get_pair(p)
        if not self.algos:
            raise SpecError("no algo given; for example --algo ppo")
        for a in self.algos:
            adapter = get_adapter(a)
            for p in self.pair_objects():
                adapter.check_hyperparams(adapter.hyperparams(p.target.family))
        if not self.methods:
            raise SpecError("no method given; for example --methods policy,value")
        for m in self.methods:
            get_method(m)
        self._check_method_args()
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
                    f"max_seeds must be at least {MIN_SEEDS} with seeds 'auto', "
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
                b = self.budget(pair, algo)
                if b["eval_every"] > b["target_steps"]:
                    raise SpecError(
                        f"eval_every ({b['eval_every']}) is larger than target_steps "
                        f"({b['target_steps']}): no evaluation after t = 0"
                    )
        if self.source_model is not None:
            self._check_source_model()
        _check_writable(self.output_dir(), "--out")
        _check_writable(Path(self.source_cache), "--source-cache")
        self.check_resumable()

    def _check_method_args(self) -> None:
        used = {c for m in self.methods for c in m.split("+")}
        for name, knobs in self.method_args.items():
            if name not in used:
                raise SpecError(
                    f"--method-arg for {name!r}, which is not among the methods "
                    f"({', '.join(self.methods)})"
                )
            get_method(name).settings(knobs)

    def _check_source_model(self) -> None:
        path = Path(self.source_model)  # type: ignore[arg-type]
        if not path.is_file():
            raise SpecError(f"--source-model {path} does not exist")
        # rl-baselines3-zoo keeps them in <run>/<env_id>/vecnormalize.pkl (for <env_id>.zip
        # and best_model.zip) and <run>/rl_model_vecnormalize_<n>_steps.pkl (checkpoints)
        found = sorted(path.parent.glob("*vecnormalize*.pkl")) + sorted(
            path.parent.glob("*/vecnormalize.pkl")
        )
        if found:
            raise SpecError(
                f"--source-model {path} was trained with VecNormalize ({found[0]}): its "
                "weights expect normalized observations and rl_transfer's agents see raw "
                "ones; use a model trained without normalization (zoo: normalize: false)"
            )
        for algo in self.algos:
            adapter = get_adapter(algo)
            try:
                model = adapter.load(path)
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
        old = (yaml.safe_load(old_path.read_text()) or {}).get("identity", {})
        new = self.identity()
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise SpecError(
                f"--out {out} already holds results of a different experiment (differs in: "
                f"{', '.join(diff)}); choose a new folder, or run the same spec to resume it"
            )
        return True

    def pair_objects(self) -> list[EnvPair]:
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

    def identity(self) -> dict[str, Any]:
        """What determines the results: two specs with equal identity run the same runs."""
        return {
            "pairs": {
                p.name: {**p.to_dict(), "budgets": {a: self.budget(p, a) for a in self.algos}}
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
                a: {
                    p.name: get_adapter(a).hyperparams(p.target.family) for p in self.pair_objects()
                }
                for a in self.algos
            },
            "source_model": _file_digest(self.source_model) if self.source_model else None,
            "method_args": {k: dict(v) for k, v in sorted(self.method_args.items())},
        }

    def experiment_name(self) -> str:
        if self.name is None:
            blob = json.dumps(self.identity(), sort_keys=True, default=str).encode()
            digest = hashlib.sha256(blob).hexdigest()[:8]
            self.name = f"{self.pairs[0]}-{'-'.join(self.algos)}-{digest}"
        return self.name

    def output_dir(self) -> Path:
        return Path(self.out) if self.out is not None else Path("runs") / self.experiment_name()

    def resolved(self) -> dict[str, Any]:
        """The resolved spec as written to experiment.yaml."""
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
            "source_model": str(self.source_model) if self.source_model else None,
            "backend": self.backend,
            "pairs": identity["pairs"],
            "versions": package_versions(),
            "git_commit": _git_commit(),
            "identity": identity,
        }


# ----------------------------------------------------------------------------------------------
# Study files


def _study_model():  # noqa: ANN202  (built lazily: pydantic is imported only for study files)
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, NonNegativeInt, PositiveInt

    class StudyFile(BaseModel):
        """A study written down as a YAML file; every key optional, same names as the flags."""

        model_config = ConfigDict(extra="forbid")
        name: str | None = None
        pairs: list[str] | None = None
        algos: list[str] | None = None
        methods: list[str] | None = None
        seeds: PositiveInt | Literal["auto"] | None = None
        max_seeds: PositiveInt | None = None
        seed_offset: NonNegativeInt | None = None
        source_steps: PositiveInt | None = None
        target_steps: PositiveInt | None = None
        eval_every: PositiveInt | None = None
        eval_episodes: PositiveInt | None = None
        threshold: float | None = None
        asymptote_window: PositiveInt | None = None
        workers: PositiveInt | None = None
        backend: str | None = None
        method_args: dict[str, dict[str, float]] | None = None

    return StudyFile


STUDY_KEYS = (
    "name",
    "pairs",
    "algos",
    "methods",
    "seeds",
    "max_seeds",
    "seed_offset",
    "source_steps",
    "target_steps",
    "eval_every",
    "eval_episodes",
    "threshold",
    "asymptote_window",
    "workers",
    "backend",
    "method_args",
)


def load_study(path: Path) -> dict[str, Any]:
    """Read and validate a study file; return the spec keyword arguments it sets.

    Raises:
        SpecError: unreadable file, invalid YAML, an unknown key (closest valid key suggested) or a
            value of the wrong type, in one line naming the file and the key.
    """
    from pydantic import ValidationError

    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise SpecError(f"cannot read study file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SpecError(
            f"study file {path} is not valid YAML: {str(exc).splitlines()[0]}"
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"study file {path} must be a mapping of keys to values")
    for singular, plural in (("pair", "pairs"), ("algo", "algos")):
        if singular in data and plural not in data:
            value = data.pop(singular)
            data[plural] = [value] if isinstance(value, str) else value
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
            raise SpecError(f"study file {path}: unknown key {key!r}{hint}") from None
        if err["loc"][0] == "seeds":
            raise SpecError(
                f"study file {path}: seeds: expected a positive integer or 'auto' "
                f"(got {data.get('seeds')!r})"
            ) from None
        raise SpecError(
            f"study file {path}: {key}: {err['msg']} (got {err.get('input')!r})"
        ) from None
    return {k: v for k, v in parsed.model_dump().items() if v is not None}


def spec_from(study: Path | None = None, **overrides: Any) -> ExperimentSpec:
    """Build a spec from an optional study file and keyword overrides (None = not given).

    ``algo`` is accepted as a shorthand for ``algos=[algo]``.

    Raises:
        SpecError: an unknown keyword argument.
    """
    kwargs = load_study(study) if study is not None else {}
    if "algo" in overrides:
        algo = overrides.pop("algo")
        if algo is not None:
            overrides["algos"] = [algo] if isinstance(algo, str) else list(algo)
    known = {f.name for f in fields(ExperimentSpec)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise SpecError(f"unknown experiment argument(s) {unknown}; valid: {sorted(known)}")
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("out", "source_cache", "source_model"):
        if kwargs.get(key) is not None:
            kwargs[key] = Path(kwargs[key])
    return ExperimentSpec(**kwargs)


# ----------------------------------------------------------------------------------------------


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
    """Content hash of a source run: source variant, algo, hyperparameters, seed, steps, the
    checkpoint interval and the package versions -- or, for an imported model, the model file's
    digest (first 16 hex digits of SHA-256)."""
    payload: dict[str, Any] = {
        "source": {
            "family": pair.source.family,
            "params": dict(sorted(pair.source.params.items())),
        },
        "algo": algo,
        "eval_episodes": eval_episodes,
        # 2: off-policy sources keep their replay buffer; 3: checkpoints for total-time
        "format": 3,
    }
    if source_model is not None:
        payload["imported_model"] = _file_digest(source_model)
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


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)
