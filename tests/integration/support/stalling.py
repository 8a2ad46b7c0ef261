"""A registry that hangs: a loopback HTTP front of a real registry whose blob downloads by the
Docker engine never finish.

Everything else (the /v2/ ping, manifests, and blobs read by the tasks' own registry client)
is passed through to the real registry, so a deploy resolves the release and predicts its
pull as usual; then the engine's pull stalls on its first layer, as behind a broken proxy.
"""

from __future__ import annotations

import http.client
import http.server
import threading
from typing import Any

from tests.integration.support.tasks_helpers import free_port

ENGINE_USER_AGENT = "docker/"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization"}


class StallingRegistry:
    """`with StallingRegistry("127.0.0.1:5000") as stalling:` serves on `stalling.address`."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.port = free_port()
        self.stalled = 0  # blob downloads held
        self._release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self._forward(body=False)

            def do_GET(self) -> None:
                if "/blobs/" in self.path and self.headers.get("User-Agent", "").startswith(ENGINE_USER_AGENT):
                    outer.stalled += 1
                    outer._release.wait()  # never answers while the test runs
                    self.close_connection = True
                    return
                self._forward(body=True)

            def _forward(self, body: bool) -> None:
                upstream = http.client.HTTPConnection(outer.upstream, timeout=30)
                upstream.putrequest(self.command, self.path, skip_accept_encoding=True)
                for key, value in self.headers.items():  # repeated headers (Accept) each kept
                    if key.lower() not in HOP_BY_HOP and key.lower() != "host":
                        upstream.putheader(key, value)
                upstream.endheaders()
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)
                upstream.close()

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> StallingRegistry:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
