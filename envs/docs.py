"""The env families and the pair catalog as a Markdown page (docs/envs.md is generated from it:
``.venv/bin/python -m envs.docs > docs/envs.md``; a test keeps the two equal)."""

from __future__ import annotations

from pathlib import Path

from envs.catalog import CATALOG
from envs.families import BUILTIN, INERT_CHECK_STEPS

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "minigrid_doorkey.yaml"
"""The MiniGrid pairs file shown on the page (the file the tests run)."""

VIA = {"kwarg": "constructor", "attribute": "attribute", "hook": "hook"}

YOUR_OWN = f"""\
## Your own families

A family is any gymnasium id or `module:Class` (any callable returning a `gymnasium.Env`) with
declared parameters. It is registered three ways, with the same fields and the same checks:

- a `families:` list beside `pairs:` in a pairs file (`--pairs-file`, or a `pairs/` folder);
- Python: `envs.register_family(envs.EnvFamily(name=..., env=..., params=[envs.Param(...)]))`;
- a package's entry point in the group `rl_transfer.families` naming an `envs.EnvFamily`
  (docs/plugins.md), read on the first look-up of a family name.

Its fields (the keys of a `families:` entry, the keywords of `EnvFamily`):

- `name`: letters, digits and `_ . -`, starting with a letter or digit (it is part of folder
  names and of the gymnasium id `rl_transfer/<name>`).
- `env`: a gymnasium id (`MiniGrid-DoorKey-5x5-v0`) or `module:Class`.
- `params`: name -> `{{default, low, high, unit, doc, kind, via, attr}}`. `kind` is `float` (the
  default), `int` or `bool`. `via` is `kwarg` (the default: a constructor keyword, what
  `gymnasium.make` passes on), `attribute` (set on the unwrapped env right after construction) or
  `hook` (read by the hook only). `attr` names the keyword or attribute when it is not the name.
- `hook`: `module:function`, called as `hook(env, setting)` on the unwrapped env after the
  parameters are set, to recompute what the env derived from them in `__init__`.
- `wrappers`: observation wrappers (`module:Class`), applied around the env in order.
- `imports`: modules imported before the env is built, in every process (those that register
  the id).
- `max_episode_steps`: the default horizon (default: the gymnasium id's own time limit).
- `r_max`, `r_max_note`: the best return at the default horizon, and where it comes from.
- `r_max_per_step`: set when R_max is that times the horizon (CartPole: 1); R_max and the
  threshold then follow a variant's horizon.
- `reward_threshold`: the "solved" return at the default horizon, the default threshold of pairs.
- `extra_kwargs`: fixed constructor keywords.
- `reward_fn`: `module:function`, the reward used to relabel stored transitions
  (`replay.relabel`).

At registration a family is refused (one line naming it and the file or entry point) when it
cannot be pickled (jobs carry their families into worker processes and Ray tasks), when its env
cannot be built, or when a parameter changes nothing: from the same reset seed and the same
actions, the variant with only that parameter changed (to its other truth value, or to the bound
farthest from its default) gives the default's spaces and the same {INERT_CHECK_STEPS}-step
trajectory (observations, rewards, terminations, truncations). The built-in families pass the same
check in `tests/test_families.py`.

A variant (`{{family, params, max_episode_steps}}`) may set its own horizon: gymnasium's
`TimeLimit` cuts its episodes, which end `truncated`, never `terminated`. The horizon is part of
the pair's record (`rl-transfer pairs show NAME`), of the experiment's identity and of the source
cache key, when a variant sets one. A pair's R_max defaults to the family's at the target's
horizon and may not exceed `r_max_per_step` times it; a family whose R_max is a reference at its
own horizon (Hopper's 3,500 at 1,000 steps) needs `r_max` given at another. The threshold
defaults to the family's `reward_threshold` there, and must lie inside [R_min, R_max] unless
`threshold_outside_range` states why (recorded with the pair).

A copy of a variant's env (pickle, `copy.deepcopy`, cloudpickle into a `SubprocVecEnv` worker) is
a new env of the same variant, rebuilt from the family and the setting, to be reset before use.
"""

