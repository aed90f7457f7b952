"""Starting and stopping a real bin/srdd from Python: what the pytest
fixtures of client/livy, client/python/tests and tests/connect, and
benchmarks/scala_latency.py, share. Standard library only: those run in
different virtualenvs. A user puts this directory on sys.path first."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
from pathlib import Path
from typing import IO, Optional


def self_signed_cert(work: Path) -> tuple[Path, Path]:
    """Writes work/cert.pem and work/key.pem: a 2-day self-signed P-256
    certificate for 127.0.0.1 and localhost (a test node's --tls-cert,
    --tls-key and --tls-ca). -> (cert, key)."""
    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def serving_url(proc: subprocess.Popen, scheme: str, log: Optional[IO[str]] = None) -> Optional[str]:
    """Reads proc's stderr (a text pipe) up to the line that says
    "serving on SCHEME://..." and returns that URL, or None if stderr ends
    first. With log, every line read is written to it."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if log is not None:
            log.write(line)
        m = re.search(r"serving on (%s://\S+)" % scheme, line)
        if m:
            return m.group(1)
    return None


def drain(proc: subprocess.Popen, log: Optional[IO[str]] = None) -> None:
    """Keeps reading proc's stderr on a daemon thread, so the server never
    blocks on a full pipe; with log, the lines go there (flushed)."""

    def run() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if log is not None:
                log.write(line)
                log.flush()

    threading.Thread(target=run, daemon=True).start()


def stop(proc: subprocess.Popen) -> None:
    """Stops the server cleanly (SIGINT), killing it after 60 s."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
