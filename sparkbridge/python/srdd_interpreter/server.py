"""The interpreter side of the sparkbridge protocol (see sparkbridge/DESIGN.md).

Lifecycle: listen on the unix socket, print the handshake line, accept ONE
connection, then start Spark in the background and send ``ready`` (or
``failed`` and exit). One reader thread reads frames: ``execute`` goes to a
single statement thread (in order), every other op to a small worker pool,
so KV calls never wait behind a long statement. Socket writes are
serialised by a lock. EOF on the connection, a protocol error or
``shutdown`` stops Spark and ends the process.
"""

from __future__ import annotations

import builtins
import io
import keyword
import logging
import os
import re
import shutil
import socket
import stat
import sys
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO, NoReturn, Optional

from . import PROTOCOL_NAME, PROTOCOL_VERSION, stats
from .protocol import FrameTooLarge, ProtocolError, encode_frame, read_frame
from .connect import Connect, ConnectError
from .scala import ScalaRepl
from .statements import StatementRunner, install_stdout_capture
from . import durable
from .rules import InvalidInput
from .store import Busy, WouldBlock, wire_writes
from .tables import AlreadyExists, NotFound, RDDTable

log = logging.getLogger("srdd_interpreter")

# KV calls that need Spark (cold lookups, scans, saves) block a worker while
# their job runs; hot calls never do.
KV_WORKERS = 16
DURABLE_OPS = frozenset(("kv.apply", "rdd.checkpoint", "rdd.restore", "path.gc", "path.delete"))
SPARK_STOP_TIMEOUT = 30.0
# Names an RDD is never bound under in the statement namespace (it stays
# reachable as shared_rdds[name]).
RESERVED_NAMES = frozenset({"sc", "spark", "sqlContext", "shared_rdds"})
# Ops that run session code; every other op is the node's (store.wire_writes).
USER_CODE_OPS = frozenset(("execute", "complete"))


@dataclass
class Config:
    socket_path: str
    session_id: int = 0
    master: str = "local[*]"
    app_name: Optional[str] = None
    conf: list[tuple[str, str]] = field(default_factory=list)
    repl_dir: Optional[str] = None


