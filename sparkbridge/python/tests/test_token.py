"""The session's capability: handed over on a pipe (never the environment
or argv), and sent on user code's writes to the node."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Optional

import pytest

from srdd_interpreter import __main__ as entry
from srdd_interpreter import durable


def test_token_comes_on_a_pipe_and_the_fd_is_closed() -> None:
    r, w = os.pipe()
    os.write(w, b"cap-0123456789\n")
    os.close(w)
    cfg, fd = entry.parse_args(["--socket", "/tmp/x.sock", "--token-fd", str(r)])
    assert fd == r and cfg.socket_path == "/tmp/x.sock"
    assert entry._read_token(fd) == "cap-0123456789"
    with pytest.raises(OSError):
        os.fstat(r)  # closed: nothing the session starts inherits it
    _, none = entry.parse_args(["--socket", "/tmp/x.sock"])
    assert none is None


class _Auth(BaseHTTPRequestHandler):
    seen: list[Optional[str]] = []

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append(self.headers.get("Authorization"))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(json.dumps({"written": 1}).encode())

    def log_message(self, *args: Any) -> None:
        pass


def test_user_writes_carry_the_session_token() -> None:
    srv = HTTPServer(("127.0.0.1", 0), _Auth)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    log = durable.NodeLog("http://127.0.0.1:%d" % srv.server_address[1], "r")
    try:
        _Auth.seen = []
        durable.set_session_token(None)
        log("set", [("a", "1")])
        durable.set_session_token("cap-abc")
        log("set", [("a", "1")])
        assert _Auth.seen == [None, "Bearer cap-abc"]
        assert "cap-abc" not in "".join(os.environ.values())
    finally:
        durable.set_session_token(None)
        srv.shutdown()
