"""pi-reuse exploration (Fernandez & Veloso 2006, "Probabilistic policy reuse in a reinforcement
learning agent", AAMAS): with probability psi the source's greedy action is taken instead of the
learner's, psi multiplied by ``decay`` after each step of an episode and reset at its start. The
source's actions are target env steps (they count toward t) and are stored in the replay buffer
like the learner's, so the method needs an off-policy learner.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.sb3 import override_action_sampling, raw_last_observations
from rl_transfer.errors import TransferError
from rl_transfer.methods.base import Knob, TargetRun, TransferMethod


class PolicyReuse:
    """The behaviour override of one model: per env, with probability psi the source's greedy
    action replaces the learner's, in the env and in the replay buffer (scaled to [-1, 1] for
    Box spaces, as SB3 stores actions). The source acts on the raw observations (under
    ``VecNormalize``, SB3's ``_last_original_obs``), which it normalizes with its own statistics.

    Attributes:
        stats: ``{"source_actions", "learner_actions"}`` counts so far.

    Call :meth:`episode_done` with each step's ``dones`` (bool array ``[n_envs]``) and
    :meth:`remove` before saving the model.
    """

    def __init__(self, model: Any, source: Any, act: Any, psi: float, decay: float, seed: int):
        self.psi, self.decay = float(psi), float(decay)
        self.rng = np.random.default_rng(seed)
        self.probs = np.full(model.n_envs, self.psi)
        self.stats = {"source_actions": 0, "learner_actions": 0}
        box = isinstance(model.action_space, gymnasium.spaces.Box)

        def sample(original: Any, learning_starts: int, action_noise: Any, n_envs: int) -> Any:
            action, buffer_action = original(learning_starts, action_noise, n_envs)
            use = self.rng.random(n_envs) < self.probs
            if use.any():
                src = np.asarray(act(source, raw_last_observations(model)))
                action, buffer_action = np.array(action), np.array(buffer_action)
                action[use] = src[use]
                buffer_action[use] = model.policy.scale_action(src)[use] if box else src[use]
            self.stats["source_actions"] += int(use.sum())
            self.stats["learner_actions"] += int((~use).sum())
            self.probs[:] *= self.decay
            return action, buffer_action

        self.remove = override_action_sampling(model, sample)

    def episode_done(self, dones: np.ndarray) -> None:
        self.probs[np.asarray(dones, dtype=bool)] = self.psi


class _EpisodeEnds(BaseCallback):
    def __init__(self, reuse: PolicyReuse) -> None:
        super().__init__()
        self.reuse = reuse

    def _on_step(self) -> bool:
        self.reuse.episode_done(self.locals["dones"])
        return True


class Reuse(TransferMethod):
    name = "reuse"
    doc = (
        "pi-reuse exploration (Fernandez & Veloso 2006): with probability psi the source's "
        "greedy action is taken instead of the learner's, psi *= decay after each step of "
        "an episode; those steps count toward t and are stored like the learner's"
    )
    reference = "Fernandez & Veloso 2006, Probabilistic policy reuse (AAMAS)"
    moves = "pi_src actions, prob. psi"
    source_acts = True
    knobs = {
        "psi": Knob(
            1.0,
            0.0,
            1.0,
            "probability of the source's action at an episode's first step",
            inert=0.0,
        ),
        "decay": Knob(0.95, 0.0, 1.0, "factor on psi after each step"),
    }

    def missing(self, adapter: Any) -> list[str]:
        return [] if adapter.off_policy else ["off-policy learning"]

    def before_learning(self, run: TargetRun) -> tuple[dict[str, Any], list[BaseCallback]]:
        self.hook = PolicyReuse(
            run.model, run.source, run.adapter.act, run.knobs["psi"], run.knobs["decay"], run.seed
        )
        return {}, [_EpisodeEnds(self.hook)]

    def after_learning(self, run: TargetRun, steps: int) -> dict[str, Any]:
        self.hook.remove()  # the saved model is plain SB3
        if not self.hook.stats["source_actions"]:
            raise TransferError(
                f"reuse: no source action in {steps} steps; raise its knobs or --target-steps"
            )
        return {
            "reuse": {
                "psi": run.knobs["psi"],
                "decay": run.knobs["decay"],
                **self.hook.stats,
                "counting": "the source's actions are target env steps and count toward t",
            }
        }
