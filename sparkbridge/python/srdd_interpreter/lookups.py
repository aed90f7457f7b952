"""The lookup batcher: cold reads of one shared RDD become few Spark jobs.

A read that misses the delta and the cache, for a key the base's
directory holds, waits here. At most ``lookupJobs`` jobs run per RDD at
once; each takes every key waiting when it starts (up to
``partitionsPerLookup`` partitions, oldest key first), and a key already
being fetched from the same base joins that job instead of queueing
again. The store (store.py) owns the lock, the base and the cache; the
batcher owns who waits for what.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Optional, Protocol

from .engine import Base, Engine

log = logging.getLogger("srdd_interpreter.store")

MAX_LOOKUP_BATCH = 10_000


class LookupHost(Protocol):
    """What the batcher needs from its store; both run under the store's lock."""

    def lookup_base_locked(self) -> Optional[Base]:
        """The current base, or None if the RDD was dropped."""

    def lookup_done_locked(self, base: Base, keys: int, found: dict, error: Optional[BaseException],
                           seconds: float) -> None:
        """A job for ``keys`` keys ended: count it, and cache what is still current."""


class _Waiter:
    """One reader waiting for keys that need a Spark lookup."""

    __slots__ = ("n", "values", "error", "event")

    def __init__(self, n: int) -> None:
        self.n = n
        self.values: dict[str, Optional[bytes]] = {}
        self.error: Optional[BaseException] = None
        self.event = threading.Event()

    def deliver(self, key: str, value: Optional[bytes], error: Optional[BaseException]) -> None:
        # Lookup threads may deliver at once: a dict store is atomic, a
        # shared counter would not be.
        if error is not None and self.error is None:
            self.error = error
        self.values[key] = value
        if len(self.values) >= self.n:
            self.event.set()


class LookupBatcher:
    """Coalesces the base lookups of one shared RDD (thread-safe)."""

    def __init__(self, name: str, engine: Engine, lock: threading.Lock, host: LookupHost,
                 submit: Callable[[Callable[[], None]], Any]) -> None:
        self.name = name
        self._engine = engine
        self._lock = lock  # the store's
        self._host = host
        self._submit = submit  # runs a job loop on one of the RDD's query threads
        self._pending: dict[str, list[_Waiter]] = {}
        self._inflight: dict[str, list[_Waiter]] = {}  # key -> waiters of the job fetching it
        self._inflight_base: dict[int, Base] = {}
        self._running = 0

    def fetch(self, keys: list[str], cold: list[int], out: list[Optional[bytes]]) -> None:
        """Fill ``out[i]`` for every position in ``cold`` from the base."""
        wanted = list(dict.fromkeys(keys[i] for i in cold))
        waiter = _Waiter(len(wanted))
        start = False
        with self._lock:
            base = self._host.lookup_base_locked()
            if base is None:
                raise RuntimeError("shared RDD %r was dropped" % self.name)
            for k in wanted:
                ws = self._inflight.get(k)
                if ws is not None and self._inflight_base.get(id(ws)) is base:
                    ws.append(waiter)
                else:
                    self._pending.setdefault(k, []).append(waiter)
            if self._pending and self._running < self._engine.lookup_jobs:
                self._running += 1
                start = True
        if start:
            try:
                self._submit(self._loop)
            except RuntimeError:  # the pool shut down: the RDD was dropped
                with self._lock:
                    self._running -= 1
                    doomed, self._pending = self._pending, {}
                err = RuntimeError("shared RDD %r was dropped" % self.name)
                for k, ws in doomed.items():
                    for w in ws:
                        w.deliver(k, None, err)
        waiter.event.wait()
        if waiter.error is not None:
            raise RuntimeError("lookup in shared RDD %r failed: %s" % (self.name, waiter.error)) from waiter.error
        for i in cold:
            out[i] = waiter.values.get(keys[i])

    def _loop(self) -> None:
        """Run lookup jobs while keys are waiting (on a query thread)."""
        doomed: dict[str, list[_Waiter]] = {}
        while True:
            with self._lock:
                current = self._host.lookup_base_locked()
                if current is None or not self._pending:
                    if current is None:
                        doomed, self._pending = self._pending, {}
                    self._running -= 1
                    break
                base = current.acquire()
                batch: dict[str, list[_Waiter]] = {}
                for k in self._pick_locked(base):
                    ws = self._pending.pop(k)
                    batch[k] = ws
                    self._inflight[k] = ws
                    self._inflight_base[id(ws)] = base
            error: Optional[BaseException] = None
            found: dict = {}
            began = time.monotonic()
            try:
                found = self._engine.lookup(base, list(batch))
            except BaseException as exc:  # delivered to every waiter
                error = exc
                log.warning("lookup job for %r failed: %s", self.name, exc)
            finally:
                base.release()
            with self._lock:
                for k, ws in batch.items():
                    if self._inflight.get(k) is ws:
                        del self._inflight[k]
                    self._inflight_base.pop(id(ws), None)
                self._host.lookup_done_locked(base, len(batch), found, error, time.monotonic() - began)
            for k, ws in batch.items():
                v = found.get(k)
                for w in ws:
                    w.deliver(k, v, error)
        err = RuntimeError("shared RDD %r was dropped" % self.name)
        for k, ws in doomed.items():
            for w in ws:
                w.deliver(k, None, err)

    def _pick_locked(self, base: Base) -> list[str]:
        """The keys of the next lookup job: every waiting key of the
        partition of the oldest waiting key, then of the partitions with
        the most waiting keys, up to ``partitionsPerLookup`` partitions (by
        default all of them: one job per batch). A job or a task costs far
        more than a key, so each serves as many keys as it can, the oldest
        first."""
        limit = self._engine.parts_per_job
        if len(self._pending) == 1 or limit >= base.n:
            return list(itertools.islice(self._pending, MAX_LOOKUP_BATCH))
        by_part: dict[int, list[str]] = {}
        for k in self._pending:
            by_part.setdefault(base.partition(k), []).append(k)
        first = next(iter(by_part))
        chosen = [first] + sorted((p for p in by_part if p != first), key=lambda p: -len(by_part[p]))[:limit - 1]
        keys = [k for p in chosen for k in by_part[p]]
        return keys[:MAX_LOOKUP_BATCH]
