"""A Livy-like statement runner (after Livy's fake_shell.py).

A statement is Python source, possibly mixed with magic lines
(``%json EXPR``, ``%table EXPR``) that start at column 0. All but the last
top-level node run in 'exec' mode, the last in 'single' (interactive) mode,
so a trailing expression's repr is printed like in an interactive shell.
Standard output of the statement thread is captured into ``text/plain``.
"""

from __future__ import annotations

import ast
import builtins
import datetime
import decimal
import io
import json
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from types import CodeType, TracebackType
from typing import Any, Optional, TextIO

import msgpack

from .scala import ScalaError, split_magics

FILENAME = "<stdin>"
TABLE_MIME = "application/vnd.livy.table.v1+json"
JSON_MIME = "application/json"
TEXT_MIME = "text/plain"


# ------------------------------------------------------------ stdout capture

class ThreadLocalStdout(io.TextIOBase):
    """A sys.stdout replacement: writes from a thread that is capturing go to
    that thread's buffer; writes from any other thread go to ``fallback``.

    So a statement's prints are captured while KV workers, logging and the
    server keep using the real stream.
    """

    def __init__(self, fallback: TextIO) -> None:
        super().__init__()
        self.fallback = fallback
        self._local = threading.local()

    def _target(self) -> TextIO:
        buf = getattr(self._local, "buffer", None)
        return buf if buf is not None else self.fallback

    def start_capture(self) -> None:
        self._local.buffer = io.StringIO()

    def stop_capture(self) -> str:
        buf: Optional[io.StringIO] = getattr(self._local, "buffer", None)
        self._local.buffer = None
        return buf.getvalue() if buf is not None else ""

    def write(self, s: Any) -> int:
        if isinstance(s, (bytes, bytearray)):
            s = bytes(s).decode("utf-8", "replace")
        return self._target().write(s)

    def flush(self) -> None:
        self._target().flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> Optional[str]:  # type: ignore[override]
        return "replace"


def install_stdout_capture() -> ThreadLocalStdout:
    """Install (once) the thread-local stdout proxy and return it."""
    current = sys.stdout
    if isinstance(current, ThreadLocalStdout):
        return current
    proxy = ThreadLocalStdout(current if current is not None else sys.__stdout__)
    sys.stdout = proxy
    return proxy


# ------------------------------------------------------------ parsing

class UnknownMagic(Exception):
    pass


