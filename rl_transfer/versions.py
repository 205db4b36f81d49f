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


def machine() -> dict[str, object]:
    """The machine a result was measured on: CPU model (``/proc/cpuinfo``'s first ``model
    name``, else :func:`platform.processor`), logical cores, OS and Python version. Floating-point
    results differ between CPU vendors, so a published number names its machine."""
    import os
    import platform

    cpu = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if cpu is None:  # platform.processor() may run `uname -p`: only where /proc has no answer
        cpu = platform.processor() or "unknown"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
