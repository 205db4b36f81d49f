"""Versions of the packages a result depends on (recorded in run.json and the source-cache key)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

_PACKAGES = ("rl-transfer", "stable-baselines3", "gymnasium", "torch", "numpy")


def package_versions() -> dict[str, str]:
    """Installed version of each package a result depends on (``"missing"`` if absent)."""
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out