class _CodeNode:
    """Python source: exec all top-level nodes but the last, run the last
    in 'single' mode (prints a trailing expression's repr)."""

    def __init__(self, source: str) -> None:
        tree = compile(source, FILENAME, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
        body = tree.body
        self.exec_code: Optional[CodeType] = None
        self.single_code: Optional[CodeType] = None
        if len(body) > 1:
            self.exec_code = compile(ast.Module(body[:-1], type_ignores=[]), FILENAME, "exec", dont_inherit=True)
        if body:
            self.single_code = compile(ast.Interactive(body[-1:]), FILENAME, "single", dont_inherit=True)

    def run(self, namespace: dict[str, Any]) -> Optional[dict[str, Any]]:
        if self.exec_code is not None:
            exec(self.exec_code, namespace)
        if self.single_code is not None:
            exec(self.single_code, namespace)
        return None


class _MagicNode:
    """``%name EXPR``: EXPR is any Python expression (Livy only takes a name)."""

    def __init__(self, line: str) -> None:
        parts = line[1:].strip().split(None, 1)
        self.name = parts[0] if parts else ""
        self.expr = parts[1].strip() if len(parts) > 1 else ""
        self.code: Optional[CodeType] = None
        if self.name in MAGICS and self.expr:
            self.code = compile(self.expr, FILENAME, "eval", dont_inherit=True)

    def run(self, namespace: dict[str, Any]) -> Optional[dict[str, Any]]:
        if not self.name:
            raise UnknownMagic("magic command not specified")
        handler = MAGICS.get(self.name)
        if handler is None:
            raise UnknownMagic("unknown magic command '%s'" % self.name)
        if self.code is None:
            raise UnknownMagic("magic command '%%%s' needs an expression" % self.name)
        return handler(eval(self.code, namespace))


_Node = Any  # _CodeNode | _MagicNode


def parse_statement(code: str) -> list[_Node]:
    """Parse a statement into code and magic nodes (SyntaxError propagates).

    As in Livy: the whole text is first parsed as Python; only if that fails
    is it split into runs of code lines and magic lines (lines starting with
    '%'), so a '%' inside a multi-line string is not taken for a magic.
    """
    try:
        return [_CodeNode(code)]
    except SyntaxError:
        lines = code.rstrip().split("\n")
        if not any(line.startswith("%") for line in lines):
            raise
    nodes: list[_Node] = []
    normal: list[str] = []
    for line in lines:
        if line.startswith("%"):
            if normal:
                nodes.append(_CodeNode("\n".join(normal)))
                normal = []
            nodes.append(_MagicNode(line))
        else:
            normal.append(line)
    if normal:
        nodes.append(_CodeNode("\n".join(normal)))
    return nodes


# ------------------------------------------------------------ magics

def _json_safe(value: Any) -> Any:
    """Turn a value into plain JSON data (lists, str-keyed dicts, finite
    numbers) that MessagePack and the Go side can carry; raise otherwise."""
    data = json.loads(json.dumps(value, allow_nan=False))
    try:
        msgpack.packb(data, use_bin_type=True)
    except (OverflowError, ValueError, TypeError) as exc:  # ints beyond 64 bits, lone surrogates
        raise ValueError("value cannot be sent as JSON output: %s" % exc) from None
    return data


def _clean(text: str) -> str:
    """Make text valid UTF-8 (lone surrogates become "?") so it can be sent."""
    return text.encode("utf-8", "replace").decode("utf-8") if text else text


def magic_json(value: Any) -> dict[str, Any]:
    return {JSON_MIME: _json_safe(value)}


def _table_convert(value: Any) -> tuple[str, Any]:
    converter = _TABLE_TYPES.get(type(value))
    if converter is None:
        return "STRING_TYPE", str(value)
    return converter(value)


def _table_convert_seq(items: Any) -> tuple[str, Any]:
    last_type: Optional[str] = None
    converted = []
    for item in items:
        item_type, item = _table_convert(item)
        if last_type is None:
            last_type = item_type
        elif last_type != item_type:
            raise ValueError("value has inconsistent types")
        converted.append(item)
    return "ARRAY_TYPE", converted


def _table_convert_map(mapping: Mapping[Any, Any]) -> tuple[str, Any]:
    last_key_type: Optional[str] = None
    last_value_type: Optional[str] = None
    converted: dict[str, Any] = {}
    for key, value in mapping.items():
        key_type, key = _table_convert(key)
        value_type, value = _table_convert(value)
        if last_key_type is None:
            last_key_type = key_type
        elif last_key_type != key_type:
            raise ValueError("value has inconsistent types")
        if last_value_type is None:
            last_value_type = value_type
        elif last_value_type != value_type:
            raise ValueError("value has inconsistent types")
        converted[str(key)] = value
    return "MAP_TYPE", converted


_TABLE_TYPES: dict[type, Callable[[Any], tuple[str, Any]]] = {
    type(None): lambda x: ("NULL_TYPE", x),
    bool: lambda x: ("BOOLEAN_TYPE", x),
    int: lambda x: ("INT_TYPE", x),
    float: lambda x: ("DOUBLE_TYPE", x),
    str: lambda x: ("STRING_TYPE", x),
    datetime.date: lambda x: ("DATE_TYPE", str(x)),
    datetime.datetime: lambda x: ("TIMESTAMP_TYPE", str(x)),
    decimal.Decimal: lambda x: ("DECIMAL_TYPE", str(x)),
    tuple: _table_convert_seq,
    list: _table_convert_seq,
    dict: _table_convert_map,
}


class TableError(Exception):
    pass


def magic_table(value: Any, sort_keys: bool = True) -> dict[str, Any]:
    """Livy's %table: rows are dicts (columns by sorted key, or in the
    order met when not ``sort_keys``), lists/tuples (columns by position)
    or scalars (one column); pyspark Rows count as dicts."""
    if not isinstance(value, (list, tuple)):
        value = [value]
    headers: dict[Any, dict[str, str]] = {}
    data: list[list[Any]] = []
    for row in value:
        if hasattr(row, "asDict") and callable(row.asDict):
            row = row.asDict()
        if not isinstance(row, (list, tuple, dict)):
            row = [row]
        cells = (enumerate(row) if isinstance(row, (list, tuple))
                 else sorted(row.items()) if sort_keys else row.items())
        cols: list[Any] = []
        for name, cell in cells:
            cell_type, cell = _table_convert(cell)
            header = headers.get(name)
            if header is None:
                headers[name] = {"name": str(name), "type": cell_type}
            elif cell_type != "NULL_TYPE" and header["type"] != cell_type:
                if header["type"] == "NULL_TYPE":
                    header["type"] = cell_type
                else:
                    raise TableError("table rows have different types")
            cols.append(cell)
        data.append(cols)
    table = {
        "headers": ([h for _, h in sorted(headers.items())] if sort_keys else list(headers.values())),
        "data": data,
    }
    return {TABLE_MIME: _json_safe(table)}


MAGICS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "json": magic_json,
    "table": magic_table,
}


