"""The deploy configuration: defaults, validation with one-line errors, and the check of invoke.yaml (host parsing: test_hosts.py)."""

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from invoke.config import Config

from delivery.config.settings import DEFAULTS, REMOVED, DeployConfig, check_config_file, load_config
from delivery.errors import DeliveryError

HOST_FORMS = "use unix:///path, ssh://user@host, tcp://host:port or a docker context name"


def test_defaults() -> None:
    assert load_config({}) == DeployConfig(
        registry="localhost:5000",
        python_image=None,
        ca_bundle=None,
        pip_index_url_file=None,
        hosts=("local",),
        health_timeout=90.0,
        pull_timeout=600.0,
        proxy_image=None,
        drain_timeout=30.0,
        monitor=10.0,
        max_error_rate=0.02,
        compose_project="production-control",
        http_port=8000,
        site_name="production",
        registry_user=None,
        registry_password_env="REGISTRY_PASSWORD",
        keep_releases=5,
        lock_wait=0.0,
    )


def test_defaults_dict_loads_to_the_defaults() -> None:
    assert DEFAULTS["hosts"] == "local"
    assert load_config(DEFAULTS) == DeployConfig()


def test_loads_from_an_invoke_config_section() -> None:
    config = Config(defaults={"deploy": DEFAULTS}, overrides={"deploy": {"registry": "registry.example.com"}})

    loaded = load_config(config.deploy)

    assert loaded.registry == "registry.example.com"
    assert loaded.hosts == ("local",)


@pytest.mark.parametrize(
    "value",
    ["ghcr.io/acme", "registry.example.com:5000/team/sub-team", "docker.io/acme", "localhost:5000/team", "ghcr.io/acme/"],
)
def test_registry_with_a_namespace(value: str) -> None:
    assert load_config({"registry": value}).registry == value.rstrip("/")


def test_none_values_take_the_defaults() -> None:
    assert load_config({"registry": None, "hosts": None, "http_port": None}) == DeployConfig()


