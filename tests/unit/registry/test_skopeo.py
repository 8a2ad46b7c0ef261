"""skopeo's command lines and its answers (pure): the argv of each command, the one reason and kind of failure in
what it prints, and where it finds a registry's CA."""

from pathlib import Path

import pytest

from delivery.registry import skopeo
from delivery.registry.skopeo import certs_dir, failure_kind, skopeo_argv, skopeo_reason


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            ("inspect", "docker://r/x:t", dict(tls_verify=False, auth=None, timeout=60, extra=("--raw",))),
            ["skopeo", "inspect", "--command-timeout=60s", "--raw", "--retry-times=3", "--tls-verify=false", "--no-creds", "docker://r/x:t"],
            id="inspect-anonymous-plain-http",
        ),
        pytest.param(
            ("list-tags", "docker://r/x", dict(tls_verify=True, auth=Path("/tmp/a.json"), timeout=None)),
            ["skopeo", "list-tags", "--retry-times=3", "--tls-verify=true", "--authfile", "/tmp/a.json", "docker://r/x"],
            id="list-tags-with-an-auth-file",
        ),
        pytest.param(
            ("copy", "docker://r/x:t", dict(tls_verify=True, auth=Path("/tmp/a.json"), timeout=None,
                                            extra=("--preserve-digests",), source="oci:/tmp/layout")),
            ["skopeo", "copy", "--preserve-digests", "--retry-times=3", "--dest-tls-verify=true", "--dest-authfile",
             "/tmp/a.json", "oci:/tmp/layout", "docker://r/x:t"],
            id="copy-uses-the-dest-options",
        ),
    ],
)
def test_skopeo_argv(args: tuple, expected: list[str]) -> None:
    command, reference, options = args
    assert skopeo_argv(command, reference, **options) == expected


@pytest.mark.parametrize(
    ("stderr", "reason", "kind"),
    [
        pytest.param(
            'time="x" level=fatal msg="Error parsing image name \\"docker://127.0.0.1:5592/ns/app:nope\\": reading manifest nope in '
            '127.0.0.1:5592/ns/app: manifest unknown: manifest unknown"\n',
            "reading manifest nope in 127.0.0.1:5592/ns/app: manifest unknown: manifest unknown", "missing", id="manifest-unknown"),
        pytest.param(
            'time="x" level=fatal msg="Error listing repository tags: fetching tags list: invalid status code from registry 404 (Not Found)"',
            "fetching tags list: invalid status code from registry 404 (Not Found)", "missing", id="no-repository"),
        pytest.param(
            'time="x" level=fatal msg="Error listing repository tags: unable to retrieve auth token: invalid username/password: unauthorized: '
            'authentication required"',
            "unable to retrieve auth token: invalid username/password: unauthorized: authentication required", "refused", id="refused"),
        pytest.param(
            'time="x" level=fatal msg="Error listing repository tags: pinging container registry 127.0.0.1:5599: Get '
            '\\"http://127.0.0.1:5599/v2/\\": dial tcp 127.0.0.1:5599: connect: connection refused"',
            'pinging container registry 127.0.0.1:5599: Get "http://127.0.0.1:5599/v2/": dial tcp 127.0.0.1:5599: connect: connection refused',
            "unreachable", id="connection-refused"),
        pytest.param(
            'level=fatal msg="pinging container registry r: Get \\"https://r/v2/\\": x509: certificate signed by unknown authority"',
            'pinging container registry r: Get "https://r/v2/": x509: certificate signed by unknown authority', "tls", id="unknown-ca"),
        pytest.param(
            'level=fatal msg="Error parsing image name \\"docker://r/x:1\\": reading manifest 1 in r/x: errors:\\nunauthorized: authentication '
            'required\\nunauthorized: authentication required\\n"',
            "reading manifest 1 in r/x: errors: unauthorized: authentication required", "refused", id="multi-line-on-one-line"),
        pytest.param(
            'level=fatal msg="Error parsing image name \\"docker://r/x:a\\": reading manifest a in r/x: received unexpected HTTP status: 503 Service '
            'Unavailable"',
            "reading manifest a in r/x: received unexpected HTTP status: 503 Service Unavailable", "unavailable", id="503"),
        pytest.param("", "no message", "other", id="silent"),
    ],
)
def test_skopeo_reason_and_kind(stderr: str, reason: str, kind: str) -> None:
    assert skopeo_reason(stderr) == reason
    assert failure_kind(reason) == kind


def test_certs_dir_is_the_first_certs_d_that_holds_the_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docker, containers = tmp_path / "docker" / "certs.d", tmp_path / "containers" / "certs.d"
    (containers / "reg:5000").mkdir(parents=True)
    (containers / "ghcr.io").mkdir(parents=True)
    (docker / "ghcr.io").mkdir(parents=True)
    (docker / "plain-file").write_text("not a directory")
    monkeypatch.setattr(skopeo, "CERTS_DIRS", (docker, containers))
    assert certs_dir("reg:5000") == containers / "reg:5000"
    assert certs_dir("ghcr.io") == docker / "ghcr.io"  # dockerd's own directory first
    assert certs_dir("plain-file") is None and certs_dir("elsewhere:5000") is None
