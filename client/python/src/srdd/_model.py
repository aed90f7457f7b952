"""The client's model, shared by :class:`srdd.Client` and
:class:`srdd.AsyncClient`: building requests, decoding answers, mapping
errors, chunking batches, following scan cursors and polling a load.

Each operation is a generator that yields what it needs from the I/O layer
and gets the answer sent back:

* a :class:`Request` -> the :class:`Response` of one node (the I/O layer
  picks the node and fails over, see ``_transport``);
* a :class:`Sleep` -> ``None`` once that many seconds have passed;
* an :class:`Out` -> ``None``; the value is handed to the caller (scan).

The generator's return value is the operation's result. So the sync and the
async clients differ only in how they send bytes and sleep.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Iterable, Mapping, Optional, Union
from urllib.parse import quote

from ._errors import LoadFailed, OutcomeUnknown, SrddError, error_class

# Server limits (README "Limits and names"): batches of up to 10,000 keys,
# request bodies up to 4 MiB. Chunks stay a little under the body limit.
MAX_BATCH_KEYS = 10_000
MAX_BATCH_BYTES = 4 * 1024 * 1024 - 64 * 1024
# The scan page size this client asks for (the server allows 1-10,000).
SCAN_PAGE = 1000

CONSISTENCIES = ("default", "linearizable", "stale")


@dataclass
class Request:
    """One HTTP request, independent of the node it goes to."""

    method: str
    path: str
    params: Optional[dict[str, str]] = None
    body: Optional[bytes] = None
    # Safe to send again after it may have reached a node (reads only).
    idempotent: bool = False
    # Sent as the Idempotency-Key header (writes).
    idempotency_key: Optional[str] = None
    # What the caller passes back as idempotency_key= to retry this call
    # (for a chunked batch, the base of the chunks' keys).
    retry_key: Optional[str] = None

    def headers(self) -> dict[str, str]:
        h = {"Accept": "application/json"}
        if self.method != "GET":
            # srdd answers 415 to a mutating call without it (CSRF guard).
            h["Content-Type"] = "application/json"
        if self.idempotency_key:
            h["Idempotency-Key"] = self.idempotency_key
        return h


@dataclass
class Response:
    """What one node answered."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass
class Sleep:
    seconds: float


@dataclass
class Out:
    value: Any


Step = Union[Request, Sleep, Out]
Op = Generator[Step, Any, Any]


# ---------------------------------------------------------------- results


@dataclass
class LoadStatus:
    """A bulk load's progress (``state`` ``running``) or outcome (``done``,
    ``failed``)."""

    state: str
    path: str = ""
    format: str = ""
    mode: str = ""
    rows: int = 0
    percent: float = 0.0
    rows_per_sec: float = 0.0
    seconds: float = 0.0
    error: str = ""

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "LoadStatus":
        return cls(
            state=d.get("state", ""),
            path=d.get("path", ""),
            format=d.get("format", ""),
            mode=d.get("mode", ""),
            rows=int(d.get("rows") or 0),
            percent=float(d.get("percent") or 0.0),
            rows_per_sec=float(d.get("rows_per_sec") or 0.0),
            seconds=float(d.get("seconds") or 0.0),
            error=d.get("error", "") or "",
        )


