"""Swarm mode on a real 3-node swarm (scripts/testbed swarm): rolling updates under load, a crash
rolled back by Swarm, a node's engine killed mid-update, the hardening the stack carries, two racing
deploys, a proxy update measured at each node, cron once per tick across the cluster.

Load goes to node 1's proxy (HAProxy, host-mode port) which forwards to tasks.web over the overlay
network; every connection error, timeout and 5xx counts as a failed request. The registry's access
log tells which node (client address) downloaded which blob. The tests share the bed, in this order.
"""

import json
import re
import subprocess
import time
from collections.abc import Callable

import pytest

from delivery.hosts.lock import lock_name
from delivery.images.tags import APP_REPOSITORY
from tests.integration.support.loadgen import Load
from tests.integration.support.results import record
from tests.integration.support.swarm_helpers import COMPOSE_PORT, PORT, SwarmBed
from tests.integration.support.tasks_helpers import TaskRun

pytestmark = pytest.mark.docker

RATE = 25  # requests per second
PROXY_RATE = 10  # requests per second to each node's own proxy, while the proxy is replaced


NODE_FIGURES = ("node", "tasks", "measured", "measured_layers", "measured_bytes", "pull_seconds")


def nodes_of(report: dict) -> list[dict]:
    """What a swarm report measured on each node."""
    return [{key: node[key] for key in NODE_FIGURES} for node in report["nodes"]]


def save(capsys: pytest.CaptureFixture[str], key: str, data: dict) -> None:
    """Save a test's figures (results.py, kind swarm: docs/cluster.md publishes them) and print them."""
    path = record("swarm", key, data)
    with capsys.disabled():
        print(f"\n[swarm] {key}: {json.dumps(data, sort_keys=True)} (saved in {path})", flush=True)


