"""Potential-based reward shaping with the source's value as potential (Ng, Harada & Russell
1999): r' = r + scale * (gamma * Phi(s') - Phi(s)), with Phi(s) = V_src(s) and Phi = 0 at a
terminal state (``terminated``; a time-limit truncation keeps Phi(s')). gamma is the learner's.
Shaping of this form leaves the optimal policies unchanged. Applied to the training envs only;
evaluation returns are unshaped.

The wrapper goes outside SB3's Monitor (``AgentAdapter.make_vec_env``), so TensorBoard's
``rollout/ep_rew_mean`` stays the task's own (unshaped) return, as in every other arm; the shaped
return the learner optimises is logged as ``rollout/ep_shaped_rew_mean`` by
:class:`ShapedReturnLog`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.sb3 import stats_window_size
from rl_transfer.methods.base import Knob, TargetRun, TransferMethod, Wrapper

Potential = Callable[[np.ndarray], float]


class PotentialShaping(gymnasium.Wrapper):
    """Adds ``scale * (gamma * Phi(s') - Phi(s))`` to each reward; the term is also in
    ``info["shaping"]`` and the unshaped reward in ``info["reward_unshaped"]``. At an episode's
    last step (terminated or truncated), ``info["shaped_episode"] = {"r": shaped return,
    "l": length}``.

    Args:
        env: the training env.
        potential: Phi, one observation -> float (the source's value estimate).
        gamma: the learner's discount factor.
        scale: factor on the shaping term.
    """

    def __init__(
        self, env: gymnasium.Env, potential: Potential, gamma: float, scale: float = 1.0
    ) -> None:
        super().__init__(env)
        self.potential, self.gamma, self.scale = potential, gamma, scale
        self._phi = 0.0
        self._return, self._length = 0.0, 0

    def reset(self, **kwargs: Any):  # noqa: ANN201
        obs, info = self.env.reset(**kwargs)
        self._phi = self.potential(obs)
        self._return, self._length = 0.0, 0
        return obs, info

    def step(self, action: Any):  # noqa: ANN201
        obs, reward, terminated, truncated, info = self.env.step(action)
        phi_next = 0.0 if terminated else self.potential(obs)
        term = self.scale * (self.gamma * phi_next - self._phi)
        self._phi = phi_next
        shaped = float(reward) + term
        self._return += shaped
        self._length += 1
        info = {**info, "shaping": term, "reward_unshaped": reward}
        if terminated or truncated:
            info["shaped_episode"] = {"r": self._return, "l": self._length}
        return obs, shaped, terminated, truncated, info


class ShapedReturnLog(BaseCallback):
    """Logs ``rollout/ep_shaped_rew_mean``: the mean shaped return of the last episodes (SB3's
    window, ``stats_window_size``, 100 by default), next to SB3's ``rollout/ep_rew_mean`` (the
    unshaped return) and written with it.

    Recorded at each episode end (off-policy learners write their logs right after one) and at
    each rollout's end (on-policy learners write theirs after the rollout).
    """

    def __init__(self) -> None:
        super().__init__()
        self.returns: deque[float] = deque()

    def _on_training_start(self) -> None:
        self.returns = deque(maxlen=stats_window_size(self.model))

    def _record(self) -> None:
        if self.returns:
            self.logger.record("rollout/ep_shaped_rew_mean", float(np.mean(self.returns)))

    def _on_step(self) -> bool:
        ended = [i["shaped_episode"]["r"] for i in self.locals["infos"] if "shaped_episode" in i]
        if ended:
            self.returns.extend(ended)
            self._record()
        return True

    def _on_rollout_end(self) -> None:
        self._record()


class RewardShaping(TransferMethod):
    """Potential-based reward shaping with the source's value estimate as the potential."""

    name = "shaping"
    doc = (
        "reward + scale * (gamma * V_src(s') - V_src(s)), V_src(terminal) = 0, on "
        "the training envs (evaluation is unshaped)"
    )
    reference = "Ng, Harada & Russell 1999, Policy invariance under reward transformations"
    moves = "V_src as shaping potential"
    knobs = {"scale": Knob(1.0, 0.0, 100.0, "factor on the shaping term", inert=0.0)}

    def missing(self, adapter: Any) -> list[str]:
        from agents.base import AgentAdapter

        cls = adapter if isinstance(adapter, type) else type(adapter)
        return [] if cls.state_value is not AgentAdapter.state_value else ["a state-value estimate"]

    def env_wrapper(self, run: TargetRun) -> Wrapper:
        adapter, source = run.adapter, run.source
        gamma = float(run.hyperparams.get("gamma", 0.99))
        scale = run.knobs["scale"]

        def potential(obs: Any) -> float:
            return float(adapter.state_value(source, obs[None])[0])

        return lambda env: PotentialShaping(env, potential, gamma, scale)

    def before_learning(self, run: TargetRun) -> tuple[dict[str, Any], list[BaseCallback]]:
        report = {
            "shaping": {
                "potential": "source's value estimate (adapter.state_value)",
                "gamma": float(run.hyperparams.get("gamma", 0.99)),
                "scale": run.knobs["scale"],
                "terminal_potential": 0.0,
            }
        }
        return report, [ShapedReturnLog()]
