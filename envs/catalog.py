"""The built-in catalog of env pairs.

R_min values were measured once with :func:`envs.pairs.random_policy_return` (``r_min_episodes``
episodes, reset seeds 0.., action-space seed 0) on the target as the agent sees it (mappings
applied) and are stored here; ``tests/test_envs.py`` measures them again and checks they match.
R_max is the best achievable return: the env's maximum where one exists, else the reference
named in the pair's description.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from envs.mappings import ActionMapping, Mappings
from envs.pairs import Budget, EnvPair, Variant, _register_builtin

# Budgets measured on the reference machine by benchmarks/search_budgets.py (envs/budgets.json):
# for each classic-control pair and its algorithm, the smallest candidate at which scratch reaches
# the threshold on 4 of 5 seeds, and the smallest at which the source does on the source variant.
# The other algorithms' budgets, and the pairs beyond the reference machine, are derived from
# rl-baselines3-zoo's n_timesteps for the base env (PPO on Pendulum excepted) and were not run
# here: their basis says so.
_ZOO = "rl-baselines3-zoo's n_timesteps for the base env; not measured here"
_BEYOND = (
    "beyond the reference machine (2 CPU cores): rl-baselines3-zoo's n_timesteps for the base "
    "env, not measured here"
)
_CARTPOLE = {
    "ppo": Budget(
        30_000,
        100_000,
        2_000,
        "target: rl-baselines3-zoo's n_timesteps for CartPole-v1 (1e5); source: 30k, where PPO "
        "with zoo's entry reaches 500 (agents/hyperparams/ppo.yml); not searched",
    ),
    "dqn": Budget(50_000, 50_000, 2_000, _ZOO),
}
_MOUNTAINCAR = {
    "dqn": Budget(120_000, 120_000, 4_000, _ZOO),
    "ppo": Budget(1_000_000, 1_000_000, 20_000, _ZOO),
}
_ACROBOT = {
    "ppo": Budget(1_000_000, 1_000_000, 20_000, _ZOO),
    "dqn": Budget(100_000, 100_000, 4_000, _ZOO),
}
_PENDULUM = {
    "ppo": Budget(
        1_000_000,
        1_000_000,
        20_000,
        "not measured here, and not zoo's: PPO runs here with stable-baselines3's defaults, "
        "while rl-baselines3-zoo's n_timesteps (1e5) is for its tuned Pendulum-v1 entry",
    ),
    "sac": Budget(20_000, 20_000, 500, _ZOO),
}
_LUNAR = {
    "ppo": Budget(1_000_000, 1_000_000, 20_000, _BEYOND),
    "dqn": Budget(100_000, 100_000, 5_000, _BEYOND),
}
_HOPPER = {"ppo": Budget(1_000_000, 1_000_000, 20_000, _BEYOND)}
_MCC = {
    "ppo": Budget(20_000, 20_000, 1_000, _ZOO),
    # the agent acts in MountainCar-v0's Discrete(3) through the mapping: zoo's DQN MountainCar-v0
    "dqn": Budget(
        120_000, 120_000, 5_000, "rl-baselines3-zoo's n_timesteps for DQN on MountainCar-v0"
    ),
}

BUDGETS_FILE = Path(__file__).with_name("budgets.json")
"""The budget search's output (benchmarks/search_budgets.py)."""


def measured_budgets() -> dict:
    """envs/budgets.json's content (``{"pairs": {}}`` when absent or unreadable)."""
    try:
        return json.loads(BUDGETS_FILE.read_text())
    except (OSError, ValueError):
        return {"pairs": {}}


def chosen_candidate(part: dict) -> dict:
    """The evidence of the candidate a search part (``source`` or ``target`` of an
    envs/budgets.json entry) chose. Raises StopIteration when it chose none."""
    return next(c for c in part["candidates"] if c["steps"] == part["chosen"])


