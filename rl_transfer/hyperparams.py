"""Hyperparameters the user's way, in rl-baselines3-zoo's conventions.

Three routes, each in zoo's format (``rl_zoo3/train.py`` ``--hyperparams``, ``hyperparams/*.yml``):

- ``--hyperparams key:value ...`` on the command line (values as zoo writes them:
  ``learning_rate:1e-4``, ``learning_rate:lin_1e-3``,
  ``policy_kwargs:"dict(net_arch=[32, 32], activation_fn=nn.ReLU)"``);
- a hyperparameters yml in zoo's layout (``--hyperparams-file [ALGO=]FILE``: top-level keys are
  env family names or gymnasium ids, each entry replacing the package's entry as zoo's
  ``--conf-file`` does);
- the study key ``hyperparams:``, per algorithm (``{ppo: {learning_rate: 1e-4}}``).

A plain key applies to every run of the experiment; a prefix addresses one run kind:
``source.KEY`` the source pretraining, ``target.KEY`` every target arm (scratch included),
``METHOD.KEY`` one method's arm (``finetune.learning_rate:1e-4``; the name as given in
``--methods``), and an algorithm's name in front restricts it to that algorithm
(``ppo.target.n_epochs:5``). The more specific prefix wins: plain < ``target`` < ``METHOD``.

Values are parsed without ``eval``: Python literals, ``dict(...)`` with keyword arguments, the
``lin_X`` linear schedule, and a whitelist of names (torch activation functions such as
``nn.ReLU``, optimizer classes). Parsed values stay JSON-serializable (an activation is kept as
its canonical name ``"nn.ReLU"``) so they can be recorded in experiment.yaml and run.json and
hashed into the source cache key; :func:`to_sb3` turns them into the objects SB3 takes.
"""

from __future__ import annotations

import ast
import copy
import difflib
import inspect
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rl_transfer.errors import SpecError

ACTIVATIONS = (
    "ReLU",
    "Tanh",
    "ELU",
    "LeakyReLU",
    "SiLU",
    "GELU",
    "Sigmoid",
    "Softplus",
    "Mish",
    "SELU",
    "CELU",
    "Hardtanh",
    "Hardswish",
    "Identity",
)
"""torch.nn activation classes accepted as ``activation_fn`` (written ``nn.X``, ``th.nn.X``,
``torch.nn.X`` or ``X``)."""
OPTIMIZERS = ("Adam", "AdamW", "RMSprop", "SGD")
"""torch.optim classes accepted as ``optimizer_class`` (``th.optim.X``, ``torch.optim.X``, ``X``),
plus stable-baselines3's ``RMSpropTFLike``."""

ZOO_KEYS = ("n_envs", "policy", "n_timesteps", "normalize", "noise_type", "noise_std")
"""Keys of zoo's hyperparameter files that are not arguments of the SB3 class."""
MANAGED = ("env", "seed", "device", "verbose", "tensorboard_log", "_init_setup_model")
"""SB3 arguments the workbench sets itself."""
UNSUPPORTED = {
    "env_wrapper": "wrap the env in an env family instead (docs/envs.md)",
    "frame_stack": "stack frames in an env family's observation wrapper instead",
    "callback": "rl_transfer installs its own callbacks",
    "vec_env_wrapper": "not supported",
    "normalize_kwargs": "give them as normalize: \"{'norm_obs': True, 'norm_reward': False}\"",
}
"""zoo keys that have no meaning here, with what to do instead."""
SCHEDULES = ("learning_rate", "clip_range", "clip_range_vf", "delta_std")
"""The keys whose ``lin_X`` zoo turns into a linear schedule (``_preprocess_schedules``)."""
ARCHITECTURE = (
    "net_arch",
    "activation_fn",
    "log_std_init",
    "use_sde",
    "ortho_init",
    "use_expln",
    "squash_output",
    "full_std",
    "n_critics",
    "share_features_extractor",
)
"""What decides a network's shape and function: a source and the target arm it hands weights to
must agree on these (``use_sde`` is an algorithm argument, the others ``policy_kwargs``)."""

_LIN = re.compile(r"^lin_([-+0-9.eE]+)$")
_ARM_LEVELS = ("", "target")


# ----------------------------------------------------------------------------------------------
# Parsing values


