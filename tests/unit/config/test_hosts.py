"""Host parsing: each form deploy.hosts accepts, its label, and the one-line refusal of every other."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from delivery.config.hosts import Host, parse_host
from delivery.errors import DeliveryError

HOST_FORMS = "use unix:///path, ssh://user@host, tcp://host:port or a docker context name"


@pytest.mark.parametrize(
    ("value", "expected", "label"),
    [
        pytest.param("local", Host("local", None, None), "local", id="local"),
        pytest.param("unix:///var/run/docker.sock", Host("unix", "unix:///var/run/docker.sock", None), "/var/run/docker.sock", id="unix"),
        pytest.param("ssh://web1", Host("ssh", "ssh://web1", None), "web1", id="ssh-host"),
        pytest.param("ssh://deploy@web1.example.com", Host("ssh", "ssh://deploy@web1.example.com", None), "deploy@web1.example.com", id="ssh-user"),
        pytest.param("ssh://deploy@10.0.0.5:2222", Host("ssh", "ssh://deploy@10.0.0.5:2222", None), "deploy@10.0.0.5:2222", id="ssh-port"),
        pytest.param("tcp://10.0.0.2:2376", Host("tcp", "tcp://10.0.0.2:2376", None), "10.0.0.2:2376", id="tcp"),
        pytest.param("tcp://[::1]:2375", Host("tcp", "tcp://[::1]:2375", None), "[::1]:2375", id="tcp-ipv6"),
        pytest.param("prod-site_a.1+x", Host("context", None, "prod-site_a.1+x"), "prod-site_a.1+x", id="context"),
        pytest.param("default", Host("context", None, "default"), "default", id="default-context"),
    ],
)  # fmt: skip
def test_parse_host(value: str, expected: Host, label: str) -> None:
    host = parse_host(value)

    assert host == expected
    assert host.label == label


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("http://x", id="http"),
        pytest.param("ssh://", id="ssh-without-host"),
        pytest.param("ssh://web1/path", id="ssh-with-path"),
        pytest.param("ssh://web1:0", id="ssh-port-zero"),
        pytest.param("tcp://host", id="tcp-without-port"),
        pytest.param("tcp://host:70000", id="tcp-port-range"),
        pytest.param("unix://", id="unix-empty"),
        pytest.param("unix:///", id="unix-root"),
        pytest.param("unix://relative.sock", id="unix-relative"),
        pytest.param("-ctx", id="context-leading-dash"),
        pytest.param("my context", id="context-space"),
        pytest.param("local\n", id="trailing-newline"),
    ],
)
def test_parse_host_rejects(value: str) -> None:
    with pytest.raises(DeliveryError) as caught:
        parse_host(value)

    assert str(caught.value) == f"invalid host {value!r}: {HOST_FORMS}"


@given(st.text())
def test_parse_host_raises_only_delivery_error(value: str) -> None:
    try:
        host = parse_host(value)
    except DeliveryError as error:
        assert "\n" not in str(error)
    else:
        assert host.kind in {"local", "unix", "ssh", "tcp", "context"}
        assert host.label