@dataclass
class RDDInfo:
    """A shared RDD as ``GET /v1/rdds[/{name}]`` describes it.

    ``keys`` is ``None`` when the owner could not be asked; ``checkpoint``
    and ``tail_writes`` are set for durable RDDs; ``replicas`` is the
    number of copies wanted and ``copies`` the ones that exist, each a
    dict with ``node``, ``session``, ``role`` (``"owner"`` or ``"copy"``),
    ``applied_index`` and ``checkpoint_index`` where known; ``at_risk``
    says why one lost machine would lose
    acknowledged writes, or is ``""``; ``raw`` is the whole JSON object
    (fields a newer server adds are there)."""

    name: str
    session: int
    node: str
    mode: str
    state: str
    keys: Optional[int]
    created_at: int
    message: str = ""
    load: Optional[LoadStatus] = None
    engine: dict[str, Any] = field(default_factory=dict)
    checkpoint: Optional[dict[str, Any]] = None
    tail_writes: Optional[int] = None
    replicas: int = 1
    copies: list[dict[str, Any]] = field(default_factory=list)
    under_replicated: bool = False
    at_risk: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "RDDInfo":
        load = d.get("load")
        return cls(
            name=d.get("name", ""),
            session=int(d.get("session") or 0),
            node=d.get("node", ""),
            mode=d.get("mode", ""),
            state=d.get("state", ""),
            keys=d.get("keys"),
            created_at=int(d.get("created_at") or 0),
            message=d.get("message", "") or "",
            load=LoadStatus.from_json(load) if load else None,
            engine=d.get("engine") or {},
            checkpoint=d.get("checkpoint"),
            tail_writes=d.get("tail_writes"),
            replicas=int(d.get("replicas") or 1),
            copies=list(d.get("copies") or []),
            under_replicated=bool(d.get("under_replicated")),
            at_risk=d.get("at_risk", "") or "",
            raw=dict(d),
        )


@dataclass
class SaveResult:
    """A finished save: rows written, where, as what, how long."""

    rows: int
    path: str
    format: str
    seconds: float

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "SaveResult":
        return cls(int(d.get("rows") or 0), d.get("path", ""), d.get("format", ""), float(d.get("seconds") or 0.0))


@dataclass
class CheckpointResult:
    """A checkpoint written and recorded in Raft at ``index``."""

    index: int
    path: str
    rows: int
    seconds: float

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "CheckpointResult":
        return cls(int(d.get("index") or 0), d.get("path", ""), int(d.get("rows") or 0), float(d.get("seconds") or 0.0))


# --------------------------------------------------------------- decoding


