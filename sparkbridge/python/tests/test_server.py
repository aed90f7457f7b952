"""End to end: the real interpreter process, over its real unix socket."""

from __future__ import annotations

import os
import queue
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from srdd_interpreter.protocol import encode_frame, read_frame

PYTHON_DIR = Path(__file__).resolve().parent.parent
HOSTILE_KEY = 'x"); import os; os.system("touch /tmp/pwned"); ("'
PWNED = "/tmp/pwned"
READY_TIMEOUT = 180.0


class Client:
    """A minimal node-side client: multiplexed requests, events on a queue."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self._rfile = self.sock.makefile("rb")
        self._lock = threading.Lock()
        self._next_id = 1
        self._pending: dict[int, "queue.Queue[dict[str, Any]]"] = {}
        self.events: "queue.Queue[dict[str, Any]]" = queue.Queue()
        self.closed = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                msg = read_frame(self._rfile)
                if msg is None:
                    break
                if msg["id"] == 0:
                    self.events.put(msg)
                else:
                    with self._lock:
                        q = self._pending.pop(msg["id"])
                    q.put(msg)
        except OSError:
            pass
        finally:
            self.closed.set()

    def send(self, op: str, args: Optional[dict[str, Any]] = None) -> "queue.Queue[dict[str, Any]]":
        q: "queue.Queue[dict[str, Any]]" = queue.Queue()
        with self._lock:
            rid = self._next_id
            self._next_id += 1
            self._pending[rid] = q
            self.sock.sendall(encode_frame({"id": rid, "op": op, "args": args or {}}))
        return q

    def call(self, op: str, args: Optional[dict[str, Any]] = None, timeout: float = 60.0) -> dict[str, Any]:
        return self.send(op, args).get(timeout=timeout)

    def ok(self, op: str, args: Optional[dict[str, Any]] = None, timeout: float = 60.0) -> Any:
        resp = self.call(op, args, timeout)
        assert resp["ok"] is True, resp
        return resp["result"]

    def error_code(self, op: str, args: Optional[dict[str, Any]] = None) -> str:
        resp = self.call(op, args)
        assert resp["ok"] is False, resp
        assert isinstance(resp["error"]["message"], str)
        return resp["error"]["code"]

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # makefile() keeps the fd open past close()
        self.sock.close()


def children(pid: int) -> list[int]:
    out: list[int] = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def descendants(pid: int) -> list[int]:
    out = children(pid)
    for child in list(out):
        out += descendants(child)
    return out


def cmdline(pid: int) -> bytes:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read()
    except OSError:
        return b""


class Interp:
    def __init__(self, tmp: str, *extra: str) -> None:
        self.path = os.path.join(tmp, "s.sock")
        self.stderr_path = os.path.join(tmp, "stderr.log")
        env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR))
        env.pop("PYTHONHASHSEED", None)  # the interpreter must fix it itself
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "srdd_interpreter", "--socket", self.path, "--session-id", "7",
             "--master", "local[2]", *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.stderr, env=env,
        )
        self.stdout_lines: list[str] = []

    def handshake(self, timeout: float = 30.0) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, "no handshake within %ss; stderr: %s" % (timeout, self.log())
        line = self.proc.stdout.readline().decode()
        # like the node: drain stdout afterwards so the pipe never blocks
        threading.Thread(target=self._drain, daemon=True).start()
        return line

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.stdout_lines.append(raw.decode(errors="replace"))

    def log(self) -> str:
        self.stderr.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


@pytest.fixture()
def tmpdir_short() -> Iterator[str]:
    # unix socket paths are limited to ~107 bytes: keep them short
    d = tempfile.mkdtemp(prefix="srdd-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_parent_gone_before_ready_exits(tmpdir_short: str) -> None:
    interp = Interp(tmpdir_short)
    try:
        assert interp.handshake().strip() == "srdd-interpreter|1|unix|" + interp.path
        client = Client(interp.path)
        assert client.ok("ping") == {}
        client.close()  # EOF: the node is gone
        assert interp.proc.wait(timeout=30) == 0, interp.log()
    finally:
        interp.kill()


def test_end_to_end(tmpdir_short: str) -> None:
    if os.path.exists(PWNED):
        os.remove(PWNED)
    interp = Interp(tmpdir_short, "--conf", "spark.sql.shuffle.partitions=3", "--conf", "spark.srdd.jvmNice=10",
                    "--app-name", "e2e")
    try:
        line = interp.handshake()
        assert line == "srdd-interpreter|1|unix|%s\n" % interp.path
        client = Client(interp.path)

        # before ready: ping works, data ops answer not_ready, unknown ops invalid
        assert client.ok("ping") == {}
        early = client.call("rdd.list")
        if client.events.empty():  # (Spark takes seconds to start; this is the normal case)
            assert early["ok"] is False and early["error"]["code"] == "not_ready", early
        assert client.error_code("no.such.op") == "invalid"

        event = client.events.get(timeout=READY_TIMEOUT)
        assert event["event"] == "ready", (event, interp.log())
        assert event["data"]["spark_version"].startswith("4.")
        assert event["data"]["master"] == "local[2]"
        assert event["data"]["app_id"]

        # rdd.create / exists / bad input
        assert client.ok("rdd.create", {"name": "states"}) == {}
        assert client.error_code("rdd.create", {"name": "states"}) == "exists"
        assert client.error_code("rdd.create", {"name": 5}) == "invalid"
        assert client.error_code("kv.get", {"name": "nope", "keys": ["a"]}) == "rdd_not_found"

        # kv.set / kv.get, values as JSON in bin fields, hostile key is plain data
        items = [["ak", b'"Alaska"'], [HOSTILE_KEY, b'{"a": 1}']]
        assert client.ok("kv.set", {"name": "states", "items": items}) == {"written": 2}
        got = client.ok("kv.get", {"name": "states", "keys": ["ak", "zz", HOSTILE_KEY]})
        assert got == {"values": [b'"Alaska"', None, b'{"a":1}']}
        assert isinstance(got["values"][0], bytes)

        # a bad batch is invalid and changes nothing
        bad = [["ak", b'"Changed"'], ["n", b"1e400"]]
        assert client.error_code("kv.set", {"name": "states", "items": bad}) == "invalid"
        assert client.ok("kv.get", {"name": "states", "keys": ["ak", "n"]}) == {"values": [b'"Alaska"', None]}

        # statements see the RDD under its name; code writes are visible to kv.get
        out = client.ok("execute", {"code": 'states.get("ak")'})
        assert out == {"status": "ok", "execution_count": 0, "data": {"text/plain": "'Alaska'"}}
        out = client.ok("execute", {"code": 'states.set("ca", {"name": "California"})\n%json shared_rdds["states"].count()'})
        assert out["data"] == {"application/json": 3}, out
        assert client.ok("kv.get", {"name": "states", "keys": ["ca"]}) == {"values": [b'{"name":"California"}']}
        out = client.ok("execute", {"code": "sorted(states.rdd.map(lambda kv: kv[0]).collect())[:2]"})
        assert out["data"] == {"text/plain": "['ak', 'ca']"}, out
        out = client.ok("execute", {"code": "(spark.conf.get('spark.sql.shuffle.partitions'), sc.getConf().get('spark.driver.host'), sc.appName)"})
        assert out["data"] == {"text/plain": "('3', '127.0.0.1', 'e2e')"}, out
        out = client.ok("execute", {"code": "1 / 0"})
        assert out["status"] == "error" and out["ename"] == "ZeroDivisionError" and out["execution_count"] == 4

        # kv.delete / rdd.list
        assert client.ok("kv.delete", {"name": "states", "keys": ["ca", "missing"]}) == {"deleted": 1}
        assert client.ok("rdd.create", {"name": "other"}) == {}
        assert client.ok("rdd.list") == {"rdds": [{"name": "other", "count": 0}, {"name": "states", "count": 2}]}

        # a KV call completes while a long statement (a slow Spark job) runs;
        # cancel then stops that job, and the next statement runs in order
        slow = client.send("execute", {"code": "import time\nsc.parallelize(range(2), 2).map(lambda x: time.sleep(60) or x).collect()"})
        after = client.send("execute", {"code": "'next'"})
        time.sleep(1.0)  # let the job start
        t0 = time.monotonic()
        got = client.ok("kv.get", {"name": "states", "keys": ["ak"]}, timeout=10)
        assert got == {"values": [b'"Alaska"']}
        assert time.monotonic() - t0 < 5
        assert slow.empty(), "the slow statement should still be running"
        assert client.ok("rdd.list", timeout=10)["rdds"][1] == {"name": "states", "count": 2}
        assert slow.empty()
        t0 = time.monotonic()
        assert client.ok("cancel") == {}
        cancelled = slow.get(timeout=40)["result"]
        assert time.monotonic() - t0 < 40
        assert cancelled["status"] == "error", cancelled
        assert "cancel" in (cancelled["evalue"] + "".join(cancelled["traceback"])).lower()
        nxt = after.get(timeout=30)["result"]
        assert nxt == {"status": "ok", "execution_count": cancelled["execution_count"] + 1, "data": {"text/plain": "'next'"}}

        # with spark.srdd.jvmNice=10 the driver JVM and the Python workers
        # it forked run below the interpreter's own CPU priority
        own = os.getpriority(os.PRIO_PROCESS, interp.proc.pid)
        jvm = [p for p in children(interp.proc.pid) if b"SparkSubmit" in cmdline(p)]
        assert len(jvm) == 1, [cmdline(p) for p in children(interp.proc.pid)]
        want = max(own, 10)
        for tid in os.listdir("/proc/%d/task" % jvm[0]):
            assert os.getpriority(os.PRIO_PROCESS, int(tid)) == want, (tid, cmdline(jvm[0]))
        workers = [p for p in descendants(jvm[0]) if b"pyspark" in cmdline(p)]
        assert workers, "the statements' jobs forked no Python worker"
        for pid in workers:
            assert os.getpriority(os.PRIO_PROCESS, pid) == want, cmdline(pid)

        # rdd.drop unbinds the name
        assert client.ok("rdd.drop", {"name": "states"}) == {}
        assert client.error_code("rdd.drop", {"name": "states"}) == "rdd_not_found"
        out = client.ok("execute", {"code": "states"})
        assert out["status"] == "error" and out["ename"] == "NameError"

        # an RDD never overwrites session code's own name; session code
        # holds a handle with no wire methods
        assert client.ok("execute", {"code": "import json\nmine = 7"})["status"] == "ok"
        for taken in ("json", "mine"):
            assert client.error_code("rdd.create", {"name": taken}) == "name_taken"
        out = client.ok("execute", {"code": "(mine, json.dumps([1]), sorted(shared_rdds))"})
        assert out["data"] == {"text/plain": "(7, '[1]', ['other'])"}, out
        out = client.ok("execute", {"code": "(hasattr(other, 'set_json'), hasattr(other, 'apply_logged'), other.count())"})
        assert out["data"] == {"text/plain": "(False, False, 0)"}, out

        assert not os.path.exists(PWNED)

        # shutdown answers, then the process stops Spark and exits 0
        assert client.ok("shutdown") == {}
        assert interp.proc.wait(timeout=60) == 0, interp.log()
        assert client.closed.wait(10)
    finally:
        interp.kill()


def test_jvm_nice_setting() -> None:
    from srdd_interpreter.server import CONF_JVM_NICE, jvm_nice

    assert jvm_nice({}) == 0
    assert jvm_nice({CONF_JVM_NICE: "10"}) == 10
    assert jvm_nice({CONF_JVM_NICE: "0"}) == 0
    assert jvm_nice({CONF_JVM_NICE: "19"}) == 19
    for bad in ("-1", "20", "ten", ""):
        with pytest.raises(ValueError, match=CONF_JVM_NICE):
            jvm_nice({CONF_JVM_NICE: bad})
