"""Bulk load and save of a shared RDD: files, formats, progress, errors.

A load reads JSON Lines ``{"key","value"}`` rows, or CSV/Parquet with a
key column and a JSON-text value column; Spark tasks check every row with
the node's data rules (tasks.py, rules.py) and the rows are merged into a
new base (engine.py). How a load is ordered against writes — it freezes
the delta, and writes made while it runs stay on top — is the store's
business (store.py); this module is the rest.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

from .engine import Base, Engine
from .rules import InvalidInput

FORMATS = ("jsonl", "csv", "parquet")


def check_load(path: Any, fmt: Any, mode: Any, key_column: Any, value_column: Any) -> None:
    """Raise InvalidInput unless these are valid load arguments."""
    check_save(path, fmt)
    if mode not in ("merge", "replace"):
        raise InvalidInput('mode must be "merge" or "replace"')
    for col in (key_column, value_column):
        if not isinstance(col, str) or not col:
            raise InvalidInput("column names must be non-empty strings")


def check_save(path: Any, fmt: Any) -> None:
    """Raise InvalidInput unless these are valid save arguments."""
    if not isinstance(path, str) or not path:
        raise InvalidInput("path must be a non-empty string")
    if fmt not in FORMATS:
        raise InvalidInput("format must be one of %s" % ", ".join(FORMATS))


class Load:
    """One load of a shared RDD: what it reads and how far it got."""

    def __init__(self, path: str, fmt: str, mode: str, group: str) -> None:
        self.info: dict[str, Any] = {
            "state": "running", "path": path, "format": fmt, "mode": mode, "rows": 0,
            "percent": 0.0, "rows_per_sec": 0.0, "seconds": 0.0, "error": None}
        self.started = time.monotonic()
        self.group = group  # the Spark job group (progress comes from its stages)
        self.counter: Any = None  # the row accumulator, once the read starts

    @property
    def running(self) -> bool:
        return self.info["state"] == "running"

    def status(self, engine: Engine) -> dict[str, Any]:
        """Progress of the running load, or its outcome."""
        out = dict(self.info)
        if out["state"] == "running":
            elapsed = time.monotonic() - self.started
            counter = self.counter
            rows = int(counter.value) if counter is not None else 0
            try:
                pct = 100.0 * engine.group_progress(self.group)
            except Exception:
                pct = 0.0
            pct = max(min(pct, 99.9), self.info["percent"])
            self.info["percent"] = pct
            out.update(rows=rows, percent=round(pct, 1), seconds=round(elapsed, 3),
                       rows_per_sec=round(rows / elapsed, 1) if elapsed > 0 else 0.0)
        return out

    def read(self, engine: Engine, name: str, key_col: str, value_col: str, base: Base,
             frozen: dict, label: str) -> Base:
        """Read the file (rows checked in Spark tasks) and build the new base:
        ``base`` (unless mode is replace) with ``frozen`` applied and the
        loaded rows on top."""
        sc = engine.sc
        sc.setJobGroup(self.group, "srdd load of %s from %s" % (name, self.info["path"]))
        nbytes = engine.input_bytes(self.info["path"])
        rows = engine.read_rows(self.info["format"], self.info["path"], key_col, value_col, nbytes)
        self.counter = sc.accumulator(0)
        return engine.rebuild(base, frozen, loaded=rows, loaded_bytes=nbytes,
                              replace=self.info["mode"] == "replace", counter=self.counter, name=label)

    def failed(self, exc: BaseException) -> str:
        message = error_text(exc)
        self.info.update(state="failed", error=message, seconds=round(time.monotonic() - self.started, 3))
        return message

    def done(self) -> None:
        elapsed = time.monotonic() - self.started
        nrows = int(self.counter.value)
        self.info.update(state="done", rows=nrows, percent=100.0, seconds=round(elapsed, 3),
                         rows_per_sec=round(nrows / elapsed, 1) if elapsed > 0 else 0.0)


def save(engine: Engine, pool: ThreadPoolExecutor, base: Base, overlay: dict, rows: int,
         path: str, fmt: str, overwrite: bool) -> dict[str, Any]:
    """Write ``base`` with ``overlay`` applied to ``path`` (on ``pool``, the
    RDD's background thread) and wait. Bad paths are InvalidInput; the
    caller has checked the arguments (check_save)."""
    began = time.monotonic()
    try:
        pool.submit(engine.save, base, overlay, fmt, path, bool(overwrite)).result()
    except FileExistsError as exc:
        raise InvalidInput(str(exc)) from None
    except Exception as exc:
        msg = path_error(exc)
        if msg is None:
            raise
        raise InvalidInput("cannot write %s: %s" % (path, msg)) from None
    return {"rows": rows, "path": path, "format": fmt, "seconds": round(time.monotonic() - began, 3)}


def path_error(exc: BaseException) -> Optional[str]:
    """The message of a JVM error that a bad path causes (an unknown file
    system scheme, a directory that cannot be created or written, a
    malformed URI), or None for other errors."""
    java = getattr(exc, "java_exception", None)
    if java is None:
        return None
    try:
        names = set()
        cls = java.getClass()
        while cls is not None:
            names.add(str(cls.getName()))
            cls = cls.getSuperclass()
        if names & {"java.io.IOException", "java.lang.IllegalArgumentException"}:
            return str(java.getMessage())
    except Exception:
        return None
    return None


def error_text(exc: BaseException) -> str:
    """A short message for a failed Spark job: the Python error of the task
    if there is one, else the first line."""
    text = str(exc)
    for marker in ("BadRow: ", "ValueError: ", "FileNotFoundException: ", "AnalysisException: ",
                   "InvalidInputException: "):
        i = text.find(marker)
        if i >= 0:
            line = text[i:].splitlines()[0]
            return line[:500]
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return ("%s: %s" % (type(exc).__name__, first))[:500]
