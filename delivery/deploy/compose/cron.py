"""Replacing cron at the end of a handover: stop-first (a running job finishes or stops cleanly), the old
cron put back when the new one does not get healthy or runs another image than the release."""
from __future__ import annotations

from delivery.deploy.compose.health import image_mismatch
from delivery.deploy.compose.state import Handover
from delivery.errors import CronFailed, DeliveryError
from delivery.hosts.services import CRON_SERVICE
from delivery.images import tags


def replace_cron(h: Handover) -> None:
    """Replace cron with the handover's release. The new cron starts from its pin (`tag@sha256:...`, else the
    tag), the old one again from its own ref; like the web container, the new cron must run an image with one
    of the handover's digests (when given). Raises CronFailed, after putting the old cron back."""
    previous = h.slots.previous_cron
    h.tags["cron"] = h.pin or h.tag
    was = tags.without_digest(previous) if previous else None
    h.say(f"replacing cron ({was or 'none'} -> {h.tag})")
    healthy, why = _start_cron(h)
    if healthy:
        return
    if previous and was != h.tag:
        h.tags["cron"] = previous
        try:
            h.port.up(CRON_SERVICE, h.tags)
        except DeliveryError:
            pass
        back = f"cron was put back on {was}"
    else:
        back = "no other cron was running before"
    raise CronFailed(f"cron of {h.tag} failed on {h.label}: {why}; the web app runs {h.tag}, {back}")


def _start_cron(h: Handover) -> tuple[bool, str]:
    """Start the new cron and check it: (True, "healthy"), or (False, why not)."""
    try:
        container = h.port.up(CRON_SERVICE, h.tags)
        healthy, why = h.port.wait_healthy(container.id, h.config.health_timeout, h.reporter)
        if healthy and h.digests:
            if mismatch := image_mismatch(h.digests, container.image, h.port.running_image(container.image)[0]):
                return False, mismatch
    except DeliveryError as exc:
        return False, str(exc)
    return healthy, why
