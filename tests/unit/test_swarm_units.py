"""Swarm mode's pure parts: the stack document from compose's model, the one-line errors, measured pulls."""

import pytest

from delivery.config.settings import load_config
from delivery.deploy.swarm.rollout import (
    NodeReport,
    SwarmReport,
    manager_error,
    measured_pull,
    outcome_error,
    parse_time,
    proxy_change,
    proxy_warning,
    stack_env,
)
from delivery.deploy.swarm.stack import DEFINITION_LABEL, definition_hash, stack_document, tmpfs_mount
from delivery.errors import DeliveryError
from delivery.registry.client import Blob, Manifest
from delivery.release.pullreport import host_layers


def model() -> dict:
    return {
        "name": "production-control",
        "services": {
            "web": {"image": "r/app:1", "entrypoint": None, "tmpfs": ["/run", "/tmp:size=64m"],
                    "volumes": [{"type": "volume", "source": "data", "target": "/data"}]},
            "proxy": {"image": "haproxy", "ports": [{"mode": "host", "target": 8080, "published": "8000", "protocol": "tcp"}],
                      "configs": [{"source": "haproxy-swarm", "target": "/etc/haproxy.cfg"}]},
        },
        "configs": {"haproxy-swarm": {"content": "global\n"}},
    }


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


@pytest.mark.parametrize(
    ("state", "control", "expected"),
    [
        ("inactive", False, "is not in a swarm: initialise one with `docker swarm init`"),
        ("active", False, "is a swarm worker, not a manager: point --host at a manager"),
        ("locked", False, "is locked"),
        ("active", True, None),
    ],
    ids=["not-initialised", "worker", "locked", "manager"],
)
def test_manager_errors(state: str, control: bool, expected: str | None) -> None:
    problem = manager_error("node1", state, control)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem and "\n" not in problem


def report(**changes) -> SwarmReport:
    base = SwarmReport(manager="m", stack="pc", image="r/app", version="1.0.1-b", digest="sha256:x", previous="1.0.0-a")
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def test_a_paused_update_says_how_to_resume_or_roll_back() -> None:
    line = outcome_error(report(update_state="paused", update_message="update paused due to failure"), None, load_config({}))
    assert "docker service update --detach=false pc_web" in line and "invoke rollback" in line


def test_a_rolled_back_update_names_the_failure_and_what_serves() -> None:
    failed = [{"service": "pc_web", "node": "n2", "state": "failed", "error": "task: non-zero exit (1)", "image": "1.0.1-b"}]
    line = outcome_error(report(update_state="rolled back", failed_tasks=failed), None, load_config({}))
    assert "non-zero exit (1)" in line and "rolled pc_web back" in line and "1.0.0-a is serving" in line


def test_a_node_that_cannot_pull_is_named() -> None:
    failed = [{"service": "pc_web", "node": "swarm-node3", "state": "rejected",
               "error": "No such image: r/app:1.0.1-b", "image": "1.0.1-b"}]
    line = outcome_error(report(update_state="rolled back", failed_tasks=failed), None, load_config({"registry": "reg:5000"}))
    assert line.startswith("swarm-node3 cannot pull from reg:5000") and "certs.d" in line


def test_a_measured_pull_is_the_layers_that_arrived() -> None:
    blobs = tuple(Blob(f"sha256:{c * 64}", size) for c, size in (("1", 100), ("2", 20)))
    manifest = Manifest("sha256:" + "m" * 64, 500, Blob("sha256:" + "c" * 64, 7), blobs)
    diff_ids = ("sha256:" + "a" * 64, "sha256:" + "b" * 64)
    before = host_layers("overlay2", [("old", [], [diff_ids[0]])])
    after = host_layers("overlay2", [("old", [], [diff_ids[0]]), ("sha256:" + "c" * 64, [], list(diff_ids))])
    assert measured_pull(manifest, diff_ids, before, after) == (1, 20 + 7)
    assert measured_pull(manifest, diff_ids, after, after) == (0, 0)