def apply_measured(name: str, recommended: dict[str, Budget], measured: dict) -> dict[str, Budget]:
    """``recommended`` with the budget ``measured`` (envs/budgets.json's content) holds for pair
    ``name`` in force for its algorithm, its basis naming what the search saw (per candidate,
    the seeds that reached the threshold). A pair whose scratch or source passed no candidate
    keeps its recommended budget, and its basis says the search did not confirm it."""
    entry = measured.get("pairs", {}).get(name)
    if not entry:
        return recommended
    budgets = dict(recommended)
    algo, src, tgt = entry["algo"], entry["source"], entry["target"]

    def seen(part: dict) -> str:
        return ", ".join(
            f"{c['reached']}/{len(c['seeds'])} seeds at {c['steps']:,} steps"
            for c in part["candidates"]
        )

    evidence = (
        f"scratch reached the threshold on {seen(tgt)}; the source reached "
        f"{src['threshold']:g} on the source variant on {seen(src)}"
    )
    if src.get("chosen") and tgt.get("chosen"):
        budgets[algo] = Budget(
            src["chosen"],
            tgt["chosen"],
            entry["eval_every"],
            f"measured on the reference machine (benchmarks/search_budgets.py): {evidence}",
        )
        return budgets
    old = budgets.get(algo)
    short = [who for who, part in (("scratch", tgt), ("the source", src)) if not part.get("chosen")]
    if old is not None and src.get("candidates") and tgt.get("candidates"):
        budgets[algo] = replace(
            old,
            basis=f"searched on the reference machine (benchmarks/search_budgets.py): "
            f"{' and '.join(short)} did not reach the threshold on 4 of 5 seeds at any candidate "
            f"({evidence}): beyond the reference machine; in force: the budget it replaces "
            f"({old.source_steps:,} source, {old.target_steps:,} target steps; {old.basis}), "
            "not confirmed by the search",
        )
    return budgets


_CP_NOTE = "threshold 475 = CartPole-v1's reward_threshold; R_max 500 = its time limit"


def _pair(
    name: str,
    family: str,
    source: dict,
    target: dict,
    threshold: float,
    r_max: float,
    r_min: float,
    episodes: int,
    budgets: dict,
    description: str,
    mappings: Mappings | None = None,
    target_family: str | None = None,
) -> EnvPair:
    return EnvPair(
        name=name,
        source=Variant(family, source),
        target=Variant(target_family or family, target),
        threshold=threshold,
        r_min=r_min,
        r_max=r_max,
        budgets=apply_measured(name, budgets, _MEASURED),
        description=description,
        r_min_note=(
            f"measured: random policy on the target, {episodes} episodes, seeds 0..{episodes - 1}"
        ),
        mappings=mappings or Mappings(),
        r_min_episodes=episodes,
    )


_MEASURED = measured_budgets()

RMIN: dict[str, float] = {
    "cartpole-long-pole": 33.787,
    "cartpole-heavy-pole": 22.621,
    "cartpole-heavy-cart": 33.251,
    "mountaincar-strong-engine": -200.0,
    "acrobot-heavy-link": -500.0,
    "acrobot-long-link": -500.0,
    "pendulum-heavy": -1259.4363,
    "pendulum-long": -1219.2934,
    "lunarlander-low-gravity": -269.7434,
    "lunarlander-windy": -231.5911,
    "cartpole-very-long-pole": 55.892,
    "pendulum-low-gravity": -1045.616,
    "cartpole-reversed-force": 22.384,
    "cartpole-sutton-barto-reward": -1.0,
    "mountaincar-to-continuous": -61.884,
    "hopper-heavy": 17.3831,
}
"""Measured R_min of each pair (see the module docstring)."""