def parse_value(text: str, key: str = "") -> Any:
    """Parse one value as zoo writes it, without ``eval``.

    Accepted: Python literals (numbers, strings, booleans, None, lists, tuples, dicts),
    ``dict(k=v, ...)``, ``lin_X`` (kept as the string ``"lin_X"``), whitelisted names
    (``nn.ReLU`` -> ``"nn.ReLU"``, ``th.optim.Adam`` -> ``"th.optim.Adam"``) and bare words
    (``MlpPolicy``, ``normal``) as strings. A key zoo has and the workbench does not
    (:data:`UNSUPPORTED`) keeps its text, for :func:`check_entry` to refuse with what to do.

    Raises:
        SpecError: anything else (a call other than ``dict``, an unknown dotted name), naming
            ``key`` and what is accepted.
    """
    text = text.strip()
    if key.rsplit(".", 1)[-1] in UNSUPPORTED:
        return text  # refused with what to do instead, by check_entry
    if text.startswith("lin_"):
        return _schedule(text, key)
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*(-[A-Za-z0-9_]+)+", text):
        return text  # a hyphenated word: ornstein-uhlenbeck
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        if re.fullmatch(r"[A-Za-z][A-Za-z0-9_.\-]*", text):
            return text
        raise SpecError(
            f"hyperparameter {key or text!r}: {text!r} is not a value (numbers, strings, lists, "
            "dict(...), lin_X, nn.ReLU-style names)"
        ) from None
    return _literal(tree.body, key, text)


def _schedule(text: str, key: str) -> str:
    m = _LIN.match(text)
    try:
        start = float(m.group(1)) if m else float("nan")
    except ValueError:
        start = float("nan")
    if not math.isfinite(start):
        raise SpecError(f"hyperparameter {key!r}: {text!r} is not a linear schedule lin_<number>")
    return text


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def canonical_name(name: str, key: str = "") -> str:
    """The canonical spelling of a whitelisted class name: ``nn.ReLU``, ``th.optim.Adam``,
    ``RMSpropTFLike``.

    Raises:
        SpecError: not an accepted activation or optimizer name (the accepted ones listed).
    """
    last = name.rsplit(".", 1)[-1]
    prefix = name[: -len(last)].rstrip(".")
    if last in ACTIVATIONS and prefix in ("", "nn", "th.nn", "torch.nn"):
        return f"nn.{last}"
    if last in OPTIMIZERS and prefix in ("", "optim", "th.optim", "torch.optim"):
        return f"th.optim.{last}"
    if last == "RMSpropTFLike":
        return "RMSpropTFLike"
    raise SpecError(
        f"hyperparameter {key or name!r}: unknown name {name!r}; accepted: "
        f"nn.{', nn.'.join(ACTIVATIONS)}, th.optim.{', th.optim.'.join(OPTIMIZERS)}, "
        "RMSpropTFLike"
    )


