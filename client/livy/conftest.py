"""Starts one real srdd node (bin/srdd) for the Livy client tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def srdd_url() -> Iterator[str]:
    binary = os.environ.get("SRDD_BIN", str(REPO / "bin" / "srdd"))
    if not Path(binary).exists():
        pytest.fail(f"no srdd binary at {binary}; run the tests with `make test`")
    data = tempfile.mkdtemp(prefix="srdd-livy-test-")
    proc = subprocess.Popen(
        [binary, "server", "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
         "--data-dir", data, "--python", sys.executable, "--spark-master", "local[2]",
         "--log-level", "warn"],
        stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    url = None
    for line in proc.stderr:
        m = re.search(r"serving on (http://\S+)", line)
        if m:
            url = m.group(1)
            break
    if url is None:
        proc.kill()
        pytest.fail("srdd did not start")
    # Keep draining stderr so the server never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    yield url
    proc.send_signal(subprocess.signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
