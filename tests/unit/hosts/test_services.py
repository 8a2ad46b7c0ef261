"""The service table: the services a user names and the compose services they map to."""

import pytest

from delivery.errors import DeliveryError
from delivery.hosts.services import COMPOSE_SERVICES, compose_services


# -- services ------------------------------------------------------------------------------------------
def test_services_map_to_compose_services() -> None:
    assert compose_services("web") == COMPOSE_SERVICES["web"]
    assert compose_services(None) == tuple(dict.fromkeys(s for v in COMPOSE_SERVICES.values() for s in v))


@pytest.mark.parametrize(
    ("name", "message"),
    [("database", "unknown service 'database': use web, cron, proxy"), ("WEB", "unknown service 'WEB'")],
    ids=["unknown", "case-matters"],
)
def test_unknown_services_are_refused(name: str, message: str) -> None:
    with pytest.raises(DeliveryError, match=message):
        compose_services(name)


def test_a_service_this_deployment_lacks_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(COMPOSE_SERVICES, "proxy", ())
    with pytest.raises(DeliveryError, match="no proxy service"):
        compose_services("proxy")