MEASURED = """\
## A third-party environment: MiniGrid

MiniGrid's DoorKey (`pip install 'rl-transfer[minigrid]'`, minigrid 3.0.0), 5x5 -> 8x8, from
[examples/minigrid_doorkey.yaml](../examples/minigrid_doorkey.yaml) alone. Its ids exist only
after `import minigrid`, so the family imports it in every process; its dict observation (a
direction, a 7x7x3 agent-view image and a mission string) goes through minigrid's `ImgObsWrapper`
and gymnasium's `FlattenObservation`: 147 values, the same for both grid sizes.

```yaml
{example}```

One measured run (PPO with stable-baselines3's default hyperparameters, the pair's budget: 50,000
source steps, 30,000 target steps, an evaluation of 10 fixed episodes every 5,000 steps; one
training process on a 2-core AMD EPYC machine):

```bash
rl-transfer run --pairs-file examples/minigrid_doorkey.yaml --pair doorkey-5x5-to-8x8 \\
  --algo ppo --methods policy --seeds 3 --workers 1
```

{results}
"""

RESULTS = """\
It took 5 min 45 s (5 min 39 s of CPU): each source about 41 s, each scratch run 31 s, each
transfer run 41 s. Mean return of the 10 evaluation episodes (greedy policy; the source after its
51,200 steps, on 5x5; 0 = the goal never reached in the 640 steps an 8x8 episode allows):

| seed | source, 5x5 | scratch, 8x8 (t = 0, 30,720) | policy, 8x8 (t = 0, 20,480, 30,720) |
|---|---|---|---|
| 0 | 0.967 | 0, 0 | 0, 0, 0 |
| 1 | 0 | 0, 0 | 0, 0, 0 |
| 2 | 0.967 | 0, 0 | 0, 0.098, 0.195 |

Summary (IQM over the 3 seeds [95% bootstrap interval]): jumpstart 0 [0, 0], asymptotic gain
0.026 [0, 0.078], forward transfer 0.0138 [0, 0.041], paired t-test p = 0.42: **inconclusive**
(about 26 seeds would decide an effect this size), and inconclusive counting the source's steps.
Two of the three sources solve 5x5 within 51,200 steps (SB3's defaults learn in rollouts of
2,048 steps; seed 1's source never reached the goal). Their greedy policies reach no goal in the
larger 8x8 room at t = 0, and in 30,720 target steps only seed 2's transferred policy starts to
(1 of 10 episodes at 20,480 steps, 2 at 30,720); scratch reaches none. No run reaches the pair's
threshold 0.9, so time to threshold is undefined: this budget shows the route end to end, not a
transfer result.
"""


def render() -> str:
    """The page's text."""
    out = [
        "# Env families and pairs",
        "",
        "Generated by `python -m envs.docs` from the code; do not edit by hand.",
        "",
        "## Families",
        "",
    ]
    for fam in BUILTIN.values():
        out += [
            f"### `{fam.name}`: {fam.env} (gymnasium id `{fam.gym_id}`)",
            "",
            "| parameter | default | bounds | unit | set as | what |",
            "|---|---|---|---|---|---|",
        ]
        for p in fam.params.values():
            out.append(
                f"| `{p.name}` | {p.default:g} | [{p.low:g}, {p.high:g}] | {p.unit} | "
                f"{VIA[p.via]}{'' if p.via == 'hook' else f' `{p.attribute}`'} | {p.doc} |"
            )
        r_max = "none" if fam.r_max is None else f"{fam.r_max:g}"
        per_step = (
            f" ({fam.r_max_per_step:g} per step, so it follows a variant's horizon)"
            if fam.r_max_per_step is not None
            else ""
        )
        out += [
            "",
            f"Horizon {fam.max_episode_steps} steps. R_max {r_max}: {fam.r_max_note}{per_step}.",
            "",
        ]
        if fam.hook is not None:
            out += [f"Hook `{fam.hook}`: {_first_line(fam.hook)}", ""]
    out += [
        "## The catalog",
        "",
        "| pair | source | target | differs | threshold | R_min | R_max | why |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in CATALOG:
        out.append(
            f"| `{p.name}` | {p.source.describe()} | {p.target.describe()} | "
            f"{p.describe_differences()} | {p.threshold:g} | {p.r_min:g} | {p.r_max:g} | "
            f"{p.description} |"
        )
    out += [
        "",
        "R_min: the random policy's mean return on the target (mappings applied), "
        "measured once and stored with the pair; `tests/test_envs.py` measures it again.",
        "",
        YOUR_OWN,
        MEASURED.format(example=EXAMPLE.read_text(), results=RESULTS),
    ]
    return "\n".join(out)


def _first_line(ref: str) -> str:
    """The hook's docstring, joined into one paragraph."""
    from envs.families import _load

    doc = _load(ref, "hook").__doc__ or ""
    return " ".join(doc.split()).replace("``", "`")


if __name__ == "__main__":
    print(render(), end="")