def encode_value(value: Any) -> bytes:
    """A value as the JSON document srdd stores; ValueError for NaN or
    infinity (JSON has neither) and TypeError for what JSON cannot hold."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except ValueError as e:  # NaN or infinity: the server refuses them too
        raise ValueError(f"value cannot be stored in srdd: {e}") from None


def retry_after(headers: Mapping[str, str]) -> Optional[float]:
    """Seconds from a Retry-After header (the delay form srdd sends)."""
    v = headers.get("retry-after") or headers.get("Retry-After")
    if not v:
        return None
    try:
        return max(0.0, float(v))
    except ValueError:
        return None


def make_error(resp: Response, req: Request) -> SrddError:
    """The typed exception for an error answer."""
    code, message = "", ""
    try:
        e = json.loads(resp.body)["error"]
        code, message = str(e.get("code", "")), str(e.get("message", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        message = resp.body[:200].decode("utf-8", "replace") or f"HTTP {resp.status}"
    cls = error_class(resp.status, code)
    return cls(
        message,
        status=resp.status,
        code=code,
        retry_after=retry_after(resp.headers),
        idempotency_key=req.retry_key,
    )


def decode(resp: Response) -> Any:
    if not resp.body:
        return None
    return json.loads(resp.body)


def call(req: Request, retry_timeout: float) -> Op:
    """Sends req and returns its decoded JSON body (None when empty).

    A 503 with Retry-After (``recovering``, ``starting``, ``no_leader``,
    ``moved``) means the node refused the request without acting on it; it
    is sent again after the delay the server asked for, for up to
    retry_timeout seconds in all, then raised. A write is re-sent with the
    same Idempotency-Key, so it cannot apply twice."""
    deadline: Optional[float] = None
    while True:
        resp = yield req
        if resp.status < 300:
            return decode(resp)
        err = make_error(resp, req)
        if resp.status == 503 and err.retry_after is not None and not isinstance(err, OutcomeUnknown):
            now = time.monotonic()
            if deadline is None:
                deadline = now + retry_timeout
            if now + err.retry_after <= deadline:
                yield Sleep(max(err.retry_after, 0.05))
                continue
        raise err


# ------------------------------------------------------------- operations


def rdd_path(name: str) -> str:
    return "/v1/rdds/" + quote(name, safe="")


def key_path(name: str, key: str) -> str:
    return rdd_path(name) + "/keys/" + quote(key, safe="")


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def new_key() -> str:
    """A fresh Idempotency-Key."""
    return uuid.uuid4().hex


def _chunks(parts: list[tuple[str, bytes]], max_keys: int, max_bytes: int) -> list[list[tuple[str, bytes]]]:
    """Splits (key, encoded part) pairs into batches under both limits."""
    out: list[list[tuple[str, bytes]]] = []
    cur: list[tuple[str, bytes]] = []
    size = 0
    for k, p in parts:
        if cur and (len(cur) >= max_keys or size + len(p) + 1 > max_bytes):
            out.append(cur)
            cur, size = [], 0
        cur.append((k, p))
        size += len(p) + 1
    if cur:
        out.append(cur)
    return out


def _chunk_key(base: str, i: int, n: int) -> str:
    return base if n == 1 else f"{base}.{i}"


class Ops:
    """The operations, as generators (see the module docstring)."""

    def __init__(
        self,
        *,
        retry_timeout: float = 30.0,
        consistency: Optional[str] = None,
        max_batch_keys: int = MAX_BATCH_KEYS,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        if consistency is not None and consistency not in CONSISTENCIES:
            raise ValueError(f"consistency must be one of {CONSISTENCIES}, not {consistency!r}")
        if not 1 <= max_batch_keys <= MAX_BATCH_KEYS:
            raise ValueError(f"max_batch_keys must be 1-{MAX_BATCH_KEYS}")
        self.retry_timeout = retry_timeout
        self.consistency = consistency
        self.max_batch_keys = max_batch_keys
        self.max_batch_bytes = max_batch_bytes

    def _call(self, req: Request) -> Op:
        return call(req, self.retry_timeout)

    def _read_params(self, consistency: Optional[str]) -> Optional[dict[str, str]]:
        c = consistency or self.consistency
        if c is None:
            return None
        if c not in CONSISTENCIES:
            raise ValueError(f"consistency must be one of {CONSISTENCIES}, not {c!r}")
        return {"consistency": c}

    # Listing and lifecycle.

    def list_rdds(self) -> Op:
        d = yield from self._call(Request("GET", "/v1/rdds", idempotent=True))
        return [RDDInfo.from_json(r) for r in (d or {}).get("rdds") or []]

    def create_rdd(
        self, name: str, mode: Optional[str], session: Union[int, str, None], replicas: Optional[int] = None
    ) -> Op:
        body: dict[str, Any] = {"name": name}
        if mode is not None:
            body["mode"] = mode
        if session is not None:
            body["session"] = session
        if replicas is not None:
            body["replicas"] = replicas
        d = yield from self._call(Request("POST", "/v1/rdds", body=_json(body)))
        return RDDInfo.from_json(d)

    def describe(self, name: str) -> Op:
        d = yield from self._call(Request("GET", rdd_path(name), idempotent=True))
        return RDDInfo.from_json(d)

    def drop(self, name: str) -> Op:
        yield from self._call(Request("DELETE", rdd_path(name)))

    # Keys.

    def get(self, name: str, key: str, consistency: Optional[str] = None) -> Op:
        d = yield from self._call(
            Request("GET", key_path(name, key), params=self._read_params(consistency), idempotent=True)
        )
        return d["value"]

    def set(self, name: str, key: str, value: Any, idempotency_key: Optional[str] = None) -> Op:
        ik = idempotency_key or new_key()
        yield from self._call(
            Request("PUT", key_path(name, key), body=encode_value(value), idempotency_key=ik, retry_key=ik)
        )

    def delete(self, name: str, key: str, idempotency_key: Optional[str] = None) -> Op:
        ik = idempotency_key or new_key()
        yield from self._call(Request("DELETE", key_path(name, key), idempotency_key=ik, retry_key=ik))

    def contains(self, name: str, key: str, consistency: Optional[str] = None) -> Op:
        from ._errors import KeyNotFound

        try:
            yield from self.get(name, key, consistency)
        except KeyNotFound:
            return False
        return True

    def count(self, name: str) -> Op:
        d = yield from self._call(Request("GET", rdd_path(name) + "/count", idempotent=True))
        return int(d["count"])

    # Batches, chunked under the server's limits.

    def _key_chunks(self, keys: Iterable[str]) -> list[list[str]]:
        uniq = list(dict.fromkeys(keys))
        parts = [(k, _json(k)) for k in uniq]
        return [[k for k, _ in c] for c in _chunks(parts, self.max_batch_keys, self.max_batch_bytes)]

    def get_many(self, name: str, keys: Iterable[str], consistency: Optional[str] = None) -> Op:
        """-> {key: value} for the keys that exist (absent keys are left out)."""
        params = self._read_params(consistency)
        found: dict[str, Any] = {}
        for chunk in self._key_chunks(keys):
            d = yield from self._call(
                Request("POST", rdd_path(name) + "/get", params=params, body=_json({"keys": chunk}), idempotent=True)
            )
            found.update(d.get("values") or {})
        return found

    def set_many(self, name: str, items: Union[Mapping[str, Any], Iterable[tuple[str, Any]]], idempotency_key: Optional[str] = None) -> Op:
        """Writes items in batches; each batch is all-or-nothing and has its
        own Idempotency-Key derived from one base key, so retrying the call
        with idempotency_key=base re-applies none of the batches that made
        it. -> how many items were written."""
        pairs = items.items() if isinstance(items, Mapping) else items
        merged: dict[str, bytes] = {}
        for k, v in pairs:
            merged[k] = encode_value(v)
        parts = [(k, _json(k) + b":" + v) for k, v in merged.items()]
        chunks = _chunks(parts, self.max_batch_keys, self.max_batch_bytes)
        base = idempotency_key or new_key()
        written = 0
        for i, chunk in enumerate(chunks):
            body = b'{"items":{' + b",".join(p for _, p in chunk) + b"}}"
            d = yield from self._call(
                Request(
                    "POST",
                    rdd_path(name) + "/set",
                    body=body,
                    idempotency_key=_chunk_key(base, i, len(chunks)),
                    retry_key=base,
                )
            )
            written += int(d.get("written") or 0)
        return written

    def delete_many(self, name: str, keys: Iterable[str], idempotency_key: Optional[str] = None) -> Op:
        """Deletes keys in batches (keys as in set_many). -> how many existed."""
        chunks = self._key_chunks(keys)
        base = idempotency_key or new_key()
        deleted = 0
        for i, chunk in enumerate(chunks):
            d = yield from self._call(
                Request(
                    "POST",
                    rdd_path(name) + "/delete",
                    body=_json({"keys": chunk}),
                    idempotency_key=_chunk_key(base, i, len(chunks)),
                    retry_key=base,
                )
            )
            deleted += int(d.get("deleted") or 0)
        return deleted

    def scan(self, name: str, prefix: str = "", page_size: int = SCAN_PAGE) -> Op:
        """Yields Out((key, value)) in key order, following cursors."""
        if not 1 <= page_size <= 10_000:
            raise ValueError("page_size must be 1-10000")
        cursor = ""
        while True:
            params = {"limit": str(page_size)}
            if prefix:
                params["prefix"] = prefix
            if cursor:
                params["cursor"] = cursor
            d = yield from self._call(Request("GET", rdd_path(name) + "/scan", params=params, idempotent=True))
            for it in d.get("items") or []:
                yield Out((it["key"], it["value"]))
            cursor = d.get("cursor") or ""
            if not cursor:
                return None

    # Bulk data and checkpoints.

    def load(
        self,
        name: str,
        path: str,
        fmt: Optional[str],
        *,
        mode: Optional[str] = None,
        key_column: Optional[str] = None,
        value_column: Optional[str] = None,
        progress: Union[bool, Callable[[LoadStatus], None]] = True,
        wait: bool = True,
        poll: float = 0.5,
        timeout: Optional[float] = None,
    ) -> Op:
        """Starts a load; with wait, polls the RDD until the load is over and
        (durable RDDs) its checkpoint is recorded, or raises TimeoutError
        after timeout seconds (the load goes on). -> the last LoadStatus.
        progress is the clients' (see :func:`progress_callback`); a bar is
        closed when the operation ends (a driver closes an operation it
        leaves on an error of its own)."""
        bar, on_status = progress_callback(name, progress, wait)
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            body: dict[str, Any] = {"path": path}
            for k, v in (("format", fmt), ("mode", mode), ("key_column", key_column), ("value_column", value_column)):
                if v is not None:
                    body[k] = v
            d = yield from self._call(Request("POST", rdd_path(name) + "/load", body=_json(body)))
            st = LoadStatus.from_json(d or {})
            if on_status is not None:
                on_status(st)
            if not wait:
                return st
            while True:
                info = yield from self.describe(name)
                if info.load is not None:
                    st = info.load
                    if on_status is not None:
                        on_status(st)
                if st.state == "failed":
                    raise LoadFailed(f"load of {st.path} failed: {st.error}", code="load_failed")
                if st.state != "running" and info.state != "loading":
                    return st
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"load of {st.path} into {name!r} still {st.state} ({info.state}) after {timeout} s: {info.message}"
                    )
                yield Sleep(poll)
        finally:
            if bar is not None:
                bar.close()

    def save(self, name: str, path: str, fmt: Optional[str], overwrite: bool) -> Op:
        body: dict[str, Any] = {"path": path, "overwrite": overwrite}
        if fmt is not None:
            body["format"] = fmt
        d = yield from self._call(Request("POST", rdd_path(name) + "/save", body=_json(body)))
        return SaveResult.from_json(d)

    def checkpoint(self, name: str) -> Op:
        d = yield from self._call(Request("POST", rdd_path(name) + "/checkpoint"))
        return CheckpointResult.from_json(d)


class ProgressBar:
    """A tqdm bar (0-100 %) fed with LoadStatus updates."""

    def __init__(self, name: str, **tqdm_kwargs: Any) -> None:
        from tqdm.auto import tqdm

        kw: dict[str, Any] = {"total": 100.0, "desc": f"load {name}", "unit": "%"}
        kw["bar_format"] = "{desc}: {percentage:3.0f}%|{bar}| {postfix}"
        kw.update(tqdm_kwargs)
        self._bar = tqdm(**kw)

    def __call__(self, st: LoadStatus) -> None:
        pct = 100.0 if st.state == "done" else min(max(st.percent, 0.0), 100.0)
        self._bar.n = pct
        self._bar.set_postfix_str(f"{st.rows:,} rows, {st.rows_per_sec:,.0f} rows/s, {st.state}", refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def progress_callback(
    name: str, progress: Union[bool, Callable[[LoadStatus], None]], wait: bool
) -> tuple[Optional[ProgressBar], Optional[Callable[[LoadStatus], None]]]:
    """A load's ``on_status``: a :class:`ProgressBar` for ``progress=True``
    when the call waits, the callable given, or None; with the bar to close
    once the load returns (None if there is none)."""
    if progress is True and wait:
        bar = ProgressBar(name)
        return bar, bar
    if callable(progress):
        return None, progress
    return None, None