def test_all_settings(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("cert")
    index = tmp_path / "index-url"
    index.write_text("https://pypi.internal/simple")

    loaded = load_config(
        {
            "registry": "registry.example.com:443",
            "python_image": "registry.example.com/python:3.12-slim@sha256:" + "a" * 64,
            "ca_bundle": str(ca),
            "pip_index_url_file": index,
            "hosts": ["local", "ssh://deploy@web1:2222", "prod-ctx"],
            "health_timeout": "30",
            "pull_timeout": 120,
            "compose_project": "pc_site-a",
            "http_port": "8080",
            "site_name": "plant a",
            "registry_user": "ci",
            "registry_password_env": "CI_REGISTRY_TOKEN",
            "keep_releases": "3",
            "lock_wait": 120,
        }
    )

    assert loaded == DeployConfig(
        registry="registry.example.com:443",
        python_image="registry.example.com/python:3.12-slim@sha256:" + "a" * 64,
        ca_bundle=ca,
        pip_index_url_file=index,
        hosts=("local", "ssh://deploy@web1:2222", "prod-ctx"),
        health_timeout=30.0,
        pull_timeout=120.0,
        compose_project="pc_site-a",
        http_port=8080,
        site_name="plant a",
        registry_user="ci",
        registry_password_env="CI_REGISTRY_TOKEN",
        keep_releases=3,
        lock_wait=120.0,
    )


def test_hosts_may_be_a_comma_separated_string() -> None:
    assert load_config({"hosts": "local, tcp://10.0.0.2:2376"}).hosts == ("local", "tcp://10.0.0.2:2376")


def test_relative_paths_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ca.pem").write_text("cert")
    monkeypatch.chdir(tmp_path)

    assert load_config({"ca_bundle": "ca.pem"}).ca_bundle == tmp_path / "ca.pem"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        pytest.param({"registry": "http://localhost:5000"},
                     "invalid deploy.registry 'http://localhost:5000': drop the scheme (http://): "
                     "use host[:port][/namespace], e.g. localhost:5000, ghcr.io/acme or docker.io/acme", id="registry-scheme"),
        pytest.param({"registry": "https://ghcr.io/acme"}, "invalid deploy.registry 'https://ghcr.io/acme': drop the scheme "
                                                           "(https://)", id="registry-scheme-with-namespace"),
        pytest.param({"registry": "ghcr.io/Acme"}, "invalid deploy.registry 'ghcr.io/Acme': use "
                                                   "host[:port][/namespace]", id="registry-namespace-upper-case"),
        pytest.param({"registry": "ghcr.io//acme"}, "invalid deploy.registry 'ghcr.io//acme'", id="registry-empty-path-component"),
        pytest.param({"registry": "localhost:99999"}, "invalid deploy.registry 'localhost:99999'", id="registry-port-range"),
        pytest.param({"registry": ""}, "invalid deploy.registry ''", id="registry-empty"),
        pytest.param({"python_image": "Python 3"}, "invalid deploy.python_image 'Python 3': use an image reference like "
                                                   "python:3.12-slim-bookworm", id="python-image"),
        pytest.param({"ca_bundle": "/nonexistent/ca.pem"}, "deploy.ca_bundle file '/nonexistent/ca.pem' does not exist: fix the path or unset "
                                                           "deploy.ca_bundle", id="ca-bundle-missing"),
        pytest.param({"pip_index_url_file": "/nonexistent/url"}, "deploy.pip_index_url_file file '/nonexistent/url' does not "
                                                                 "exist", id="index-url-file-missing"),
        pytest.param({"ca_bundle": "x" * 5000}, "deploy.ca_bundle file", id="ca-bundle-name-too-long"),
        pytest.param({"ca_bundle": "~no-such-user-xyz/ca.pem"}, "deploy.ca_bundle file '~no-such-user-xyz/ca.pem' does not "
                                                                "exist", id="ca-bundle-unknown-user"),
        pytest.param({"ca_bundle": 3}, "invalid deploy.ca_bundle 3: give the path of a file", id="ca-bundle-not-a-path"),
        pytest.param({"health_timeout": 0}, "invalid deploy.health_timeout 0: use a positive number of seconds, e.g. 90", id="timeout-zero"),
        pytest.param({"health_timeout": -1.5}, "invalid deploy.health_timeout -1.5", id="timeout-negative"),
        pytest.param({"pull_timeout": "soon"}, "invalid deploy.pull_timeout 'soon'", id="timeout-text"),
        pytest.param({"pull_timeout": float("inf")}, "invalid deploy.pull_timeout inf", id="timeout-infinite"),
        pytest.param({"pull_timeout": True}, "invalid deploy.pull_timeout True", id="timeout-bool"),
        pytest.param({"monitor": -1}, "invalid deploy.monitor -1: use a number of seconds, 0 or more", id="monitor-negative"),
        pytest.param({"watch_min_requests": -1}, "invalid deploy.watch_min_requests -1: use a whole number of requests, 0 or "
                                                 "more", id="min-requests-negative"),
        pytest.param({"watch_min_requests": "a few"}, "invalid deploy.watch_min_requests 'a few'", id="min-requests-text"),
        pytest.param({"watch_min_requests": True}, "invalid deploy.watch_min_requests True", id="min-requests-bool"),
        pytest.param({"drain_timeout": 0}, "invalid deploy.drain_timeout 0: use a positive number of seconds", id="drain-zero"),
        pytest.param({"max_error_rate": 1}, "invalid deploy.max_error_rate 1: use a fraction from 0 to below 1", id="error-rate-one"),
        pytest.param({"max_error_rate": "lots"}, "invalid deploy.max_error_rate 'lots'", id="error-rate-text"),
        pytest.param({"max_error_rate": True}, "invalid deploy.max_error_rate True", id="error-rate-bool"),
        pytest.param({"proxy_image": "HAProxy 3"}, "invalid deploy.proxy_image 'HAProxy 3': use an image reference like "
                                                   "haproxy:3.0-bookworm", id="proxy-image"),
        pytest.param({"http_port": 0}, "invalid deploy.http_port 0: use a port number from 1 to 65535", id="port-zero"),
        pytest.param({"http_port": 65536}, "invalid deploy.http_port 65536", id="port-too-big"),
        pytest.param({"http_port": 80.5}, "invalid deploy.http_port 80.5", id="port-float"),
        pytest.param({"compose_project": "Production Control"}, "invalid deploy.compose_project 'Production Control': use "
                                                                "lower-case", id="compose-project"),
        pytest.param({"site_name": ""}, "invalid deploy.site_name '': use a non-empty one-line name", id="site-name-empty"),
        pytest.param({"site_name": "a\nb"}, "invalid deploy.site_name 'a\\nb'", id="site-name-newline"),
        pytest.param({"registry_user": ""}, "invalid deploy.registry_user ''", id="registry-user-empty"),
        pytest.param({"keep_releases": 0}, "invalid deploy.keep_releases 0: keep at least 1 release (the running one), e.g. 5", id="keep-zero"),
        pytest.param({"keep_releases": 2.5}, "invalid deploy.keep_releases 2.5: keep at least 1 release", id="keep-float"),
        pytest.param({"keep_releases": "-1"}, "invalid deploy.keep_releases '-1'", id="keep-negative-text"),
        pytest.param({"keep_releases": True}, "invalid deploy.keep_releases True", id="keep-bool"),
        pytest.param({"lock_wait": -1}, "invalid deploy.lock_wait -1: use a number of seconds, 0 or more (0: fail at once)", id="lock-wait-negative"),
        pytest.param({"lock_wait": "soon"}, "invalid deploy.lock_wait 'soon'", id="lock-wait-text"),
        pytest.param({"lock_wait": float("nan")}, "invalid deploy.lock_wait nan", id="lock-wait-nan"),
        pytest.param({"hosts": []}, "deploy.hosts is empty: list at least one host", id="hosts-empty"),
        pytest.param({"hosts": 3}, "invalid deploy.hosts 3: give a list of hosts", id="hosts-not-a-list"),
        pytest.param({"hosts": ["local", "local"]}, "deploy.hosts lists 'local' twice: list each host once", id="hosts-duplicate"),
        pytest.param({"hosts": ["http://web1"]}, f"invalid host 'http://web1': {HOST_FORMS}", id="hosts-invalid"),
        pytest.param({"hosts": "local,"}, f"invalid host '': {HOST_FORMS}", id="hosts-trailing-comma"),
        pytest.param({"python_image_source": "local"}, "deploy.python_image_source was removed: the base image is always read from its "
                                                       "registry", id="python-image-source-removed"),
        pytest.param({"audit_osv_url": "ftp://x"}, "invalid deploy.audit_osv_url 'ftp://x': use an http(s) URL, e.g. "
                                                   "https://api.osv.dev/v1/query", id="audit-osv-url"),
        pytest.param({"registy": "x"}, "unknown deploy setting 'registy': valid settings are audit_osv_url, ca_bundle, compose_project, "
                                       "", id="unknown-key"),
    ],
)  # fmt: skip
def test_invalid_settings(section: dict[str, Any], message: str) -> None:
    with pytest.raises(DeliveryError) as caught:
        load_config(section)

    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_password_in_registry_password_env_is_never_echoed() -> None:
    with pytest.raises(DeliveryError) as caught:
        load_config({"registry_password_env": "hunter2!secret"})

    assert "hunter2" not in str(caught.value)
    assert str(caught.value) == (
        "invalid deploy.registry_password_env: give the NAME of the environment variable"
        " holding the password (e.g. REGISTRY_PASSWORD), never the password itself"
    )


