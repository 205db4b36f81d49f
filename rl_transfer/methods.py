"""Transfer methods: what a target run takes from its source run.

A method is made of components that the agent adapter carries out (:mod:`agents.base`): the
parts whose tensors are copied, the parts frozen after copying, and potential-based reward
shaping with the source's value. ``scratch`` is the from-scratch baseline and takes nothing.
Methods combine with ``+`` (``policy+shaping``).

References: Taylor & Stone 2009 (JMLR 10) for policy / value-function transfer; fine-tuning moves
all weights; ``feature`` reuses a frozen representation (Yosinski et al. 2014); ``shaping`` is
potential-based reward shaping (Ng, Harada & Russell 1999) with the source's value as potential;
``kickstart`` distils the source's policy into the learner through an annealed auxiliary loss
(Schmitt et al. 2018); ``jsrl`` is jump-start RL (Uchendu et al. 2023); ``reuse`` is pi-reuse
(Fernandez & Veloso 2006); ``replay`` seeds the learner's replay buffer with the source's.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rl_transfer.errors import SpecError


@dataclass(frozen=True)
class Knob:
    """A method's setting: default, bounds and what it does (``--method-arg method.knob=x``)."""

    default: float
    low: float
    high: float
    doc: str
    inert: float | None = None
    """A value at which the method would transfer nothing (refused: a transfer that moves
    nothing is an error, never a success)."""
    flag: bool = False
    """0 or 1 only."""


@dataclass(frozen=True)
class TransferMethod:
    """A transfer method.

    Attributes:
        name: the method's name on the CLI and in run folders.
        parts: adapter parts whose tensors are copied from the source model.
        doc: one line for listings and docs.
        freeze: parts frozen (``requires_grad`` off) after copying.
        shaping: potential-based reward shaping with the source's value on the training envs.
        knobs: settings with defaults.
    """

    name: str
    parts: tuple[str, ...]
    doc: str
    freeze: tuple[str, ...] = ()
    shaping: bool = False
    knobs: Mapping[str, Knob] = field(default_factory=dict)
    replay: bool = False
    jsrl: bool = False
    reuse: bool = False
    kickstart: bool = False

    @property
    def needs_source(self) -> bool:
        return bool(self.parts) or any(
            (self.shaping, self.replay, self.jsrl, self.reuse, self.kickstart)
        )

    def missing_parts(self, adapter: Any) -> list[str]:
        """Parts this method needs that an adapter (class or instance) does not have."""
        missing = [p for p in dict.fromkeys(self.parts + self.freeze) if p not in adapter.parts]
        if self.replay and not adapter.off_policy:
            missing.append("replay buffer")
        if self.reuse and not adapter.off_policy:
            missing.append("off-policy learning")
        if self.kickstart and not adapter.kickstart:
            missing.append("on-policy actor-critic loss")
        return missing

    def start_overrides(self, adapter: Any, hyperparams: Mapping[str, Any]) -> dict[str, Any]:
        """Hyperparameters the transferred arm starts with instead of the target's own: the
        adapter's for an arm that starts from copied weights (SB3's off-policy
        warm-up and DQN's epsilon restart at 1.0 would throw the jumpstart away: DQN's epsilon
        starts at its final value), and ``learning_starts = 0`` when the replay buffer is seeded."""
        out = dict(adapter.transfer_overrides(hyperparams)) if self.parts else {}
        if self.replay:
            out["learning_starts"] = 0  # the buffer already holds the source's transitions
        return out

    def settings(self, given: Mapping[str, Any] | None = None) -> dict[str, float]:
        """The knob values in force: defaults, replaced by ``given``.

        Raises:
            SpecError: an unknown knob or a value outside its bounds.
        """
        out = {k: v.default for k, v in self.knobs.items()}
        for key, value in (given or {}).items():
            if key not in self.knobs:
                known = ", ".join(self.knobs) or "none"
                raise SpecError(f"method {self.name!r} has no knob {key!r}; its knobs: {known}")
            knob = self.knobs[key]
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise SpecError(f"{self.name}.{key} must be a number, got {value!r}") from None
            if not knob.low <= number <= knob.high:
                raise SpecError(
                    f"{self.name}.{key} = {number:g} is outside [{knob.low:g}, {knob.high:g}]"
                )
            if knob.flag and number not in (0.0, 1.0):
                raise SpecError(f"{self.name}.{key} is a switch: 0 or 1, got {value!r}")
            if knob.inert is not None and number == knob.inert:
                raise SpecError(
                    f"{self.name}.{key} = {number:g} would transfer nothing; use a value in "
                    f"({knob.low:g}, {knob.high:g}]"
                    if knob.inert == knob.low
                    else f"{self.name}.{key} = {number:g} would transfer nothing"
                )
            out[key] = number
        return out


