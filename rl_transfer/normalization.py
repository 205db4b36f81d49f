"""Normalization carried on purpose: stable-baselines3's ``VecNormalize`` statistics in a transfer.

With rl-baselines3-zoo's ``normalize`` in the hyperparameters (:mod:`agents.normalize`), the
learner sees ``clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)`` and rewards scaled
by the running variance of the discounted return; the running statistics are part of the agent as
much as its weights. This module decides what a target run does with them and keeps every reader
of a model on the statistics that belong to it:

- **The knob** ``vecnormalize`` of every method that takes a source
  (:data:`rl_transfer.methods.base.VECNORMALIZE`): ``carry`` (default) starts the target's
  ``VecNormalize`` from the source's statistics and keeps updating them on the target; ``fresh``
  starts new statistics, as scratch always does; ``freeze`` uses the source's and never updates
  them. With ``carry`` or ``freeze``, the policy arm at t = 0 acts exactly as the source does on
  the target (same weights, same normalized inputs).
- **Evaluation** normalizes observations with the statistics as they are at that moment, frozen
  during the evaluation (:func:`normalizing_act`); returns are the task's raw rewards.
- **The source** is queried on raw observations and applies its own statistics, frozen, inside
  its policy (:class:`SourceInputs`): jsrl's guide, pi-reuse's actions, shaping's potential, the
  source's curve on the target (each checkpoint with its own statistics) and a plugin method's
  queries all see what the source saw in training. Kickstarting queries it on the learner's own
  minibatch observations, already normalized: it needs ``kickstart.vecnormalize=freeze`` (the
  target's statistics are then the source's) and reads them as they are.
- **Replay**: stable-baselines3 stores raw observations and rewards in the replay buffer and
  normalizes them when sampling, with the learner's statistics; a loaded source buffer is raw
  and is normalized by the target's statistics like the target's own transitions.
- **Files**: a source saves its statistics beside model.zip (``vecnormalize.pkl``) and with each
  checkpoint (``checkpoints/vecnormalize_<t>_steps.pkl``); a target run saves its final
  statistics beside its model.zip. An imported model's statistics are the file that zoo's layout
  pairs with that model (:func:`paired_statistics`).

Combinations that cannot be made right are refused before anything runs
(:func:`statistics_problem`): weights copied between a normalized and a raw agent, ``carry`` or
``freeze`` from a source without statistics, kickstarting on normalized observations without
frozen source statistics.
"""

from __future__ import annotations

import contextlib
import copy
import pickle
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rl_transfer.errors import SpecError, TransferError
from rl_transfer.io import atomic_write

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.vec_env import VecNormalize

    from envs import EnvPair

KNOB = "vecnormalize"
"""The statistics knob's name (``--knob policy.vecnormalize=freeze``)."""
STATISTICS_FILE = "vecnormalize.pkl"
"""A model's statistics beside its model.zip (a source in the cache, a target run): SB3's pickle
of the ``VecNormalize`` object, loadable with ``VecNormalize.load(path, venv)``."""
NONE = "none: no VecNormalize, observations and rewards reach the networks raw"
"""transfer_report.json's ``normalization`` when neither side normalizes."""
DOCS = {
    "carry": "started from the source's statistics, updated on the target",
    "fresh": "started from fresh statistics (mean 0, variance 1), updated on the target",
    "freeze": "the source's statistics, never updated",
    "scratch": "scratch always starts fresh statistics (mean 0, variance 1), updated on the target",
}


# -- which file belongs to a model ------------------------------------------------------------


def checkpoint_statistics(folder: Path, t: int) -> Path:
    """The statistics saved with a source's checkpoint at source step ``t``."""
    return Path(folder) / "checkpoints" / f"vecnormalize_{t}_steps.pkl"


