"""The engine API through `docker system dial-stdio` (a scripted docker): chunked answers read, errors in one line."""

import pytest

from delivery.errors import DeliveryError


# -- the engine API through `docker system dial-stdio` ---------------------------------------------------
def fake_docker(tmp_path, response: bytes):
    """A `docker` whose `system dial-stdio` reads one request and answers `response`."""
    from python_on_whales import DockerClient

    answer = tmp_path / "answer"
    answer.write_bytes(response)
    script = tmp_path / "docker"
    script.write_text(f"#!/bin/sh\nhead -n 1 >{tmp_path}/request\ncat {answer}\n")
    script.chmod(0o755)
    return DockerClient(client_call=[str(script)])


def test_engine_api_reads_a_chunked_json_answer(tmp_path) -> None:
    from delivery.docker.engine import disk_usage

    body = b'{"LayersSize": 123456789, "Images": []}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    docker = fake_docker(tmp_path, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
    assert disk_usage(docker) == 123456789
    assert (tmp_path / "request").read_bytes() == b"GET /system/df?type=image HTTP/1.1\r\n"


def test_engine_api_errors_are_one_line(tmp_path) -> None:
    from delivery.docker.engine import engine_api

    docker = fake_docker(tmp_path, b'HTTP/1.1 500 Internal Server Error\r\nContent-Length: 30\r\n\r\n{"message":"context canceled"}')
    with pytest.raises(DeliveryError, match=r'^the engine API call /x failed: HTTP 500 \{"message":"context canceled"\}$'):
        engine_api(docker, "/x")
    with pytest.raises(DeliveryError, match="^the engine API call /x failed: "):
        engine_api(fake_docker(tmp_path, b""), "/x")
