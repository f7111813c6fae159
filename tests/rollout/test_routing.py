"""Canary buckets: sticky, monotonic, close to the asked share."""

from notify.rollout import routing
from notify.rollout.routing import Route, TenantStage
from notify.tenants.models import Tenant

Stage = Tenant.Stage
RECIPIENTS = [f"139{n:08d}" for n in range(20_000)]


def test_canary__raising_the_percentage__only_moves_recipients_to_the_platform():
    # Given the recipients served by the platform at each percentage
    served = {
        p: {r for r in RECIPIENTS if routing.in_canary("ak_a", r, p)} for p in (0, 1, 10, 50, 100)
    }
    # Then each larger canary holds every recipient of the smaller one
    assert served[0] == set() and served[100] == set(RECIPIENTS)
    assert served[1] <= served[10] <= served[50] <= served[100]
    # and its share is close to the percentage asked
    for percent in (1, 10, 50):
        assert abs(len(served[percent]) / len(RECIPIENTS) - percent / 100) < 0.01


def test_canary__same_recipient_other_tenant__bucketed_independently():
    a = {r for r in RECIPIENTS if routing.in_canary("ak_a", r, 50)}
    b = {r for r in RECIPIENTS if routing.in_canary("ak_b", r, 50)}
    assert a != b and 0.4 < len(a & b) / len(a) < 0.6


def test_send_route__each_stage__where_the_send_goes():
    def stage(name: str, percent: int = 0, paused: str = "") -> TenantStage:
        return TenantStage(1, name, percent, paused)

    inside = next(r for r in RECIPIENTS if routing.in_canary("ak", r, 10))
    outside = next(r for r in RECIPIENTS if not routing.in_canary("ak", r, 10))
    assert routing.send_route(None, "ak", inside) == Route.LEGACY
    assert routing.send_route(stage(Stage.LEGACY), "ak", inside) == Route.LEGACY
    assert routing.send_route(stage(Stage.SHADOW), "ak", inside) == Route.SHADOW
    assert routing.send_route(stage(Stage.CANARY, 10), "ak", inside) == Route.NEW
    # the old gateway's share of a canary is still compared
    assert routing.send_route(stage(Stage.CANARY, 10), "ak", outside) == Route.SHADOW
    assert routing.send_route(stage(Stage.CANARY, 10), "ak", None) == Route.SHADOW
    assert routing.send_route(stage(Stage.NEW), "ak", outside) == Route.NEW
    # paused: routed as in the stage it was paused in
    assert routing.send_route(stage(Stage.PAUSED, 10, Stage.CANARY), "ak", inside) == Route.NEW
    assert routing.send_route(stage(Stage.PAUSED, 0, Stage.LEGACY), "ak", inside) == Route.LEGACY
