"""Where registry credentials come from: the docker CLI's config (helpers, store, logins), then the variable."""

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from delivery.errors import DeliveryError
from delivery.registry import auth
from delivery.registry.auth import Credentials, auth_file, registry_host, resolve

HOST = "registry.example.com:5000"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A docker config dir and a bin dir of fake credential helpers on PATH."""
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


def env(home: Path, **extra: str) -> dict[str, str]:
    return {"DOCKER_CONFIG": str(home / "docker"), **extra}


def write_config(home: Path, document: dict) -> Path:
    (home / "docker").mkdir(exist_ok=True)
    path = home / "docker" / "config.json"
    path.write_text(json.dumps(document))
    return path


def helper(home: Path, name: str, script: str) -> None:
    """A docker-credential-<name> that runs `script` (sh) with the server URL on stdin."""
    path = home / "bin" / f"docker-credential-{name}"
    path.write_text(f"#!/bin/sh\nread server\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize(
    ("registry", "host"),
    [
        pytest.param("ghcr.io/acme", "ghcr.io", id="namespace"),
        pytest.param("localhost:5000", "localhost:5000", id="host-port"),
        pytest.param("docker.io/acme", "docker.io", id="docker-hub"),
        pytest.param("index.docker.io/acme", "docker.io", id="docker-hub-index"),
    ],
)
def test_registry_host(registry: str, host: str) -> None:
    assert registry_host(registry) == host


def test_a_docker_login_comes_before_the_variable(home: Path) -> None:
    write_config(home, {"auths": {HOST: {"auth": b64("alice:from-login")}}})
    found = resolve(f"{HOST}/team", "ci", "REGISTRY_PASSWORD", env(home, REGISTRY_PASSWORD="from-env"))
    assert (found.username, found.secret) == ("alice", "from-login")
    assert found.source.startswith("docker login (")


def test_the_variable_when_the_docker_cli_has_nothing(home: Path) -> None:
    write_config(home, {"auths": {"other.example.com": {"auth": b64("bob:x")}}})
    found = resolve(HOST, "ci", "CI_TOKEN", env(home, CI_TOKEN="from-env"))
    assert found == Credentials("ci", "from-env", "deploy.registry_user and $CI_TOKEN")


def test_anonymous_without_either(home: Path) -> None:
    assert resolve(HOST, None, "REGISTRY_PASSWORD", env(home)) is None


def test_a_user_without_a_password_says_what_to_export(home: Path) -> None:
    with pytest.raises(DeliveryError, match=r"^deploy.registry_user is set but \$REGISTRY_PASSWORD is empty: export"):
        resolve(HOST, "ci", "REGISTRY_PASSWORD", env(home))


def test_docker_hub_logins_are_found_under_the_index_url(home: Path) -> None:
    write_config(home, {"auths": {"https://index.docker.io/v1/": {"auth": b64("carol:hub")}}})
    assert resolve("docker.io/acme", None, "REGISTRY_PASSWORD", env(home)).secret == "hub"


def test_a_cred_helper_for_the_host_wins_over_the_store(home: Path) -> None:
    helper(home, "per-host", 'echo "{\\"Username\\": \\"helper-user\\", \\"Secret\\": \\"for-$server\\"}"')
    helper(home, "store", "echo store-must-not-be-asked >&2; exit 1")
    write_config(home, {"credsStore": "store", "credHelpers": {HOST: "per-host"}})
    found = resolve(HOST, None, "REGISTRY_PASSWORD", env(home))
    assert (found.username, found.secret, found.source) == ("helper-user", f"for-{HOST}", "docker credential helper docker-credential-per-host")


def test_the_creds_store(home: Path) -> None:
    helper(home, "desktop", 'echo "{\\"Username\\": \\"<token>\\", \\"Secret\\": \\"identity\\"}"')
    write_config(home, {"credsStore": "desktop", "auths": {HOST: {}}})
    found = resolve(HOST, None, "REGISTRY_PASSWORD", env(home))
    assert found.is_identity_token and found.secret == "identity"


def test_a_store_without_credentials_falls_back_to_the_variable(home: Path) -> None:
    helper(home, "desktop", 'echo "credentials not found in native keychain"; exit 1')
    write_config(home, {"credsStore": "desktop"})
    assert resolve(HOST, "ci", "REGISTRY_PASSWORD", env(home, REGISTRY_PASSWORD="pw")).source.startswith("deploy.registry_user")


def test_a_failing_helper_is_one_line_without_secrets(home: Path) -> None:
    helper(home, "broken", "echo 'keychain is locked' >&2; exit 3")
    config = write_config(home, {"credHelpers": {HOST: "broken"}})
    with pytest.raises(DeliveryError) as caught:
        resolve(HOST, "ci", "REGISTRY_PASSWORD", env(home, REGISTRY_PASSWORD="must-not-leak"))
    message = str(caught.value)
    assert message == (f"the docker credential helper docker-credential-broken failed for {HOST} (keychain is locked): "
                       f"fix it and `docker login {HOST}`, or remove it from {config}")
    assert "must-not-leak" not in message


def test_a_missing_helper(home: Path) -> None:
    write_config(home, {"credsStore": "nowhere-to-be-found"})
    with pytest.raises(
        DeliveryError, match=r"^the docker credential helper docker-credential-nowhere-to-be-found \(named in .*config.json\) is not installed"
    ):
        resolve(HOST, None, "REGISTRY_PASSWORD", env(home))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("{not json", "is not valid JSON: fix it", id="not-json"),
        pytest.param("[]", "is not a docker CLI config", id="not-an-object"),
    ],
)
def test_a_broken_docker_config(home: Path, text: str, message: str) -> None:
    (home / "docker").mkdir()
    (home / "docker" / "config.json").write_text(text)
    with pytest.raises(DeliveryError, match=message):
        resolve(HOST, None, "REGISTRY_PASSWORD", env(home))


def test_a_damaged_login(home: Path) -> None:
    write_config(home, {"auths": {HOST: {"auth": "!!!"}}})
    with pytest.raises(DeliveryError, match=rf"^the stored login for {HOST} in .* is damaged: `docker login {HOST}` again$"):
        resolve(HOST, None, "REGISTRY_PASSWORD", env(home))


def test_credentials_never_show_their_secret_in_repr() -> None:
    assert "hunter2" not in repr(Credentials("u", "hunter2", "x"))


def test_auth_file_is_private_and_removed(tmp_path: Path) -> None:
    with auth_file("ghcr.io", Credentials("u", "p", "x")) as path:
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700
        assert json.loads(path.read_text()) == {"auths": {"ghcr.io": {"auth": b64("u:p")}}}
    assert not path.exists()


def test_auth_file_with_an_identity_token() -> None:
    assert auth.auth_file_document("h", Credentials("<token>", "t", "x")) == {"auths": {"h": {"identitytoken": "t"}}}


# -- logging the docker CLI in (the engines pull with its credentials) ----------------------------------
class FakeDocker:
    def __init__(self, config: Path | None = None):
        self.docker_cmd = ["docker", *(["--config", str(config)] if config else []), "--host", "unix:///x.sock"]


def login_calls(home: Path, monkeypatch: pytest.MonkeyPatch, config: dict, variable: str | None,
                scoped: bool = True) -> list[tuple[list[str], bytes]]:
    """What `login` runs, within the run's login scope (as every task that logs in calls it) unless not `scoped`."""
    from delivery.config.settings import load_config
    from delivery.docker import engine
    from delivery.usecases import context

    calls: list[tuple[list[str], bytes]] = []
    monkeypatch.setattr(context, "run", lambda argv, input=None: calls.append((argv, input)))
    monkeypatch.setenv("DOCKER_CONFIG", str(home / "docker"))
    if variable is None:
        monkeypatch.delenv("REGISTRY_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("REGISTRY_PASSWORD", variable)
    write_config(home, config)
    deploy_config = load_config({"registry": f"{HOST}/team", "registry_user": "ci"})
    if not scoped:
        context.login(deploy_config, FakeDocker(home / "docker"))
        return calls
    with context.login_scope(deploy_config):
        context.login(deploy_config, FakeDocker(engine.private_config()))
    return calls


def test_login_with_the_variable_goes_by_stdin_into_the_runs_private_config(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                                           tmp_path: Path) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    calls = login_calls(home, monkeypatch, {}, "pw-from-env")
    [(argv, secret)] = calls
    private = Path(argv[2])
    assert argv[:2] == ["docker", "--config"] and private.name.startswith("production-control-docker-config-")
    assert argv[2:] == [str(private), "--host", "unix:///x.sock", "login", HOST, "--username", "ci", "--password-stdin"]
    assert secret == b"pw-from-env" and not private.exists(), "the private config outlived the run"


def test_no_login_when_the_docker_cli_has_credentials(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert login_calls(home, monkeypatch, {"auths": {HOST: {"auth": b64("alice:pw")}}}, "pw-from-env") == []


def test_login_refuses_a_client_of_the_users_own_config(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DeliveryError, match="refusing to log the docker CLI in to registry.example.com:5000 in the user's own config"):
        login_calls(home, monkeypatch, {}, "pw-from-env", scoped=False)


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        pytest.param({}, {"auths": {}, "credHelpers": dict.fromkeys(auth.config_keys(HOST), "")}, id="no-config"),
        pytest.param(
            {"auths": {HOST: {}, f"https://{HOST}": {"auth": "old"}, "ghcr.io": {"auth": "other"}},
             "credsStore": "desktop", "credHelpers": {HOST: "pass", "gcr.io": "gcloud"}, "currentContext": "prod",
             "proxies": {"default": {"httpProxy": "http://proxy:3128"}}},
            {"auths": {"ghcr.io": {"auth": "other"}}, "credsStore": "desktop",
             "credHelpers": {"gcr.io": "gcloud", **dict.fromkeys(auth.config_keys(HOST), "")}, "currentContext": "prod",
             "proxies": {"default": {"httpProxy": "http://proxy:3128"}}},
            id="keeps-the-rest",
        ),
        pytest.param({"auths": "garbage", "credHelpers": None},
                     {"auths": {}, "credHelpers": dict.fromkeys(auth.config_keys(HOST), "")}, id="malformed-sections"),
    ],
)
def test_the_private_config_keeps_the_users_settings_and_stores_this_login_in_the_file(user: dict, expected: dict) -> None:
    # An empty helper for the host: the CLI keeps that login in the (removed) file, not in credsStore's keychain.
    assert auth.private_config_document(user, HOST) == expected


