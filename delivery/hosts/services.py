"""The services an operator names (web, cron, proxy) and the compose services that play them.

This table is the one place that knows docker-compose.yml's service names: `invoke logs
--service` and `invoke run-job` (which runs jobs in the cron service's container) use it, and
so do the deploy (delivery/deploy/compose) and the site survey (delivery/hosts/site.py).
"""
from __future__ import annotations

from delivery.errors import DeliveryError

SLOTS = ("blue", "green")  # the two web slots: a deploy starts the new release in the one that is not live
PROXY_SERVICE = "proxy"
CRON_SERVICE = "cron"
LEGACY_SERVICE = "app"  # the single-container layout of earlier releases (web + cron in one)


def service_of(slot: str) -> str:
    """The compose service of a web slot."""
    return f"web-{slot}"


def other(slot: str | None) -> str:
    """The slot a deploy starts the new release in: the one that is not live (blue when none is)."""
    return "green" if slot == "blue" else "blue"


# operator's name -> services of docker-compose.yml: the web app runs in one of two slots
# (blue/green, both during a deploy), cron in one container, HAProxy in front.
COMPOSE_SERVICES: dict[str, tuple[str, ...]] = {
    "web": tuple(service_of(slot) for slot in SLOTS),
    "cron": (CRON_SERVICE,),
    "proxy": (PROXY_SERVICE,),
}


def compose_services(name: str | None) -> tuple[str, ...]:
    """The compose services behind `name`; every service of the project when `name` is None."""
    if name is None:
        return tuple(dict.fromkeys(s for services in COMPOSE_SERVICES.values() for s in services))
    if name not in COMPOSE_SERVICES:
        raise DeliveryError(f"unknown service {name!r}: use {', '.join(COMPOSE_SERVICES)}")
    services = COMPOSE_SERVICES[name]
    if not services:
        raise DeliveryError(f"this deployment has no {name} service (docker-compose.yml): use "
                            + ", ".join(n for n, s in COMPOSE_SERVICES.items() if s))
    return services
