"""Entry point: ``python -m srdd_interpreter --socket PATH --session-id N ...``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Optional

from . import durable
from .server import Config, serve


def _conf_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError("expected k=v, got %r" % text)
    return key.strip(), value


def parse_args(argv: Optional[list[str]] = None) -> tuple[Config, Optional[int]]:
    """Returns the server config and the token fd (--token-fd), if any."""
    parser = argparse.ArgumentParser(prog="python -m srdd_interpreter",
                                     description="srdd session interpreter (a PySpark driver)")
    parser.add_argument("--socket", required=True, metavar="PATH", help="unix socket path to listen on")
    parser.add_argument("--session-id", type=int, default=0, metavar="N", help="session id (for logs)")
    parser.add_argument("--master", default="local[*]", help="Spark master URL (default: local[*])")
    parser.add_argument("--app-name", default=None, help="Spark application name (default: srdd-session-N)")
    parser.add_argument("--conf", action="append", type=_conf_pair, default=[], metavar="K=V",
                        help="Spark configuration, repeatable; applied last")
    parser.add_argument("--token-fd", type=int, default=None, metavar="FD",
                        help="read the session's capability token from this file descriptor (a pipe)")
    ns = parser.parse_args(argv)
    return Config(socket_path=ns.socket, session_id=ns.session_id, master=ns.master,
                  app_name=ns.app_name, conf=list(ns.conf)), ns.token_fd


def _read_token(fd: int) -> str:
    """Read the session token the node wrote to ``fd`` and close it, so
    neither the JVM nor any process the session starts inherits it."""
    chunks = []
    try:
        while True:
            b = os.read(fd, 4096)
            if not b:
                break
            chunks.append(b)
            if sum(len(c) for c in chunks) > 4096:
                raise SystemExit("session token on fd %d is too long" % fd)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("ascii").strip()


def _ensure_hash_seed() -> None:
    """Re-exec with PYTHONHASHSEED=0 if it is unset.

    PySpark hash-partitions pair RDDs with Python's str hash; executors run
    with a fixed seed ("0" unless the driver sets one), so the driver must
    hash like them to know which partition holds a key. The seed only takes
    effect at interpreter start, hence the exec (same pid, fds and process
    group; nothing has been printed yet).
    """
    if "PYTHONHASHSEED" in os.environ:
        return
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, list(sys.orig_argv))


def main(argv: Optional[list[str]] = None) -> None:
    cfg, token_fd = parse_args(argv)
    if argv is None:
        _ensure_hash_seed()
    if token_fd is not None:
        durable.set_session_token(_read_token(token_fd))
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%%(asctime)s %%(levelname)s srdd-interpreter[session=%d] %%(name)s: %%(message)s" % cfg.session_id,
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    try:
        serve(cfg)
    except Exception:
        logging.getLogger("srdd_interpreter").exception("interpreter failed to start")
        sys.exit(1)


if __name__ == "__main__":
    main()