def _run_statistics(run: Path) -> Path | None:
    """zoo's run folder ``<log>/<algo>/<env_id>_<n>`` keeps the run's statistics in its
    ``<env_id>/vecnormalize.pkl`` (``ExperimentManager.save_trained_model``)."""
    found = [
        d / STATISTICS_FILE
        for d in run.iterdir()
        if d.is_dir() and run.name.startswith(d.name + "_") and (d / STATISTICS_FILE).is_file()
    ]
    return max(found, key=lambda p: len(p.parent.name)) if found else None


def paired_statistics(model: Path) -> Path | None:
    """The ``VecNormalize`` statistics file that belongs to the saved model ``model``, or None.

    The layouts, for ``<dir>/<stem>.zip``:

    - an SB3 checkpoint ``<prefix>_<n>_steps.zip`` (zoo's ``rl_model_<n>_steps.zip``): its own
      ``<prefix>_vecnormalize_<n>_steps.pkl`` beside it (``CheckpointCallback`` with
      ``save_vecnormalize=True``);
    - rl_transfer's ``model.zip`` (a source in the cache, a target run): ``vecnormalize.pkl``
      beside it;
    - zoo's final model ``<run>/<env_id>.zip``: ``<run>/<env_id>/vecnormalize.pkl``;
    - zoo's ``<run>/best_model.zip``: the run's ``<run>/<env_id>/vecnormalize.pkl`` (what zoo's
      ``enjoy --load-best`` takes; zoo rewrites it with the final statistics at the end of
      training).

    Any other file near the model (another checkpoint's statistics, another model's folder)
    is not the model's and is ignored.

    Raises:
        SpecError: ``model`` is a checkpoint of a zoo run trained with ``VecNormalize`` whose own
            statistics at that step were not saved (the run's final ones would not be its own).
    """
    model = Path(model)
    folder = model.parent
    step = re.fullmatch(r"(?P<prefix>.+)_(?P<n>\d+)_steps", model.stem)
    if step is not None:
        own = folder / f"{step['prefix']}_vecnormalize_{step['n']}_steps.pkl"
        if own.is_file():
            return own
        run = _run_statistics(folder)
        if run is not None:
            raise SpecError(
                f"--source-model {model} is a checkpoint of a run trained with VecNormalize "
                f"({run}) and its own statistics at step {step['n']} are not beside it "
                f"({own.name}, written by SB3's CheckpointCallback with save_vecnormalize=True): "
                "import the run's final model or a checkpoint saved with its statistics"
            )
        return None
    candidates = [folder / model.stem / STATISTICS_FILE]
    if model.name == "model.zip":
        candidates.insert(0, folder / STATISTICS_FILE)
    for path in candidates:
        if path.is_file():
            return path
    return _run_statistics(folder) if model.stem == "best_model" else None


def expected_statistics(model: Path) -> str:
    """Where zoo's layout keeps ``model``'s statistics, for messages."""
    model = Path(model)
    step = re.fullmatch(r"(?P<prefix>.+)_(?P<n>\d+)_steps", model.stem)
    if step is not None:
        return str(model.parent / f"{step['prefix']}_vecnormalize_{step['n']}_steps.pkl")
    if model.stem == "best_model":
        return str(model.parent / "<env_id>" / STATISTICS_FILE)
    return str(model.parent / model.stem / STATISTICS_FILE)


# -- reading statistics ------------------------------------------------------------------------


