"""Publishing a built image: pushing what delivery/images/build.py built, and the digest the tag then names.

The layout path pushes the OCI layout with skopeo (`Registry.push_layout`: the pushed manifest is
the layout's, byte for byte); the engine path pushes from the engine's store (`docker push`), and
the registry then says the digest. Build and publish are apart so what must see an image before it
ships (the deps image's SBOM and Debian-package guard) runs between them.
"""
from __future__ import annotations

from python_on_whales import DockerClient

from delivery.docker.engine import docker_errors
from delivery.errors import DeliveryError
from delivery.images.build import Built
from delivery.images.builder import ENGINE
from delivery.registry.client import Registry
from delivery.reporting import Reporter


def publish(docker: DockerClient, registry: Registry, built: Built, report: Reporter) -> str:
    """Push `built` as its plan's image; return the digest its tag names (the manifest's, or the index's)."""
    if built.path == ENGINE:
        report.step(f"pushing {built.image} with docker push")
        with docker_errors(f"pushing {built.image}", "check that the engine can reach the registry and is logged in to it"):
            docker.image.push(built.image, quiet=True)
        return registry.digest(built.repository, built.tag)
    if built.layout is None:
        raise DeliveryError(f"{built.image} has no OCI layout to push (a bug in the toolkit)")
    report.step(f"pushing {built.image}")
    return registry.push_layout(built.layout, built.repository, built.tag, report)
