"""Policy evaluation on fixed episodes, batched across envs, and the evaluation callback.

SB3's ``evaluate_policy`` takes no seed and ``EvalCallback`` never evaluates at t = 0, so
neither gives a jumpstart.
Here every evaluation runs the same episodes: env ``j`` is reset with evaluation seed ``j`` of
:func:`envs.evaluation_seeds`, the policy acts deterministically, and one forward pass serves
all envs still running.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import gymnasium
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import TensorBoardOutputFormat

from envs import evaluation_seeds
from rl_transfer.io import atomic_write


class Evaluator:
    """Runs ``n_episodes`` fixed episodes (one per env, in lockstep) of a model's greedy policy.

    Args:
        env_fn: builds one evaluation env (the target task).
        n_episodes: number of episodes per evaluation, one env each.
        seeds: reset seeds, shape ``[n_episodes]``; default :func:`envs.evaluation_seeds`.
        act: ``act(model, obs[n, ...]) -> actions[n]``, greedy actions (an adapter's ``act``);
            default: ``model.predict(obs, deterministic=True)``.
    """

    def __init__(
        self,
        env_fn: Callable[[], gymnasium.Env],
        n_episodes: int,
        seeds: np.ndarray | None = None,
        act: Callable[[BaseAlgorithm, np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.seeds = evaluation_seeds(n_episodes) if seeds is None else np.asarray(seeds)
        self.envs = [env_fn() for _ in range(n_episodes)]
        self.act = act or (lambda model, obs: model.predict(obs, deterministic=True)[0])
        self.seconds = 0.0
        """Wall time spent in :meth:`evaluate` so far (s)."""

    def evaluate(self, model: BaseAlgorithm) -> tuple[np.ndarray, np.ndarray]:
        """Returns ``(returns, lengths)``, each shape ``[n_episodes]``: undiscounted episode
        return and number of env steps of each fixed episode."""
        started = time.perf_counter()
        n = len(self.envs)
        obs = np.stack([env.reset(seed=int(s))[0] for env, s in zip(self.envs, self.seeds)])
        returns = np.zeros(n)
        lengths = np.zeros(n, dtype=np.int64)
        active = np.ones(n, dtype=bool)
        while active.any():
            idx = np.flatnonzero(active)
            actions = self.act(model, obs[idx])
            for a, i in zip(actions, idx):
                o, r, terminated, truncated, _ = self.envs[i].step(a)
                obs[i] = o
                returns[i] += float(r)
                lengths[i] += 1
                if terminated or truncated:
                    active[i] = False
        self.seconds += time.perf_counter() - started
        return returns, lengths

    def close(self) -> None:
        for env in self.envs:
            env.close()


class EvalLog:
    """Evaluations of one run, in stable-baselines3's ``evaluations.npz`` layout."""

    def __init__(self) -> None:
        self.timesteps: list[int] = []
        self.results: list[np.ndarray] = []
        self.ep_lengths: list[np.ndarray] = []

    def add(self, t: int, returns: np.ndarray, lengths: np.ndarray) -> None:
        self.timesteps.append(int(t))
        self.results.append(returns)
        self.ep_lengths.append(lengths)

    def save(self, path: Path) -> None:
        """Write ``timesteps`` [n_evals], ``results`` [n_evals, n_episodes], ``ep_lengths``
        [n_evals, n_episodes] atomically."""
        atomic_write(
            path,
            lambda p: np.savez(
                p,
                timesteps=np.asarray(self.timesteps, dtype=np.int64),
                results=np.asarray(self.results, dtype=np.float64),
                ep_lengths=np.asarray(self.ep_lengths, dtype=np.int64),
            ),
        )


def tb_writer(model: BaseAlgorithm):  # noqa: ANN201  (torch SummaryWriter)
    """The TensorBoard SummaryWriter of ``model``'s SB3 logger (None when it has none)."""
    for fmt in model.logger.output_formats:
        if isinstance(fmt, TensorBoardOutputFormat):
            return fmt.writer
    return None


def record_eval(model: BaseAlgorithm, log: EvalLog, evaluator: Evaluator, t: int) -> float:
    """Evaluate ``model``, append to ``log`` at target step ``t``, write ``eval/mean_reward``
    and ``eval/mean_ep_length`` to TensorBoard at step ``t``; return the mean return."""
    returns, lengths = evaluator.evaluate(model)
    log.add(t, returns, lengths)
    writer = tb_writer(model)
    if writer is not None:
        writer.add_scalar("eval/mean_reward", float(returns.mean()), t)
        writer.add_scalar("eval/mean_ep_length", float(lengths.mean()), t)
        writer.flush()
    return float(returns.mean())


class UpdateBoundaryCallback(BaseCallback):
    """Calls :meth:`at_boundary` with the step reached at the first update boundary at or after
    each multiple of ``every`` env steps (counted across all training envs), from ``first`` on.

    An update boundary is the start of a rollout (``on_rollout_start``): stable-baselines3's
    ``learn`` loops (on- and off-policy, 2.x) call ``collect_rollouts``, which calls
    ``on_rollout_start`` before its first env step, and update the networks (``train()``) after
    it returns; off-policy learners before ``learning_starts`` skip the update, and with
    ``train_freq`` in episodes a rollout is that many episodes. So the model seen at step ``t``
    is the one after every update of the steps before ``t``; anything inside a rollout would miss
    the update of the steps already collected (for PPO/A2C, the whole rollout's).
    """

    def __init__(self, every: int, first: int) -> None:
        super().__init__()
        self.every, self.next = every, first

    def at_boundary(self, t: int) -> None:
        raise NotImplementedError

    def _on_rollout_start(self) -> None:
        t = int(self.model.num_timesteps)
        if t < self.next:
            return
        self.at_boundary(t)
        while self.next <= t:
            self.next += self.every

    def _on_step(self) -> bool:
        return True


class PeriodicEvalCallback(UpdateBoundaryCallback):
    """Evaluates at the first update boundary at or after each multiple of ``eval_every`` env
    steps (:class:`UpdateBoundaryCallback`), recorded at the step actually reached there.

    The evaluation at t = 0 is done by the caller before ``learn``, the last one by the caller
    after ``learn`` returns (after the final update). ``on_progress(t, mean)`` is called after
    each evaluation (progress display).
    """

    def __init__(
        self,
        evaluator: Evaluator,
        log: EvalLog,
        eval_every: int,
        on_progress: Callable[[int, float], None] | None = None,
    ) -> None:
        super().__init__(eval_every, first=eval_every)
        self.evaluator = evaluator
        self.log = log
        self.on_progress = on_progress

    def at_boundary(self, t: int) -> None:
        mean = record_eval(self.model, self.log, self.evaluator, t)
        if self.on_progress is not None:
            self.on_progress(t, mean)