def load_statistics(path: Path) -> VecNormalize:
    """The ``VecNormalize`` object saved in ``path`` (SB3's pickle), without an env: its
    ``normalize_obs`` applies the saved statistics and never updates them.

    Raises:
        TransferError: unreadable, or not a ``VecNormalize`` pickle.
    """
    from stable_baselines3.common.vec_env import VecNormalize

    try:
        with open(path, "rb") as fh:
            stats = pickle.load(fh)  # noqa: S301  (SB3's own format; SB3 unpickles models too)
    except Exception as exc:  # noqa: BLE001  (a pickle raises many types)
        raise TransferError(
            f"cannot read VecNormalize statistics {path} ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(stats, VecNormalize):
        raise TransferError(f"{path} holds a {type(stats).__name__}, not VecNormalize statistics")
    if stats.norm_obs and isinstance(stats.obs_rms, dict):
        raise TransferError(f"{path}: statistics of Dict observations are not supported")
    return stats


def describe(stats: VecNormalize) -> dict[str, Any]:
    """The settings and sample counts of ``stats`` (for the records): ``norm_obs``,
    ``norm_reward``, ``clip_obs``, ``clip_reward``, ``gamma``, ``epsilon``, ``training``,
    ``obs_count`` (observations averaged; null without observation normalization) and
    ``return_count``."""
    obs = getattr(stats, "obs_rms", None) if stats.norm_obs else None
    return {
        "norm_obs": bool(stats.norm_obs),
        "norm_reward": bool(stats.norm_reward),
        "clip_obs": float(stats.clip_obs),
        "clip_reward": float(stats.clip_reward),
        "gamma": float(stats.gamma),
        "epsilon": float(stats.epsilon),
        "training": bool(stats.training),
        "obs_count": None if obs is None else float(obs.count),
        "return_count": float(stats.ret_rms.count),
    }


@dataclass(frozen=True)
class Side:
    """What one side of a transfer normalizes (both False: no ``VecNormalize``)."""

    obs: bool
    reward: bool

    @property
    def any(self) -> bool:
        return self.obs or self.reward

    @classmethod
    def of_hyperparams(cls, hyperparams: Mapping[str, Any]) -> Side:
        """From zoo-style hyperparameters (``normalize``).

        Raises:
            SpecError: see :func:`agents.normalize.vecnormalize_kwargs`.
        """
        from agents.normalize import settings, vecnormalize_kwargs

        kwargs = vecnormalize_kwargs(hyperparams)
        if kwargs is None:
            return cls(False, False)
        full = settings(kwargs)
        return cls(bool(full["norm_obs"]), bool(full["norm_reward"]))

    @classmethod
    def of_statistics(cls, stats: VecNormalize | None) -> Side:
        """From saved statistics (None: the model was trained without ``VecNormalize``)."""
        if stats is None:
            return cls(False, False)
        return cls(bool(stats.norm_obs), bool(stats.norm_reward))


# -- the source: raw observations in, its own statistics applied inside -----------------------


class SourceInputs:
    """Frozen ``VecNormalize`` statistics applied inside a loaded model's policy: a forward
    pre-hook on each of its features extractors maps raw observations ``x`` to
    ``clip((x - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)``, computed in float64 as
    ``VecNormalize.normalize_obs`` does and cast back to the extractor's input dtype, so the
    model's greedy actions, values and distributions on raw observations equal those of SB3's
    normalized path, bit for bit (for float32 observation spaces, as SB3 casts inputs to
    float32). The weights and ``state_dict`` are untouched.

    Args:
        model: a model loaded without an env (every features extractor of its policy is hooked:
            PPO/A2C's shared or separate ones, DQN's online and target Q-networks', SAC/TD3's
            actor's and critics').
        stats: the statistics to apply (:func:`load_statistics`).

    Raises:
        TransferError: the policy has no features extractor.
    """

    def __init__(self, model: BaseAlgorithm, stats: VecNormalize) -> None:
        import torch
        from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

        self._torch = torch
        extractors = [m for m in model.policy.modules() if isinstance(m, BaseFeaturesExtractor)]
        if not extractors:
            raise TransferError(
                f"{type(model.policy).__name__} has no features extractor to apply "
                "VecNormalize statistics in"
            )
        self.active = True
        self.set(stats)
        self._handles = [m.register_forward_pre_hook(self._hook) for m in extractors]

    def set(self, stats: VecNormalize) -> None:
        """Apply ``stats`` from now on (a checkpoint's own statistics)."""
        torch = self._torch
        self.stats = stats
        self._mean = torch.as_tensor(np.asarray(stats.obs_rms.mean), dtype=torch.float64)
        scale = np.sqrt(np.asarray(stats.obs_rms.var) + stats.epsilon)
        self._scale = torch.as_tensor(scale, dtype=torch.float64)
        self._clip = float(stats.clip_obs)

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """``obs`` as the source's policy receives it (``VecNormalize.normalize_obs``)."""
        return self.stats.normalize_obs(obs)

    def _hook(self, module: Any, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if not self.active:
            return None
        x = args[0]
        y = (x.double() - self._mean) / self._scale
        return (self._torch.clamp(y, -self._clip, self._clip).to(x.dtype), *args[1:])

    @contextlib.contextmanager
    def bypass(self) -> Iterator[None]:
        """Inputs pass unchanged inside the block (they are normalized already)."""
        self.active = False
        try:
            yield
        finally:
            self.active = True

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def attach_saved(model: BaseAlgorithm, folder: Path) -> tuple[SourceInputs | None, Any]:
    """Apply the statistics saved in ``folder / vecnormalize.pkl`` inside ``model`` (a source
    loaded from ``folder``). Returns ``(SourceInputs or None, the statistics or None)``: None
    when the source was trained without ``VecNormalize``; no hook when it normalized rewards
    only.

    Raises:
        TransferError: the file is not readable statistics.
    """
    path = Path(folder) / STATISTICS_FILE
    if not path.is_file():
        return None, None
    stats = load_statistics(path)
    return (SourceInputs(model, stats) if stats.norm_obs else None), stats


# -- a model being trained, or evaluated ------------------------------------------------------


def normalizing_act(act: Callable[[Any, np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    """``act(model, obs)`` on raw observations ``[n, *obs_shape]``: a model trained under
    ``VecNormalize`` first normalizes them with its statistics as they are now
    (``VecNormalize.normalize_obs``, which never updates them); any other model, a loaded
    source included (it applies its own statistics, :class:`SourceInputs`), gets them raw."""

    def normalized(model: Any, obs: np.ndarray) -> np.ndarray:
        vn = model.get_vec_normalize_env()
        return act(model, obs if vn is None else vn.normalize_obs(obs))

    return normalized


def save_statistics(model: BaseAlgorithm, path: Path) -> bool:
    """Save ``model``'s ``VecNormalize`` statistics to ``path`` atomically (SB3's pickle);
    False, nothing written, when it has none."""
    vn = model.get_vec_normalize_env()
    if vn is None:
        return False
    atomic_write(Path(path), lambda p: vn.save(str(p)))
    return True


def source_record(
    model: BaseAlgorithm, folder: Path, imported: Path | None
) -> dict[str, Any] | None:
    """Save a finished source's statistics into its cache ``folder`` and describe them for its
    run.json (``normalization``): a trained source's from its ``VecNormalize``, an imported
    model's copied from the file zoo's layout pairs with it. None: trained without it.

    Raises:
        SpecError: see :func:`paired_statistics`.
    """
    path = Path(folder) / STATISTICS_FILE
    if imported is None:
        if not save_statistics(model, path):
            return None
        origin = "trained"
    else:
        paired = paired_statistics(imported)
        if paired is None:
            return None
        shutil.copyfile(paired, path)
        origin = str(paired)
    return {"file": STATISTICS_FILE, "from": origin, **describe(load_statistics(path))}


def start_statistics(
    model: BaseAlgorithm,
    mode: str | None,
    source: VecNormalize | None,
    source_dir: Path | None,
) -> dict[str, Any] | str:
    """Set the target ``model``'s starting statistics for the choice ``mode`` (``carry``,
    ``fresh``, ``freeze``; None for scratch, which starts fresh) and describe them for
    transfer_report.json's ``normalization``.

    ``carry``/``freeze`` copy the source's observation and return statistics and the settings
    that shape the observations (``clip_obs``, ``epsilon``); ``freeze`` turns updating off.
    The reward settings (``norm_reward``, ``clip_reward``, ``gamma``) stay the target's.

    Raises:
        TransferError: ``carry``/``freeze`` without source statistics to start from (refused
            earlier by :func:`statistics_problem`).
    """
    vn = model.get_vec_normalize_env()
    source_file = None if source is None or source_dir is None else source_dir / STATISTICS_FILE
    queried = (
        None
        if source is None
        else f"queried on raw observations with its own statistics ({source_file}), frozen"
    )
    if vn is None:
        if source is None:
            return NONE
        return {
            "statistics": "none",
            "target": "no VecNormalize: the hyperparameters do not normalize",
            "source": queried,
        }
    choice = "scratch" if mode is None else mode
    if choice in ("carry", "freeze"):
        if source is None:
            raise TransferError(f"vecnormalize={choice}: the source has no statistics")
        if vn.norm_obs:
            vn.obs_rms = copy.deepcopy(source.obs_rms)
            vn.clip_obs, vn.epsilon = source.clip_obs, source.epsilon
        vn.ret_rms = copy.deepcopy(source.ret_rms)
        vn.training = choice == "carry"
    return {
        "statistics": "fresh" if choice == "scratch" else choice,
        "doc": DOCS[choice],
        "source_statistics": str(source_file) if choice in ("carry", "freeze") else None,
        "source": queried,
        "start": describe(vn),
        "evaluation": "observations normalized with the statistics as they are at each "
        "evaluation, frozen during it; returns are the task's raw rewards",
        "saved": f"{STATISTICS_FILE} beside model.zip (the statistics at the end)",
    }


def finish_statistics(model: BaseAlgorithm, report: dict[str, Any] | str) -> None:
    """Add the statistics at the end of training (``end``) to ``report``."""
    vn = model.get_vec_normalize_env()
    if vn is not None and isinstance(report, dict):
        report["end"] = describe(vn)


def summary(report: dict[str, Any] | str) -> str | None:
    """One line for run.json's ``normalization``; None without ``VecNormalize``."""
    if isinstance(report, str):
        return None
    if report.get("statistics") == "none":
        return f"none on the target; the source {report['source']}"
    return f"{report['statistics']}: {report['doc']}"


# -- what cannot be made right ----------------------------------------------------------------


def statistics_problem(
    method: Any, mode: str | None, target: Side, source: Side, source_label: str
) -> str | None:
    """Why ``method`` with ``vecnormalize=mode`` cannot run between a source and a target
    normalizing as ``source`` and ``target`` say, as one line naming the fix; None when it can.

    Refused: weights copied from a source trained on normalized observations into a target that
    sees raw ones, or the reverse; ``carry``/``freeze`` from a source without the statistics to
    start from; a method that queries the source on the learner's observations
    (``source_sees_learner_inputs``, kickstarting) under observation normalization unless the
    statistics are the source's, frozen.
    """
    name = method.name
    knob = f"{method.components[0].name}.{KNOB}"
    copies = bool(method.parts)
    if copies and target.obs != source.obs:
        if source.obs:
            return (
                f"{source_label} was trained with VecNormalize and the target's hyperparameters "
                f"do not normalize observations: method {name!r} copies weights that expect "
                "normalized observations; add normalize: true to the hyperparameters"
            )
        return (
            f"{source_label} was trained on raw observations and the target's hyperparameters "
            f"normalize them (normalize): method {name!r} copies weights that expect raw "
            "observations; remove normalize, or use a source trained with it"
        )
    if getattr(method, "source_sees_learner_inputs", False) and target.obs:
        if not source.obs:
            return (
                f"method {name!r} queries the source on the learner's normalized observations "
                f"and {source_label} was trained on raw ones; remove normalize from the "
                "hyperparameters"
            )
        if mode != "freeze":
            return (
                f"method {name!r} queries the source on the learner's observations, normalized "
                "with the target's statistics: they are the source's inputs only while those "
                f"are the source's, frozen; pass --knob {knob}=freeze"
            )
    if target.any and mode in ("carry", "freeze"):
        missing = (target.obs and not source.obs) or not source.any
        if missing:
            what = "observation statistics" if source.any else "VecNormalize statistics"
            return (
                f"{knob}={mode} starts from the source's statistics and {source_label} has no "
                f"{what}; pass --knob {knob}=fresh"
            )
    return None


def check_run(
    method: Any,
    knobs: Mapping[str, Any],
    hyperparams: Mapping[str, Any],
    source: VecNormalize | None,
    source_dir: Path | None,
) -> None:
    """:func:`statistics_problem` for one target run.

    Raises:
        SpecError: the problem.
    """
    if source_dir is None:
        return
    problem = statistics_problem(
        method,
        knobs.get(KNOB),
        Side.of_hyperparams(hyperparams),
        Side.of_statistics(source),
        f"the source {source_dir}",
    )
    if problem:
        raise SpecError(problem)


def check_spec(spec: Any, hyperparams: Callable[[EnvPair, str, str], Mapping[str, Any]]) -> None:
    """:func:`statistics_problem` for every (pair, algo, method) of ``spec``, before anything
    runs. ``hyperparams(pair, algo, kind)`` gives the hyperparameters of the source
    (``kind`` ``"source"``) or of a method's target arm (``kind``: the method's name).

    Raises:
        SpecError: the first problem; also a ``--source-model`` statistics file that is not
            readable, two components given different ``vecnormalize`` values.
    """
    from rl_transfer.methods import get_method

    imported: VecNormalize | None = None
    label = "the source"
    if spec.source_model is not None:
        label = f"--source-model {spec.source_model}"
        paired = paired_statistics(Path(spec.source_model))
        if paired is not None:
            try:
                imported = load_statistics(paired)
            except TransferError as exc:
                raise SpecError(str(exc)) from None
    for name in spec.methods:
        method = get_method(name)
        if not method.needs_source:
            continue
        mode = method.settings_from(spec.knobs).get(KNOB)
        for pair in spec.pair_objects():
            for algo in spec.algos:
                source = (
                    Side.of_statistics(imported)
                    if spec.source_model is not None
                    else Side.of_hyperparams(hyperparams(pair, algo, "source"))
                )
                target = Side.of_hyperparams(hyperparams(pair, algo, name))
                problem = statistics_problem(method, mode, target, source, label)
                if problem:
                    raise SpecError(problem)


def check_imported(path: Path, model: BaseAlgorithm, observation_space: Any) -> None:
    """Check a ``--source-model``'s statistics: the file zoo's layout pairs with it, when there
    is one, must be readable statistics of observations shaped like the source task's and
    belong to a model trained with ``VecNormalize``; an on-policy model trained with it
    (:func:`agents.sb3.trained_with_vecnormalize`) must have one.

    Raises:
        SpecError: one of those does not hold.
    """
    from agents.sb3 import trained_with_vecnormalize

    paired = paired_statistics(path)
    if paired is None:
        if trained_with_vecnormalize(model):
            raise SpecError(
                f"--source-model {path} was trained with VecNormalize and its statistics are "
                f"not where zoo's layout keeps them ({expected_statistics(path)}): put the "
                "run's vecnormalize.pkl there"
            )
        return
    if trained_with_vecnormalize(model) is False:
        raise SpecError(
            f"--source-model {path} was trained without VecNormalize (SB3 saved no raw "
            f"observation beside the normalized ones) and {paired} sits where zoo's layout keeps "
            "its statistics: move that file away, or import the model it belongs to"
        )
    try:
        stats = load_statistics(paired)
    except TransferError as exc:
        raise SpecError(f"--source-model {path}: {exc}") from None
    shape = tuple(np.shape(stats.obs_rms.mean)) if stats.norm_obs else observation_space.shape
    if shape != tuple(observation_space.shape):
        raise SpecError(
            f"--source-model {path}: its statistics {paired} are of observations shaped "
            f"{shape}, the source task's are {tuple(observation_space.shape)}"
        )