SCRATCH = TransferMethod("scratch", (), "from-scratch baseline: fresh weights, nothing transferred")

METHODS: dict[str, TransferMethod] = {
    m.name: m
    for m in (
        SCRATCH,
        TransferMethod("policy", ("policy",), "the source's policy network (actor) is copied"),
        TransferMethod("value", ("value",), "the source's value network (critic / Q) is copied"),
        TransferMethod(
            "finetune",
            ("policy", "value"),
            "all of the source's weights are copied",
            knobs={
                "optimizer": Knob(
                    0.0,
                    0.0,
                    1.0,
                    "1: also carry the source's optimizer state (moment estimates, step counts)",
                    flag=True,
                )
            },
        ),
        TransferMethod(
            "feature",
            ("trunk",),
            "the source's hidden layers are copied and frozen; output heads are fresh",
            freeze=("trunk",),
        ),
        TransferMethod(
            "shaping",
            (),
            "reward + scale * (gamma * V_src(s') - V_src(s)), V_src(terminal) = 0, on "
            "the training envs (evaluation is unshaped)",
            shaping=True,
            knobs={"scale": Knob(1.0, 0.0, 100.0, "factor on the shaping term", inert=0.0)},
        ),
        TransferMethod(
            "jsrl",
            (),
            "jump-start RL: the source's greedy policy acts for the first h steps of each "
            "training episode, h annealed from H to 0; its steps count toward t",
            jsrl=True,
            knobs={
                "horizon": Knob(100.0, 1.0, 10_000.0, "H, the guide's steps per episode at t = 0"),
                "anneal": Knob(0.5, 0.01, 1.0, "share of the budget over which h falls to 0"),
            },
        ),
        TransferMethod(
            "reuse",
            (),
            "pi-reuse exploration (Fernandez & Veloso 2006): with probability psi the source's "
            "greedy action is taken instead of the learner's, psi *= decay after each step of "
            "an episode; those steps count toward t and are stored like the learner's",
            reuse=True,
            knobs={
                "psi": Knob(
                    1.0,
                    0.0,
                    1.0,
                    "probability of the source's action at an episode's first step",
                    inert=0.0,
                ),
                "decay": Knob(0.95, 0.0, 1.0, "factor on psi after each step"),
            },
        ),
        TransferMethod(
            "kickstart",
            (),
            "kickstarting (Schmitt et al. 2018): the loss gains lambda_t * KL(pi_source, "
            "pi_target) over each minibatch's states, lambda_t annealed to 0; fresh weights",
            kickstart=True,
            knobs={
                "weight": Knob(1.0, 0.0, 100.0, "lambda at t = 0", inert=0.0),
                "weight_anneal": Knob(
                    0.5, 0.01, 1.0, "share of the budget over which lambda falls to 0"
                ),
            },
        ),
        TransferMethod(
            "replay",
            (),
            "the source's replay buffer seeds the target's (learning_starts 0)",
            replay=True,
            knobs={
                "fraction": Knob(
                    1.0,
                    0.0,
                    1.0,
                    "share of the source's transitions loaded (the most recent)",
                    inert=0.0,
                ),
                "relabel": Knob(
                    0.0,
                    0.0,
                    1.0,
                    "1: recompute the loaded rewards with the target's reward function",
                    flag=True,
                ),
            },
        ),
    )
}


