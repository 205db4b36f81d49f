"""Env families, variants and the env-pair registry of rl_transfer.

Importing this package has one side effect, as gymnasium plugins do: every env family is registered
with gymnasium under the ``rl_transfer`` namespace (``gymnasium.make("rl_transfer/CartPole-v1",
length=1.0)``), and the built-in pair catalog is registered in the pair registry. Nothing is built
then (neither Box2D nor MuJoCo is imported): a family's env is built on first use.
"""

from envs.catalog import register_catalog
from envs.errors import (
    EnvsError,
    PairError,
    ParameterError,
    UnknownFamilyError,
    UnknownPairError,
)
from envs.families import (
    FAMILIES,
    NAMESPACE,
    EnvFamily,
    Param,
    family_from_dict,
    get_family,
    register_family,
    unregister_family,
)
from envs.families import register_families_with_gymnasium as _register_families
from envs.mappings import ActionMapping, Mappings, ObservationMapping
from envs.pairs import (
    Budget,
    EnvPair,
    Variant,
    evaluation_seeds,
    get_pair,
    list_pairs,
    load_pairs_file,
    load_user_pairs,
    random_policy_return,
    register_pair,
    unregister_pair,
)

__all__ = [
    "ActionMapping",
    "Mappings",
    "ObservationMapping",
    "FAMILIES",
    "NAMESPACE",
    "Budget",
    "EnvFamily",
    "EnvPair",
    "EnvsError",
    "Param",
    "PairError",
    "ParameterError",
    "UnknownFamilyError",
    "UnknownPairError",
    "Variant",
    "evaluation_seeds",
    "family_from_dict",
    "get_family",
    "get_pair",
    "list_pairs",
    "load_pairs_file",
    "load_user_pairs",
    "random_policy_return",
    "register_family",
    "register_pair",
    "unregister_family",
    "unregister_pair",
]

_register_families()
register_catalog()
