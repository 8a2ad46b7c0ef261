"""Pure parts of issue 11: the audit policy, the SBOM's inputs and document, refresh versions and predictions."""

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from delivery.errors import DeliveryError
from delivery.images.base import BaseImage, strip_digest
from delivery.registry.client import Blob, Manifest
from delivery.release.pullreport import chain_ids
from delivery.supply.audit import Ignore, evaluate, load_ignores, pip_audit_command
from delivery.supply.refresh import current_version, deps_freshness, package_changes, predict_refresh, refresh_version
from delivery.supply.sbom import locked_packages, make_sbom, parse_dpkg_status, sbom_packages

ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2026, 11, 29)
BASE = BaseImage("python:3.12.12-slim-bookworm", "sha256:" + "a" * 64)
HASH = "21ed0a75e205"


# -- audit policy ------------------------------------------------------------------------------------
def report(*deps: dict) -> dict:
    return {"dependencies": list(deps), "fixes": []}


JINJA = {"name": "jinja2", "version": "3.1.2", "vulns": [
    {"id": "GHSA-h5c8-rqwp-cp95", "aliases": ["CVE-2024-22195"], "fix_versions": ["3.1.3"]}]}
CLEAN = {"name": "h11", "version": "0.16.0", "vulns": []}


def ignore(id_: str = "GHSA-h5c8-rqwp-cp95", until: date = date(2026, 12, 31), package: str = "jinja2") -> Ignore:
    return Ignore(id_, package, until, "reason")


def test_audit_passes_without_vulnerabilities() -> None:
    result = evaluate(report(CLEAN), [], TODAY)
    assert result.ok and result.audited == 1


def test_audit_fails_on_a_vulnerability_nobody_ignored() -> None:
    result = evaluate(report(CLEAN, JINJA), [], TODAY)
    assert not result.ok
    assert result.failure().startswith("audit failed: jinja2 3.1.2 has GHSA-h5c8-rqwp-cp95 (fixed in 3.1.3): upgrade it")


@pytest.mark.parametrize("id_", ["GHSA-h5c8-rqwp-cp95", "CVE-2024-22195"], ids=["by-id", "by-alias"])
def test_a_dated_ignore_in_force_lets_it_pass(id_: str) -> None:
    result = evaluate(report(JINJA), [ignore(id_)], TODAY)
    assert result.ok and [f.id for f in result.ignored] == ["GHSA-h5c8-rqwp-cp95"]


def test_an_ignore_is_for_its_package_only() -> None:
    assert not evaluate(report(JINJA), [ignore(package="markupsafe")], TODAY).ok


def test_an_expired_ignore_fails_even_when_it_still_matches() -> None:
    result = evaluate(report(JINJA), [ignore(until=date(2026, 11, 28))], TODAY)
    assert not result.ok
    assert "the ignore of GHSA-h5c8-rqwp-cp95 (jinja2) expired on 2026-11-28" in result.failure()
    assert evaluate(report(JINJA), [ignore(until=TODAY)], TODAY).ok  # the last day still counts


def test_a_package_the_service_did_not_answer_for_fails_the_audit() -> None:
    result = evaluate(report(CLEAN, {"name": "jinja2", "skip_reason": "Dependency not found on PyPI"}), [], TODAY)
    assert not result.ok and result.audited == 1
    assert "1 package(s) could not be audited (jinja2 (Dependency not found on PyPI))" in result.failure()


def test_ignores_need_id_package_date_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "audit-ignores.toml"
    path.write_text('[[ignore]]\nid = "GHSA-x"\npackage = "Jinja2"\nuntil = 2026-12-31\nreason = "r"\n')
    assert load_ignores(path) == [Ignore("GHSA-x", "jinja2", date(2026, 12, 31), "r")]
    path.write_text('[[ignore]]\nid = "GHSA-x"\npackage = "jinja2"\nreason = "r"\n')
    with pytest.raises(DeliveryError, match="lacks until"):
        load_ignores(path)
    path.write_text('[[ignore]]\nid = "GHSA-x"\npackage = "jinja2"\nuntil = "soon"\nreason = "r"\n')
    with pytest.raises(DeliveryError, match="until must be a TOML date"):
        load_ignores(path)


