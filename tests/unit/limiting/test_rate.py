from __future__ import annotations

from comfygate.config import KindLimits, LimitSettings
from comfygate.limiting.rate import KindRates, kind_rates

VISITOR = KindLimits(per_minute=10, per_address_per_minute=30)


def test_anonymous_callers_of_a_public_site_get_the_visitors_rates() -> None:
    rates = kind_rates(LimitSettings(kinds={"visitor": VISITOR}), public_anonymous=True)
    assert rates["local"] == KindRates(per_principal=10, per_address=30)


def test_limits_of_their_own_and_private_gateways_keep_what_is_configured() -> None:
    own = LimitSettings(kinds={"visitor": VISITOR, "local": KindLimits(per_minute=3)})
    assert kind_rates(own, public_anonymous=True)["local"] == KindRates(per_principal=3)
    private = kind_rates(LimitSettings(kinds={"visitor": VISITOR}), public_anonymous=False)
    assert "local" not in private
