"""Planning a swarm deploy: the stack's environment, the proxy's slots, and the proxy replaced only when its own
definition changed (and then said in one line before the update)."""

import pytest

from delivery.config.settings import load_config
from delivery.deploy.swarm.plan import proxy_change, proxy_warning, stack_env
from delivery.deploy.swarm.stack import stack_document
from delivery.docker.swarm import Service, parse_service
from tests.unit.deploy.swarm.conftest import changed_model, model


@pytest.mark.parametrize(("replicas", "slots"), [(1, 8), (3, 8), (7, 8), (8, 9), (100, 101)])
def test_the_proxy_has_a_slot_for_every_web_task_during_an_update(replicas: int, slots: int) -> None:
    from delivery.deploy.swarm.plan import proxy_slots

    assert proxy_slots(replicas) == slots


def test_web_names_the_release_by_tag_and_digest_and_the_proxy_gets_a_slot_per_task() -> None:
    env = stack_env(load_config({"replicas": 9, "registry": "reg:5000"}), "1.0.1-b", "1.0.0-a", "sha256:" + "d" * 64)
    assert env["APP_TAG"] == "1.0.1-b@sha256:" + "d" * 64 and env["CRON_TAG"] == "1.0.0-a"
    assert (env["REGISTRY"], env["WEB_REPLICAS"], env["PROXY_SLOTS"]) == ("reg:5000", "9", "10")
    assert stack_env(load_config({}), "1.0.1-b")["CRON_TAG"] == "1.0.1-b"


def running_proxy(document: dict, labels: dict | None = None) -> Service:
    """The proxy service as `docker inspect` shows it after `docker stack deploy` of `document`."""
    wanted = document["services"]["proxy"]
    names = {source: config["name"] for source, config in document["configs"].items()}
    return parse_service({"ID": "p1", "Spec": {"Name": "pc_proxy",
        "Labels": {"com.docker.stack.image": wanted["image"], **wanted["deploy"]["labels"]} if labels is None else labels,
        "TaskTemplate": {"ContainerSpec": {"Image": wanted["image"] + "@sha256:" + "e" * 64,
                                           "Configs": [{"ConfigName": names[c["source"]]} for c in wanted["configs"]]}},
        "EndpointSpec": {"Ports": [{"PublishedPort": p["published"], "TargetPort": p["target"]} for p in wanted["ports"]]},
    }})


@pytest.mark.parametrize(
    ("what", "expected"),
    [
        ("image", "image haproxy -> haproxy:3.0.7"),
        ("config", "configuration pc_haproxy-swarm-"),
        ("port", "port 8000 -> 8080"),
        ("definition", "its definition in docker-compose.yml or docker-stack.yml"),
    ],
    ids=["proxy-image", "haproxy-cfg", "http-port", "other-field"],
)
def test_a_changed_proxy_definition_is_named_before_the_deploy(what: str, expected: str) -> None:
    running = running_proxy(stack_document(model(), "pc")[0])
    change = proxy_change(running, stack_document(changed_model(what), "pc")[0])
    assert change is not None and expected in change and "\n" not in change


def test_the_proxy_is_left_alone_when_its_definition_is_the_same_or_there_is_none_yet() -> None:
    document = stack_document(model(), "pc")[0]
    assert proxy_change(running_proxy(document), document) is None
    assert proxy_change(None, document) is None  # the first deploy: nothing served on that port before


def test_a_proxy_an_older_toolkit_deployed_is_said_to_have_no_record() -> None:
    document = stack_document(model(), "pc")[0]
    running = running_proxy(document, labels={"com.docker.stack.image": "haproxy"})
    assert proxy_change(running, document) == "no record of its definition: an older toolkit deployed it"


@pytest.mark.parametrize("dry_run", [False, True], ids=["deploy", "dry-run"])
def test_the_proxy_warning_is_one_line_that_says_each_node_refuses_connections(dry_run: bool) -> None:
    line = proxy_warning("node1", "port 8000 -> 8080", dry_run)
    assert line.startswith("node1: the proxy ") and "(port 8000 -> 8080)" in line and "\n" not in line
    assert "refuses connections" in line and "stop-first" in line and "predicted" in line
    assert ("would be replaced" in line) == dry_run