class OpError(Exception):
    """An error answer with a protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ------------------------------------------------------------------ Spark

def spark_conf(cfg: Config) -> dict[str, str]:
    """Defaults, then every --conf k=v (which wins)."""
    conf: dict[str, str] = {
        "spark.ui.enabled": "false",
        # The console progress bar would flood the session log (stderr).
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        # Python workers over unix sockets: measured 75 ms -> 23 ms per
        # single-task job on 2 cores (TCP loopback suffers delayed ACKs).
        "spark.python.unix.domain.socket.enabled": "true",
        # KV jobs run in per-RDD pools, so they never queue behind the
        # pending tasks of a statement's job (docs/ARCHITECTURE.md invariant 6).
        "spark.scheduler.mode": "FAIR",
    }
    if cfg.master.startswith("local"):
        conf["spark.sql.shuffle.partitions"] = "4"
    if cfg.repl_dir:
        # Where the Scala REPL writes its classes; Spark serves the
        # directory to executors (read when the SparkContext starts, so it
        # is set even if no Scala statement ever runs).
        conf["spark.repl.class.outputDir"] = cfg.repl_dir
    for key, value in cfg.conf:
        conf[key] = value
    # An OutOfMemoryError ends the driver JVM at once, saying so on stderr,
    # instead of leaving it half alive: the session then ends as dead with
    # the JVM's reason (docs/ARCHITECTURE.md, "Out of memory").
    opts = conf.get("spark.driver.extraJavaOptions", "")
    if JVM_EXIT_ON_OOM not in opts.split():
        conf["spark.driver.extraJavaOptions"] = (opts + " " + JVM_EXIT_ON_OOM).strip()
    return conf


JVM_EXIT_ON_OOM = "-XX:+ExitOnOutOfMemoryError"
# The exit code of an interpreter whose driver JVM ended under it.
EXIT_JVM_ENDED = 3


def start_spark(cfg: Config) -> Any:
    """Start the SparkSession of this session (slow: launches a JVM)."""
    os.environ["PYSPARK_PYTHON"] = sys.executable
    conf = spark_conf(cfg)
    niceness = jvm_nice(conf)  # a bad setting fails before a JVM starts
    # Spark's web UI binds to SPARK_LOCAL_IP (0.0.0.0 when unset) if it is
    # enabled by --conf; keep it on the driver's bind address.
    os.environ.setdefault("SPARK_LOCAL_IP", conf["spark.driver.bindAddress"])
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(cfg.master).appName(
        cfg.app_name or "srdd-session-%d" % cfg.session_id)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    proc = getattr(spark.sparkContext._gateway, "proc", None)
    if proc is not None:
        lower_priority(proc.pid, niceness)
    return spark


# The driver JVM's CPU priority (docs/ARCHITECTURE.md, "Serving before
# background work"): Spark's tasks (compactions, bulk loads, user jobs)
# yield the cores to the node and to this process's reader thread, which
# answer cached gets. 0 (the default) keeps the JVM at the interpreter's own
# priority: at 10, under CPU contention, a durable RDD's checkpoint job
# starved (no checkpoint in 60 s while writes kept coming), so lowering is
# the operator's choice.
CONF_JVM_NICE = "spark.srdd.jvmNice"
DEFAULT_JVM_NICE = 0


def jvm_nice(conf: dict[str, str]) -> int:
    raw = conf.get(CONF_JVM_NICE, str(DEFAULT_JVM_NICE))
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("%s must be an integer 0-19, not %r" % (CONF_JVM_NICE, raw)) from None
    if not 0 <= value <= 19:
        raise ValueError("%s must be an integer 0-19, not %r" % (CONF_JVM_NICE, raw))
    return value


def lower_priority(pid: int, niceness: int) -> int:
    """Set every thread of process pid to niceness; returns how many.

    Linux keeps a nice value per thread and a new thread or process starts
    with its creator's, so once every existing thread of the JVM is set,
    the threads it starts later (task threads) and the processes it forks
    (PySpark's Python workers) inherit it. Two passes catch a thread
    started during the first. Only raising is possible without privilege,
    so session code cannot take the priority back."""
    if niceness <= 0:
        return 0
    done: set[int] = set()
    for _ in range(2):
        try:
            tids = [int(t) for t in os.listdir("/proc/%d/task" % pid)]
        except OSError:
            return len(done)
        for tid in tids:
            if tid in done:
                continue
            try:
                if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
                    os.setpriority(os.PRIO_PROCESS, tid, niceness)
                done.add(tid)
            except OSError:
                pass  # the thread ended
    return len(done)


def make_sql_context(spark: Any) -> Any:
    """Livy binds ``sqlContext``; PySpark 4 still has SQLContext (deprecated)."""
    try:
        from pyspark.sql import SQLContext

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return SQLContext(spark.sparkContext, spark)
    except Exception:
        return spark


def _bindable(name: str) -> bool:
    return (name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("__")
            and name not in RESERVED_NAMES and not hasattr(builtins, name))


# ------------------------------------------------------------------ server

class Server:
    def __init__(self, cfg: Config, conn: socket.socket) -> None:
        self.cfg = cfg
        self.conn = conn
        self._rfile: BinaryIO = conn.makefile("rb")
        self._wfile: BinaryIO = conn.makefile("wb")
        self._write_lock = threading.Lock()
        self._finish_lock = threading.Lock()
        self._ready = threading.Event()
        self.spark: Any = None
        self.tables: Optional[RDDTable] = None
        self.runner: Optional[StatementRunner] = None
        self.scala: Optional[ScalaRepl] = None
        self.connect: Optional[Connect] = None  # Spark Connect (connect.py), started on demand
        # Shared RDDs registered as temp views for Scala and SQL statements:
        # name -> the DataFrame (kept referenced so its data stays cached).
        self._views: dict[str, Any] = {}
        self._stmt_pool = ThreadPoolExecutor(1, thread_name_prefix="srdd-stmt")
        self._pool = ThreadPoolExecutor(KV_WORKERS, thread_name_prefix="srdd-worker")
        # Durable RDDs' log applies, checkpoints and restores: never queued
        # behind KV workers that wait for Spark lookup jobs (docs/ARCHITECTURE.md invariant 6).
        self._durable_pool = ThreadPoolExecutor(4, thread_name_prefix="srdd-durable")
        # stats (polled by the node's /metrics) never waits behind busy workers.
        self._stats_pool = ThreadPoolExecutor(1, thread_name_prefix="srdd-stats")
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "execute": self._op_execute,
            "cancel": self._op_cancel,
            "progress": self._op_progress,
            "complete": self._op_complete,
            "rdd.create": self._op_rdd_create,
            "rdd.drop": self._op_rdd_drop,
            "rdd.list": self._op_rdd_list,
            "kv.get": self._op_kv_get,
            "kv.set": self._op_kv_set,
            "kv.delete": self._op_kv_delete,
            "kv.scan": self._op_kv_scan,
            "kv.count": self._op_kv_count,
            "rdd.load": self._op_rdd_load,
            "rdd.save": self._op_rdd_save,
            "kv.apply": self._op_kv_apply,
            "rdd.checkpoint": self._op_rdd_checkpoint,
            "rdd.restore": self._op_rdd_restore,
            "path.gc": self._op_path_gc,
            "path.delete": self._op_path_delete,
            "stats": self._op_stats,
            "connect.start": self._op_connect_start,
            "connect.views": self._op_connect_views,
        }
        # KV ops answered on the reader thread when they cannot block.
        self._fast: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "kv.get": self._fast_kv_get,
            "kv.set": self._fast_kv_set,
            "kv.delete": self._fast_kv_delete,
        }

    # -- lifecycle

    def run(self) -> NoReturn:
        threading.Thread(target=self._start_spark, name="srdd-spark-start", daemon=True).start()
        try:
            while True:
                msg = read_frame(self._rfile)
                if msg is None:
                    log.info("connection closed by the node; stopping")
                    self.finish(0)
                self._dispatch(msg)
        except ProtocolError as exc:
            log.error("protocol error, closing the connection: %s", exc)
            self.finish(1)
        except OSError as exc:
            log.error("connection lost: %s", exc)
            self.finish(1)
        except BaseException:
            log.exception("reader thread failed")
            self.finish(1)

    def _start_spark(self) -> None:
        try:
            spark = start_spark(self.cfg)
            sc = spark.sparkContext
            self.spark = spark
            tables = RDDTable(sc, spark)
            namespace: dict[str, Any] = {
                "__name__": "__main__",
                "__builtins__": builtins,
                "sc": sc,
                "spark": spark,
                "sqlContext": make_sql_context(spark),
                "shared_rdds": tables.view,
            }
            self.tables = tables
            self.connect = Connect(spark)
            self.scala = ScalaRepl(spark, spark_conf(self.cfg).get("spark.repl.class.outputDir"))
            self.runner = StatementRunner(namespace, sc, scala=self.scala, views=self._register_views)
            data = {"spark_version": str(spark.version), "app_id": str(sc.applicationId), "master": str(sc.master)}
            proc = getattr(sc._gateway, "proc", None)
            if proc is not None:
                threading.Thread(target=self._watch_jvm, args=(proc,), name="jvm-watch", daemon=True).start()
        except BaseException as exc:
            log.exception("Spark failed to start")
            self._send({"id": 0, "event": "failed", "data": {"message": "%s: %s" % (type(exc).__name__, exc)}})
            self.finish(1)
        self._ready.set()
        log.info("Spark %s ready: app %s on %s", data["spark_version"], data["app_id"], data["master"])
        self._send({"id": 0, "event": "ready", "data": data})

    def _watch_jvm(self, proc: Any) -> None:
        """End this interpreter when its driver JVM ends (out of memory,
        killed): a session without its JVM can run nothing."""
        code = proc.wait()
        if self._finish_lock.locked():
            return  # stopping on purpose
        log.error("the Spark driver JVM (pid %d) exited with code %s; ending this session", proc.pid, code)
        self.finish(EXIT_JVM_ENDED)

    def finish(self, code: int) -> NoReturn:
        """Stop Spark (bounded wait), close the connection and exit the process."""
        self._finish_lock.acquire()  # a second caller blocks here until exit
        spark = self.spark
        if spark is not None:
            stopper = threading.Thread(target=_stop_quietly, args=(spark,), daemon=True)
            stopper.start()
            stopper.join(SPARK_STOP_TIMEOUT)
            if stopper.is_alive():
                log.warning("Spark did not stop within %.0fs; exiting anyway", SPARK_STOP_TIMEOUT)
        try:
            self.conn.close()
        except OSError:
            pass
        if self.cfg.repl_dir:
            shutil.rmtree(self.cfg.repl_dir, ignore_errors=True)
        log.info("exiting with code %d", code)
        logging.shutdown()
        for stream in (sys.__stdout__, sys.__stderr__):
            try:
                if stream is not None:
                    stream.flush()
            except Exception:
                pass
        # os._exit: a statement thread may be stuck in user code forever.
        os._exit(code)

    # -- dispatch

    def _dispatch(self, msg: dict[str, Any]) -> None:
        rid = msg.get("id")
        if not isinstance(rid, int) or isinstance(rid, bool) or rid <= 0:
            log.warning("dropping a frame without a valid request id (id=%r, op=%r)", rid, msg.get("op"))
            return
        op = msg.get("op")
        args = msg.get("args")
        if args is None:
            args = {}
        if not isinstance(op, str):
            self._reply_error(rid, "invalid", "op must be a string")
            return
        if not isinstance(args, dict):
            self._reply_error(rid, "invalid", "args must be a map")
            return
        if op == "ping":
            self._reply(rid, {})
            return
        if op == "shutdown":
            log.info("shutdown requested")
            self._reply(rid, {})
            self.finish(0)
        if op not in self._handlers:
            self._reply_error(rid, "invalid", "unknown op %r" % op)
            return
        if not self._ready.is_set():
            self._reply_error(rid, "not_ready", "Spark is not started yet")
            return
        fast = self._fast.get(op)
        if fast is not None and self._handle_fast(rid, fast, args):
            return
        pool = (self._stmt_pool if op == "execute" else self._stats_pool if op == "stats"
                else self._durable_pool if op in DURABLE_OPS else self._pool)
        pool.submit(self._handle, rid, op, args)

    def _handle_fast(self, rid: int, fast: Callable[[dict[str, Any]], dict[str, Any]], args: dict[str, Any]) -> bool:
        """Answer a KV op on the reader thread if it cannot block (a hot get,
        a write with no backpressure pending): a hand-off to the pool costs
        more than the op. Returns False to hand the op to the pool."""
        try:
            with wire_writes():
                result = fast(args)
        except WouldBlock:
            return False
        except OpError as exc:
            self._reply_error(rid, exc.code, exc.message)
        except InvalidInput as exc:
            self._reply_error(rid, "invalid", str(exc))
        except Exception as exc:
            log.exception("fast op (id %d) failed", rid)
            self._reply_error(rid, "internal", "%s: %s" % (type(exc).__name__, exc))
        else:
            self._reply(rid, result)
        return True

    def _handle(self, rid: int, op: str, args: dict[str, Any]) -> None:
        try:
            if op in USER_CODE_OPS:  # session code: never the node's wire writes
                result = self._handlers[op](args)
            else:
                with wire_writes():
                    result = self._handlers[op](args)
        except OpError as exc:
            self._reply_error(rid, exc.code, exc.message)
        except InvalidInput as exc:
            self._reply_error(rid, "invalid", str(exc))
        except Exception as exc:
            log.exception("op %s (id %d) failed", op, rid)
            self._reply_error(rid, "internal", "%s: %s" % (type(exc).__name__, exc))
        else:
            self._reply(rid, result)

    # -- writing

    def _reply(self, rid: int, result: Any) -> None:
        self._send({"id": rid, "ok": True, "result": result})

    def _reply_error(self, rid: int, code: str, message: str) -> None:
        self._send({"id": rid, "ok": False, "error": {"code": code, "message": message}})

    def _send(self, msg: dict[str, Any]) -> None:
        try:
            data = encode_frame(msg)
        except FrameTooLarge as exc:
            if msg.get("id", 0) == 0:
                raise
            data = encode_frame(_error_msg(msg["id"], "invalid", "response too large: %s" % exc))
        except Exception as exc:
            if msg.get("id", 0) == 0:
                raise
            log.exception("cannot encode the answer to request %s", msg.get("id"))
            data = encode_frame(_error_msg(msg["id"], "internal", "cannot encode the result: %s: %s"
                                           % (type(exc).__name__, exc)))
        try:
            with self._write_lock:
                self._wfile.write(data)
                self._wfile.flush()
        except OSError as exc:
            # The node is gone; the reader sees EOF and ends the process.
            log.warning("cannot write to the node: %s", exc)

    # -- ops

    def _op_execute(self, args: dict[str, Any]) -> dict[str, Any]:
        code = _arg(args, "code", str)
        kind = args.get("kind") or "pyspark"
        if kind not in ("pyspark", "sql", "spark"):
            raise OpError("invalid", "statement kind %r is not supported" % kind)
        assert self.runner is not None
        return self.runner.execute(code, kind)

    def _register_views(self, code: str) -> None:
        """Register each shared RDD whose name the statement mentions as a
        temp view of its current data (columns key, value as JSON text),
        so Scala and SQL statements read it by name. The view is the data as
        of this moment: writes after it are seen by the next statement."""
        assert self.tables is not None and self.spark is not None
        for name in self.tables.names():
            if not re.search(r"(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])" % re.escape(name), code, re.IGNORECASE):
                continue
            try:
                df = self.tables.get(name).df
            except NotFound:
                continue
            if self._views.get(name) is df:
                continue
            df.createOrReplaceTempView(name)
            self._views[name] = df

    def _op_connect_start(self, args: dict[str, Any]) -> dict[str, Any]:
        token = _arg(args, "token", str)
        assert self.connect is not None and self.tables is not None
        try:
            port = self.connect.start(token)
        except ConnectError as exc:
            raise OpError("invalid", str(exc)) from None
        self.connect.refresh_views(self.tables)
        return {"port": port}

    def _op_connect_views(self, args: dict[str, Any]) -> dict[str, Any]:
        assert self.connect is not None and self.tables is not None
        return {"changed": self.connect.refresh_views(self.tables)}

    def _op_stats(self, args: dict[str, Any]) -> dict[str, Any]:
        assert self.tables is not None and self.spark is not None
        pending = self._pool._work_queue.qsize()  # ops waiting for a worker
        return stats.collect(self.tables, self.spark.sparkContext, pending)

    def _op_progress(self, args: dict[str, Any]) -> dict[str, Any]:
        assert self.runner is not None
        return {"progress": self.runner.progress()}

    def _op_complete(self, args: dict[str, Any]) -> dict[str, Any]:
        code = _arg(args, "code", str)
        cursor = args.get("cursor", len(code))
        if not isinstance(cursor, int) or isinstance(cursor, bool):
            raise OpError("invalid", "cursor must be an integer")
        kind = _opt(args, "kind", str, "pyspark")
        assert self.runner is not None
        return {"candidates": self.runner.complete(code, cursor, kind)}

    def _op_cancel(self, args: dict[str, Any]) -> dict[str, Any]:
        assert self.runner is not None
        group = self.runner.cancel()
        if group is not None:
            log.info("cancelled the Spark jobs of %s", group)
        return {}

    def _op_rdd_create(self, args: dict[str, Any]) -> dict[str, Any]:
        name = _arg(args, "name", str)
        if not name:
            raise OpError("invalid", "name must not be empty")
        assert self.tables is not None and self.runner is not None
        if _bindable(name) and name in self.runner.namespace and name not in self.tables.view:
            # Binding it would overwrite session code's own variable (a
            # module, a function, data): refused, never overwritten.
            raise OpError("name_taken", "%r is already a name in session code's namespace; "
                                        "choose another RDD name or del %s in the session first" % (name, name))
        log = durable.node_log_for(name) if _opt(args, "durable", bool, False) else None
        try:
            store = self.tables.create(name, log)
        except AlreadyExists:
            raise OpError("exists", "shared RDD %r already exists" % name) from None
        if _bindable(name):
            self.runner.namespace[name] = self.tables.handle(name)
        return {}

    def _op_rdd_drop(self, args: dict[str, Any]) -> dict[str, Any]:
        name = _arg(args, "name", str)
        assert self.tables is not None and self.runner is not None
        try:
            handle = self.tables.handle(name)
            self.tables.drop(name)
        except NotFound:
            raise OpError("rdd_not_found", "shared RDD %r does not exist" % name) from None
        if self.runner.namespace.get(name) is handle:
            del self.runner.namespace[name]
        if self._views.pop(name, None) is not None and self.spark is not None:
            self.spark.catalog.dropTempView(name)
        return {}

    def _op_rdd_list(self, args: dict[str, Any]) -> dict[str, Any]:
        assert self.tables is not None
        details = _opt(args, "details", bool, False)
        out = []
        for store in self.tables.stores():
            entry: dict[str, Any] = {"name": store.name, "count": store.count()}
            if details:
                entry["stats"] = store.stats()
                load = store.load_status()
                if load is not None:
                    entry["load"] = load
            out.append(entry)
        return {"rdds": out}

    def _op_rdd_load(self, args: dict[str, Any]) -> dict[str, Any]:
        store = self._store(args)
        try:
            return store.load(_arg(args, "path", str), _opt(args, "format", str, "jsonl"),
                              _opt(args, "mode", str, "merge"), _opt(args, "key_column", str, "key"),
                              _opt(args, "value_column", str, "value"), logged=True)
        except Busy as exc:
            raise OpError("busy", str(exc)) from None

    def _op_rdd_save(self, args: dict[str, Any]) -> dict[str, Any]:
        store = self._store(args)
        return store.save(_arg(args, "path", str), _opt(args, "format", str, "jsonl"),
                          _opt(args, "overwrite", bool, False))

    def _store(self, args: dict[str, Any]) -> Any:
        name = _arg(args, "name", str)
        assert self.tables is not None
        try:
            return self.tables.get(name)
        except NotFound:
            raise OpError("rdd_not_found", "shared RDD %r does not exist" % name) from None

    def _op_kv_get(self, args: dict[str, Any]) -> dict[str, Any]:
        store = self._store(args)
        keys = _arg(args, "keys", list)
        if _opt(args, "local", bool, False):
            values, cold = store.get_json_local(keys)
            return {"values": values, "cold": cold}
        return {"values": store.get_json(keys)}

    def _op_kv_set(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._kv_set(args, fast=False)

    def _op_kv_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._kv_delete(args, fast=False)

    def _fast_kv_get(self, args: dict[str, Any]) -> dict[str, Any]:
        if not _opt(args, "local", bool, False):
            raise WouldBlock()
        return self._op_kv_get(args)

    def _fast_kv_set(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._kv_set(args, fast=True)

    def _fast_kv_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._kv_delete(args, fast=True)

    # kv.set and kv.delete, on the pool or (fast) on the reader thread:
    # there only coalesced groups are taken, without waiting for room.

    def _kv_set(self, args: dict[str, Any], fast: bool) -> dict[str, Any]:
        store = self._store(args)
        items = _arg(args, "items", list)
        groups = _opt(args, "groups", list, None)
        if groups is None:
            if fast:
                raise WouldBlock()
            return {"written": store.set_json(items)}
        written, errors = store.set_json_groups(items, groups, wait=not fast)
        return {"written": written, "errors": errors}

    def _kv_delete(self, args: dict[str, Any], fast: bool) -> dict[str, Any]:
        store = self._store(args)
        keys = _arg(args, "keys", list)
        groups = _opt(args, "groups", list, None)
        if groups is None:
            if fast:
                raise WouldBlock()
            return {"deleted": store.delete_many(keys)}
        counts = store.delete_groups(keys, groups, wait=not fast)
        return {"deleted": sum(counts), "counts": counts}

    # -- durable RDDs (see durable.py)
    def _op_kv_apply(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"results": durable.apply_entries(self._store(args), _arg(args, "entries", list))}

    def _op_rdd_checkpoint(self, args: dict[str, Any]) -> dict[str, Any]:
        return durable.checkpoint(self._store(args), _arg(args, "path", str), _arg(args, "index", int))

    def _op_rdd_restore(self, args: dict[str, Any]) -> dict[str, Any]:
        return durable.restore(self._store(args), _arg(args, "path", str), _opt(args, "index", int, 0))

    def _op_path_gc(self, args: dict[str, Any]) -> dict[str, Any]:
        assert self.tables is not None
        return {"deleted": self.tables.engine.delete_children(_arg(args, "dir", str), _arg(args, "keep", list),
                                                             _opt(args, "node", str, ""))}

    def _op_path_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        assert self.tables is not None
        return {"deleted": self.tables.engine.delete_path(_arg(args, "path", str))}

    def _op_kv_scan(self, args: dict[str, Any]) -> dict[str, Any]:
        store = self._store(args)
        items, more = store.scan_json(_opt(args, "prefix", str, ""), _opt(args, "after", str, None),
                                      _opt(args, "limit", int, 100))
        return {"items": [[k, v] for k, v in items], "more": more}

    def _op_kv_count(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"count": self._store(args).count()}


def _arg(args: dict[str, Any], name: str, kind: type) -> Any:
    if name not in args:
        raise OpError("invalid", "missing argument %r" % name)
    value = args[name]
    if not isinstance(value, kind):
        raise OpError("invalid", "argument %r must be a %s" % (name, "list" if kind is list else "string"))
    return value


def _opt(args: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    """An optional argument (absent or nil means ``default``)."""
    value = args.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise OpError("invalid", "argument %r must be a %s" % (name, kind.__name__))
    return value


def _error_msg(rid: int, code: str, message: str) -> dict[str, Any]:
    return {"id": rid, "ok": False, "error": {"code": code, "message": message}}


def _stop_quietly(spark: Any) -> None:
    try:
        spark.stop()
    except Exception:
        log.exception("error while stopping Spark")


# ------------------------------------------------------------------ entry

def listen(path: str) -> socket.socket:
    """Bind a unix socket at ``path`` (replacing a stale socket file only)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise FileExistsError("%s exists and is not a socket" % path)
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # the socket file is private to our user
    try:
        sock.bind(path)
    finally:
        os.umask(old_umask)
    sock.listen(1)
    return sock


def handshake_line(path: str) -> str:
    return "%s|%d|unix|%s" % (PROTOCOL_NAME, PROTOCOL_VERSION, path)


def serve(cfg: Config) -> NoReturn:
    listener = listen(cfg.socket_path)
    out = sys.stdout
    out.write(handshake_line(cfg.socket_path) + "\n")
    out.flush()
    conn, _ = listener.accept()
    listener.close()
    try:
        os.unlink(cfg.socket_path)
    except OSError:
        pass
    log.info("node connected on %s", cfg.socket_path)
    if cfg.repl_dir is None:
        # Beside the socket: the node's private per-interpreter directory,
        # which it removes when the interpreter ends, even by kill -9.
        cfg.repl_dir = os.path.join(os.path.dirname(os.path.abspath(cfg.socket_path)), "repl-classes")
        os.makedirs(cfg.repl_dir, mode=0o700, exist_ok=True)
    # User code must never read the node's stdin, and its prints are
    # captured per statement; others go to the real stdout (drained by the node).
    sys.stdin = io.StringIO()
    install_stdout_capture()
    Server(cfg, conn).run()
