"""Jump-start RL (Uchendu et al. 2023): a guide policy (the source's) acts for the first h steps of
every training episode, then the learner takes over; h is annealed from H to 0.

The learner never sees the guide's steps (its episode starts where the guide stops), so its own
transitions stay on-policy for PPO and A2C. The guide's steps are target env steps all the same:
they are added to the learner's step counter, so they count toward t (the budget, the evaluation
grid and every metric). They are capped so that the run never passes its budget
(:class:`rl_transfer.budget.StepBudget`): before each env step, h is at most the budget left after
the steps the learner will still take in the current rollout, shared among the training envs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.sb3 import add_env_steps
from rl_transfer.budget import StepBudget
from rl_transfer.errors import TransferError
from rl_transfer.methods.base import Knob, TargetRun, TransferMethod, Wrapper

Guide = Callable[[np.ndarray], Any]


class GuideRollIn(gymnasium.Wrapper):
    """On reset, the guide acts for ``horizon`` steps (restarting the episode if it ends) and the
    learner starts from the state reached.

    Attributes:
        horizon: h, the guide's steps per episode (set by :class:`JSRLCallback`).
        pending: guide steps taken and not yet counted by the learner.
        last_guide_actions: the actions the guide took in the latest roll-in.
    """

    def __init__(self, env: gymnasium.Env, guide: Guide, horizon: int) -> None:
        super().__init__(env)
        self.guide, self.horizon = guide, int(horizon)
        self.pending = 0
        self.last_guide_actions: list[Any] = []

    def reset(self, **kwargs: Any):  # noqa: ANN201
        obs, info = self.env.reset(**kwargs)
        self.last_guide_actions = []
        for _ in range(self.horizon):
            action = self.guide(obs)
            self.last_guide_actions.append(action)
            obs, _, terminated, truncated, info = self.env.step(action)
            self.pending += 1
            if terminated or truncated:  # the guide finished the episode: start a new one
                obs, info = self.env.reset()
                self.last_guide_actions = []
        return obs, info

    def set_horizon(self, horizon: int) -> None:
        self.horizon = int(horizon)

    def take_guide_steps(self) -> int:
        n, self.pending = self.pending, 0
        return n


class JSRLCallback(BaseCallback):
    """Anneals h = H * max(0, 1 - t / (anneal * budget)), caps it by the budget left, and adds
    the guide's steps to the learner's step counter. ``guide_steps`` totals them.

    The cap, before each env step of the vectorised env: h <= (budget - t - L) // n_envs, L the
    env steps the learner still takes in the current rollout, this step included (each env that
    resets during the step takes at most h guide steps). So no rollout ends past the budget; the
    run then stops at the first update boundary from which a whole rollout no longer fits
    (:class:`rl_transfer.budget.BudgetStop`). The guide's roll-in at the first reset (inside
    ``learn``'s setup) is capped the same way by :meth:`initial_horizon`.
    """

    def __init__(self, horizon: int, anneal: float, budget: StepBudget) -> None:
        super().__init__()
        self.horizon, self.anneal, self.budget = horizon, anneal, budget
        self.guide_steps = 0
        self._learner_steps = 0  # env steps of the learner in the current rollout

    def _learner_steps_left(self) -> int:
        """Env steps the learner still takes in the current rollout, the next one included."""
        if self.budget.rollout is None:  # train_freq in episodes: at least the next step
            return self.budget.n_envs
        return max(self.budget.n_envs, self.budget.rollout - self._learner_steps)

    def _current(self) -> int:
        t = self.model.num_timesteps
        anneal = max(1.0, self.anneal * self.budget.steps)
        annealed = int(round(self.horizon * max(0.0, 1.0 - t / anneal)))
        room = (self.budget.steps - t - self._learner_steps_left()) // self.budget.n_envs
        return max(0, min(annealed, room))

    def initial_horizon(self) -> int:
        """h for the first reset of the training envs (t = 0, the first rollout ahead)."""
        first = self.budget.rollout or self.budget.n_envs
        room = (self.budget.steps - first) // self.budget.n_envs
        return max(0, min(self.horizon, room))

    def _count(self) -> None:
        taken = int(sum(self.training_env.env_method("take_guide_steps")))
        if taken:
            self.guide_steps += taken
            add_env_steps(self.model, taken)

    def _on_training_start(self) -> None:
        self._count()  # the roll-in of the first reset, done in learn's setup

    def _on_rollout_start(self) -> None:
        self._learner_steps = 0
        self.training_env.env_method("set_horizon", self._current())

    def _on_step(self) -> bool:
        self._learner_steps += self.budget.n_envs
        self._count()
        self.training_env.env_method("set_horizon", self._current())
        return True


class JumpStartRL(TransferMethod):
    """The source's greedy policy is the guide of jump-start RL."""

    name = "jsrl"
    doc = (
        "jump-start RL: the source's greedy policy acts for the first h steps of each "
        "training episode, h annealed from H to 0; its steps count toward t"
    )
    reference = "Uchendu et al. 2023, Jump-Start Reinforcement Learning (ICML)"
    moves = "pi_src acts first h steps"
    source_acts = True
    knobs = {
        "horizon": Knob(100.0, 1.0, 10_000.0, "H, the guide's steps per episode at t = 0"),
        "anneal": Knob(0.5, 0.01, 1.0, "share of the budget over which h falls to 0"),
    }

    def env_wrapper(self, run: TargetRun) -> Wrapper:
        adapter, source = run.adapter, run.source

        def guide(obs: Any) -> Any:
            return adapter.act(source, obs[None])[0]

        # h is set in before_learning, once the budget is known, before the first reset
        return lambda env: GuideRollIn(env, guide, 0)

    def before_learning(self, run: TargetRun) -> tuple[dict[str, Any], list[BaseCallback]]:
        budget = run.budget
        assert budget is not None and run.model is not None
        if budget.rollout is not None and budget.steps - budget.rollout < budget.n_envs:
            raise TransferError(
                f"jsrl: the budget of {budget.steps} steps is one rollout of the learner's "
                f"({budget.rollout} env steps between updates), so it leaves the guide no step; "
                f"raise --target-steps above {budget.rollout}"
            )
        self.callback = JSRLCallback(int(run.knobs["horizon"]), run.knobs["anneal"], budget)
        run.model.env.env_method("set_horizon", self.callback.initial_horizon())
        return {}, [self.callback]

    def after_learning(self, run: TargetRun, steps: int) -> dict[str, Any]:
        guide_steps = self.callback.guide_steps
        if not guide_steps:
            raise TransferError(
                f"jsrl: the guide took no step in {steps} steps; raise its knobs or --target-steps"
            )
        return {
            "jsrl": {
                "horizon": int(run.knobs["horizon"]),
                "anneal": run.knobs["anneal"],
                "guide_steps": guide_steps,
                "counting": "guide steps are target env steps and count toward t; h is capped "
                "so that the run never passes its budget",
            }
        }