def _literal(node: ast.AST, key: str, text: str) -> Any:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str) and node.value.startswith("lin_"):
            return _schedule(node.value, key)
        if isinstance(node.value, float) and not math.isfinite(node.value):
            raise SpecError(f"hyperparameter {key!r}: {text!r} is not a finite number")
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _literal(node.operand, key, text)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(f"hyperparameter {key!r}: {text!r}: a sign needs a number")
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(e, key, text) for e in node.elts]
    if isinstance(node, ast.Dict):
        out = {}
        for k, v in zip(node.keys, node.values):
            if k is None:
                raise SpecError(f"hyperparameter {key!r}: {text!r}: no ** in dicts")
            out[_literal(k, key, text)] = _literal(v, key, text)
        return out
    if isinstance(node, ast.Call):
        if _dotted(node.func) != "dict" or node.args:
            raise SpecError(
                f"hyperparameter {key!r}: {text!r}: the only call accepted is dict(key=value, ...)"
            )
        out = {}
        for kw in node.keywords:
            if kw.arg is None:
                raise SpecError(f"hyperparameter {key!r}: {text!r}: no ** in dict(...)")
            out[kw.arg] = _literal(kw.value, f"{key}.{kw.arg}" if key else kw.arg, text)
        return out
    name = _dotted(node)
    if name is not None:
        if name in ("true", "false"):
            return name == "true"
        if "." not in name and name[:1].isupper() and name not in ACTIVATIONS + OPTIMIZERS:
            return name  # a bare word: MlpPolicy
        if "." not in name and name.islower() and name not in ("nn", "th", "torch"):
            return name  # a bare word: normal
        return canonical_name(name, key)
    raise SpecError(
        f"hyperparameter {key!r}: {text!r} is not a value (numbers, strings, lists, dict(...), "
        "lin_X, nn.ReLU-style names)"
    )


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"KEY:VALUE"`` (zoo's ``--hyperparams`` item) -> ``(KEY, parsed VALUE)``.

    Raises:
        SpecError: no ``:``, an empty key, or a value :func:`parse_value` refuses.
    """
    key, sep, value = text.partition(":")
    key = key.strip()
    if not sep or not key or not value.strip():
        hint = (
            "; a study file goes before --hyperparams (it takes every word after it)"
            if text.endswith((".yaml", ".yml"))
            else ""
        )
        raise SpecError(
            f"--hyperparams {text!r}: expected KEY:VALUE, e.g. learning_rate:1e-4 or "
            f"target.learning_rate:lin_1e-3{hint}"
        )
    return key, parse_value(value, key)


def canonical(hyperparams: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """Hyperparameters with zoo's string forms parsed: ``policy_kwargs: "dict(...)"`` and
    ``normalize: "{...}"`` become dicts, names inside ``policy_kwargs`` their canonical spelling.

    Raises:
        SpecError: a value :func:`parse_value` refuses (``where`` names its origin).
    """
    out = copy.deepcopy(dict(hyperparams))
    try:
        for key, value in out.items():
            if isinstance(value, str):  # YAML reads 1e-4 as a string
                out[key] = parse_value(value, key)
        pk = out.get("policy_kwargs")
        if isinstance(pk, Mapping):
            pk = dict(pk)
            for name in ("activation_fn", "optimizer_class"):
                if isinstance(pk.get(name), str):
                    pk[name] = canonical_name(pk[name], f"policy_kwargs.{name}")
            if isinstance(pk.get("net_arch"), tuple):
                pk["net_arch"] = list(pk["net_arch"])
            out["policy_kwargs"] = pk
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}" if where else str(exc)) from None
    return out


def to_sb3(policy_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``policy_kwargs`` as SB3 takes them: canonical names -> torch classes."""
    import torch

    out = copy.deepcopy(dict(policy_kwargs))
    if isinstance(out.get("activation_fn"), str):
        out["activation_fn"] = getattr(torch.nn, out["activation_fn"].rsplit(".", 1)[-1])
    if isinstance(out.get("optimizer_class"), str):
        name = out["optimizer_class"].rsplit(".", 1)[-1]
        if name == "RMSpropTFLike":
            from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike

            out["optimizer_class"] = RMSpropTFLike
        else:
            out["optimizer_class"] = getattr(torch.optim, name)
    return out


def from_sb3(value: Any) -> Any:
    """A value read from an SB3 model, in the recorded (JSON) form: classes -> canonical names,
    tuples -> lists."""
    if isinstance(value, type):
        try:
            return canonical_name(value.__name__)
        except SpecError:
            return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, Mapping):
        return {str(k): from_sb3(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [from_sb3(v) for v in value]
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return repr(value)


# ----------------------------------------------------------------------------------------------
# Valid keys


def valid_keys(adapter: Any) -> list[str]:
    """The keys a hyperparameter entry of ``adapter``'s algorithm may hold: the SB3 class's
    constructor arguments (those the workbench does not set itself) and zoo's own keys."""
    params = inspect.signature(adapter.algo_class.__init__).parameters
    keys = [k for k in params if k not in ("self", "kwargs", *MANAGED)]
    return sorted(set(keys) | set(ZOO_KEYS))


def policy_keys(adapter: Any, policy: str = "MlpPolicy") -> list[str]:
    """The keys ``policy_kwargs`` may hold for ``adapter``'s algorithm and ``policy``."""
    cls = adapter.algo_class.policy_aliases.get(policy)
    if cls is None:
        return []
    params = inspect.signature(cls.__init__).parameters
    return sorted(
        k
        for k in params
        if k
        not in ("self", "observation_space", "action_space", "lr_schedule", "kwargs", "use_sde")
    )


def check_entry(adapter: Any, hp: Mapping[str, Any], where: str, *, file: bool = False) -> None:
    """Refuse a key the algorithm does not take.

    ``file``: the entry comes from a zoo-layout yml, where ``n_timesteps`` is normal (and not
    used: budgets are the pair's or the flags').

    Raises:
        SpecError: an unknown key (closest valid key first, then the others), a zoo key with no
            meaning here (what to do instead), or a ``policy_kwargs`` key the policy does not
            take.
    """
    valid = valid_keys(adapter)
    for key, value in hp.items():
        if key in UNSUPPORTED:
            raise SpecError(f"{where}: {key!r} is not supported: {UNSUPPORTED[key]}")
        if key in MANAGED:
            raise SpecError(
                f"{where}: {key!r} is set by rl_transfer itself (seeds: --seeds and "
                "--seed-offset; every run on the CPU; logs: TensorBoard in each run folder)"
            )
        if isinstance(value, str) and value.startswith("lin_") and key not in SCHEDULES:
            raise SpecError(
                f"{where}: {key} is {value!r}, and a lin_ schedule is taken by "
                f"{', '.join(SCHEDULES)} only (as in rl-baselines3-zoo)"
            )
        if key == "n_envs" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise SpecError(f"{where}: n_envs must be a positive integer, got {value!r}")
        bad = _non_finite(value)
        if bad is not None:
            raise SpecError(f"{where}: {key} holds {bad!r}, not a finite number")
        if key == "n_timesteps" and not file:
            raise SpecError(
                f"{where}: n_timesteps is not a hyperparameter here; the budget is "
                "--source-steps / --target-steps (or the pair's)"
            )
        if key not in valid:
            raise SpecError(
                f"{where}: unknown key {key!r} for {adapter.algo}; {_valid(key, valid)}"
            )
    pk = hp.get("policy_kwargs")
    if pk is None:
        return
    if not isinstance(pk, Mapping):
        raise SpecError(f"{where}: policy_kwargs must be a dict, got {pk!r}")
    pvalid = policy_keys(adapter, str(hp.get("policy", "MlpPolicy")))
    for key in pk:
        if pvalid and key not in pvalid:
            raise SpecError(
                f"{where}: unknown key policy_kwargs.{key} for {adapter.algo}; "
                f"{_valid(key, pvalid)}"
            )


def _non_finite(value: Any) -> float | None:
    if isinstance(value, float):
        return None if math.isfinite(value) else value
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, list | tuple):
        for v in value:
            bad = _non_finite(v)
            if bad is not None:
                return bad
    return None


def _valid(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}valid keys: {', '.join(valid)}"


# ----------------------------------------------------------------------------------------------
# Overrides: which run kind a key addresses


def flatten_study(value: Mapping[str, Any], algos: Iterable[str]) -> dict[str, Any]:
    """The study key ``hyperparams`` -> flat ``{"[ALGO.][ARM.]KEY": value}``.

    ``{ppo: {learning_rate: 1e-4, target.n_epochs: 5}}`` -> ``{"ppo.learning_rate": 1e-4,
    "ppo.target.n_epochs": 5}``; flat keys are kept as they are.
    """
    from agents import ADAPTERS

    out: dict[str, Any] = {}
    algos = list(algos)
    for key, v in value.items():
        if key in ADAPTERS:
            if key not in algos:
                raise SpecError(
                    f"hyperparams: a section for {key}, which the experiment does not run "
                    f"({', '.join(algos)})"
                )
            if not isinstance(v, Mapping):
                raise SpecError(f"hyperparams: {key}: expected {{key: value}}, got {v!r}")
            for k, w in v.items():
                out[f"{key}.{k}"] = w
        else:
            out[key] = v
    return out


def split_key(key: str, algos: Iterable[str], arms: Iterable[str]) -> tuple[str, str, str]:
    """``"[ALGO.][ARM.]KEY"`` -> ``(algo or "", arm or "", KEY)``; ``ARM`` is one of ``arms``
    (``source`` when a source is pretrained, ``target``, the method names; names may hold dots:
    the longest known prefix is taken).

    Raises:
        SpecError: a prefix that is neither an algorithm of the experiment nor a run kind
            (the valid prefixes listed).
    """
    algos, arms = list(algos), list(arms)
    rest, algo = key, ""
    for a in algos:
        if rest.startswith(a + "."):
            algo, rest = a, rest[len(a) + 1 :]
            break
    arm = ""
    for name in sorted(arms, key=len, reverse=True):
        if rest.startswith(name + "."):
            arm, rest = name, rest[len(name) + 1 :]
            break
    if "." in rest:
        prefix = key[: key.rindex(".")]
        if prefix.split(".")[-1] == "source" and "source" not in arms:
            raise SpecError(
                f"hyperparameter {key!r}: no source is pretrained in this experiment (an "
                "imported --source-model, or no method that needs a source), so 'source.' "
                "reaches no run"
            )
        raise SpecError(
            f"hyperparameter {key!r}: unknown prefix {prefix!r}; a key may start with an "
            f"algorithm ({', '.join(algos)}) and/or a run kind ({', '.join(arms)})"
        )
    return algo, arm, rest


def arm_hyperparams(
    base: Mapping[str, Any],
    overrides: Mapping[str, Any],
    algo: str,
    arm: str,
    algos: Iterable[str],
    arms: Iterable[str],
) -> tuple[dict[str, Any], dict[str, str]]:
    """The hyperparameters in force for one run kind.

    Args:
        base: the algorithm's entry for the family (package yml or the user's zoo-layout file).
        overrides: flat ``{"[ALGO.][ARM.]KEY": value}`` (:func:`flatten_study`, ``--hyperparams``).
        algo: the algorithm of the run.
        arm: ``"source"`` or the method's name (``"scratch"`` for the baseline).

    Returns:
        ``(hyperparams, given)``: the entry with every override that reaches the run applied,
        from the least specific to the most, so the most specific wins: plain, then ``target``,
        then the method's name; at each level the key with the algorithm's prefix wins over the
        same key without it. ``given`` maps each overridden key to the override's spelling.
    """
    hp = copy.deepcopy(dict(base))
    given: dict[str, str] = {}
    levels = [""] if arm == "source" else list(_ARM_LEVELS)
    levels.append(arm)
    ranked = []
    for spelled, value in overrides.items():
        a, kind, key = split_key(spelled, algos, arms)
        if a not in ("", algo) or kind not in dict.fromkeys(levels):
            continue
        ranked.append((levels.index(kind), a == algo, spelled, key, value))
    for _, _, spelled, key, value in sorted(ranked, key=lambda r: (r[0], r[1])):
        hp[key] = value
        given[key] = spelled
    return canonical(hp), given


# ----------------------------------------------------------------------------------------------
# zoo-layout files


def load_zoo_file(path: Path) -> dict[str, dict[str, Any]]:
    """Read a hyperparameters yml in rl-baselines3-zoo's layout: ``{env: {key: value}}``, keys
    env family names or gymnasium ids (``CartPole-v1``).

    Raises:
        SpecError: unreadable file, invalid YAML, or not that layout (in one line naming the file).
    """
    from rl_transfer.errors import read_yaml

    data = read_yaml(path, "hyperparameters", SpecError)
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise SpecError(
            f"hyperparameters file {path} must map env ids or family names to entries "
            "(rl-baselines3-zoo's layout: CartPole-v1: {n_envs: 8, ...})"
        )
    return {str(k): dict(v) for k, v in data.items()}


def zoo_entry(table: Mapping[str, Mapping[str, Any]], family: Any) -> dict[str, Any] | None:
    """The entry of ``family`` (an :class:`envs.EnvFamily`) in a zoo-layout table: under its
    name, its base gymnasium id or its registered id; None when the table has none."""
    for key in zoo_keys(family):
        if key in table:
            return dict(table[key])
    return None


def zoo_keys(family: Any) -> list[str]:
    """The keys a zoo-layout file may file ``family`` under: its name, the gymnasium id it
    wraps or is named after, its own registered id."""
    keys = [family.name, getattr(family, "base_id", ""), getattr(family, "env", ""), family.gym_id]
    return [k for k in dict.fromkeys(keys) if k and ":" not in k]


def parse_file_arg(text: str) -> tuple[str, Path]:
    """``"[ALGO=]PATH"`` -> ``(algo or "", path)`` (the algorithm's name in lower case)."""
    algo, sep, path = text.partition("=")
    if sep and re.fullmatch(r"[A-Za-z0-9_]+", algo):
        return algo.lower(), Path(path)
    return "", Path(text)