def get_method(name: str) -> TransferMethod:
    """The method called ``name``; ``a+b`` combines methods (their parts, freezing, shaping and
    knobs).

    Raises:
        SpecError: unknown name (closest valid ones suggested), ``scratch`` in a combination, or
            a method repeated.
    """
    names = name.split("+")
    for n in names:
        if n not in METHODS:
            close = difflib.get_close_matches(n, list(METHODS), n=len(METHODS), cutoff=0.0)
            raise SpecError(f"unknown method {n!r}; valid methods: {', '.join(close)}") from None
    if len(names) == 1:
        return METHODS[name]
    if "scratch" in names or len(set(names)) != len(names):
        raise SpecError(
            f"method {name!r}: combine distinct transfer methods with '+', "
            "not scratch (it always runs as the baseline)"
        )
    ms = [METHODS[n] for n in names]
    return TransferMethod(
        name=name,
        parts=tuple(dict.fromkeys(p for m in ms for p in m.parts)),
        doc="; ".join(m.doc for m in ms),
        freeze=tuple(dict.fromkeys(p for m in ms for p in m.freeze)),
        shaping=any(m.shaping for m in ms),
        replay=any(m.replay for m in ms),
        jsrl=any(m.jsrl for m in ms),
        reuse=any(m.reuse for m in ms),
        kickstart=any(m.kickstart for m in ms),
        knobs={k: v for m in ms for k, v in m.knobs.items()},
    )


def support_matrix() -> str:
    """Markdown: for each algorithm, per method, what moves, what is frozen, which target
    networks are synced, the warm-up and exploration the run starts with, and how the source's
    steps count (docs/methods.md is generated from it:
    ``python -m rl_transfer.methods > docs/methods.md``)."""
    from agents import ADAPTERS

    out = [
        "# Transfer methods by algorithm",
        "",
        "Generated by `python -m rl_transfer.methods` from the adapters; do not edit by hand.",
        "Every method copies exactly the tensors named (`policy.state_dict()` key prefixes) "
        "into a freshly built target model: schedules and hyperparameters are the target's own, "
        "and optimizer state is fresh unless `finetune.optimizer=1` asks for the source's. "
        "`transfer_report.json` lists every tensor copied, synced, frozen or left fresh.",
        "",
        "Normalization statistics: no agent uses `VecNormalize`; observations and rewards reach "
        "the networks raw in source and target alike, so copied weights see the inputs they "
        "were trained on. A `--source-model` saved with `VecNormalize` statistics is refused.",
        "",
        "Steps the source's policy takes in the target env (`jsrl` roll-ins, `reuse` actions) "
        "are target env steps: they count toward t (budget, evaluation grid, every metric).",
        "",
    ]
    for algo, cls in ADAPTERS.items():
        adapter = cls()
        family = adapter.tuned_family()
        hp = adapter.hyperparams(family)
        out += [
            f"## {algo} ({cls.algo_class.__name__})",
            "",
            f"Warm-up and exploration shown with the `{family}` hyperparameters "
            f"(`agents/hyperparams/{algo}.yml`); scratch: {adapter.describe_start(hp)}.",
            "",
            "| method | copies | frozen | target networks set equal | warm-up and exploration "
            "| source's steps in the target env | notes |",
            "|---|---|---|---|---|---|---|",
        ]
        for m in METHODS.values():
            missing = m.missing_parts(adapter)
            if missing:
                out.append(
                    f"| `{m.name}` | not supported: {algo} has no part "
                    f"{', '.join(missing)} (refused before anything runs) | - | - | - | - | - |"
                )
                continue
            prefixes = [p for part in m.parts for p in adapter.parts[part]]
            moved = ", ".join(f"`{p.rstrip('.')}`" for p in dict.fromkeys(prefixes)) or "nothing"
            synced = (
                ", ".join(
                    f"`{t.rstrip('.')}` <- `{o.rstrip('.')}`"
                    for o, t in adapter.target_sync
                    if any(p.startswith(o) for p in prefixes)
                )
                or "-"
            )
            frozen = ", ".join(adapter.describe_part(part) for part in m.freeze) or "-"
            overrides = m.start_overrides(adapter, hp)
            start = "as scratch" if m.name != "scratch" else adapter.describe_start(hp)
            if overrides:
                changed = ", ".join(f"`{k}` = {v:g}" for k, v in overrides.items())
                start = f"{adapter.describe_start({**hp, **overrides})} (set: {changed})"
            guide = "count toward t" if (m.jsrl or m.reuse) else "none"
            notes = (
                "; ".join(
                    dict.fromkeys(adapter.part_notes[p] for p in m.parts if p in adapter.part_notes)
                )
                or m.doc
            )
            knobs = ", ".join(f"`{k}` = {v.default:g} ({v.doc})" for k, v in m.knobs.items())
            if knobs:
                notes += f"; knobs: {knobs}"
            cells = (f"`{m.name}`", moved, frozen, synced, start, guide, notes)
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(support_matrix(), end="")