def test_the_repository_ignores_file_is_valid() -> None:
    assert all(i.until >= TODAY for i in load_ignores(ROOT / "audit-ignores.toml"))


def test_pip_audit_reads_the_lock_without_resolving() -> None:
    command = pip_audit_command(Path("requirements.lock"))
    assert command[1:] == ["-m", "pip_audit", "--requirement", "requirements.lock", "--no-deps", "--disable-pip", "--format",
                           "json", "--progress-spinner", "off", "--timeout", "30", "--vulnerability-service", "pypi"]
    assert pip_audit_command(Path("l"), "http://127.0.0.1:9/v1/query")[-4:] == [
        "--vulnerability-service", "osv", "--osv-url", "http://127.0.0.1:9/v1/query"]


# -- base ----------------------------------------------------------------------------------------------
def test_a_configured_digest_is_split_off() -> None:
    assert strip_digest(f"python:3.12@{BASE.digest}") == ("python:3.12", BASE.digest)
    assert strip_digest("localhost:5000/python:3.12") == ("localhost:5000/python:3.12", None)
    assert BASE.pinned == f"python:3.12.12-slim-bookworm@{BASE.digest}"


# -- SBOM ------------------------------------------------------------------------------------------------
STATUS = """\
Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.15-1~deb12u1

Package: curl
Status: install ok installed
Architecture: amd64
Version: 7.88.1-10+deb12u8
Description: a tool
 with a continuation: line

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0
"""


def test_dpkg_status_gives_installed_packages_only() -> None:
    assert [(p.name, p.version, p.source) for p in parse_dpkg_status(STATUS)] == [
        ("curl", "7.88.1-10+deb12u8", None), ("libssl3", "3.0.15-1~deb12u1", "openssl")]


def test_locked_packages_are_every_entry_of_the_lock_with_its_version_and_hashes() -> None:
    lock = (ROOT / "requirements.lock").read_text()
    packages = locked_packages(lock)
    pinned = [line.split(" ")[0] for line in lock.splitlines() if "==" in line and not line.startswith((" ", "#"))]
    assert [f"{p.name}=={p.version}" for p in packages] == pinned
    assert all(p.hashes and all(len(h) == 64 for h in p.hashes) for p in packages)


def test_an_unpinned_lock_entry_is_refused() -> None:
    with pytest.raises(DeliveryError, match="not pinned"):
        locked_packages("fastapi>=0.1\n")


def test_the_sbom_is_valid_cyclonedx_listing_lock_and_debian_packages() -> None:
    python = locked_packages((ROOT / "requirements.lock").read_text())
    text = make_sbom("localhost:5000/production-control-deps:deps-1.0.0-" + HASH, "sha256:" + "d" * 64, BASE, python,
                     parse_dpkg_status(STATUS), {"ID": "debian", "VERSION_ID": "12"}, datetime(2026, 11, 29, tzinfo=UTC))
    document = json.loads(text)
    assert document["bomFormat"] == "CycloneDX" and document["specVersion"] == "1.6"
    assert document["metadata"]["timestamp"].startswith("2026-11-29T00:00:00")
    packages = sbom_packages(document)
    assert packages["pypi"] == {p.name: p.version for p in python}
    assert packages["deb"] == {"curl": "7.88.1-10+deb12u8", "libssl3": "3.0.15-1~deb12u1"}
    purls = {c["purl"] for c in document["components"] if "purl" in c}
    assert "pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64&distro=debian-12" in purls


