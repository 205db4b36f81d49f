"""Replay-buffer transfer: the source's stored transitions seed the target learner's replay
buffer (``learning_starts`` 0); ``relabel=1`` recomputes their rewards with the target's reward
function. Off-policy learners only. Experience transfer in the sense of Lazaric 2012 ("Transfer
in reinforcement learning: a framework and a survey").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rl_transfer.errors import TransferError
from rl_transfer.methods.base import Knob, TargetRun, TransferMethod

REPLAY_FILE = "replay_buffer.pkl"
"""The replay buffer in a pretrained source's folder (SB3's pickle)."""


class ReplayTransfer(TransferMethod):
    name = "replay"
    doc = "the source's replay buffer seeds the target's (learning_starts 0)"
    reference = "Lazaric 2012, Transfer in reinforcement learning: a framework and a survey"
    moves = "replay buffer"
    knobs = {
        "fraction": Knob(
            1.0, 0.0, 1.0, "share of the source's transitions loaded (the most recent)", inert=0.0
        ),
        "relabel": Knob(
            0.0,
            0.0,
            1.0,
            "1: recompute the loaded rewards with the target's reward function",
            flag=True,
        ),
    }

    def missing(self, adapter: Any) -> list[str]:
        return [] if adapter.off_policy else ["a replay buffer"]

    def hyperparam_overrides(self, adapter: Any, hyperparams: Mapping[str, Any]) -> dict[str, Any]:
        return {"learning_starts": 0}  # the buffer already holds the source's transitions

    def models_problem(self, source: Any, target: Any, knobs: Mapping[str, Any]) -> str | None:
        for label, a, b in (
            ("number of envs (n_envs)", source.n_envs, target.n_envs),
            ("replay buffer class", type(source.replay_buffer), type(target.replay_buffer)),
        ):
            if a != b:
                name = lambda x: getattr(x, "__name__", x)  # noqa: E731
                return (
                    f"replay loads the source's replay buffer, and its {label} is {name(a)}, "
                    f"this arm's {name(b)}: give the source and this arm the same value"
                )
        return None

    def before_learning(self, run: TargetRun) -> tuple[dict[str, Any], list[Any]]:
        assert run.source_dir is not None and run.model is not None
        path = run.source_dir / REPLAY_FILE
        if not path.is_file():
            raise TransferError(
                f"source {run.source_dir} has no replay buffer (imported models bring none)"
            )
        adapter, model = run.adapter, run.model
        info = adapter.load_replay(model, path, run.knobs["fraction"])
        info["relabelled"] = 0
        if run.knobs["relabel"]:
            target = run.pair.target
            reward_fn = target.env_family.reward_fn
            if reward_fn is None:
                raise TransferError(
                    f"replay.relabel: family {target.family!r} has no "
                    "reward function to relabel with"
                )
            params = target.env_family.validate(target.params)
            rows = info["transitions_loaded"] // model.replay_buffer.n_envs
            info["relabelled"] = adapter.relabel_rewards(
                model, rows, lambda o, a, o2, term: reward_fn(params, o, a, o2, term)
            )
        info["mix"] = (
            "source transitions fill the start of the target's buffer and are "
            "overwritten first (FIFO) once it is full"
        )
        return {"replay": info}, []