def test_docker_times_with_nanoseconds() -> None:
    assert parse_time("2026-11-29T05:27:01.123456789Z") == pytest.approx(1795930021.123456)


def test_swarm_settings() -> None:
    config = load_config({"mode": "swarm", "nodes": "unix:///a.sock,ssh://n2", "pre_pull": "true", "replicas": "5"})
    assert (config.mode, config.nodes, config.pre_pull, config.replicas) == ("swarm", ("unix:///a.sock", "ssh://n2"), True, 5)
    assert load_config({}).nodes == ()
    with pytest.raises(DeliveryError, match="deploy.mode"):
        load_config({"mode": "kubernetes"})
    with pytest.raises(DeliveryError, match="deploy.replicas"):
        load_config({"replicas": 0})


def test_node_report_defaults_say_nothing_was_measured() -> None:
    node = NodeReport("n1", "10.0.0.1", "ready")
    assert not node.measured and node.measured_bytes is None


def test_a_first_deploy_whose_tasks_keep_failing_says_there_is_nothing_to_roll_back_to() -> None:
    failed = [{"service": "pc_web", "node": "n1", "state": "failed", "error": "task: non-zero exit (1)", "image": "1.0.1-b"}]
    line = outcome_error(report(update_state="failed", update_message="task: non-zero exit (1)", previous=None, failed_tasks=failed),
                         None, load_config({}))
    assert "no previous release to roll back to" in line and "docker stack rm pc" in line


@pytest.mark.parametrize(("replicas", "slots"), [(1, 8), (3, 8), (7, 8), (8, 9), (100, 101)])
def test_the_proxy_has_a_slot_for_every_web_task_during_an_update(replicas: int, slots: int) -> None:
    from delivery.deploy.swarm.rollout import proxy_slots

    assert proxy_slots(replicas) == slots


@pytest.mark.parametrize("registry_user", [None, "deploy"])
def test_stack_deploy_always_forwards_the_registry_login(monkeypatch: pytest.MonkeyPatch, registry_user: str | None) -> None:
    from pathlib import Path

    from delivery.config.hosts import parse_host
    from delivery.deploy.swarm import rollout as swarm

    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(swarm, "cli", lambda docker, *args, what: calls.append(args) or "")
    monkeypatch.setattr(swarm.stackfile, "write_stack", lambda directory, document, files: Path("/tmp/stack.json"))
    config = load_config({"registry_user": registry_user})
    swarm.stack_deploy(None, parse_host("local"), config.compose_project, *stack_document(model(), "pc"))
    assert "--with-registry-auth" in calls[0] and calls[0][:2] == ("stack", "deploy")
    # An image named as before keeps the digest it runs: a moved proxy tag does not replace the proxy.
    assert calls[0][calls[0].index("--resolve-image") + 1] == "changed"


def test_web_names_the_release_by_tag_and_digest_and_the_proxy_gets_a_slot_per_task() -> None:
    env = stack_env(load_config({"replicas": 9, "registry": "reg:5000"}), "1.0.1-b", "1.0.0-a", "sha256:" + "d" * 64)
    assert env["APP_TAG"] == "1.0.1-b@sha256:" + "d" * 64 and env["CRON_TAG"] == "1.0.0-a"
    assert (env["REGISTRY"], env["WEB_REPLICAS"], env["PROXY_SLOTS"]) == ("reg:5000", "9", "10")
    assert stack_env(load_config({}), "1.0.1-b")["CRON_TAG"] == "1.0.1-b"