# -- refresh ------------------------------------------------------------------------------------------------
TAGS = [f"deps-1.0.0-{HASH}", f"deps-1.0.0-{HASH}.sbom", f"deps-1.0.1-{HASH}", "deps-1.0.0-000000000000", "latest",
        f"deps-0.9.0-{HASH}"]


def test_the_current_deps_image_is_the_highest_refresh_of_its_hash() -> None:
    assert current_version(TAGS, HASH, "1.0.0") == "1.0.1"
    assert current_version(TAGS, HASH, "1.1.0") is None  # a bumped project version starts again
    assert current_version(TAGS, "ffffffffffff", "1.0.0") is None


def test_a_refresh_that_differs_is_the_next_patch() -> None:
    assert refresh_version(TAGS, HASH, "1.0.0") == "1.0.2"
    assert refresh_version([], HASH, "1.0.0") == "1.0.0"


def test_package_changes() -> None:
    assert package_changes({"curl": "1", "libssl3": "3.0.15", "gone": "1"}, {"curl": "1", "libssl3": "3.0.17", "new": "2"}) == [
        "gone 1 -> (none)", "libssl3 3.0.15 -> 3.0.17", "new (none) -> 2"]


def test_a_refresh_that_changes_the_os_layer_costs_it_on_containerd_and_everything_above_on_overlay2() -> None:
    old = ["sha256:base", "sha256:os-old", "sha256:venv", "sha256:pkgs"]
    new = ["sha256:base", "sha256:os-new", "sha256:venv", "sha256:pkgs"]
    manifest = Manifest("sha256:m", 500, Blob("sha256:c", 100), tuple(Blob(f"sha256:blob{i}", 1000 * (i + 1)) for i in range(4)))
    by_store = {p["store"]: p for p in predict_refresh("sha256:oldconfig", old, "deps", manifest, new)}
    assert (by_store["containerd"]["pulled_layers"], by_store["containerd"]["pulled_bytes"]) == (1, 2000 + 100)
    assert (by_store["overlay2"]["pulled_layers"], by_store["overlay2"]["pulled_bytes"]) == (3, 2000 + 3000 + 4000 + 100)
    assert chain_ids(old)[0] == chain_ids(new)[0]


class FakeRegistry:
    """The registry reads deps_freshness makes (tags, and the SBOM through has_tag/manifest/blob)."""

    def __init__(self, tags: list[str], sbom: dict | None):
        self._tags, self._sbom = tags, sbom

    def tags(self, repository: str) -> list[str]:
        return self._tags

    def has_tag(self, repository: str, tag: str) -> bool:
        return self._sbom is not None and tag in self._tags

    def manifest(self, repository: str, reference: str) -> Manifest:
        return Manifest("sha256:s", 1, Blob("sha256:e", 2), (Blob("sha256:sbom", 3),))

    def blob(self, repository: str, reference: str, digest: str) -> bytes:
        assert digest == "sha256:sbom"  # the artifact's layer, not its (empty) config
        return json.dumps(self._sbom or {}).encode()


def test_freshness_tells_base_age_and_a_newer_refresh() -> None:
    labels = {"production-control.base.name": BASE.name, "production-control.base.digest": BASE.digest}
    env = [f"PRODUCTION_CONTROL_DEPS_TAG=deps-1.0.0-{HASH}", "PATH=/opt/venv/bin"]
    registry = FakeRegistry(TAGS, {"metadata": {"timestamp": "2026-11-19T00:00:00+00:00"}})
    fresh = deps_freshness(labels, env, registry, now=datetime(2026, 11, 29, tzinfo=UTC))
    assert fresh == {"deps_tag": f"deps-1.0.0-{HASH}", "base_name": BASE.name, "base_digest": BASE.digest,
                     "built_at": "2026-11-19T00:00:00+00:00", "age_days": 10.0, "newer": f"deps-1.0.1-{HASH}"}
    newest = deps_freshness(labels, [f"PRODUCTION_CONTROL_DEPS_TAG=deps-1.0.1-{HASH}"], registry)
    assert newest["newer"] is None
    old_image = deps_freshness({}, ["PRODUCTION_CONTROL_DEPS_TAG=dev"], FakeRegistry([], None))
    assert old_image["base_digest"] is None and old_image["age_days"] is None


