"""Durable shared RDDs, the interpreter's part.

The node owns the write log (Raft). The interpreter only:
- applies logged writes in log order (``apply_entries``, op ``kv.apply``);
- writes checkpoints (Parquet: key, value as JSON text, log_index) and loads
  them back when the RDD is rebuilt (``checkpoint``, ``restore``);
- sends writes made by user code (``states.set(...)`` in a statement) to the
  node over HTTP, so they are logged like any client's (``NodeLog``).

Replaying a write that a checkpoint already holds is harmless: every write
is a blind set or delete of whole keys, so applying the log suffix after any
state that contains its prefix gives the same data.
"""

from __future__ import annotations

import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional

from .rules import InvalidInput, Rules
from .store import SharedRDD


_session_token: Optional[str] = None


def set_session_token(token: Optional[str]) -> None:
    """Set the session's capability (read from the pipe the node hands
    over at start, never from the environment). It lets this session
    read and write its own RDDs on its own node, nothing else."""
    global _session_token
    _session_token = token or None


class LogError(RuntimeError):
    """The node refused or could not log a write."""


class NodeLog:
    """Sends writes of user code to the node's REST API (which logs them
    through Raft and answers once this interpreter has applied them)."""

    def __init__(self, base_url: str, name: str, timeout: float = 60.0) -> None:
        self.base = base_url.rstrip("/") + "/v1/rdds/" + urllib.parse.quote(name, safe="")
        self.timeout = timeout

    def __call__(self, op: str, payload: Any) -> int:
        if op == "set":
            body = {"items": {k: json.loads(v) for k, v in payload}}
            out = self._post("/set", body)
            return int(out.get("written", 0))
        if op == "delete":
            out = self._post("/delete", {"keys": list(payload)})
            return int(out.get("deleted", 0))
        raise ValueError("unknown log op %r" % op)

    def _post(self, path: str, body: Any) -> dict[str, Any]:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "X-Requested-By": "srdd"}
        if _session_token:
            headers["Authorization"] = "Bearer " + _session_token
        req = urllib.request.Request(self.base + path, data=data, method="POST", headers=headers)
        ca = os.environ.get("SRDD_NODE_CA")
        tls = ssl.create_default_context(cafile=ca) if ca else None
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=tls) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                msg = json.loads(exc.read()).get("error", {}).get("message", "")
            except Exception:
                msg = ""
            if 400 <= exc.code < 500:
                raise InvalidInput(msg or "the node refused the write (%d)" % exc.code) from None
            raise LogError("the node could not log the write (%d): %s" % (exc.code, msg)) from None
        except OSError as exc:
            raise LogError("cannot reach the node to log the write: %s" % exc) from None


def node_log_for(name: str) -> Optional[NodeLog]:
    url = os.environ.get("SRDD_NODE_URL")
    return NodeLog(url, name) if url else None


def apply_entries(store: SharedRDD, entries: list) -> list[dict[str, Any]]:
    """Apply logged writes in order. Each entry is {"i": index, "d": delete,
    "k": keys, "v": values (sets), "g": group sizes}. A group that fails
    validation is skipped and reported; replays skip it the same way.
    Returns per entry {"c": per-group delete counts or None, "e": per-group
    error or None}.

    Entries at or below the last index applied are skipped: a call the
    node gave up on (timeout, a new pusher) may still be running, and the
    apply lock plus the index keep every entry applied once, in order."""
    with store.apply_lock:
        return _apply_locked(store, entries)


def _apply_locked(store: SharedRDD, entries: list) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for e in entries:
        if not isinstance(e, dict):
            raise InvalidInput("log entry must be a map")
        keys = e.get("k") or []
        groups = e.get("g") or []
        index = e.get("i")
        if not isinstance(index, int):
            raise InvalidInput("log entry %r: malformed" % index)
        try:
            Rules.check_groups(groups, len(keys))
        except InvalidInput:
            raise InvalidInput("log entry %r: malformed" % index) from None
        if index <= store.applied_index:
            out.append({"c": None, "e": [None] * len(groups)})
            continue
        store.applied_index = index
        errors: list[Optional[str]] = []
        if e.get("d"):
            counts = []
            pos = 0
            for g in groups:
                counts.append(store.apply_logged({}, keys[pos:pos + g]))
                errors.append(None)
                pos += g
            out.append({"c": counts, "e": errors})
            continue
        values = e.get("v") or []
        if len(values) != len(keys):
            raise InvalidInput("log entry %r: %d values for %d keys" % (e.get("i"), len(values), len(keys)))
        staged: dict[str, bytes] = {}
        pos = 0
        for g in groups:
            try:
                part = store.stage_json([[keys[j], values[j]] for j in range(pos, pos + g)])
            except InvalidInput as exc:
                errors.append(str(exc))
            except Exception as exc:  # never stop the log on one bad group
                errors.append("value cannot be stored: %s: %s" % (type(exc).__name__, exc))
            else:
                errors.append(None)
                staged.update(part)
            pos += g
        if staged:
            store.apply_logged(staged, ())
        out.append({"c": None, "e": errors})
    return out


def checkpoint(store: SharedRDD, path: str, index: int) -> dict[str, Any]:
    began = time.monotonic()
    rows = store.checkpoint_to(path, index)
    try:
        size = store.engine.input_bytes(path)
    except Exception:
        size = 0
    return {"rows": rows, "bytes": size, "path": path, "seconds": round(time.monotonic() - began, 3)}


def restore(store: SharedRDD, path: str, index: int, timeout: float = 3600.0) -> dict[str, Any]:
    """Replace the data with a checkpoint (which holds every write up to log
    index ``index``) and wait until it is loaded. Writes applied while it
    loads stay on top of the loaded rows."""
    began = time.monotonic()
    with store.apply_lock:
        store.applied_index = index
        store.load(path, "parquet", "replace", logged=True)
    deadline = began + timeout
    while True:
        st = store.load_status() or {}
        if st.get("state") == "done":
            return {"rows": st.get("rows", 0), "seconds": round(time.monotonic() - began, 3)}
        if st.get("state") == "failed":
            raise RuntimeError("cannot load checkpoint %s: %s" % (path, st.get("error")))
        if time.monotonic() > deadline:
            raise TimeoutError("loading checkpoint %s took over %ds" % (path, timeout))
        time.sleep(0.05)
