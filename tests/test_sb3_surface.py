"""The stable-baselines3 internals rl_transfer relies on, checked against the installed SB3.

Every touch point of :mod:`agents.sb3` is resolved and its signature (and, for the update hooks,
the order of calls in SB3's source) compared with what the code was written against. When an
SB3 release changes one, this test fails with the symbol's name.
"""

import dataclasses

import pytest

from agents import sb3
from rl_transfer.errors import RLTransferError, SB3CompatibilityError


def test_every_touch_point_matches_the_installed_sb3():
    problems = sb3.check_surface()
    assert problems == [], "\n".join(problems)


def test_the_installed_sb3_is_in_the_pinned_range():
    import stable_baselines3
    from packaging.specifiers import SpecifierSet

    assert stable_baselines3.__version__ in SpecifierSet(sb3.SUPPORTED)


@pytest.mark.parametrize("symbol", list(sb3.TOUCH_POINTS))
def test_a_changed_signature_is_reported_with_the_symbol(monkeypatch, symbol):
    """The check itself can fail: with the expected parameters altered, it names the symbol."""
    point = sb3.TOUCH_POINTS[symbol]
    altered = dataclasses.replace(
        point,
        params=(point.params or ()) + ("not_a_parameter",),
        order=point.order + ("not in the source",),
    )
    monkeypatch.setitem(sb3.TOUCH_POINTS, symbol, altered)
    sb3.check.cache_clear()
    try:
        with pytest.raises(SB3CompatibilityError, match=symbol.replace(".", r"\.")) as err:
            sb3.check(symbol)
    finally:
        sb3.check.cache_clear()
    assert isinstance(err.value, RLTransferError)
    assert sb3.SUPPORTED in str(err.value)