def test_status_still_answers_when_the_deps_freshness_cannot_be_read() -> None:
    from types import SimpleNamespace

    from delivery.deploy.compose.deployer import with_freshness
    from delivery.registry.client import RegistryUnreachable
    from delivery.ui.text import format_freshness

    class Registry:
        def tags(self, repository: str) -> list[str]:
            raise RegistryUnreachable("registry localhost:5000 is unreachable (refused): start it")

        def has_tag(self, repository: str, tag: str) -> bool:
            return self.tags(repository) == []

    image = SimpleNamespace(config=SimpleNamespace(labels={}, env=[f"PRODUCTION_CONTROL_DEPS_TAG=deps-1.0.0-{HASH}"]))
    target = SimpleNamespace(docker=SimpleNamespace(image=SimpleNamespace(inspect=lambda ref: image)))
    entry = with_freshness(target, {"running": {"image": "r/i:t"}}, Registry())
    assert entry["deps"] == {"error": "registry localhost:5000 is unreachable (refused): start it"}
    assert format_freshness(entry["deps"]) == "  deps      unknown (registry localhost:5000 is unreachable (refused): start it)"
    assert with_freshness(target, {"running": None}, Registry()) == {"running": None}


def test_a_weekly_scheduled_job_runs_the_refresh() -> None:
    import yaml

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    triggers = workflow.get("on") or workflow.get(True)  # YAML 1.1 reads the key `on` as True
    cron = triggers["schedule"][0]["cron"].split()
    assert len(cron) == 5 and cron[2:4] == ["*", "*"] and cron[4].isdigit()  # one day a week
    refresh = workflow["jobs"]["refresh"]
    assert refresh["if"].startswith("github.event_name == 'schedule'")  # (and a registry to refresh in)
    assert any("invoke build-deps --refresh" in str(step.get("run", "")) for step in refresh["steps"])
    assert workflow["jobs"]["release"]["if"].startswith("github.event_name != 'schedule'")
    assert workflow["jobs"]["check"]["if"].startswith("github.event_name != 'schedule'")


DEFAULT_BRANCH = "github.ref == format('refs/heads/{0}', github.event.repository.default_branch)"


def test_deployable_tags_are_pushed_from_the_default_branch_only() -> None:
    import yaml

    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())["jobs"]
    assert jobs["release"]["if"].endswith(f" && {DEFAULT_BRANCH}")
    assert jobs["check"]["if"].endswith(" && " + DEFAULT_BRANCH.replace("==", "!="))
    assert jobs["check"]["env"]["INVOKE_DEPLOY_REGISTRY"] == "localhost:5000"  # the runner's throwaway registry
    assert any("invoke ci" in str(step.get("run", "")) for step in jobs["check"]["steps"])
    assert "secrets." not in str(jobs["check"])


def test_the_registry_secret_reaches_only_the_steps_that_push() -> None:
    import yaml

    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())["jobs"]
    for name, job in jobs.items():
        assert "secrets." not in str(job.get("env") or {}), f"job {name} gives a secret to every step"
        with_secret = [step for step in job["steps"] if "secrets." in str(step)]
        for step in with_secret:
            pushes = "docker/login-action" in step.get("uses", "") or any(
                task in step.get("run", "") for task in ("invoke ci", "invoke build-deps"))
            assert pushes, f"job {name}: step {step.get('name') or step.get('uses')} gets a secret but does not push"
        runs = [step for step in job["steps"] if "run" in step]
        assert "secrets." not in str(runs[:-1]), f"job {name}: only its last step (the push) gets the secret"