CATALOG: tuple[EnvPair, ...] = (
    # -- near variants: transfer should help
    _pair(
        "cartpole-long-pole",
        "cartpole",
        {},
        {"length": 1.0},
        475.0,
        500.0,
        RMIN["cartpole-long-pole"],
        1000,
        _CARTPOLE,
        f"pole half-length 0.5 m -> 1.0 m (total mass and pole mass-length recomputed); {_CP_NOTE}",
    ),
    _pair(
        "cartpole-heavy-pole",
        "cartpole",
        {},
        {"masspole": 0.5},
        475.0,
        500.0,
        RMIN["cartpole-heavy-pole"],
        1000,
        _CARTPOLE,
        f"pole mass 0.1 kg -> 0.5 kg; {_CP_NOTE}",
    ),
    _pair(
        "cartpole-heavy-cart",
        "cartpole",
        {},
        {"masscart": 3.0},
        475.0,
        500.0,
        RMIN["cartpole-heavy-cart"],
        1000,
        _CARTPOLE,
        f"cart mass 1.0 kg -> 3.0 kg; {_CP_NOTE}",
    ),
    _pair(
        "mountaincar-strong-engine",
        "mountaincar",
        {},
        {"force": 0.0013},
        -110.0,
        -100.0,
        RMIN["mountaincar-strong-engine"],
        200,
        _MOUNTAINCAR,
        "engine force 0.001 -> 0.0013; threshold -110 = MountainCar-v0's reward_threshold; "
        "R_max -100 ~ the optimal policy's mean return",
    ),
    _pair(
        "acrobot-heavy-link",
        "acrobot",
        {},
        {"link_mass_2": 1.5},
        -100.0,
        -60.0,
        RMIN["acrobot-heavy-link"],
        50,
        _ACROBOT,
        "second link mass 1.0 kg -> 1.5 kg; threshold -100 = Acrobot-v1's reward_threshold; "
        "R_max -60 ~ the best published mean return",
    ),
    _pair(
        "acrobot-long-link",
        "acrobot",
        {},
        {"link_length_1": 1.3, "link_com_pos_1": 0.65},
        -100.0,
        -60.0,
        RMIN["acrobot-long-link"],
        50,
        _ACROBOT,
        "first link 1.0 m -> 1.3 m with its centre of mass at mid-length; thresholds as "
        "acrobot-heavy-link",
    ),
    _pair(
        "pendulum-heavy",
        "pendulum",
        {},
        {"m": 1.3},
        -200.0,
        -140.0,
        RMIN["pendulum-heavy"],
        200,
        _PENDULUM,
        "mass 1.0 kg -> 1.3 kg; threshold -200 (a swung-up, held pendulum); "
        "R_max -140 ~ the best published mean return",
    ),
    _pair(
        "pendulum-long",
        "pendulum",
        {},
        {"l": 1.3},
        -200.0,
        -140.0,
        RMIN["pendulum-long"],
        200,
        _PENDULUM,
        "length 1.0 m -> 1.3 m; thresholds as pendulum-heavy",
    ),
    _pair(
        "lunarlander-low-gravity",
        "lunarlander",
        {},
        {"gravity": -6.0},
        200.0,
        300.0,
        RMIN["lunarlander-low-gravity"],
        200,
        _LUNAR,
        "gravity -10 -> -6 m/s^2; threshold 200 = LunarLander's reward_threshold; R_max 300 ~ "
        "a well-trained lander",
    ),
    _pair(
        "lunarlander-windy",
        "lunarlander",
        {},
        {"wind_power": 10.0, "turbulence_power": 1.0},
        200.0,
        300.0,
        RMIN["lunarlander-windy"],
        200,
        _LUNAR,
        "wind 0 -> 10 with turbulence 1.0; thresholds as lunarlander-low-gravity",
    ),
    # -- far variants
    _pair(
        "cartpole-very-long-pole",
        "cartpole",
        {},
        {"length": 2.5},
        475.0,
        500.0,
        RMIN["cartpole-very-long-pole"],
        1000,
        _CARTPOLE,
        f"pole half-length 0.5 m -> 2.5 m (far); {_CP_NOTE}",
    ),
    _pair(
        "pendulum-low-gravity",
        "pendulum",
        {},
        {"g": 3.0},
        -200.0,
        -140.0,
        RMIN["pendulum-low-gravity"],
        200,
        _PENDULUM,
        "gravity 10 -> 3 m/s^2 (far); thresholds as pendulum-heavy",
    ),
    # -- built so that transfer should hurt
    _pair(
        "cartpole-reversed-force",
        "cartpole",
        {},
        {"force_mag": -10.0},
        475.0,
        500.0,
        RMIN["cartpole-reversed-force"],
        1000,
        _CARTPOLE,
        f"push direction reversed: the source's policy pushes the wrong way; {_CP_NOTE}",
    ),
    # -- reward-only change: same dynamics, different reward (the case for relabelled replay)
    _pair(
        "cartpole-sutton-barto-reward",
        "cartpole",
        {},
        {"sutton_barto_reward": True},
        -0.05,
        0.0,
        RMIN["cartpole-sutton-barto-reward"],
        1000,
        _CARTPOLE,
        "reward 1 per step -> 0 per step and -1 on failure; threshold -0.05 = at most 1 episode "
        "in 20 fails; R_max 0 = never failing",
    ),
    # -- cross-space: Discrete(3) MountainCar-v0 -> Box(1) MountainCarContinuous-v0
    _pair(
        "mountaincar-to-continuous",
        "mountaincar",
        {},
        {},
        90.0,
        100.0,
        RMIN["mountaincar-to-continuous"],
        100,
        _MCC,
        "MountainCar-v0 -> MountainCarContinuous-v0 through the action mapping 0, 1, 2 -> "
        "-1, 0, +1 (Taylor, Stone & Liu 2007); threshold 90 = MountainCarContinuous-v0's "
        "reward_threshold; R_max 100 = the goal reward with no action cost",
        mappings=Mappings(action=ActionMapping("values", ((-1.0,), (0.0,), (1.0,)))),
        target_family="mountaincar-continuous",
    ),
    # -- MuJoCo
    _pair(
        "hopper-heavy",
        "hopper",
        {},
        {"mass_scale": 1.5},
        2500.0,
        3500.0,
        RMIN["hopper-heavy"],
        200,
        _HOPPER,
        "Hopper-v5 with every body 1.5x heavier, mass and inertia (mj_setConst recomputes the "
        "derived constants); threshold 2500 (a steady hop); R_max 3500 ~ rl-baselines3-zoo's "
        "SAC/TD3 agents",
    ),
)


def register_catalog() -> None:
    """Register every built-in pair (idempotent)."""
    for pair in CATALOG:
        _register_builtin(pair)
