"""PPO adapter (Schulman et al. 2017; stable-baselines3 ``PPO`` with ``MlpPolicy``).

Parts of the default ``ActorCriticPolicy`` (separate policy and value MLPs, no shared trunk):

- ``policy``: ``mlp_extractor.policy_net`` + ``action_net`` (+ ``log_std`` for Box actions)
- ``value``: ``mlp_extractor.value_net`` + ``value_net``
- ``trunk``: the hidden layers of both (``mlp_extractor``); the output heads are ``action_net``,
  ``value_net`` (and ``log_std``)

State value for shaping: the critic, ``policy.predict_values``. Kickstarting: :class:`Kickstart`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm

from agents.base import AgentAdapter


class PPOAdapter(AgentAdapter):
    algo = "ppo"
    algo_class = PPO
    parts = {
        "policy": ("mlp_extractor.policy_net.", "action_net.", "log_std"),
        "value": ("mlp_extractor.value_net.", "value_net."),
        "trunk": ("mlp_extractor.",),
    }

    kickstart = True

    def install_kickstart(
        self, model: BaseAlgorithm, source: BaseAlgorithm, weight: float, weight_anneal: float
    ) -> Kickstart:
        """Add the kickstarting loss toward ``source``'s policy to ``model``'s updates; call
        ``.remove()`` on the result after training (before saving)."""
        return Kickstart(model, source, weight, weight_anneal)

    def state_value(self, model: BaseAlgorithm, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            values = model.policy.predict_values(model.policy.obs_to_tensor(obs)[0])
        return values.numpy().reshape(-1)


class Kickstart:
    """Kickstarting (Schmitt et al. 2018, "Kickstarting Deep Reinforcement Learning"): the
    student's loss gains ``lambda_t * H(pi_teacher(.|s), pi_student(.|s))`` over the states of
    each minibatch, with lambda_t = ``weight * max(0, 1 - t / (weight_anneal * budget))``.

    The cross-entropy term is computed as KL(pi_teacher || pi_student) (same gradient with
    respect to the student; 0 when the two agree): Categorical for Discrete actions, the sum
    over action dimensions of the diagonal Gaussians' KL for Box actions.

    How it enters SB3's ``train()`` without copying it: PPO and A2C call
    ``policy.evaluate_actions(obs, actions)``, then ``policy.optimizer.zero_grad()``, then
    ``loss.backward()``, clip the gradient norm and step. The hook keeps the minibatch's
    observations and the learner's distribution built in ``evaluate_actions`` and, right after
    ``zero_grad``, back-propagates
    ``lambda_t * KL`` so that the gradient clipped and applied is that of
    ``loss + lambda_t * KL``. :meth:`remove` restores both methods.

    Attributes:
        updates: gradient steps that carried the kickstarting term (lambda_t > 0).
        first_kl, last_kl: mean KL (nats) over the minibatch of the first / latest such step.
        last_weight: lambda_t of the latest gradient step.
    """

    def __init__(
        self, model: BaseAlgorithm, teacher: BaseAlgorithm, weight: float, weight_anneal: float
    ) -> None:
        self.model, self.teacher = model, teacher
        self.weight, self.weight_anneal = float(weight), float(weight_anneal)
        self.updates = 0
        self.first_kl: float | None = None
        self.last_kl: float | None = None
        self.last_weight = float(weight)
        self._obs: torch.Tensor | None = None
        self._student: Any = None
        policy = model.policy
        self._evaluate_actions = policy.evaluate_actions
        self._zero_grad = policy.optimizer.zero_grad
        policy.evaluate_actions = self._remember
        policy.optimizer.zero_grad = self._zero_grad_then_kickstart

    def current_weight(self) -> float:
        """lambda_t, with t the step counter at the start of the rollout being learned from
        (``num_timesteps - n_steps * n_envs``), so the first update of a run has lambda = weight.
        """
        model = self.model
        t = max(0, model.num_timesteps - model.n_steps * model.n_envs)
        budget = max(1.0, self.weight_anneal * float(model._total_timesteps))
        return self.weight * max(0.0, 1.0 - t / budget)

    def _remember(self, obs: torch.Tensor, actions: torch.Tensor):  # noqa: ANN202
        """SB3's ``evaluate_actions``, keeping the minibatch's observations and the learner's
        action distribution it builds (with its graph), so the KL needs no second forward."""
        policy = self.model.policy

        def capture(latent_pi: torch.Tensor) -> Any:
            self._student = type(policy)._get_action_dist_from_latent(policy, latent_pi)
            return self._student

        policy._get_action_dist_from_latent = capture
        try:
            out = self._evaluate_actions(obs, actions)
        finally:
            del policy._get_action_dist_from_latent
        self._obs = obs
        return out

    def _zero_grad_then_kickstart(self, set_to_none: bool = True) -> None:
        self._zero_grad(set_to_none=set_to_none)
        obs, student, self._obs, self._student = self._obs, self._student, None, None
        weight = self.current_weight()
        self.last_weight = weight
        logger = getattr(self.model, "_logger", None)  # set by learn()
        if logger is not None:
            logger.record("kickstart/weight", weight)
        if obs is None or weight <= 0.0:
            return
        with torch.no_grad():
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

    def remove(self) -> None:
        """Restore the policy's own ``evaluate_actions`` and the optimizer's ``zero_grad``."""
        vars(self.model.policy).pop("evaluate_actions", None)
        vars(self.model.policy.optimizer).pop("zero_grad", None)

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