@given(st.dictionaries(st.text().filter(lambda key: key not in DEFAULTS and key not in REMOVED), st.integers(), min_size=1))
def test_unknown_keys_are_rejected(section: dict[str, int]) -> None:
    with pytest.raises(DeliveryError, match="unknown deploy setting"):
        load_config({**DEFAULTS, **section})


@given(st.dictionaries(st.sampled_from(sorted(DEFAULTS)), st.none() | st.integers() | st.floats() | st.text() | st.lists(st.text())))
def test_load_config_raises_only_delivery_error(section: dict[str, Any]) -> None:
    try:
        load_config(section)
    except DeliveryError as error:
        assert "\n" not in str(error)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("deploy:\n  registry: [oops\n", "invoke.yaml is not valid YAML at line 3", id="unclosed-list"),
        pytest.param("- a\n", "must be a mapping with a `deploy:` section, not a list", id="top-level-list"),
        pytest.param("deploy: 3\n", "`deploy` must be a mapping", id="deploy-scalar"),
    ],
)
def test_check_config_file_rejects_broken_files(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "invoke.yaml"
    path.write_text(text)
    with pytest.raises(DeliveryError, match=re.escape(message)):
        check_config_file(path)


def test_check_config_file_accepts_the_repo_file_and_a_missing_one(tmp_path) -> None:
    check_config_file(Path(__file__).resolve().parents[3] / "invoke.yaml")
    check_config_file(tmp_path / "absent.yaml")


def test_swarm_settings() -> None:
    config = load_config({"mode": "swarm", "nodes": "unix:///a.sock,ssh://n2", "pre_pull": "true", "replicas": "5"})
    assert (config.mode, config.nodes, config.pre_pull, config.replicas) == ("swarm", ("unix:///a.sock", "ssh://n2"), True, 5)
    assert load_config({}).nodes == ()
    with pytest.raises(DeliveryError, match="deploy.mode"):
        load_config({"mode": "kubernetes"})
    with pytest.raises(DeliveryError, match="deploy.replicas"):
        load_config({"replicas": 0})
