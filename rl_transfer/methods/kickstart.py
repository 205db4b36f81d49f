"""Kickstarting (Schmitt et al. 2018, "Kickstarting Deep Reinforcement Learning"): the learner's
loss gains ``lambda_t * KL(pi_source(.|s) || pi_target(.|s))`` over the states of each minibatch,
lambda_t annealed to 0; the learner's weights start fresh. PPO and A2C (an on-policy
actor-critic loss to add the term to).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

from agents.sb3 import (
    current_logger,
    has_actor_critic_update,
    hook_actor_critic_update,
    total_timesteps,
)
from rl_transfer.errors import TransferError
from rl_transfer.methods.base import Knob, TargetRun, TransferMethod


class KickstartLoss:
    """The kickstarting term on one model's updates: ``lambda_t * H(pi_teacher(.|s),
    pi_student(.|s))`` over the states of each minibatch, with
    lambda_t = ``weight * max(0, 1 - t / (weight_anneal * budget))``.

    The cross-entropy term is computed as KL(pi_teacher || pi_student) (same gradient with
    respect to the student; 0 when the two agree): Categorical for Discrete actions, the sum
    over action dimensions of the diagonal Gaussians' KL for Box actions. It is
    back-propagated right after SB3's ``zero_grad`` and before SB3's ``loss.backward()``
    (:func:`agents.sb3.hook_actor_critic_update`), so the gradient clipped and applied is that of
    ``loss + lambda_t * KL``; the learner's distribution is the one SB3 builds for its own loss
    (no second forward pass). :meth:`remove` restores SB3's methods.

    The teacher reads the minibatch's observations, the learner's inputs; ``teacher_inputs()``
    is entered around its forward pass (under ``VecNormalize`` with the source's statistics
    frozen, :meth:`rl_transfer.normalization.SourceInputs.bypass`: the observations are
    normalized already, exactly as the source's were).

    Attributes:
        updates: gradient steps that carried the term (lambda_t > 0).
        first_kl, last_kl: mean KL (nats) over the minibatch of the first / latest such step.
        last_weight: lambda_t of the latest gradient step.
    """

    def __init__(
        self,
        model: BaseAlgorithm,
        teacher: BaseAlgorithm,
        weight: float,
        weight_anneal: float,
        teacher_inputs: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
    ) -> None:
        self.model, self.teacher = model, teacher
        self.teacher_inputs = teacher_inputs
        self.weight, self.weight_anneal = float(weight), float(weight_anneal)
        self.updates = 0
        self.first_kl: float | None = None
        self.last_kl: float | None = None
        self.last_weight = float(weight)
        self._obs: torch.Tensor | None = None
        self._student: Any = None
        self.remove = hook_actor_critic_update(model, self._seen, self._add_term)

    def current_weight(self) -> float:
        """lambda_t, with t the step counter at the start of the rollout being learned from
        (``num_timesteps - n_steps * n_envs``), so the first update of a run has lambda = weight.
        """
        model = self.model
        t = max(0, model.num_timesteps - model.n_steps * model.n_envs)
        budget = max(1.0, self.weight_anneal * float(total_timesteps(model)))
        return self.weight * max(0.0, 1.0 - t / budget)

    def _seen(self, obs: torch.Tensor, student: Any) -> None:
        self._obs, self._student = obs, student

    def _add_term(self) -> None:
        obs, student, self._obs, self._student = self._obs, self._student, None, None
        weight = self.current_weight()
        self.last_weight = weight
        logger = current_logger(self.model)
        if logger is not None:
            logger.record("kickstart/weight", weight)
        if obs is None or weight <= 0.0:
            return
        with torch.no_grad(), self.teacher_inputs():
            teacher = self.teacher.policy.get_distribution(obs).distribution
        kl = torch.distributions.kl_divergence(teacher, student.distribution)
        kl = (kl.sum(-1) if kl.dim() > 1 else kl).mean()  # per state: summed over action dims
        # the graph is shared with SB3's loss, whose backward comes next: keep it
        (weight * kl).backward(retain_graph=True)
        value = float(kl.detach())
        self.first_kl = value if self.first_kl is None else self.first_kl
        self.last_kl = value
        self.updates += 1
        if logger is not None:
            logger.record_mean("kickstart/kl", value)

    def stats(self) -> dict[str, Any]:
        """What the term did (for transfer_report.json)."""
        return {
            "weight": self.weight,
            "weight_anneal": self.weight_anneal,
            "schedule": "weight * max(0, 1 - t / (weight_anneal * budget))",
            "loss": "KL(pi_source, pi_target) per state, mean over each minibatch",
            "updates_with_term": self.updates,
            "first_kl": self.first_kl,
            "last_kl": self.last_kl,
            "last_weight": self.last_weight,
        }


class Kickstart(TransferMethod):
    name = "kickstart"
    doc = (
        "kickstarting (Schmitt et al. 2018): the loss gains lambda_t * KL(pi_source, "
        "pi_target) over each minibatch's states, lambda_t annealed to 0; fresh weights"
    )
    reference = "Schmitt et al. 2018, Kickstarting Deep Reinforcement Learning (arXiv:1803.03835)"
    moves = "KL term toward pi_src"
    source_sees_learner_inputs = True
    knobs = {
        "weight": Knob(1.0, 0.0, 100.0, "lambda at t = 0", inert=0.0),
        "weight_anneal": Knob(0.5, 0.01, 1.0, "share of the budget over which lambda falls to 0"),
    }

    def missing(self, adapter: Any) -> list[str]:
        ok = has_actor_critic_update(adapter.algo_class)
        return [] if ok else ["an on-policy actor-critic loss (PPO's or A2C's update)"]

    def before_learning(self, run: TargetRun) -> tuple[dict[str, Any], list[BaseCallback]]:
        vn = run.model.get_vec_normalize_env()
        normalized = vn is not None and vn.norm_obs and run.source_inputs is not None
        self.loss = KickstartLoss(
            run.model,
            run.source,
            run.knobs["weight"],
            run.knobs["weight_anneal"],
            run.source_inputs.bypass if normalized else contextlib.nullcontext,
        )
        return {}, []

    def after_learning(self, run: TargetRun, steps: int) -> dict[str, Any]:
        self.loss.remove()  # the saved model is plain SB3
        if not self.loss.updates:
            raise TransferError(
                f"kickstart: no update carried the term in {steps} steps; raise --target-steps"
            )
        return {"kickstart": self.loss.stats()}
