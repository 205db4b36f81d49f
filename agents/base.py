"""The agent adapter: one per stable-baselines3 algorithm.

An adapter builds the SB3 model with the algorithm's default hyperparameters for an env family
(a zoo-style yaml per algorithm in ``agents/hyperparams/``) and names the algorithm's transferable
*parts*. Transfer methods ask the adapter to move named parts; they never reach into SB3 internals.
"""

from __future__ import annotations

import copy
import inspect
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import gymnasium
import numpy as np
import torch
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

from agents import normalize, sb3
from rl_transfer.errors import SpecError, TransferError
from rl_transfer.hyperparams import canonical, to_sb3

HYPERPARAMS_DIR = Path(__file__).parent / "hyperparams"


@dataclass
class TransferRecord:
    """What a weight transfer did, tensor by tensor (written to transfer_report.json).

    ``copied``/``reinitialised``/``synced``: lists of ``{"name", "shape"}``; ``notes``: free text
    facts (for example DQN's policy and value being one network).
    """

    copied: list[dict[str, Any]] = field(default_factory=list)
    reinitialised: list[dict[str, Any]] = field(default_factory=list)
    synced: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "copied": self.copied,
            "reinitialised": self.reinitialised,
            "synced": self.synced,
            "notes": self.notes,
        }


def _linear(start: float) -> Callable[[float], float]:
    """rl-baselines3-zoo's ``lin_X``: ``start`` at progress_remaining 1, 0 at progress_remaining 0.

    progress_remaining is clamped to [0, 1]: SB3 sets it to ``1 - num_timesteps / total`` and
    ``learn`` rounds ``total`` up to whole rollouts, so it goes below 0 in the last rollout of a
    budget that is not a multiple of the rollout; unclamped, the learning rate or clip range of
    that update would be negative. The schedule never passes its final value (0).
    """

    def schedule(progress_remaining: float) -> float:
        return min(1.0, max(0.0, progress_remaining)) * start

    return schedule


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, gymnasium.spaces.Box) and isinstance(b, gymnasium.spaces.Box):
        return (
            a.shape == b.shape
            and a.dtype == b.dtype
            and np.array_equal(a.low, b.low)
            and np.array_equal(a.high, b.high)
        )
    return a == b


def _action_noise(kind: str, std: float, space: gymnasium.spaces.Space):  # noqa: ANN202
    """rl-baselines3-zoo's ``noise_type`` / ``noise_std``: normal or ornstein-uhlenbeck."""
    from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    n = int(np.prod(space.shape))
    cls = {"normal": NormalActionNoise, "ornstein-uhlenbeck": OrnsteinUhlenbeckActionNoise}[kind]
    return cls(mean=np.zeros(n), sigma=std * np.ones(n))