def manager_cli(swarm: SwarmBed, *args: str) -> str:
    result = subprocess.run(["docker", "-H", swarm.manager_host, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
    return result.stdout


def proxy_tasks(swarm: SwarmBed) -> set[str]:
    """The proxy's running tasks (one per node): a replaced proxy has new ones."""
    return set(manager_cli(swarm, "service", "ps", "-q", "--filter", "desired-state=running", f"{swarm.stack}_proxy").split())


def container_spec(swarm: SwarmBed, service: str) -> dict:
    return json.loads(manager_cli(swarm, "service", "inspect", f"{swarm.stack}_{service}"))[0]["Spec"]["TaskTemplate"]["ContainerSpec"]


def capabilities(names: list[str] | None) -> set[str]:
    return {name.upper().removeprefix("CAP_") for name in names or []}


def under_load(swarm: SwarmBed, action: Callable[[], TaskRun]) -> tuple[TaskRun, Load]:
    """`action` while the stack serves a steady load through node 1, from a second before to a second after."""
    with Load(PORT, "/", rate=RATE, max_seconds=600, host=swarm.node_addresses[0]) as load:
        time.sleep(1)
        run = action()
        time.sleep(1)
    return run, load


def test_a_code_only_release_rolls_through_three_nodes_without_a_failed_request(
    swarm: SwarmBed, capsys: pytest.CaptureFixture[str]
) -> None:
    good, second = swarm.release("good"), swarm.release("second")
    swarm.ensure_serving(good)
    dry = swarm.deploy(second, "--dry-run")
    assert dry.returncode == 0, dry.describe()
    predicted = {n["node"]: n["predicted_bytes"] for n in dry.json()["nodes"]}
    offset = swarm.log_offset()
    proxies = proxy_tasks(swarm)

    run, load = under_load(swarm, lambda: swarm.deploy(second))

    assert run.returncode == 0, run.describe()
    report = run.json()
    summary = load.result.summary()
    # An ordinary release never touches the proxy: nothing said, nothing replaced.
    assert (report["proxy_change"], report["proxy_state"]) == (None, "unchanged"), report
    assert "the proxy will be replaced" not in run.stderr, run.describe()
    assert proxy_tasks(swarm) == proxies
    assert load.result.requests >= 2 * RATE
    assert not load.result.failures, summary
    assert (report["update_state"], report["previous"], report["version"]) == ("completed", good.tag, second.tag)
    assert report["failed_tasks"] == []
    assert swarm.serving_commit() == second.commit
    # Each node that started a task of the release (Swarm places them) downloaded the code layer and
    # the config, nothing else: per the registry's log, as the report measured and the dry run predicted.
    # (A node that also starts the new cron task asks for the config twice: the engine checks it at each
    # task start; its bytes count once here.)
    gets = swarm.blob_gets_by_client(offset)
    pulled = 0
    for node, address in zip(report["nodes"], swarm.node_addresses, strict=False):
        served = {a.path: a.size for a in gets.get(address, [])}
        assert node["measured"], node
        if served:
            pulled += 1
            assert len(served) == 2, (node["node"], gets.get(address))
            assert node["measured_layers"] == 1, node
            assert node["measured_bytes"] == sum(served.values()) == predicted[node["node"]], (node, served)
        else:
            assert (node["measured_layers"], node["measured_bytes"], node["tasks"]) == (0, 0, 0), node
    assert pulled >= 2 and sum(n["tasks"] for n in report["nodes"]) == 3, report["nodes"]
    status = swarm.invoke("status", "--json")
    assert status.returncode == 0, status.describe()
    web = status.json()["services"]["web"]
    assert web["update_state"] == "completed"
    assert {t["digest"] for t in web["tasks"]} == {second.digest}
    assert {n: c["healthy"] for n, c in web["per_node"].items()} == {n["node"]: n["tasks"] for n in report["nodes"] if n["tasks"]}
    save(capsys, "code", {"load": summary, "update_seconds": report["update_seconds"], "seconds": report["seconds"],
                          "nodes": nodes_of(report)})


def test_the_stack_runs_with_the_hardening_stack_deploy_can_carry(swarm: SwarmBed) -> None:
    """docs/cluster.md, Hardening: read_only, the capabilities and init reach the services; no-new-privileges
    cannot (docker stack deploy drops security_opt), so the image has no setuid or setgid file instead."""
    second = swarm.release("second")
    swarm.ensure_serving(second)
    for service in ("web", "cron"):
        spec = container_spec(swarm, service)
        assert spec.get("ReadOnly") is True and spec.get("Init") is True, (service, spec)
        assert capabilities(spec.get("CapabilityDrop")) == {"ALL"}, (service, spec)
        assert capabilities(spec.get("CapabilityAdd")) == {"CHOWN", "SETUID", "SETGID", "KILL"}, (service, spec)
        tmpfs = {m["Target"] for m in spec.get("Mounts") or [] if m.get("Type") == "tmpfs"}
        assert tmpfs == {"/run", "/tmp", "/var/log", "/etc/cron.d"}, (service, spec.get("Mounts"))
    proxy = container_spec(swarm, "proxy")
    assert proxy.get("ReadOnly") is True and capabilities(proxy.get("CapabilityDrop")) == {"ALL"}, proxy
    assert not proxy.get("CapabilityAdd"), proxy
    # The release the nodes run, on a node's own engine: no file there can raise privileges.
    image = f"{swarm.env['TESTBED_SWARM_REGISTRY']}/{APP_REPOSITORY}:{second.tag}@{second.digest}"
    found = subprocess.run(["docker", "-H", swarm.node_hosts[0], "run", "--rm", "--entrypoint", "find", image,
                            "/", "-xdev", "-perm", "/6000", "-type", "f"], capture_output=True, text=True, timeout=120)
    assert found.returncode == 0 and found.stdout.split() == [], found.stdout + found.stderr


def test_rollback_goes_back_to_the_previous_release_without_a_failed_request(
    swarm: SwarmBed, capsys: pytest.CaptureFixture[str]
) -> None:
    good, second = swarm.release("good"), swarm.release("second")
    swarm.ensure_serving(second)
    offset = swarm.log_offset()

    run, load = under_load(swarm, lambda: swarm.invoke("rollback", "--json"))

    assert run.returncode == 0, run.describe()
    report = run.json()
    assert (report["version"], report["previous"], report["update_state"]) == (good.tag, second.tag, "rolled back"), report
    assert not load.result.failures, load.result.summary()
    downloads = sum(a.size for gets in swarm.blob_gets_by_client(offset).values() for a in gets)  # registry log
    save(capsys, "rollback", {"load": load.result.summary(), "update_seconds": report["update_seconds"],
                              "seconds": report["seconds"], "downloaded_bytes": downloads})
    assert swarm.serving_commit() == good.commit
    status = swarm.invoke("status", "--json").json()
    assert {t["tag"] for t in status["services"]["web"]["tasks"]} == {good.tag}
    assert {t["tag"] for t in status["services"]["cron"]["tasks"]} == {good.tag}


def test_a_release_that_crashes_at_start_is_rolled_back_by_swarm(
    swarm: SwarmBed, capsys: pytest.CaptureFixture[str]
) -> None:
    second, crash = swarm.release("second"), swarm.release("crash")
    swarm.ensure_serving(second)

    run, load = under_load(swarm, lambda: swarm.deploy(crash))

    summary = load.result.summary()
    assert run.returncode == 1, run.describe()
    assert "Traceback" not in run.stderr
    assert len(run.error_lines) == 1 and "rolled" in run.error_lines[0] and second.tag in run.error_lines[0], run.describe()
    report = run.json()
    assert report["update_state"] == "rolled back" and not report["healthy"], report
    assert report["failed_tasks"] and all(t["image"] == crash.tag for t in report["failed_tasks"]), report["failed_tasks"]
    assert not load.result.failures, summary
    assert swarm.serving_commit() == second.commit
    # cron moves only after web's update completed: it still runs the release that serves.
    assert report["cron_state"] == f"kept {second.tag}", report
    status = swarm.invoke("status", "--json").json()
    assert {t["tag"] for t in status["services"]["cron"]["tasks"]} == {second.tag}
    save(capsys, "crash", {"load": summary, "update_state": report["update_state"], "exit": run.returncode,
                           "cron_state": report["cron_state"], "seconds": report["seconds"], "nodes": nodes_of(report)})


def test_pre_pull_moves_the_download_out_of_the_update_window(
    swarm: SwarmBed, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same kind of release (a new 24 MB layer) without, then with deploy.pre_pull."""
    swarm.ensure_serving(swarm.release("second"))
    for name, pre_pull in (("layer24-a", "0"), ("layer24-b", "1")):  # invoke reads env booleans as 0 / 1
        release = swarm.release(name)
        offset = swarm.log_offset()
        with Load(PORT, "/", rate=RATE, max_seconds=600, host=swarm.node_addresses[0]) as load:
            run = swarm.deploy(release, env={"INVOKE_DEPLOY_PRE_PULL": pre_pull})
        assert run.returncode == 0, run.describe()
        report = run.json()
        gets = swarm.blob_gets_by_client(offset)
        assert report["update_state"] == "completed" and not load.result.failures, (report, load.result.summary())
        for node, address in zip(report["nodes"], swarm.node_addresses, strict=False):
            served = {a.path: a.size for a in gets.get(address, [])}
            assert node["measured_bytes"] == sum(served.values()), (node, served)
            if pre_pull == "1" or node["tasks"]:  # pre-pull: every node, whatever Swarm places there
                assert node["measured_layers"] == 1 and node["measured_bytes"] > 24 << 20, node
        assert report["pre_pull"] == (pre_pull == "1")
        save(capsys, "layer-pre-pull" if pre_pull == "1" else "layer", {
            "load": load.result.summary(), "update_seconds": report["update_seconds"], "seconds": report["seconds"],
            "pre_pull_seconds": report["pre_pull_seconds"], "nodes": nodes_of(report)})


def test_beside_compose_the_same_kind_of_release_host_by_host_on_the_same_nodes(
    swarm: SwarmBed, capsys: pytest.CaptureFixture[str]
) -> None:
    """The benchmark's other column: a code-only release with deploy.mode compose, host by host,
    on the same three engines (a compose project and port of its own beside the stack)."""
    good, third = swarm.release("good"), swarm.release("third")
    hosts = [arg for host in swarm.node_hosts for arg in ("--host", host)]
    env = {"INVOKE_DEPLOY_MODE": "compose", "INVOKE_DEPLOY_COMPOSE_PROJECT": "pc-compose", "INVOKE_DEPLOY_HTTP_PORT": str(COMPOSE_PORT)}
    try:
        first = swarm.invoke("deploy", *hosts, "--version", good.tag, "--json", env=env)
        assert first.returncode == 0, first.describe()
        offset = swarm.log_offset()
        loads = [Load(COMPOSE_PORT, "/", rate=RATE / 3, max_seconds=600, host=address) for address in swarm.node_addresses]
        for load in loads:
            load.__enter__()
        time.sleep(1)
        run = swarm.invoke("deploy", *hosts, "--version", third.tag, "--json", env=env)
        time.sleep(1)
        for load in loads:
            load.stop()
        assert run.returncode == 0, run.describe()
        reports = run.json()["hosts"]
        gets = swarm.blob_gets_by_client(offset)
        failed = sum(len(load.result.failures) for load in loads)
        assert failed == 0
        nodes = []
        for number, (report, address) in enumerate(zip(reports, swarm.node_addresses, strict=False), 1):
            served = {a.path: a.size for a in gets.get(address, [])}
            # Deploy reports (compose, host by host): the prediction, checked against what the registry served.
            assert report["predicted_layers"] == 1 and report["predicted_bytes"] == sum(served.values()), (report, served)
            nodes.append({"node": f"swarm-node{number}", "measured_layers": len(served) - 1, "measured_bytes": sum(served.values()),
                          "pull_seconds": report.get("pull_seconds")})  # registry log: the layer and the config
        save(capsys, "compose", {"load": {"requests": sum(load.result.requests for load in loads), "failed": failed},
                                 "deploy_seconds": [r["seconds"] for r in reports], "seconds": round(run.seconds, 1),
                                 "nodes": nodes})
    finally:
        swarm.remove_compose_project("pc-compose")


def test_clear_errors_a_worker_and_a_node_that_cannot_reach_the_registry(swarm: SwarmBed) -> None:
    second, third = swarm.release("second"), swarm.release("third")
    swarm.ensure_serving(second)

    worker = swarm.invoke("status", "--host", swarm.node_hosts[1])
    assert worker.returncode == 1 and worker.error_lines == [
        f"error: the engine at {swarm.node_hosts[1].removeprefix('unix://')} is a swarm worker, not a manager: "
        "point --host at a manager (`docker node ls` on a manager lists them)"], worker.describe()

    with swarm.registry_blocked(3):
        run = swarm.deploy(third, env={"INVOKE_DEPLOY_PRE_PULL": "1"})
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.describe()
    assert len(run.error_lines) == 1 and run.error_lines[0].startswith(
        f"error: swarm-node3 cannot pull from {swarm.env['TESTBED_SWARM_REGISTRY']}"), run.describe()
    assert "nothing was changed" in run.error_lines[0]
    assert swarm.serving_commit() == second.commit


def test_a_node_engine_killed_during_the_update_keeps_the_service_up_and_is_named(
    swarm: SwarmBed, capsys: pytest.CaptureFixture[str]
) -> None:
    second, third = swarm.release("second"), swarm.release("slow")
    swarm.ensure_serving(second)
    try:
        with Load(PORT, "/", rate=RATE, max_seconds=600, host=swarm.node_addresses[0]) as load:
            time.sleep(1)
            task = swarm.start_invoke("deploy", "--version", third.tag, "--json")
            task.wait_for_stderr("web: update updating", timeout=120)
            swarm.kill_node_engine(3)
            run = task.finish(timeout=900)
            time.sleep(1)
    finally:
        swarm.restart_nodes()
    summary = load.result.summary()
    report = run.json()
    node3 = next(n for n in report["nodes"] if n["node"] == "swarm-node3")
    assert "swarm-node3" in report["nodes_down"] or not node3["measured"], report
    assert node3["note"] and "stopped answering" in node3["note"], node3
    # The service stayed available: node 1's proxy kept answering through the other nodes' tasks.
    assert load.result.requests >= 2 * RATE
    assert len(load.result.failures) <= 0.01 * load.result.requests, summary
    assert swarm.serving_commit() in (second.commit, third.commit)
    save(capsys, "node-killed", {"load": summary, "update_state": report["update_state"], "exit": run.returncode,
                                 "nodes_down": report["nodes_down"], "seconds": report["seconds"], "nodes": nodes_of(report)})


def test_two_racing_deploys_one_runs_and_the_other_fails_naming_the_lock_holder(swarm: SwarmBed) -> None:
    """Both through the same manager, at once, without --lock-wait: the manager's deploy lock lets one run;
    the other changes nothing and says, in one line, who holds the lock."""
    good, second, third = swarm.release("good"), swarm.release("second"), swarm.release("third")
    swarm.ensure_serving(good)
    tasks = [swarm.start_invoke("deploy", "--version", release.tag, "--json") for release in (second, third)]
    runs = [task.finish(timeout=900) for task in tasks]

    succeeded = [number for number, run in enumerate(runs) if run.returncode == 0]
    assert len(succeeded) == 1, "exactly one deploy should have run:\n" + "\n\n".join(run.describe() for run in runs)
    winner, (won, lost) = tasks[succeeded[0]], (runs[succeeded[0]], runs[1 - succeeded[0]])
    assert lost.returncode == 1 and "Traceback" not in lost.stderr, lost.describe()
    assert len(lost.error_lines) == 1 and lost.stderr_lines[-1] == lost.error_lines[0], lost.describe()
    line = lost.error_lines[0]
    assert re.search(rf"another deploy to .+ is running \(held by \S+@\S+ pid {winner.process.pid} since ", line), line
    assert "--lock-wait" in line and "invoke unlock" in line, line
    assert "deploying stack" not in lost.stderr and lost.seconds < won.seconds, lost.describe()  # it overlapped, changed nothing
    # What runs is the winner's release, on every web task; the lock went with it.
    assert won.json()["healthy"] and swarm.web_tags() == {won.json()["version"]}
    assert lock_name(swarm.stack) not in manager_cli(swarm, "volume", "ls", "-q").split()


def test_a_proxy_update_is_said_first_and_each_node_refuses_connections_only_meanwhile(
    swarm: SwarmBed, capsys: pytest.CaptureFixture[str]
) -> None:
    """The proxy's definition changes (its memory limit): Swarm replaces it stop-first, node after node. The
    deploy says so in one line first; each node's own port is loaded, to measure what that costs it."""
    second = swarm.release("second")
    swarm.ensure_serving(second)
    before = proxy_tasks(swarm)
    loads = [Load(PORT, "/", rate=PROXY_RATE, max_seconds=600, host=address) for address in swarm.node_addresses]
    try:
        for load in loads:
            load.__enter__()
        time.sleep(1)
        run = swarm.deploy(second, env={"PROXY_MEMORY_LIMIT": "200m"})
        after = proxy_tasks(swarm)
        time.sleep(2)
    finally:
        for load in loads:
            load.stop()
        restored = swarm.deploy(second)  # the default limit again: the proxy is replaced once more
    assert run.returncode == 0, run.describe()
    report = run.json()
    warned = [line for line in run.stderr_lines if "the proxy will be replaced" in line]
    assert len(warned) == 1 and "refuses connections" in warned[0] and "predicted" in warned[0], run.describe()
    assert report["proxy_change"] and report["proxy_state"] == "completed" and report["healthy"], report
    assert len(after) == len(swarm.node_addresses) and not before & after, f"the proxy was not replaced on every node: {before} {after}"
    per_node = [load.result for load in loads]
    for number, result in enumerate(per_node, 1):
        assert result.requests >= 5 * PROXY_RATE, (number, result.summary())
        # A predicted few seconds; bounded by what the deploy waits for a node's replacement.
        assert result.unavailable_seconds < 40, (number, result.summary())
    assert restored.returncode == 0 and restored.json()["proxy_state"] == "completed", restored.describe()
    save(capsys, "proxy-update", {
        "load": {"requests": sum(r.requests for r in per_node), "failed": sum(len(r.failures) for r in per_node)},
        "unavailable_seconds": [r.unavailable_seconds for r in per_node], "failed_per_node": [len(r.failures) for r in per_node],
        "proxy_state": report["proxy_state"], "seconds": report["seconds"], "nodes": nodes_of(report)})


def test_cron_runs_once_per_tick_across_the_cluster_on_the_data_node(swarm: SwarmBed) -> None:
    swarm.ensure_serving(swarm.release("second"))

    def ticks() -> list[tuple[str, str]]:
        out = swarm.manager.service.logs(f"{swarm.stack}_cron", timestamps=False)
        found = []
        for line in str(out).splitlines():
            match = re.match(r"\S+@(\S+)\s*\|\s*(\d{4}-\d\d-\d\dT\d\d:\d\d):\d\d\S* job=record-run status=ok", line)
            if match:
                found.append((match.group(2), match.group(1)))
        return found

    deadline = time.monotonic() + 150
    while len(ticks()) < 2 and time.monotonic() < deadline:
        time.sleep(5)
    found = ticks()
    assert len(found) >= 2, found
    minutes = [minute for minute, _ in found]
    assert len(minutes) == len(set(minutes)), f"a tick ran twice: {found}"
    assert {node for _, node in found} == {swarm.env["TESTBED_SWARM_DATA_NODE"]}, found
