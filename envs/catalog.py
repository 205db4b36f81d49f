"""The built-in catalog of env pairs.

R_min values were measured once with :func:`envs.pairs.random_policy_return` (1000 episodes,
reset seeds 0..999, action-space seed 0) and are stored here; ``tests/test_envs.py`` measures them
again and checks they match.
"""

from __future__ import annotations

from envs.pairs import Budget, EnvPair, Variant, _register_builtin

# PPO with rl-baselines3-zoo's CartPole hyperparameters (8 envs, ~1,700 steps/s on one core here):
# the source reaches 500 within 30k steps; scratch reaches 475 on the long pole within 40k.
_CARTPOLE_BUDGETS = {
    "ppo": Budget(source_steps=30_000, target_steps=40_000, eval_every=1_000),
    "dqn": Budget(source_steps=50_000, target_steps=50_000, eval_every=2_000),
}

CATALOG: tuple[EnvPair, ...] = (
    EnvPair(
        name="cartpole-long-pole",
        source=Variant("cartpole", {}),
        target=Variant("cartpole", {"length": 1.0}),
        threshold=475.0,
        r_min=33.787,
        r_max=500.0,
        budgets=_CARTPOLE_BUDGETS,
        description=(
            "CartPole-v1, pole half-length 0.5 m -> 1.0 m (total mass and pole mass-length "
            "recomputed); threshold 475 is CartPole-v1's reward_threshold, R_max 500 its time limit"
        ),
        r_min_note="measured: random policy on the target, 1000 episodes, seeds 0..999",
    ),
)


def register_catalog() -> None:
    """Register every built-in pair (idempotent)."""
    for pair in CATALOG:
        _register_builtin(pair)