class AgentAdapter:
    """Base adapter. Subclasses set the class attributes and may override the hooks.

    Class attributes:
        algo: short name (``"ppo"``).
        algo_class: the stable-baselines3 class.
        parts: part name -> prefixes of ``policy.state_dict()`` keys that make up the part.
        target_sync: (online prefix, target prefix) pairs set equal after a transfer that moves
            the online network (stale target networks would bootstrap from fresh weights).
        off_policy: whether the algorithm learns from a replay buffer (derived from
            ``algo_class``: an SB3 ``OffPolicyAlgorithm``).
        action_spaces: the gymnasium action-space classes the SB3 algorithm acts in (its
            ``supported_action_spaces``).

    What a transfer method needs of an algorithm is the method's to say
    (:meth:`rl_transfer.methods.base.TransferMethod.missing`); the adapter offers parts and
    primitives, and reaches SB3's internals only through :mod:`agents.sb3`.
    """

    algo: ClassVar[str]
    algo_class: ClassVar[type[BaseAlgorithm]]
    parts: ClassVar[Mapping[str, tuple[str, ...]]]
    target_sync: ClassVar[tuple[tuple[str, str], ...]] = ()
    off_policy: ClassVar[bool] = False
    action_spaces: ClassVar[tuple[type[gymnasium.spaces.Space], ...]] = (
        gymnasium.spaces.Box,
        gymnasium.spaces.Discrete,
    )
    part_notes: ClassVar[Mapping[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

        if "algo_class" in vars(cls):
            cls.off_policy = issubclass(cls.algo_class, OffPolicyAlgorithm)

    # -- hyperparameters ----------------------------------------------------------------------
    def hyperparams(self, family: str) -> dict[str, Any]:
        """The zoo-style hyperparameters for ``family`` (raw: schedules still as ``lin_X``)."""
        table = self._table()
        return copy.deepcopy(table.get(family, table["default"]))

    def _table(self) -> dict[str, Any]:
        with open(HYPERPARAMS_DIR / f"{self.algo}.yml") as fh:
            return yaml.safe_load(fh)

    def tuned_family(self) -> str:
        """The first env family with its own entry in the hyperparameters yml."""
        return next(f for f in self._table() if f != "default")

    def check_hyperparams(self, hyperparams: Mapping[str, Any]) -> None:
        """Raises:
        SpecError: a ``normalize`` value zoo would not read
            (:func:`agents.normalize.vecnormalize_kwargs`)."""
        normalize.vecnormalize_kwargs(hyperparams)

    def check_action_space(self, space: gymnasium.spaces.Space, where: str) -> None:
        """Raises:
        SpecError: the algorithm cannot act in ``space`` (``where`` names the task)."""
        if isinstance(space, self.action_spaces):
            return
        from agents import ADAPTERS

        able = [a for a, cls in ADAPTERS.items() if isinstance(space, cls.action_spaces)]
        kinds = " or ".join(c.__name__ for c in self.action_spaces)
        raise SpecError(
            f"{self.algo} acts in {kinds} action spaces and {where} has {space}; "
            f"algorithms that act in it: {', '.join(able) or 'none'}"
        )

    def make_vec_env(
        self,
        env_fn: Callable[[], gymnasium.Env],
        n_envs: int,
        seed: int,
        wrapper: Callable[[gymnasium.Env], gymnasium.Env] | None = None,
    ) -> DummyVecEnv:
        """``n_envs`` envs in one process; env ``i`` seeded ``seed + i``.

        Each env is ``wrapper(Monitor(env_fn()))``: SB3's Monitor sits right on the task, so the
        ``rollout/ep_rew_mean`` and ``rollout/ep_len_mean`` it feeds are the task's own episode
        returns and lengths, whatever ``wrapper`` (reward shaping, a guide's roll-in) does on top.
        """
        return make_vec_env(
            env_fn, n_envs=n_envs, seed=seed, vec_env_cls=DummyVecEnv, wrapper_class=wrapper
        )

    def make_model(
        self,
        env_fn: Callable[[], gymnasium.Env],
        hyperparams: Mapping[str, Any],
        seed: int,
        overrides: Mapping[str, Any] | None = None,
        wrapper: Callable[[gymnasium.Env], gymnasium.Env] | None = None,
    ) -> BaseAlgorithm:
        """Build a fresh model on a new vectorised env of ``env_fn``.

        ``overrides`` replace hyperparameters after parsing (used by transfer methods, for
        example DQN's exploration start). ``wrapper`` goes around each training env's Monitor
        (see :meth:`make_vec_env`). With zoo's ``normalize``, stable-baselines3's
        ``VecNormalize`` goes around the vectorised env (:mod:`agents.normalize`), so the
        method's wrapper and the Monitor see raw observations and rewards. The model runs on
        the CPU.
        """
        hp = canonical(hyperparams)  # a copy: SB3's A2C adds optimizer_class to policy_kwargs
        n_envs = int(hp.pop("n_envs", 1))
        policy = hp.pop("policy", "MlpPolicy")
        hp.pop("n_timesteps", None)
        self.check_hyperparams(hp)
        for key, value in list(hp.items()):
            if isinstance(value, str) and value.startswith("lin_"):
                hp[key] = _linear(float(value[4:]))
        if isinstance(hp.get("policy_kwargs"), Mapping):
            hp["policy_kwargs"] = to_sb3(hp["policy_kwargs"])
        if isinstance(hp.get("train_freq"), list):  # zoo's [1, "episode"]; SB3 takes a tuple
            hp["train_freq"] = tuple(hp["train_freq"])
        noise_type = hp.pop("noise_type", None)
        noise_std = float(hp.pop("noise_std", 0.1))
        hp.update(overrides or {})
        vecnormalize = normalize.vecnormalize_kwargs(hp)
        hp.pop("normalize", None)
        env = self.make_vec_env(env_fn, n_envs, seed, wrapper)
        if vecnormalize is not None:  # zoo's normalize: VecNormalize around the training envs
            env = normalize.wrap(env, vecnormalize)
        if noise_type is not None:
            hp["action_noise"] = _action_noise(noise_type, noise_std, env.action_space)
        return self.algo_class(policy, env, seed=seed, device="cpu", verbose=0, **hp)

    def rollout_steps(self, model: BaseAlgorithm) -> int | None:
        """Env steps (over all training envs) between two consecutive updates of ``model``:
        ``n_steps * n_envs`` on-policy, ``train_freq * n_envs`` off-policy with ``train_freq`` in
        steps; None when ``train_freq`` counts episodes (a rollout's length then varies).

        SB3's ``learn(total)`` runs whole rollouts while ``num_timesteps < total``, so it takes
        ``ceil(total / rollout_steps) * rollout_steps`` steps (sources:
        ``OnPolicyAlgorithm.learn``, ``OffPolicyAlgorithm.learn`` of stable-baselines3 2.x).
        """
        from stable_baselines3.common.type_aliases import TrainFrequencyUnit

        if not self.off_policy:
            return int(model.n_steps * model.n_envs)
        if model.train_freq.unit != TrainFrequencyUnit.STEP:
            return None
        return int(model.train_freq.frequency * model.n_envs)

    def load(self, path: Path) -> BaseAlgorithm:
        """Load a saved model (weights for reading parts; no env attached).

        Saved objects this process cannot unpickle (:func:`replaced_objects`: a schedule
        pickled as an object of rl-baselines3-zoo, which need not be installed) are replaced
        through SB3's ``custom_objects`` by a constant schedule of 0: a loaded model is a
        source whose weights are read, never trained further.
        """
        from stable_baselines3.common.utils import ConstantSchedule

        custom = {key: ConstantSchedule(0.0) for key in self.replaced_objects(path)}
        return self.algo_class.load(str(path), device="cpu", custom_objects=custom)

    def saved_hyperparams(self, model: BaseAlgorithm, replaced: list[str]) -> dict[str, Any]:
        """The hyperparameters a loaded model was trained with, read from the model (the SB3
        constructor arguments it keeps as attributes, ``policy_kwargs`` with class names);
        ``replaced`` keys are given as ``"replaced: not loadable here"``."""
        from rl_transfer.hyperparams import from_sb3, valid_keys

        out: dict[str, Any] = {}
        for key in valid_keys(self):
            if key in replaced:
                out[key] = "replaced: not loadable here"
            elif key == "policy_kwargs":
                out[key] = from_sb3(model.policy_kwargs)
            elif key in vars(model) and not callable(vars(model)[key]):
                value = from_sb3(vars(model)[key])
                if not (isinstance(value, str) and value.startswith("<")):
                    out[key] = value
        out["n_envs"] = int(model.n_envs)
        return out

    @staticmethod
    def replaced_objects(path: Path) -> list[str]:
        """Keys of a saved model whose pickled objects cannot be loaded here, and that
        :meth:`load` replaces (zoo's ``learning_rate``, ``lr_schedule``, ``clip_range``)."""
        return sb3.unloadable_objects(sb3.saved_data(path))

    def act(self, model: BaseAlgorithm, obs: np.ndarray) -> np.ndarray:
        """Greedy (deterministic) actions for a batch of observations.

        Args:
            obs: shape ``[n, *observation_shape]``.

        Returns:
            actions, shape ``[n]`` for Discrete spaces (``[n, *action_shape]`` otherwise).

        Discrete spaces take one forward pass without SB3's ``predict`` bookkeeping (the
        evaluation hot path); other spaces go through ``predict``, which clips or unscales
        actions to the space's bounds.
        """
        if isinstance(model.action_space, gymnasium.spaces.Discrete):
            return sb3.greedy_actions(model.policy, obs)
        actions, _ = model.predict(obs, deterministic=True)
        return actions

    # -- transferable parts ---------------------------------------------------------------------
    def describe_part(self, part: str) -> str:
        """What a part is, for docs: its ``state_dict`` key prefixes."""
        return ", ".join(f"`{p.rstrip('.')}`" for p in self.parts[part])

    def part_keys(self, model: BaseAlgorithm, part: str) -> list[str]:
        """``policy.state_dict()`` keys that make up ``part``.

        Raises:
            TransferError: unknown part name.
        """
        if part not in self.parts:
            raise TransferError(
                f"{self.algo} has no part {part!r}; its parts: {', '.join(self.parts)}"
            )
        prefixes = self.parts[part]
        return [k for k in model.policy.state_dict() if k.startswith(prefixes)]

    def copy_parts(
        self, source: BaseAlgorithm, target: BaseAlgorithm, parts: list[str]
    ) -> TransferRecord:
        """Copy the named parts' tensors from ``source`` into ``target`` in place.

        Only the named tensors move: optimizer state, schedules and hyperparameters of ``target``
        stay as built (SB3's ``load`` would restore all of them too). Target networks listed in
        ``target_sync`` are then set equal to the freshly copied online network.

        Raises:
            TransferError: a shape differs (both sides named) or no tensor was copied.
        """
        record = TransferRecord()
        src_state = source.policy.state_dict()
        dst_state = target.policy.state_dict()
        wanted: list[str] = []
        for part in parts:
            wanted += [k for k in self.part_keys(target, part) if k not in wanted]
            if part in self.part_notes:
                record.notes.append(self.part_notes[part])
        with torch.no_grad():
            for key in wanted:
                if key not in src_state:
                    raise TransferError(f"source model has no tensor {key!r} ({self.algo})")
                s, d = src_state[key], dst_state[key]
                if s.shape != d.shape:
                    raise TransferError(
                        f"tensor {key!r}: source shape {tuple(s.shape)} != target shape "
                        f"{tuple(d.shape)}; the two models need the same architecture"
                    )
                d.copy_(s)
                record.copied.append({"name": key, "shape": list(d.shape)})
            for online, tgt in self.target_sync:
                if not any(k.startswith(online) for k in wanted):
                    continue
                for key in dst_state:
                    if key.startswith(tgt):
                        dst_state[key].copy_(dst_state[online + key[len(tgt) :]])
                        record.synced.append(
                            {
                                "name": key,
                                "shape": list(dst_state[key].shape),
                                "from": online + key[len(tgt) :],
                            }
                        )
        if not record.copied:
            raise TransferError(f"transfer of {parts} moved no tensor ({self.algo})")
        moved = set(wanted) | {s["name"] for s in record.synced}
        for key, value in dst_state.items():
            if key not in moved:
                record.reinitialised.append({"name": key, "shape": list(value.shape)})
        return record

    def copy_optimizer_state(
        self, source: BaseAlgorithm, target: BaseAlgorithm
    ) -> list[dict[str, Any]]:
        """Load the source's optimizer states (moment estimates and step counts: Adam's
        ``exp_avg``/``exp_avg_sq``, RMSprop's ``square_avg``) into the target's optimizers, for
        every optimizer whose parameters all belong to the policy (the tensors a ``finetune``
        copies); others (SAC's entropy-coefficient optimizer) are skipped. The optimizer
        settings (learning rate, betas, eps, weight decay) stay the target's.

        Returns:
            One ``{"name", "carried", ...}`` per optimizer of the model, for the report.

        Raises:
            TransferError: an optimizer's class or parameter shapes differ between the two
                models.
        """
        names = sb3.optimizer_names(target)
        policy_params = {id(p) for p in target.policy.parameters()}
        out: list[dict[str, Any]] = []
        for name in names:
            dst, src = operator.attrgetter(name)(target), operator.attrgetter(name)(source)
            params = [p for g in dst.param_groups for p in g["params"]]
            if not all(id(p) in policy_params for p in params):
                out.append(
                    {"name": name, "carried": False, "why": "optimizes tensors outside the policy"}
                )
                continue
            if type(src) is not type(dst):
                raise TransferError(
                    f"{name}: the source's optimizer is {type(src).__name__}, the target's "
                    f"{type(dst).__name__}; their states do not carry over"
                )
            src_shapes = [list(p.shape) for g in src.param_groups for p in g["params"]]
            if src_shapes != [list(p.shape) for p in params]:
                raise TransferError(
                    f"{name}: the source's parameter shapes {src_shapes} differ from the "
                    f"target's {[list(p.shape) for p in params]}"
                )
            own = [{k: v for k, v in g.items() if k != "params"} for g in dst.param_groups]
            dst.load_state_dict(src.state_dict())
            for group, settings in zip(dst.param_groups, own, strict=True):
                group.update(settings)  # lr, betas, eps, weight decay stay the target's
            steps = [float(st["step"]) for st in dst.state.values() if "step" in st]
            out.append(
                {
                    "name": name,
                    "carried": True,
                    "tensors_with_state": len(dst.state),
                    "step": max(steps) if steps else 0,
                }
            )
        return out

    def freeze(self, model: BaseAlgorithm, keys: list[str]) -> list[dict[str, Any]]:
        """Stop gradient updates of the named parameters (``requires_grad`` off: the optimizer
        then leaves them bit-identical). Returns ``{"name", "shape"}`` of each frozen tensor.

        Raises:
            TransferError: nothing to freeze.
        """
        frozen = []
        for name, param in model.policy.named_parameters():
            if name in keys:
                param.requires_grad_(False)
                frozen.append({"name": name, "shape": list(param.shape)})
        if not frozen:
            raise TransferError(f"nothing to freeze among {keys} ({self.algo})")
        return frozen

    def state_value(self, model: BaseAlgorithm, obs: np.ndarray) -> np.ndarray:
        """The model's value estimate V(s) for a batch of observations ``[n, ...]`` -> ``[n]``
        (the potential of reward shaping).

        Raises:
            TransferError: the algorithm has no state-value estimate here.
        """
        raise TransferError(f"{self.algo} gives no state value")

    # -- replay buffer (off-policy algorithms) -------------------------------------------------
    def save_replay(self, model: BaseAlgorithm, path: Path) -> None:
        """Save the replay buffer of an off-policy model (SB3's pickle)."""
        model.save_replay_buffer(str(path))

    def load_replay(
        self, model: BaseAlgorithm, path: Path, fraction: float = 1.0
    ) -> dict[str, Any]:
        """Seed ``model``'s empty replay buffer with the most recent source transitions.

        ``fraction`` of min(source transitions, target capacity) are copied, oldest first, to
        the start of the target's ring buffer, so the target's own transitions overwrite them
        once the buffer is full (FIFO).

        Returns:
            ``{"transitions_loaded", "source_transitions", "target_capacity"}`` (per-env rows x
            n_envs).

        Raises:
            TransferError: the algorithm has no replay buffer, the buffers differ in observation
                or action space, dtype or number of envs (both sides named), or nothing to load.
        """
        from stable_baselines3.common.save_util import load_from_pkl

        if not self.off_policy:
            raise TransferError(f"{self.algo} has no replay buffer")
        src = load_from_pkl(str(path))
        dst = model.replay_buffer
        for label, a, b in (
            ("observation space", src.observation_space, dst.observation_space),
            ("action space", src.action_space, dst.action_space),
            ("observation dtype", src.observations.dtype, dst.observations.dtype),
            ("number of envs", src.n_envs, dst.n_envs),
            ("buffer class", type(src).__name__, type(dst).__name__),
        ):
            if not _same(a, b):
                fix = (
                    "give the pair a mapping, or transfer weights instead"
                    if "space" in label or "dtype" in label
                    else "give the source and the target the same hyperparameters"
                )
                raise TransferError(
                    f"the source replay buffer's {label} is {a}, the target's is {b}: refusing "
                    f"to mix them ({fix})"
                )
        rows = src.buffer_size if src.full else src.pos
        n = int(min(rows, dst.buffer_size) * fraction)
        if n <= 0:
            raise TransferError(f"no transition to load (source holds {rows}, fraction {fraction})")
        order = (np.arange(src.pos - n, src.pos)) % src.buffer_size  # the n most recent, in order
        for name in (
            "observations",
            "next_observations",
            "actions",
            "rewards",
            "dones",
            "timeouts",
        ):
            if getattr(src, name, None) is not None and getattr(dst, name, None) is not None:
                getattr(dst, name)[:n] = getattr(src, name)[order]
        dst.pos = n % dst.buffer_size
        dst.full = n == dst.buffer_size
        return {
            "transitions_loaded": n * dst.n_envs,
            "source_transitions": rows * src.n_envs,
            "target_capacity": dst.buffer_size * dst.n_envs,
        }

    def relabel_rewards(
        self, model: BaseAlgorithm, n: int, reward_fn: Callable[..., np.ndarray]
    ) -> int:
        """Recompute the rewards of the first ``n`` rows of the replay buffer with
        ``reward_fn(obs, actions, next_obs, terminated) -> rewards`` (arrays [n, n_envs, ...]);
        return how many transitions were relabelled."""
        buf = model.replay_buffer
        terminated = buf.dones[:n] * (1.0 - buf.timeouts[:n])
        buf.rewards[:n] = reward_fn(
            buf.observations[:n],
            buf.actions[:n],
            buf.next_observations[:n],
            terminated.astype(bool),
        )
        return n * buf.n_envs

    def describe_start(self, hyperparams: Mapping[str, Any]) -> str:
        """Warm-up and exploration of a run with these (raw) hyperparameters, in words."""
        if not self.off_policy:
            return "no warm-up (on-policy)"
        return f"`learning_starts` = {self._param(hyperparams, 'learning_starts')}"

    def _param(self, hyperparams: Mapping[str, Any], name: str) -> Any:
        """``hyperparams[name]``, or the SB3 class's default."""
        if name in hyperparams:
            return hyperparams[name]
        return inspect.signature(self.algo_class.__init__).parameters[name].default

    def transfer_overrides(self, hyperparams: Mapping[str, Any]) -> dict[str, Any]:
        """Hyperparameter overrides for an arm that starts from transferred weights.

        Default: none. Off-policy adapters use this to keep exploration from erasing the jumpstart
        (uniform random warm-up actions, epsilon restarting at 1.0); the choice is recorded in
        transfer_report.json.
        """
        return {}
