"""A real three-node srdd cluster (bin/srdd, peer TLS, real PySpark) with
a Spark Connect port on each node, a users file and TLS, for pyspark's
own Spark Connect client (pyspark-client, in its own venv: `make
test-connect`). The session runs on one node; `Node.url()` dials the
first node, so unless the session landed there its streams are routed
over the peer channel, and `Node.url(via=...)` picks the node."""

from __future__ import annotations

import json
import os
import secrets
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "helpers"))
import srdd_node  # noqa: E402

BINARY = os.environ.get("SRDD_BIN", str(REPO / "bin" / "srdd"))
ROLES = {
    "ana": ["code", "create:*", "read:*", "write:*"],  # owns the session
    "bob": ["code"],  # may run code, but not in ana's session
    "eve": ["read:*"],  # no code role
    "prom": ["metrics"],  # reads /metrics
}


@dataclass
class Node:
    base: str  # https://127.0.0.1:PORT of the first node
    connect: str  # 127.0.0.1:PORT of the first node's Spark Connect port
    tokens: dict[str, str]
    session: int  # ana's pyspark session
    ctx: ssl.SSLContext
    connects: dict[str, str]  # every node's Spark Connect port, by node ID
    bases: dict[str, str]  # every node's https://127.0.0.1:PORT, by node ID
    session_node: str = ""  # the node that runs the session

    def rest(self, method: str, path: str, body: Any = None, user: str = "ana") -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": "Bearer " + self.tokens[user], "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=60) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def url(self, user: Optional[str] = "ana", session: Optional[str] = None, via: Optional[str] = None) -> str:
        """The connection string: srdd's token (which makes pyspark use
        TLS) and the session, to the first node's port or to via's."""
        params = ["use_ssl=true"]
        if user is not None:
            params.append("token=" + self.tokens.get(user, user))
        if session != "":
            params.append("x-srdd-session=" + (session if session is not None else str(self.session)))
        return "sc://%s/;%s" % (self.connects[via] if via else self.connect, ";".join(params))

    def metric(self, name: str) -> float:
        """The sum of a metric's series on every node's GET /metrics."""
        total = 0.0
        for base in self.bases.values():
            req = urllib.request.Request(base + "/metrics", headers={"Authorization": "Bearer " + self.tokens["prom"]})
            with urllib.request.urlopen(req, context=self.ctx, timeout=60) as resp:
                text = resp.read().decode()
            total += sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                         if line.startswith(name + " ") or line.startswith(name + "{"))
        return total

    def statement(self, code: str) -> dict[str, Any]:
        st, body = self.rest("POST", "/sessions/%d/statements" % self.session, {"code": code})
        assert st == 201, body
        st, body = self.rest("GET", "/sessions/%d/statements/%d?wait=120" % (self.session, body["id"]))
        assert st == 200 and body["state"] == "available", body
        return body["output"]


def free_addr() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return "127.0.0.1:%d" % s.getsockname()[1]


NODES = ("n1", "n2", "n3")


@pytest.fixture(scope="session")
def node() -> Iterator[Node]:
    if not Path(BINARY).exists():
        pytest.fail(f"no srdd binary at {BINARY}; run the tests with `make test-connect`")
    work = Path(tempfile.mkdtemp(prefix="srdd-connect-test-"))
    cert, key = srdd_node.self_signed_cert(work)
    users = work / "users.json"
    # pyspark's client verifies the node's certificate with gRPC's default
    # roots: point them at this one.
    os.environ["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = str(cert)
    tokens = {name: secrets.token_hex(16) for name in ROLES}
    for name, roles in ROLES.items():
        args = [BINARY, "auth", "add", "--file", str(users), "--name", name, "--token", tokens[name]]
        for r in roles:
            args += ["--role", r]
        subprocess.run(args, check=True, capture_output=True)
    # Peer TLS: a CA and a node certificate each (srdd cert).
    subprocess.run([BINARY, "cert", "ca", "--out", str(work / "ca")], check=True, capture_output=True)
    for n in NODES:
        subprocess.run([BINARY, "cert", "node", "--ca", str(work / "ca"), "--name", n, "--host", "127.0.0.1",
                        "--out", str(work / n)], check=True, capture_output=True)
    https = {n: free_addr() for n in NODES}
    connects = {n: free_addr() for n in NODES}
    procs: list[subprocess.Popen] = []
    logs = []
    try:
        for n in NODES:
            log = open(work / f"{n}.log", "w")
            logs.append(log)
            args = [BINARY, "server", "--node-id", n, "--http-addr", https[n], "--raft-addr", "127.0.0.1:0",
                    "--data-dir", str(work / "data" / n),
                    "--python", os.environ.get("SRDD_NODE_PYTHON", "python3"), "--spark-master", "local[2]",
                    "--auth-file", str(users), "--tls-cert", str(cert), "--tls-key", str(key), "--tls-ca", str(cert),
                    "--peer-cert", str(work / n / f"{n}.pem"), "--peer-key", str(work / n / f"{n}-key.pem"),
                    "--peer-ca", str(work / n / "ca.pem"),
                    "--connect-addr", connects[n], "--log-level", "info"]
            args += ["--admit", "n2,n3"] if n == "n1" else ["--join", https["n1"]]
            proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
            procs.append(proc)
            if srdd_node.serving_url(proc, "https", log) is None:
                pytest.fail("srdd %s did not start; see %s" % (n, work / f"{n}.log"))
            srdd_node.drain(proc, log)  # the log is there to read after a failure
        ctx = ssl.create_default_context(cafile=str(cert))
        n = Node(base="https://" + https["n1"], connect=connects["n1"], tokens=tokens, session=-1, ctx=ctx,
                 connects=connects, bases={k: "https://" + v for k, v in https.items()})
        st, body = n.rest("POST", "/sessions", {"kind": "pyspark", "name": "connect-test"})
        assert st == 201, body
        n.session, n.session_node = body["id"], body["node"]
        deadline = time.monotonic() + 300
        while n.rest("GET", "/sessions/%d/state" % n.session)[1]["state"] != "idle":
            assert time.monotonic() < deadline, "the session did not start"
            time.sleep(0.5)
        yield n
    finally:
        for proc in reversed(procs):
            srdd_node.stop(proc)
        for log in logs:
            log.close()