# ------------------------------------------------------------ runner

PNG_MIME = "image/png"


def magic_matplot(value: Any) -> dict[str, Any]:
    """``%matplot plt`` (or a Figure): the current figure as a base64 PNG,
    as Livy's magic of the same name. Needs matplotlib in the session."""
    import base64

    fig = value.gcf() if hasattr(value, "gcf") else value
    if not hasattr(fig, "savefig"):
        raise TypeError("%%matplot needs matplotlib.pyplot or a Figure, got %s" % type(value).__name__)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    if hasattr(value, "close"):
        value.close()
    return {PNG_MIME: base64.b64encode(buf.getvalue()).decode("ascii")}


MAGICS["matplot"] = magic_matplot


# ------------------------------------------------------------ SQL

SQL_MAX_ROWS = 1000
CANCEL_REPEAT = 0.2  # seconds between repeated cancels of a statement's job group


def _sql_cell(value: Any) -> Any:
    """A Spark SQL cell as JSON data (dates, decimals and the like as text)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, (list, tuple)):
        return [_sql_cell(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _sql_cell(v) for k, v in value.items()}
    if hasattr(value, "asDict"):
        return {k: _sql_cell(v) for k, v in value.asDict().items()}
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    return str(value)


def run_sql(spark: Any, query: str) -> dict[str, Any]:
    """Run Spark SQL as Livy's SQL interpreter does: the result's schema and
    at most SQL_MAX_ROWS rows under application/json."""
    df = spark.sql(query)
    rows = [[_sql_cell(v) for v in row] for row in df.take(SQL_MAX_ROWS)]
    return {JSON_MIME: {"schema": json.loads(df.schema.json()), "data": rows}}


def _user_traceback(exc: BaseException) -> list[str]:
    """Format ``exc`` the way Livy does: drop the runner's own frames (start
    at the first frame of user code) and do not chain causes."""
    tb: Optional[TracebackType] = exc.__traceback__
    start = tb
    while start is not None and start.tb_frame.f_code.co_filename != FILENAME:
        start = start.tb_next
    if start is None:
        start = None if isinstance(exc, SyntaxError) else tb
    return traceback.format_exception(type(exc), exc, start, chain=False)


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return "<exception str() failed>"


def error_output(count: int, exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, ScalaError):
        # A Scala error brings its own name and trace.
        return {"status": "error", "execution_count": count, "ename": _clean(str(exc.ename)),
                "evalue": _clean(str(getattr(exc, "evalue", ""))),
                "traceback": [_clean(str(line)) for line in exc.traceback]}
    return {
        "status": "error",
        "execution_count": count,
        "ename": type(exc).__name__,
        "evalue": _clean(_safe_str(exc)),
        "traceback": [_clean(line) for line in _user_traceback(exc)],
    }


class StatementRunner:
    """Runs statements one at a time in one shared namespace.

    ``execute`` must be called from a single thread (the statement thread);
    ``cancel`` may be called from any thread.
    """

    def __init__(self, namespace: Optional[dict[str, Any]] = None, sc: Any = None,
                 scala: Any = None, views: Optional[Callable[[str], None]] = None) -> None:
        self.namespace: dict[str, Any] = namespace if namespace is not None else {}
        # A scala.ScalaRepl for "spark" statements (None: Scala is not offered),
        # and a hook that registers the shared RDDs a Scala or SQL statement
        # names as temp views (given the statement's code).
        self.scala = scala
        self.views = views
        self.namespace.setdefault("__name__", "__main__")
        self.namespace.setdefault("__builtins__", builtins)
        self.sc = sc
        self._stdout = install_stdout_capture()
        self._lock = threading.Lock()
        self._next_count = 0
        self._running_group: Optional[str] = None

    @property
    def execution_count(self) -> int:
        """The count the next statement will get."""
        return self._next_count

    def execute(self, code: str, kind: str = "pyspark") -> dict[str, Any]:
        """Run one statement (kind "pyspark" or "sql"); return the Livy
        output object."""
        with self._lock:
            count = self._next_count
            self._next_count += 1
            group = "srdd-stmt-%d" % count
            self._running_group = group
        # Re-check each time: something may have replaced sys.stdout since.
        self._stdout = install_stdout_capture()
        self._stdout.start_capture()
        try:
            if self.sc is not None:
                self.sc.setJobGroup(group, "srdd statement %d" % count, interruptOnCancel=True)
            if kind == "sql":
                if self.views is not None:
                    self.views(code)
                result = run_sql(self.namespace["spark"], code)
            elif kind == "spark":
                if self.views is not None:
                    self.views(code)
                result = self._run_scala(code)
            else:
                result = self._run(code)
        except BaseException as exc:  # SystemExit/KeyboardInterrupt from user code too
            self._stdout.stop_capture()
            return error_output(count, exc)
        finally:
            with self._lock:
                self._running_group = None
        stdout = self._stdout.stop_capture()
        return {"status": "ok", "execution_count": count, "data": _ok_data(result, stdout)}

    def _run_scala(self, code: str) -> Optional[dict[str, Any]]:
        """A Scala statement: code runs in the REPL (its printout is the
        text/plain output), ``%json EXPR`` and ``%table EXPR`` turn a Scala
        value into JSON data, as Livy's Scala interpreter does."""
        if self.scala is None:
            raise RuntimeError("Scala is not available in this session")
        if not isinstance(code, str):
            raise TypeError("code must be a str")
        result: Optional[dict[str, Any]] = None
        for name, text in split_magics(code):
            if name == "code":
                out = self.scala.execute(text)
                if out:
                    print(out)
                result = None
            elif name in ("json", "table"):
                if not text:
                    raise UnknownMagic("magic command '%%%s' needs an expression" % name)
                value = self.scala.value_json(text)
                result = magic_json(value) if name == "json" else magic_table(value, sort_keys=False)
            elif not name:
                raise UnknownMagic("magic command not specified")
            else:
                raise UnknownMagic("unknown magic command '%s'" % name)
        return result

    def _run(self, code: str) -> Optional[dict[str, Any]]:
        if not isinstance(code, str):
            raise TypeError("code must be a str")
        result: Optional[dict[str, Any]] = None
        for node in parse_statement(code):
            result = node.run(self.namespace)
        return result

    def cancel(self) -> Optional[str]:
        """Cancel the Spark jobs of the running statement; returns its job
        group, or None if no statement is running.

        Spark cancels only jobs that are active, so the group is cancelled
        again every CANCEL_REPEAT seconds until the statement ends: a job the
        statement submits after the request dies too."""
        with self._lock:
            group = self._running_group
        if group is None or self.sc is None:
            return group
        self.sc.cancelJobGroup(group)

        def keep_cancelling() -> None:
            while True:
                time.sleep(CANCEL_REPEAT)
                with self._lock:
                    if self._running_group != group:
                        return
                self.sc.cancelJobGroup(group)

        threading.Thread(target=keep_cancelling, name="srdd-cancel", daemon=True).start()
        return group


    def progress(self) -> Optional[float]:
        """Fraction of finished tasks over the Spark jobs of the running
        statement, or None when no statement runs."""
        with self._lock:
            group = self._running_group
        if group is None or self.sc is None:
            return None
        tracker = self.sc.statusTracker()
        done = total = 0
        for job_id in tracker.getJobIdsForGroup(group):
            job = tracker.getJobInfo(job_id)
            if job is None:
                continue
            for stage_id in job.stageIds:
                stage = tracker.getStageInfo(stage_id)
                if stage is not None:
                    total += stage.numTasks
                    done += stage.numCompletedTasks
        return done / total if total else 0.0

    def complete(self, code: str, cursor: int, kind: str = "pyspark") -> list[str]:
        """Completion candidates for the name or attribute before cursor,
        from the session's namespace (Livy's /completion); for kind "spark",
        from the Scala REPL's completer."""
        import re

        if kind == "spark":
            if self.scala is None:
                return []
            return self.scala.complete(code, max(0, min(cursor, len(code))))
        import rlcompleter

        cursor = max(0, min(cursor, len(code)))
        match = re.search(r"[A-Za-z_][A-Za-z0-9_.]*$", code[:cursor])
        if match is None:
            return []
        completer = rlcompleter.Completer(self.namespace)
        out: list[str] = []
        for state in range(1000):
            candidate = completer.complete(match.group(0), state)
            if candidate is None:
                break
            out.append(candidate.rstrip("("))
        return sorted(set(out))


def _ok_data(result: Optional[dict[str, Any]], stdout: str) -> dict[str, Any]:
    """Livy's rule: stdout goes to text/plain (final newline stripped); it is
    present if non-empty or if there is no other MIME type."""
    data = dict(result) if result else {}
    text = _clean(stdout[:-1] if stdout.endswith("\n") else stdout)
    if text or not data:
        data[TEXT_MIME] = text
    return data
