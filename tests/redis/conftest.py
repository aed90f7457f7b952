"""Two bin/srdd nodes with a Redis port each, for redis-py's tests.

The nodes run sessions on the fast tier's fake interpreter
(SRDD_TEST_FAKE_INTERPRETER=1: no JVM), with a users file, and form a
development-mode cluster on loopback (--insecure, a cluster key). Shared
RDD ``states`` lives in a session of node ``n1``; the tests talk to
``n2``'s Redis port, so every data call is forwarded.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BINARY = os.environ.get("SRDD_BIN", str(REPO / "bin" / "srdd"))


def free_addr() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def rest(method: str, url: str, token: str, body: object = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@dataclass
class RedisCluster:
    owner_http: str  # the node whose session holds states
    redis_host: str  # the other node's Redis port
    redis_port: int
    tokens: dict[str, str]  # ana: read/write states*, bob: read states*


@pytest.fixture(scope="session")
def cluster() -> Iterator[RedisCluster]:
    if not Path(BINARY).exists():
        pytest.fail(f"no srdd binary at {BINARY}; run the tests with `make test-python`")
    work = Path(tempfile.mkdtemp(prefix="srdd-redis-test-"))
    users, key = work / "users.json", work / "cluster.key"
    key.write_text(secrets.token_hex(16))
    key.chmod(0o600)
    tokens = {"ana": secrets.token_hex(16), "bob": secrets.token_hex(16)}
    roles = {"ana": ["code", "create:states*", "read:states*", "write:states*"], "bob": ["read:states*"]}
    for name, tok in tokens.items():
        args = [BINARY, "auth", "add", "--file", str(users), "--name", name, "--token", tok]
        for r in roles[name]:
            args += ["--role", r]
        subprocess.run(args, check=True, capture_output=True)
    env = dict(os.environ, SRDD_TEST_FAKE_INTERPRETER="1")
    procs: list[subprocess.Popen] = []
    https = [free_addr(), free_addr()]
    redis_addr = free_addr()
    try:
        for i, node_id in enumerate(["n1", "n2"]):
            log = open(work / f"{node_id}.log", "ab")
            args = [BINARY, "server", "--node-id", node_id, "--http-addr", https[i], "--raft-addr", free_addr(),
                    "--data-dir", str(work / node_id), "--auth-file", str(users), "--cluster-key-file", str(key),
                    "--insecure", "--log-level", "warn"]
            if i == 0:
                args += ["--bootstrap", "--admit", "n2"]
            else:
                args += ["--join", https[0], "--redis-addr", redis_addr]
            procs.append(subprocess.Popen(args, stdout=log, stderr=log, env=env, start_new_session=True))
            log.close()
            wait_ready(procs[-1], "http://" + https[i], work / f"{node_id}.log")
        base, ana = "http://" + https[0], tokens["ana"]
        st, sess = rest("POST", base + "/sessions", ana, {"kind": "pyspark"})
        assert st == 201, sess
        deadline = time.monotonic() + 120
        while rest("GET", f"{base}/sessions/{sess['id']}/state", ana)[1].get("state") != "idle":
            assert time.monotonic() < deadline, "the session did not start"
            time.sleep(0.1)
        st, body = rest("POST", base + "/v1/rdds", ana, {"name": "states", "session": sess["id"], "mode": "memory"})
        assert st == 201, body
        host, port = redis_addr.rsplit(":", 1)
        yield RedisCluster(base, host, int(port), tokens)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def wait_ready(p: subprocess.Popen, base: str, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            pytest.fail(f"srdd exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    pytest.fail(f"srdd not ready after {timeout}s: {log.read_text()[-2000:]}")
