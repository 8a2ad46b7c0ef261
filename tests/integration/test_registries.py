"""Registries as teams have them: token auth, htpasswd, TLS; a namespace; credentials from `docker login` or the variable.

On the fault bed (its clone, deps image and scratch server engine, see faults_helpers). Each kind
of registry is a real `docker-registry` of its own, addressed with a namespace
(127.0.0.1:<port>/team/apps), started by the test bed's RegistryServer:
- token: `auth: token`, with a TokenIssuer (the only test code: it signs with a key the registry trusts);
- htpasswd: Basic auth;
- tls: HTTPS with a certificate of a CA made by the test bed, trusted through certs.d, and htpasswd.

On each, a release is pushed and deployed with the credentials of `docker login` (the CLI's
config file) and another with the configured user and password variable (a docker config
that never logged in); then status and rollback. The token registry also shows anonymous
pull tokens, a blob redirect that must not carry credentials, retries (429 after Retry-After,
503 after a backoff), tag lists across pages, and bad input.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.support.faults_helpers import (
    APP_REPOSITORY,
    DEPS_REPOSITORY,
    RELEASES,
    FaultBed,
    RedirectingFront,
    RegistryServer,
    TestCA,
    TokenIssuer,
)
from tests.integration.support.tasks_helpers import TaskRun, free_port, one_error_line, wait_for

pytestmark = pytest.mark.docker

USER = "deployer"
NAMESPACE = "team/apps"
KINDS = ("token", "htpasswd", "tls")


@dataclass
class Site:
    """One registry kind, the releases pushed to it, and where its deploys run on the scratch engine."""

    kind: str
    bed: FaultBed
    server: RegistryServer
    password: str
    root: Path
    issuer: TokenIssuer | None = None
    project: str = ""
    port: int = field(default_factory=free_port)
    releases: dict[str, dict[str, Any]] = field(default_factory=dict)  # build-app --json results
    runs: list[TaskRun] = field(default_factory=list)

    @property
    def location(self) -> str:
        return f"{self.server.address}/{NAMESPACE}"

    def base_env(self, location: str | None = None) -> dict[str, str]:
        return {"INVOKE_DEPLOY_REGISTRY": location or self.location, "INVOKE_DEPLOY_COMPOSE_PROJECT": self.project,
                "INVOKE_DEPLOY_HTTP_PORT": str(self.port)}  # fmt: skip

    def fresh_docker_config(self) -> Path:
        directory = self.root / f"docker-config-{secrets.token_hex(4)}"
        directory.mkdir()
        return directory

    def with_login(self, location: str | None = None) -> dict[str, str]:
        """Credentials only from `docker login` (the CLI's config file): no user configured, no variable."""
        directory = self.root / "docker-config-login"
        if not directory.exists():
            directory.mkdir()
            login = subprocess.run(
                ["docker", "--config", str(directory), "login", self.server.address, "--username", USER, "--password-stdin"],
                input=self.password, capture_output=True, text=True,
            )  # fmt: skip
            assert login.returncode == 0, f"docker login {self.server.address}: {login.stderr}"
            assert "auths" in json.loads((directory / "config.json").read_text())
        return {**self.base_env(location), "DOCKER_CONFIG": str(directory)}

    def with_variable(self, password: str | None = None, location: str | None = None) -> dict[str, str]:
        """Credentials only from deploy.registry_user and $REGISTRY_PASSWORD (a docker config that never logged in)."""
        return {**self.base_env(location), "INVOKE_DEPLOY_REGISTRY_USER": USER,
                "REGISTRY_PASSWORD": self.password if password is None else password,
                "DOCKER_CONFIG": str(self.fresh_docker_config())}  # fmt: skip

    def invoke(self, *args: str, env: dict[str, str]) -> TaskRun:
        run = self.bed.invoke(*args, env=env)
        self.runs.append(run)
        return run

    def secrets(self) -> tuple[str, ...]:
        return (self.password, base64.b64encode(f"{USER}:{self.password}".encode()).decode())


def start_site(bed: FaultBed, kind: str) -> Site:
    root = bed.tmp / f"registry-{kind}"
    root.mkdir()
    password = f"pw-{secrets.token_hex(12)}"
    issuer, htpasswd, ca = None, None, None
    if kind == "token":
        issuer = TokenIssuer(root / "issuer", {USER: password}).start()
    else:
        created = subprocess.run(["htpasswd", "-Bbn", USER, password], capture_output=True, text=True)
        assert created.returncode == 0, created.stderr
        htpasswd = root / "htpasswd"
        htpasswd.write_text(created.stdout)
    if kind == "tls":
        ca = TestCA(root / "ca").create()
    server = RegistryServer(root / "registry", free_port(), htpasswd=htpasswd, token=issuer, tls=ca)
    server.start()
    site = Site(kind, bed, server, password, root, issuer, project=f"{bed.project}-{kind}")
    copy_deps_image(bed, site)
    return site


def copy_deps_image(bed: FaultBed, site: Site) -> None:
    """Plumbing, not under test: the fault bed's deps image, copied into the site's registry as it is."""
    deps_tag = bed.build_deps().json()["image"].rsplit(":", 1)[1]
    auth = site.root / "plumbing-auth.json"
    auth.write_text(json.dumps({"auths": {site.server.address: {"auth": base64.b64encode(f"{USER}:{site.password}".encode()).decode()}}}))
    copied = subprocess.run(
        ["skopeo", "copy", "--quiet", "--preserve-digests", "--src-tls-verify=false", "--src-no-creds", "--dest-authfile", str(auth),
         f"--dest-tls-verify={'true' if site.kind == 'tls' else 'false'}",
         f"docker://{bed.registry.address}/{DEPS_REPOSITORY}:{deps_tag}", f"docker://{site.location}/{DEPS_REPOSITORY}:{deps_tag}"],
        capture_output=True, text=True,
    )  # fmt: skip
    auth.unlink()
    assert copied.returncode == 0, copied.stderr


def build_release(site: Site, name: str, env: dict[str, str]) -> dict[str, Any]:
    """build-app of the fault bed's base commit plus RELEASES[name], pushed to the site's registry."""
    bed = site.bed
    try:
        RELEASES[name](bed.repo.path)
        commit = bed.repo.commit(f"registry test release: {site.kind} {name}")
        run = site.invoke("build-app", "--json", env=env)
        assert run.returncode == 0, run.describe()
    finally:
        bed.repo.reset_to(bed.base_commit)
    return {**run.json(), "commit": commit}


_SITES: dict[str, Site] = {}


@pytest.fixture(scope="module")
def sites(bed: FaultBed) -> Iterator[dict[str, Site]]:
    yield _SITES
    for site in _SITES.values():
        if site.issuer:
            site.issuer.stop()
        site.server.stop()
    _SITES.clear()


def site_of(sites: dict[str, Site], bed: FaultBed, kind: str) -> Site:
    """The site of `kind` with its two releases pushed: `good` with docker login, `second` with the variable."""
    if kind not in sites:
        site = start_site(bed, kind)
        sites[kind] = site
        site.releases["good"] = build_release(site, "good", site.with_login())
        site.releases["second"] = build_release(site, "second", site.with_variable())
    return sites[kind]


def healthz_commit(site: Site) -> str:
    return str(
        wait_for(f"/healthz on port {site.port}", lambda: httpx.get(f"http://127.0.0.1:{site.port}/healthz", timeout=2).json(), timeout=30)["commit"]
    )


def host_state(site: Site) -> tuple[Any, ...]:
    run = site.invoke("status", "--host", site.bed.engine.host, "--json", env=site.base_env())
    assert run.returncode == 0, run.describe()
    status = run.json()
    return ((status["running"] or {}).get("tag"), (status["running"] or {}).get("digest"), len(status["history"]))




# -- push, deploy, status, rollback on each kind ------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_push_deploy_status_and_rollback(bed: FaultBed, sites: dict[str, Site], kind: str) -> None:
    site = site_of(sites, bed, kind)
    good, second = site.releases["good"], site.releases["second"]
    assert good["image"] == f"{site.location}/{APP_REPOSITORY}:{good['tag']}"
    assert good["deps"].startswith(f"{site.location}/{DEPS_REPOSITORY}:")
    if kind == "tls":
        ca = ssl.create_default_context(cafile=str(site.server.tls.certificate))
        assert httpx.get(f"https://{site.server.address}/v2/", verify=ca).status_code == 401

    engine = bed.engine.host
    first = site.invoke("deploy", "--host", engine, "--version", good["tag"], "--json", env=site.with_login())
    assert first.returncode == 0, first.describe()
    assert (first.json()["healthy"], first.json()["digest"]) == (True, good["digest"])
    assert healthz_commit(site) == good["commit"]

    then = site.invoke("deploy", "--host", engine, "--version", second["tag"], "--json", env=site.with_variable())
    assert then.returncode == 0, then.describe()
    report = then.json()
    assert (report["healthy"], report["digest"], report["previous"]) == (True, second["digest"], good["tag"])
    assert report["image"] == f"{site.location}/{APP_REPOSITORY}:{second['tag']}"
    assert healthz_commit(site) == second["commit"]

    status = site.invoke("status", "--host", engine, "--json", env=site.base_env())
    assert status.returncode == 0, status.describe()
    running = status.json()["running"]
    assert (running["tag"], running["digest"]) == (second["tag"], second["digest"])
    assert running["image"] == f"{site.location}/{APP_REPOSITORY}:{second['tag']}"

    back = site.invoke("rollback", "--host", engine, "--json", env=site.base_env())
    assert back.returncode == 0, back.describe()
    assert back.json()["version"] == good["tag"]
    assert healthz_commit(site) == good["commit"]

    for run in site.runs:
        for secret in site.secrets():
            assert secret not in run.stdout + run.stderr, f"the registry password is in the output of `{run.command}`"


# -- the token registry: anonymous pulls, redirects, throttling --------------------------------------
def test_anonymous_reads_get_a_pull_token(bed: FaultBed, sites: dict[str, Site]) -> None:
    site = site_of(sites, bed, "token")
    assert site.issuer is not None
    asked = len(site.issuer.requests)
    env = {**site.base_env(), "DOCKER_CONFIG": str(site.fresh_docker_config())}
    run = site.invoke("deploy", "--host", bed.engine.host, "--version", site.releases["good"]["tag"], "--dry-run", "--json", env=env)
    assert run.returncode == 0, run.describe()
    assert run.json()["digest"] == site.releases["good"]["digest"]
    anonymous = [r for r in site.issuer.requests[asked:] if not r["credentials"]]
    assert anonymous and all(scope.endswith(":pull") for r in anonymous for scope in r["scopes"]), site.issuer.requests[asked:]


def dry_run_through(front: RedirectingFront, site: Site, bed: FaultBed) -> TaskRun:
    """`deploy --dry-run` of the good release, reading the registry through `front` (stopped afterwards)."""
    front.start()
    try:
        env = site.with_login(location=f"{front.address}/{NAMESPACE}")
        return site.invoke("deploy", "--host", bed.engine.host, "--version", site.releases["good"]["tag"], "--dry-run", "--json", env=env)
    finally:
        front.stop()


def test_a_redirected_blob_download_carries_no_credentials(bed: FaultBed, sites: dict[str, Site]) -> None:
    site = site_of(sites, bed, "token")
    front = RedirectingFront(site.server)
    run = dry_run_through(front, site, bed)
    assert run.returncode == 0, run.describe()
    assert run.json()["digest"] == site.releases["good"]["digest"]
    assert front.redirected and all(h.get("Authorization", "").startswith("Bearer ") for h in front.redirected), front.redirected
    assert front.store_requests, "nothing followed the redirect to the blob store"
    assert not [h for h in front.store_requests if "authorization" in {k.lower() for k in h}], front.store_requests


@pytest.mark.parametrize(
    ("front_options", "status", "wait"),
    [
        pytest.param({"throttle": 2}, 429, 2.0, id="429-after-its-retry-after"),
        pytest.param({"fail_first": 503}, 503, 1.0, id="503-after-a-backoff"),
    ],
)
def test_a_throttled_or_failing_registry_is_retried(bed: FaultBed, sites: dict[str, Site], front_options: dict[str, int],
                                                    status: int, wait: float) -> None:  # fmt: skip
    site = site_of(sites, bed, "token")
    front = RedirectingFront(site.server, **front_options)
    run = dry_run_through(front, site, bed)
    assert run.returncode == 0, run.describe()
    (failed_at, first), (retried_at, then) = front.manifest_times[:2]
    assert (first, then) == (status, 200)
    assert retried_at - failed_at >= wait, f"retried {retried_at - failed_at:.2f}s after a {status}"


def test_tag_lists_are_read_across_pages(bed: FaultBed, sites: dict[str, Site]) -> None:
    """A bare version is resolved from the tag list: with one tag per page, both releases must be seen."""
    site = site_of(sites, bed, "token")
    front = RedirectingFront(site.server, page_size=1).start()
    try:
        env = site.with_login(location=f"{front.address}/{NAMESPACE}")
        run = site.invoke("deploy", "--host", bed.engine.host, "--version", bed.repo.app_version, "--dry-run", env=env)
    finally:
        front.stop()
    line = one_error_line(run)
    tags = sorted(site.releases[name]["tag"] for name in ("good", "second"))
    assert f"version {bed.repo.app_version} is ambiguous ({', '.join(tags)})" in line, line
    assert len([r for r in front.tag_requests if APP_REPOSITORY in r]) >= 2, front.tag_requests


def test_a_release_tagged_as_an_index_passes_the_digest_check(bed: FaultBed, sites: dict[str, Site]) -> None:
    """A tag that names an index (what buildx pushes with attestations or several platforms): the
    engine records the index digest, the tasks read the platform's manifest; both are the release."""
    site = site_of(sites, bed, "token")
    release = build_release(site, "second", site.with_login())  # a new code change: no host has it yet
    ref = f"{site.location}/{APP_REPOSITORY}:{release['tag']}"
    env = site.with_login()
    made = subprocess.run(["docker", "--config", env["DOCKER_CONFIG"], "buildx", "imagetools", "create", "-t", ref, ref],
                          capture_output=True, text=True)  # fmt: skip
    assert made.returncode == 0, made.stderr
    run = site.invoke("deploy", "--host", bed.engine.host, "--version", release["tag"], "--json", env=env)
    assert run.returncode == 0, run.describe()
    report = run.json()
    assert (report["healthy"], report["digest"]) == (True, release["digest"])
    assert healthz_commit(site) == release["commit"]
    repo_digests = bed.server.image.inspect(ref).repo_digests or []
    assert release["digest"] not in [d.rsplit("@", 1)[1] for d in repo_digests], "the engine pulled the manifest, not the index"


# -- bad input: one line, nothing changed ------------------------------------------------------------
def failing_helper(site: Site) -> dict[str, str]:
    bin_dir = site.root / "helper-bin"
    bin_dir.mkdir(exist_ok=True)
    helper = bin_dir / "docker-credential-pc-test-broken"
    helper.write_text("#!/bin/sh\necho 'the keychain is locked' >&2\nexit 1\n")
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    config = site.fresh_docker_config()
    (config / "config.json").write_text(json.dumps({"credHelpers": {site.server.address: "pc-test-broken"}}))
    return {**site.base_env(), "DOCKER_CONFIG": str(config), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def arm64_only_index(site: Site, env: dict[str, str]) -> str:
    """A release tag naming an index whose one entry claims linux/arm64 (no amd64 variant): its tag."""
    second = site.releases["second"]
    tag = f"{second['tag'].split('-')[0]}-{'a' * 12}"
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", "--no-creds", f"docker://{site.location}/{APP_REPOSITORY}@{second['digest']}"],
        capture_output=True, check=True).stdout  # fmt: skip
    descriptor = site.root / "arm64-only.json"
    descriptor.write_text(json.dumps({"mediaType": json.loads(raw)["mediaType"], "digest": second["digest"], "size": len(raw),
                                      "platform": {"os": "linux", "architecture": "arm64"}}))  # fmt: skip
    made = subprocess.run(["docker", "--config", env["DOCKER_CONFIG"], "buildx", "imagetools", "create",
                           "-t", f"{site.location}/{APP_REPOSITORY}:{tag}", "-f", str(descriptor)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    return tag


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param("scheme", "invalid deploy.registry 'https://127.0.0.1:", id="registry-with-a-scheme"),
        pytest.param("wrong-password", "refused the credentials from deploy.registry_user and $REGISTRY_PASSWORD", id="wrong-password"),
        pytest.param("expired-token", "refused the credentials from docker login", id="expired-token"),
        pytest.param(
            "failing-helper", "the docker credential helper docker-credential-pc-test-broken failed for 127.0.0.1:", id="failing-credential-helper"
        ),
        pytest.param("platform-missing", "the image has no linux/amd64 variant", id="a-platform-the-index-lacks"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(bed: FaultBed, sites: dict[str, Site], case: str, expected: str) -> None:
    site = site_of(sites, bed, "token")
    assert site.issuer is not None
    before = host_state(site)
    env = {
        "scheme": lambda: {**site.with_login(), "INVOKE_DEPLOY_REGISTRY": f"https://{site.location}"},
        "wrong-password": lambda: site.with_variable(password="not-the-password"),
        "expired-token": site.with_login,
        "failing-helper": lambda: failing_helper(site),
        "platform-missing": site.with_login,
    }[case]()
    version = arm64_only_index(site, env) if case == "platform-missing" else site.releases["second"]["tag"]
    site.issuer.expired = case == "expired-token"
    try:
        run = site.invoke("deploy", "--host", bed.engine.host, "--version", version, env=env)
    finally:
        site.issuer.expired = False
    line = one_error_line(run)
    assert expected in line, line
    assert "not-the-password" not in line and site.password not in line
    assert host_state(site) == before