@pytest.mark.parametrize(
    ("credentials", "logs_in"),
    [
        pytest.param(None, False, id="anonymous"),
        pytest.param(Credentials("alice", "pw", "docker login (/home/a/.docker/config.json)"), False, id="cli-login"),
        pytest.param(Credentials("ci", "pw", "deploy.registry_user and $REGISTRY_PASSWORD"), True, id="variable"),
    ],
)
def test_the_tasks_log_in_only_with_the_configured_user(credentials: Credentials | None, logs_in: bool) -> None:
    assert auth.logs_in(credentials) is logs_in


def test_the_private_config_links_the_users_other_settings_and_goes_with_the_run(tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from delivery.config.hosts import parse_host
    from delivery.docker import engine

    user = tmp_path / "user-docker"
    (user / "contexts" / "meta").mkdir(parents=True)
    (user / "cli-plugins").mkdir()
    (user / "config.json").write_text(json.dumps({"auths": {HOST: {"auth": "secret"}}}))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setattr(engine, "require_cli", lambda: None)
    with pytest.raises(RuntimeError, match="boom"), engine.private_docker_config(user, {"currentContext": "prod"}) as private:
        assert engine.private_config() == private and private.parent == tmp_path
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        assert stat.S_IMODE((private / "config.json").stat().st_mode) == 0o600
        assert json.loads((private / "config.json").read_text()) == {"currentContext": "prod"}
        assert sorted(p.name for p in private.iterdir()) == ["cli-plugins", "config.json", "contexts"]
        assert (private / "contexts").resolve() == (user / "contexts").resolve()
        for client in (engine.connect(parse_host("local")),
                       engine.connect(parse_host("local"), compose_files=[tmp_path / "docker-compose.yml"])):
            argv = [str(part) for part in client.client_config.docker_compose_cmd]
            assert argv[argv.index("--config") + 1] == str(private)
        raise RuntimeError("boom")  # an error (or a signal's Interrupted) on the way
    assert not private.exists() and engine.private_config() is None
    assert (user / "contexts" / "meta").is_dir(), "removing the private config removed the user's own settings"
    assert json.loads((user / "config.json").read_text()) == {"auths": {HOST: {"auth": "secret"}}}
    assert "--config" not in [str(part) for part in engine.connect(parse_host("local")).client_config.docker_cmd]
