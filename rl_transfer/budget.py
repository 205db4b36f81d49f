"""The step budget of a target run: requested steps, rounded to whole rollouts as SB3 learns them.

stable-baselines3's ``learn(total)`` (2.x, ``OnPolicyAlgorithm.learn`` and
``OffPolicyAlgorithm.learn``) collects whole rollouts while ``num_timesteps < total``: a run takes
``ceil(total / R) * R`` env steps, R = ``n_steps * n_envs`` (PPO, A2C) or ``train_freq * n_envs``
(DQN, SAC, TD3 with ``train_freq`` in steps). Every arm of a comparison is given the same rounded
budget (``learn`` is called with it, so the schedules end exactly at progress 0), and no arm goes
past it:

- runs whose every step is the learner's (scratch and most methods) end exactly at it;
- steps that are not the learner's (``jsrl``'s guide) are capped so that a rollout never ends past
  it, and the run stops at the first update boundary from which a whole rollout no longer fits;
  such a run ends at most R - 1 steps short of the budget;
- with ``train_freq`` in episodes (rollouts of varying length) there is no rounding: the run stops
  at the requested step, and the steps of its last, unfinished rollout get no update.
"""

from __future__ import annotations

from dataclasses import dataclass

from stable_baselines3.common.callbacks import BaseCallback


@dataclass(frozen=True)
class StepBudget:
    """Attributes:
    requested: target env steps asked for.
    rollout: env steps (all training envs) between two updates; None when ``train_freq``
        counts episodes.
    n_envs: number of training envs (env steps per ``env.step`` of the vectorised env).
    """

    requested: int
    rollout: int | None
    n_envs: int

    @property
    def steps(self) -> int:
        """The budget in force: ``requested`` rounded up to whole rollouts (env steps)."""
        if self.rollout is None:
            return self.requested
        return -(-self.requested // self.rollout) * self.rollout

    def describe(self, taken: int) -> str | None:
        """How ``taken`` steps came from ``requested`` (for run.json); None when equal."""
        if taken == self.requested:
            return None
        if self.rollout is None:
            how = "train_freq counts episodes: the run stops at the requested step"
        else:
            how = (
                f"SB3 learns in whole rollouts of {self.rollout} env steps "
                f"(between two updates): the budget in force is {self.requested} rounded up "
                f"to {self.steps}, the same for every arm"
            )
        if taken < self.steps:
            how += (
                f"; {self.steps - taken} steps short because steps other than the learner's "
                "(jsrl's guide) count toward t and the run stops at the last update boundary "
                "from which a whole rollout fits in the budget"
            )
        return f"{self.requested} steps requested, {taken} taken: {how}"


class BudgetReached(Exception):
    """Raised by :class:`BudgetStop` at an update boundary to end ``learn`` there."""


class BudgetStop(BaseCallback):
    """Ends ``learn`` before the run would pass ``budget.steps``.

    At the start of a rollout (an update boundary: the previous rollout's update is done), if a
    whole rollout no longer fits it raises :class:`BudgetReached` (the caller catches it; no env
    step is wasted and no update is lost). With ``train_freq`` in episodes it stops ``learn`` at
    the step that reaches the budget (``on_step`` returns False).
    """

    def __init__(self, budget: StepBudget) -> None:
        super().__init__()
        self.budget = budget

    def _on_rollout_start(self) -> None:
        rollout = self.budget.rollout
        if rollout is not None and self.model.num_timesteps + rollout > self.budget.steps:
            raise BudgetReached

    def _on_step(self) -> bool:
        return self.budget.rollout is not None or self.model.num_timesteps < self.budget.steps
