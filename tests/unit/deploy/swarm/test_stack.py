"""Swarm mode's stack document from compose's model: what `docker stack deploy` accepts, tmpfs sizes, config names, hardening."""

import pytest

from delivery.deploy.swarm.stack import DEFINITION_LABEL, definition_hash, stack_document, tmpfs_mount
from delivery.errors import DeliveryError
from tests.unit.deploy.swarm.conftest import changed_model, model


def test_the_stack_document_is_what_docker_stack_deploy_accepts() -> None:
    document, files = stack_document(model(), "pc")
    assert "name" not in document
    web = document["services"]["web"]
    assert "entrypoint" not in web and "tmpfs" not in web
    assert web["volumes"] == [{"type": "volume", "source": "data", "target": "/data"},
                              {"type": "tmpfs", "target": "/run"}, {"type": "tmpfs", "target": "/tmp", "tmpfs": {"size": 64 * 1024**2}}]
    assert document["services"]["proxy"]["ports"][0]["published"] == 8000
    config = document["configs"]["haproxy-swarm"]
    assert files == {"haproxy-swarm.conf": "global\n"}
    assert config["file"] == "./haproxy-swarm.conf" and config["name"].startswith("pc_haproxy-swarm-")


@pytest.mark.parametrize(("entry", "size"), [("/run", None), ("/run:size=16m", 16 * 1024**2), ("/x:size=512k", 512 * 1024),
                                             ("/x:size=1g", 1024**3), ("/x:size=100", 100)])
def test_tmpfs_sizes_become_bytes(entry: str, size: int | None) -> None:
    mount = tmpfs_mount(entry)
    assert mount["target"] == entry.split(":")[0] and mount.get("tmpfs", {}).get("size") == size


def test_a_tmpfs_option_swarm_cannot_run_is_one_line() -> None:
    with pytest.raises(DeliveryError, match="has an option swarm cannot run"):
        tmpfs_mount("/run:mode=1777")


def test_a_changed_inline_config_gets_a_new_swarm_name() -> None:
    changed = model()
    changed["configs"]["haproxy-swarm"]["content"] = "global\n  maxconn 10\n"
    first = stack_document(model(), "pc")[0]["configs"]["haproxy-swarm"]["name"]
    assert stack_document(changed, "pc")[0]["configs"]["haproxy-swarm"]["name"] != first
    assert stack_document(model(), "pc")[0]["configs"]["haproxy-swarm"]["name"] == first


def test_the_hardening_stack_deploy_can_run_reaches_it_and_security_opt_goes() -> None:
    hardened = model()
    hardening = {"read_only": True, "cap_drop": ["ALL"], "cap_add": ["CHOWN", "SETUID", "SETGID", "KILL"], "init": True}
    hardened["services"]["web"].update(hardening, security_opt=["no-new-privileges:true"])
    web = stack_document(hardened, "pc")[0]["services"]["web"]
    assert "security_opt" not in web  # docker stack deploy cannot set it: docs/cluster.md, Hardening
    assert {key: web[key] for key in hardening} == hardening


def test_the_model_is_not_changed() -> None:
    original = model()
    stack_document(original, "pc")
    assert original == model()


def test_each_service_carries_the_hash_of_its_own_definition() -> None:
    document = stack_document(model(), "pc")[0]
    labels = {name: service["deploy"]["labels"][DEFINITION_LABEL] for name, service in document["services"].items()}
    assert labels["proxy"] != labels["web"]
    assert labels == {name: definition_hash(service, document["configs"]) for name, service in document["services"].items()}
    assert stack_document(model(), "pc")[0] == document
    for what in ("image", "config", "port", "definition"):
        assert stack_document(changed_model(what), "pc")[0]["services"]["proxy"]["deploy"]["labels"][DEFINITION_LABEL] != labels["proxy"], what
    assert stack_document(changed_model("image"), "pc")[0]["services"]["web"]["deploy"]["labels"][DEFINITION_LABEL] == labels["web"]
