"""Real srdd nodes (bin/srdd) for the Python client's tests.

* ``node``: one node secured as the README says (users file, TLS), shared by
  the tests of a session.
* ``cluster``: three plain-HTTP nodes on loopback joined with ``--join``,
  started by the failover tests only.

Every process started here is stopped at the end of the session.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "helpers"))
import srdd_node  # noqa: E402

BINARY = os.environ.get("SRDD_BIN", str(REPO / "bin" / "srdd"))
PASSWORD = "py-client-password"
READER_TOKEN = "reader-token-0123456789abcdef"
# A test node's Spark: one core, a small driver (the machine is shared).
# How long a test client waits out 503s with Retry-After (a session that
# starts slowly on a loaded machine, a durable RDD being rebuilt).
PATIENCE = 240.0
SPARK = ["--spark-master", "local[1]", "--spark-conf", "spark.driver.memory=512m"]


def _binary() -> str:
    if not Path(BINARY).exists():
        pytest.fail(f"no srdd binary at {BINARY}; run the tests with `make test-python`")
    return BINARY


def free_addr() -> str:
    """A loopback address with a port free now (as internal/testutil)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


class SocketServer:
    """A loopback socket that hands each connection to ``_one`` on a thread
    of its own until :meth:`close`; a subclass sets its own attributes
    before calling ``__init__``, which starts accepting."""

    def __init__(self, backlog: int) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.sock.close()


@dataclass
class Proc:
    """One running bin/srdd server."""

    id: str
    url: str
    proc: subprocess.Popen
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def children(self) -> list[int]:
        """Pids of this server's child processes (its interpreters)."""
        out = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.proc.pid:
                out.append(int(d.name))
        return out


def _die_with_parent() -> None:
    """In the child: get SIGINT (a clean stop) if pytest dies without
    stopping the node (killed by a timeout, say)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def start_server(binary: str, work: Path, node_id: str, http: str, extra: list[str]) -> Proc:
    log = work / f"{node_id}.log"
    logf = open(log, "ab")
    args = [binary, "server", "--node-id", node_id, "--http-addr", http, "--raft-addr", free_addr(),
            "--data-dir", str(work / node_id), "--python", sys.executable, *SPARK, "--log-level", "warn", *extra]
    proc = subprocess.Popen(args, stdout=logf, stderr=logf, start_new_session=True, preexec_fn=_die_with_parent)
    logf.close()
    scheme = "https" if "--tls-cert" in extra else "http"
    return Proc(node_id, f"{scheme}://{http}", proc, log)


def wait_ready(p: Proc, ca: Optional[str] = None, timeout: float = 120) -> None:
    """Waits for GET /readyz to answer 200 (README: wait for this)."""
    verify = ssl.create_default_context(cafile=ca) if ca else True
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if p.proc.poll() is not None:
            pytest.fail(f"srdd {p.id} exited: {p.log.read_text()[-2000:]}")
        try:
            r = httpx.get(p.url + "/readyz", verify=verify, timeout=5, trust_env=False)
            if r.status_code == 200:
                return
            last = r.text
        except httpx.HTTPError as e:
            last = str(e)
        time.sleep(0.2)
    pytest.fail(f"srdd {p.id} not ready after {timeout}s: {last}\n{p.log.read_text()[-2000:]}")


@dataclass
class Node:
    """A node with a users file and TLS."""

    url: str
    ca: str
    auth: tuple[str, str]  # all RDD roles
    reader_token: str  # read:* only
    files: Path  # its --file-root
    proc: Proc


@pytest.fixture(scope="session")
def node() -> Iterator[Node]:
    binary = _binary()
    work = Path(tempfile.mkdtemp(prefix="srdd-pyclient-test-"))
    cert, key = srdd_node.self_signed_cert(work)
    users = work / "users.json"
    subprocess.run(
        [binary, "auth", "add", "--file", str(users), "--name", "py", "--role", "create:*",
         "--role", "read:*", "--role", "write:*", "--password", PASSWORD],
        check=True, capture_output=True,
    )
    subprocess.run(
        [binary, "auth", "add", "--file", str(users), "--name", "reader", "--role", "read:*",
         "--token", READER_TOKEN],
        check=True, capture_output=True,
    )
    files = work / "files"
    files.mkdir(mode=0o700)
    p = start_server(binary, work, "node1", free_addr(), [
        "--auth-file", str(users), "--tls-cert", str(cert), "--tls-key", str(key), "--tls-ca", str(cert),
        "--file-root", str(files), "--bootstrap"])
    try:
        wait_ready(p, ca=str(cert))
        yield Node(p.url, str(cert), ("py", PASSWORD), READER_TOKEN, files, p)
    finally:
        p.stop()


@dataclass
class Cluster:
    """Three plain-HTTP nodes (loopback: no users file needed)."""

    nodes: list[Proc]
    work: Path
    key: str = "py-client-cluster-key"
    stopped: set[str] = field(default_factory=set)

    def status(self, via: Optional[Proc] = None) -> dict:
        for p in ([via] if via else []) + [n for n in self.nodes if n.id not in self.stopped]:
            try:
                r = httpx.get(p.url + "/v1/cluster", timeout=10, trust_env=False)
                if r.status_code == 200:
                    return r.json()
            except httpx.HTTPError:
                continue
        raise AssertionError("no node answers /v1/cluster")

    def by_id(self, node_id: str) -> Proc:
        return next(p for p in self.nodes if p.id == node_id)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    binary = _binary()
    work = Path(tempfile.mkdtemp(prefix="srdd-pyclient-cluster-"))
    ckpt = work / "checkpoints"
    ckpt.mkdir()
    # Development mode (plain HTTP between nodes, guarded by the cluster
    # key, which needs --insecure): the failover rules do not depend on
    # peer TLS. n1 admits n2 and n3.
    keyfile = work / "cluster.key"
    keyfile.write_text("py-client-cluster-key")
    keyfile.chmod(0o600)
    common = ["--checkpoint-uri", str(ckpt), "--cluster-key-file", str(keyfile), "--insecure"]
    procs: list[Proc] = []
    try:
        first = start_server(binary, work, "n1", free_addr(), common + ["--bootstrap", "--admit", "n2,n3"])
        procs.append(first)
        wait_ready(first)
        for nid in ("n2", "n3"):
            procs.append(start_server(binary, work, nid, free_addr(), common + ["--join", first.url.removeprefix("http://")]))
        for p in procs[1:]:
            wait_ready(p)
        yield Cluster(procs, work)
    finally:
        for p in procs:
            p.stop()


def members(status: dict) -> list[dict]:
    """The member list of a /v1/cluster answer."""
    return status.get("members") or status.get("nodes") or []

