"""Starts one real srdd node (bin/srdd) for the Livy client tests, with a
users file and TLS: the Livy clients use HTTP Basic over HTTPS."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "helpers"))
import srdd_node  # noqa: E402


PASSWORD = "livy-test-password"


@dataclass
class Srdd:
    """A running node secured as the README says: users file, HTTPS."""

    url: str
    auth: tuple[str, str]  # HTTP Basic, what pylivy passes to requests
    ca: str  # the node's self-signed certificate, for verify=
    http: requests.Session  # authenticated, verifying
    files: Path  # the node's default file root (DATA-DIR/files): batch files go here

    @property
    def livy(self) -> dict:
        return {"auth": self.auth, "verify": self.ca}


class _Session(requests.Session):
    """A session that verifies against ca on every call (a Session's own
    verify loses to REQUESTS_CA_BUNDLE in the environment)."""

    def __init__(self, ca: str) -> None:
        super().__init__()
        self.ca = ca

    def request(self, *args, **kwargs):  # type: ignore[override]
        kwargs.setdefault("verify", self.ca)
        return super().request(*args, **kwargs)


@pytest.fixture(scope="session")
def srdd() -> Iterator[Srdd]:
    binary = os.environ.get("SRDD_BIN", str(REPO / "bin" / "srdd"))
    if not Path(binary).exists():
        pytest.fail(f"no srdd binary at {binary}; run the tests with `make test`")
    work = Path(tempfile.mkdtemp(prefix="srdd-livy-test-"))
    cert, key = srdd_node.self_signed_cert(work)
    users = work / "users.json"
    subprocess.run(
        [binary, "auth", "add", "--file", str(users), "--name", "livy", "--role", "code",
         "--role", "create:*", "--role", "read:*", "--role", "write:*", "--password", PASSWORD],
        check=True, capture_output=True,
    )
    proc = subprocess.Popen(
        [binary, "server", "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
         "--data-dir", str(work / "data"), "--python", os.environ.get("SRDD_NODE_PYTHON", sys.executable), "--spark-master", "local[2]",
         "--auth-file", str(users), "--tls-cert", str(cert), "--tls-key", str(key), "--tls-ca", str(cert),
         "--log-level", "warn"],
        stderr=subprocess.PIPE, text=True,
    )
    url = srdd_node.serving_url(proc, "https")
    if url is None:
        proc.kill()
        pytest.fail("srdd did not start")
    srdd_node.drain(proc)
    http = _Session(str(cert))
    http.auth = ("livy", PASSWORD)
    yield Srdd(url=url, auth=("livy", PASSWORD), ca=str(cert), http=http, files=work / "data" / "files")
    http.close()
    srdd_node.stop(proc)