# -- the proxy: replaced only when its own definition changes ----------------------------------------
def running_proxy(document: dict, labels: dict | None = None) -> dict:
    """The proxy service as `docker inspect` shows it after `docker stack deploy` of `document`."""
    wanted = document["services"]["proxy"]
    names = {source: config["name"] for source, config in document["configs"].items()}
    return {"Spec": {
        "Labels": {"com.docker.stack.image": wanted["image"], **wanted["deploy"]["labels"]} if labels is None else labels,
        "TaskTemplate": {"ContainerSpec": {"Image": wanted["image"] + "@sha256:" + "e" * 64,
                                           "Configs": [{"ConfigName": names[c["source"]]} for c in wanted["configs"]]}},
        "EndpointSpec": {"Ports": [{"PublishedPort": p["published"], "TargetPort": p["target"]} for p in wanted["ports"]]},
    }}


def changed_model(what: str) -> dict:
    changed = model()
    proxy = changed["services"]["proxy"]
    if what == "image":
        proxy["image"] = "haproxy:3.0.7"
    elif what == "config":
        changed["configs"]["haproxy-swarm"]["content"] = "global\n  maxconn 10\n"
    elif what == "port":
        proxy["ports"][0]["published"] = "8080"
    elif what == "definition":
        proxy["read_only"] = True
    return changed


def test_each_service_carries_the_hash_of_its_own_definition() -> None:
    document = stack_document(model(), "pc")[0]
    labels = {name: service["deploy"]["labels"][DEFINITION_LABEL] for name, service in document["services"].items()}
    assert labels["proxy"] != labels["web"]
    assert labels == {name: definition_hash(service, document["configs"]) for name, service in document["services"].items()}
    assert stack_document(model(), "pc")[0] == document
    for what in ("image", "config", "port", "definition"):
        assert stack_document(changed_model(what), "pc")[0]["services"]["proxy"]["deploy"]["labels"][DEFINITION_LABEL] != labels["proxy"], what
    assert stack_document(changed_model("image"), "pc")[0]["services"]["web"]["deploy"]["labels"][DEFINITION_LABEL] == labels["web"]


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


@pytest.mark.parametrize(
    ("state", "expected"),
    [("rolled back", "Swarm rolled pc_proxy back, the previous one serves on every node"),
     ("paused", "the update of pc_proxy paused (update paused due to failure): a node may have no proxy"),
     ("timed out", "the update of pc_proxy timed out")],
    ids=["rolled-back", "paused", "timed-out"],
)
def test_a_proxy_update_that_did_not_complete_is_one_line(state: str, expected: str) -> None:
    failed = report(update_state="completed", cron_state="completed", proxy_state=state,
                    proxy_message="update paused due to failure" if state == "paused" else None)
    line = outcome_error(failed, None, load_config({}))
    assert expected in line and "\n" not in line


@pytest.mark.parametrize(("previous_spec", "expected"), [({"Name": "pc_proxy"}, "unchanged"), (None, "created")],
                         ids=["existing", "new"])
def test_a_global_service_swarm_does_not_update_is_unchanged_or_created(
    monkeypatch: pytest.MonkeyPatch, previous_spec: dict | None, expected: str
) -> None:
    from delivery.deploy.swarm import rollout as swarm

    proxy = {"ID": "p1", "Spec": {"Name": "pc_proxy", "Mode": {"Global": {}}}, "PreviousSpec": previous_spec}
    monkeypatch.setattr(swarm, "services", lambda manager, stack: {"proxy": proxy})
    monkeypatch.setattr(swarm.time, "sleep", lambda seconds: None)
    assert swarm.wait_update(None, "pc", "proxy", started=0.0, timeout=5, say=print) == (expected, None)


def test_the_report_says_what_happened_to_the_proxy() -> None:
    from delivery.deploy.swarm.rollout import format_report

    done = report(update_state="completed", cron_state="completed", proxy_state="completed", proxy_change="port 8000 -> 8080")
    assert "proxy           completed (replaced: port 8000 -> 8080)" in format_report(done.as_dict()).splitlines()
    dry = report(update_state="dry run")
    assert "proxy           left as it is (predicted)" in format_report(dry.as_dict()).splitlines()
