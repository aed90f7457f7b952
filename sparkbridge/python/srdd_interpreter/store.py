"""The key/value store behind one named shared RDD (the KV engine's driver side).

Reads look, in order, at:
1. the *write delta*: recent sets and deletes (tombstones), a dict in the
   driver; while a compaction or load runs, the delta it took is *frozen*
   and still read, below the new delta;
2. the session's bounded *hot-key cache* (cache.py);
3. the *base* (engine.py): data held by Spark, hash-partitioned by key,
   one index per partition. The driver's key directory answers "absent"
   without Spark; present keys are fetched by one Spark job over only
   their partitions. Concurrent misses of one RDD are coalesced: at most
   ``lookupJobs`` jobs run per RDD, each for every key waiting when it
   starts.

Writes go to the delta only, so they cost no Spark job. When the delta
outgrows a threshold (a quarter of the base, at least 100k entries), a
background compaction merges it into a new base and truncates lineage;
latency and memory stay flat however many writes came before. The key
count is kept exact on every write (the directory says whether a key was
in the base).

Every stored value is its canonical JSON encoding (rules.py), so ``get``
returns a fresh copy and REST readers get what code writers stored.

Keys and values follow the node's data rules (rules.py): what session
code writes is checked like a REST write. Cold reads wait in the lookup
batcher (lookups.py); bulk load and save are in bulk.py; a session's
name -> SharedRDD table is tables.py.

User data is data (docs/ARCHITECTURE.md invariant 1): keys and values are
only ever dict keys, JSON text and Spark task data here, never source code.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Union

from pyspark import RDD, SparkContext
from pyspark.sql import DataFrame, SparkSession

from . import bulk
from .engine import Base, Engine, finalize_with, find_in
from .lookups import LookupBatcher
from .rules import InvalidInput, InvalidType, JsonBytes, TooLarge, check_lookup_key
from .stats import JobHistogram

__all__ = ["SharedRDD", "Busy", "WouldBlock", "InvalidInput", "InvalidType", "TooLarge"]

log = logging.getLogger("srdd_interpreter.store")

COMPACT_MIN_BYTES = 32 << 20
# Writers wait while a compaction or load runs if the delta grew past this
# many times its compaction threshold (bounds the driver's memory).
BACKPRESSURE_FACTOR = 8
SCAN_MAX = 10_000
# A hot (reader-thread) get searches at most this many keys in the resident
# indexes (a few us each); a larger batch goes to a worker thread.
LOCAL_RESIDENT_MAX = 256


class Busy(RuntimeError):
    """The RDD is busy with an operation that excludes this one (a load)."""


class WouldBlock(Exception):
    """A write asked not to wait found backpressure in force (nothing changed)."""


def _loads(data: JsonBytes) -> Any:
    return json.loads(data)


_MISSING = object()
_ids = itertools.count(1)


# ---------------------------------------------------------------- the store

# Wire writes into a durable RDD's memory (set_json, set_json_groups,
# delete_groups, apply_logged, load(logged=True)) are the node's: they run
# only inside wire_writes(), which the server's ops enter. Session code
# gets a handle (handle.py) without these methods; this refuses them
# should it reach the store anyway (docs/ARCHITECTURE.md invariant 5).
_wire = threading.local()


@contextlib.contextmanager
def wire_writes() -> Iterator[None]:
    """Marks this thread as applying what the node sent (its log, its
    checkpoints, its loads)."""
    depth = getattr(_wire, "depth", 0)
    _wire.depth = depth + 1
    try:
        yield
    finally:
        _wire.depth = depth


def _check_wire(store: "SharedRDD", what: str) -> None:
    if store._log is not None and not getattr(_wire, "depth", 0):
        raise InvalidInput("%s writes into durable shared RDD %r outside its log; session code writes with "
                           "set, set_many, delete and delete_many, which go through the log" % (what, store.name))


class SharedRDD:
    """The KV store for one named shared RDD (thread-safe). Session code
    never holds one: it gets a handle (handle.py)."""

    def __init__(self, name: str, sc: SparkContext, spark: Optional[SparkSession] = None,
                 num_partitions: Optional[int] = None, engine: Optional[Engine] = None, log: Any = None) -> None:
        self.name = name
        self._sc = sc
        self._engine = engine or Engine(sc, spark)
        self._rules = self._engine.rules
        self._cache = self._engine.cache
        self._rid = next(_ids)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._delta: dict[str, Optional[bytes]] = {}
        self._delta_bytes = 0
        self._frozen: Optional[dict[str, Optional[bytes]]] = None
        self._base: Base = self._engine.empty_base(num_partitions)
        self._count = 0
        self._version = 0  # bumped by every change of the data
        self._generation = 0  # bumped by clear(): a rebuild started before is void
        self._bg_busy = False
        self._bg_failures = 0
        self._closed = False
        self._rdd: Optional[RDD] = None
        self._rdd_version = -1
        self._df: Optional[DataFrame] = None
        self._df_version = -1
        self._load: Optional[bulk.Load] = None
        self._load_seq = 0
        # Durable RDDs: user code's writes go to the node's log through this
        # (durable.NodeLog); the node applies logged writes with apply_logged.
        self._log: Any = log
        # Durable RDDs: the last log index applied (durable.apply_entries).
        self.apply_lock = threading.Lock()
        self.applied_index = 0
        self.stats_counters = {"compactions": 0, "compaction_seconds": 0.0, "lookup_jobs": 0,
                               "lookup_keys": 0, "lookup_seconds": 0.0,
                               "rebuild_failures": 0}
        self._job_hist = {"lookup": JobHistogram(), "compaction": JobHistogram()}
        pool = "srdd-" + name
        self._query = ThreadPoolExecutor(self._engine.lookup_jobs + 2, thread_name_prefix="srdd-kv-" + name,
                                         initializer=self._thread_setup, initargs=(pool + "-kv", "srdd kv " + name))
        self._bg = ThreadPoolExecutor(1, thread_name_prefix="srdd-bg-" + name,
                                      initializer=self._thread_setup, initargs=(pool + "-bg", "srdd compaction " + name))
        self._lookups = LookupBatcher(name, self._engine, self._lock, self, self._query.submit)

    @property
    def engine(self) -> Engine:
        """The session's KV engine (Spark handles, settings, the cache)."""
        return self._engine

    def _thread_setup(self, pool: str, description: str) -> None:
        # Each RDD's jobs go to their own FAIR pools (spark.scheduler.mode=FAIR),
        # so they never queue behind a statement's or another RDD's tasks.
        try:
            self._sc.setLocalProperty("spark.scheduler.pool", pool)
            self._sc.setJobDescription(description)
        except Exception:  # pragma: no cover - context stopping
            pass

    def __repr__(self) -> str:
        return "SharedRDD(name=%r, count=%d)" % (self.name, self.count())

    # -- reads

    def get(self, key: str) -> Any:
        """The value stored under ``key`` (a fresh copy), or None."""
        data = self.get_json([key])[0]
        return None if data is None else _loads(data)

    def get_many(self, keys: Iterable[str]) -> list[Any]:
        """Values for ``keys`` in the same order; None where absent."""
        return [None if d is None else _loads(d) for d in self.get_json(keys)]

    def get_json(self, keys: Iterable[str]) -> list[Optional[JsonBytes]]:
        """Canonical JSON bytes for ``keys`` in the same order; None where absent."""
        keys = [check_lookup_key(k) for k in keys]
        out, cold = self._read_local(keys, None)
        if cold:
            self._lookups.fetch(keys, cold, out)
        return out

    def get_json_local(self, keys: Iterable[str]) -> tuple[list[Optional[JsonBytes]], list[int]]:
        """Values found without Spark, and the positions of keys that need a
        Spark lookup (their value is None in the first list). With resident
        indexes nothing needs Spark, but a batch with more than
        LOCAL_RESIDENT_MAX keys to search is left to a worker (reported as
        cold), so the reader thread never spends long on one call."""
        keys = [check_lookup_key(k) for k in keys]
        return self._read_local(keys, LOCAL_RESIDENT_MAX)

    def _read_local(self, keys: list[str], resident_max: Optional[int]) -> tuple[list[Optional[JsonBytes]], list[int]]:
        out: list[Optional[JsonBytes]] = [None] * len(keys)
        below: list[int] = []
        cache_get, rid = self._cache.get, self._rid
        with self._lock:
            delta, frozen, base = self._delta, self._frozen, self._base
            for i, k in enumerate(keys):
                v = delta.get(k, _MISSING)
                if v is _MISSING and frozen is not None:
                    v = frozen.get(k, _MISSING)
                if v is not _MISSING:
                    out[i] = v
                    continue
                c = cache_get(rid, k)
                if c is not None:
                    out[i] = c
                else:
                    below.append(i)
            views = base.views
        if not below or base.count == 0:
            return out, []
        if base.resident:
            # Outside the lock: the indexes are immutable and ``views`` keeps
            # them alive. A write that lands meanwhile is concurrent with this
            # read, which may return either value (docs/ARCHITECTURE.md,
            # "Resident partition indexes").
            if resident_max is not None and len(below) > resident_max:
                return out, below
            if views is None:  # replaced and freed since: read again
                return self._read_local(keys, resident_max)
            n, crc = base.n, zlib.crc32
            for i in below:
                kb = keys[i].encode("utf-8")
                h = crc(kb)
                out[i] = find_in(views[h % n], kb, h)
            return out, []
        return out, [i for i in below if base.contains(keys[i])]

    # -- the lookup batcher's hooks (lookups.LookupHost; under the lock)

    def lookup_base_locked(self) -> Optional[Base]:
        return None if self._closed else self._base

    def lookup_done_locked(self, base: Base, keys: int, found: dict, error: Optional[BaseException],
                           seconds: float) -> None:
        self.stats_counters["lookup_jobs"] += 1
        self.stats_counters["lookup_keys"] += keys
        self.stats_counters["lookup_seconds"] += seconds
        self._job_hist["lookup"].observe(seconds)
        if self._base is not base or error is not None:
            return
        delta, frozen = self._delta, self._frozen
        for k, v in found.items():
            if v is not None and k not in delta and (frozen is None or k not in frozen):
                self._cache.put(self._rid, k, v)

    def count(self) -> int:
        with self._lock:
            return self._count

    def __len__(self) -> int:
        return self.count()

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or not key:
            return False
        with self._lock:
            return self._live_locked(key)

    def keys(self) -> list[str]:
        """A snapshot of the keys."""
        return self._view(decode=False).keys().collect()

    def items(self) -> list[tuple[str, Any]]:
        """A snapshot of (key, value) pairs (values are fresh copies)."""
        return self._view(decode=True).collect()

    def scan_json(self, prefix: str = "", after: Optional[str] = None,
                  limit: int = 100) -> tuple[list[tuple[str, JsonBytes]], bool]:
        """Up to ``limit`` (key, JSON) pairs in key order whose key starts with
        ``prefix`` and comes after ``after``; and whether more follow."""
        if not isinstance(prefix, str):
            raise InvalidType("prefix must be a str")
        if after is not None:
            check_lookup_key(after)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= SCAN_MAX:
            raise InvalidInput("limit must be an integer from 1 to %d" % SCAN_MAX)
        pb = prefix.encode("utf-8")
        start = pb
        if after is not None:
            start = max(start, after.encode("utf-8") + b"\x00")
        with self._lock:
            overlay = {}
            for layer in (self._frozen or {}), self._delta:
                for k, v in layer.items():
                    kb = k.encode("utf-8")
                    if kb >= start and kb.startswith(pb):
                        overlay[kb] = v
            base = self._base.acquire()
        tombs = sum(1 for v in overlay.values() if v is None)
        try:
            rows = self._query.submit(self._engine.scan, base, start, pb, limit + tombs + 1).result()
        finally:
            base.release()
        table = dict(rows)
        for kb, v in overlay.items():
            if v is None:
                table.pop(kb, None)
            else:
                table[kb] = v
        ordered = sorted(table)
        return [(kb.decode("utf-8"), table[kb]) for kb in ordered[:limit]], len(ordered) > limit

    def scan(self, prefix: str = "", after: Optional[str] = None, limit: int = 100) -> tuple[list[tuple[str, Any]], bool]:
        """Like scan_json, with decoded values."""
        rows, more = self.scan_json(prefix, after, limit)
        return [(k, _loads(v)) for k, v in rows], more

    # -- writes

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` (must be JSON-serializable, finite numbers only;
        key and value within the node's limits, as for REST writers)."""
        self._rules.check_key(key)
        data = self._rules.encode_value(value)
        if self._log is not None:
            self._log("set", [(key, data)])
            return
        self._write({key: data}, ())

    def set_many(self, items: Union[Mapping[str, Any], Iterable[tuple[str, Any]]]) -> int:
        """Store many pairs; all are validated first, then all or none applied."""
        pairs = items.items() if isinstance(items, Mapping) else items
        staged: dict[str, JsonBytes] = {}
        for pair in pairs:
            key, value = pair
            staged[self._rules.check_key(key)] = self._rules.encode_value(value)
        if self._log is not None:
            return self._log("set", list(staged.items())) if staged else 0
        self._write(staged, ())
        return len(staged)

    def set_json(self, items: Iterable[tuple[str, Union[bytes, bytearray, str]]]) -> int:
        """Wire helper: store (key, JSON text) pairs.

        Every key and value is validated (and re-encoded canonically) before
        anything is applied, so a bad batch changes nothing. Raises
        InvalidInput on the first bad item. Returns the number of items.
        """
        _check_wire(self, "set_json")
        staged = self.stage_json(list(items))
        self._write(dict(staged), ())
        return len(staged)

    def set_json_groups(self, items: list, groups: list[int], wait: bool = True) -> tuple[int, list[Optional[str]]]:
        """Wire helper for coalesced writes: ``items`` is several clients'
        batches back to back, ``groups`` their sizes. Each batch is validated
        on its own and applied whole or not at all; all valid batches are
        applied at once, in order. Returns (items written, per-batch error)."""
        _check_wire(self, "set_json_groups")
        self._rules.check_groups(groups, len(items))
        staged: dict[str, JsonBytes] = {}
        errors: list[Optional[str]] = []
        written = 0
        pos = 0
        for g in groups:
            try:
                part = self.stage_json(items[pos:pos + g], pos)
            except InvalidInput as exc:
                errors.append(str(exc))
            else:
                errors.append(None)
                staged.update(part)
                written += g
            pos += g
        if staged:
            self._write(staged, (), wait)
        return written, errors

    def stage_json(self, items: list, offset: int = 0) -> list[tuple[str, JsonBytes]]:
        """Validate wire items ([key, JSON text] pairs; ``offset`` numbers
        them in messages) and return (key, canonical JSON) pairs; nothing is
        written. Raises InvalidInput on the first bad item."""
        staged: list[tuple[str, JsonBytes]] = []
        check_key, canonical = self._rules.check_key, self._rules.canonical
        for index, pair in enumerate(items, offset):
            try:
                key, raw = pair
            except (TypeError, ValueError):
                raise InvalidInput("item %d is not a [key, value] pair" % index) from None
            check_key(key)
            try:
                staged.append((key, canonical(raw)))
            except InvalidInput as exc:
                raise type(exc)("item %d (key %r): %s" % (index, key, exc)) from None
        return staged

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it was present."""
        return self.delete_many([key]) == 1

    def delete_many(self, keys: Iterable[str]) -> int:
        """Remove ``keys``; returns how many were present."""
        keys = [check_lookup_key(k) for k in keys]
        if self._log is not None:
            return self._log("delete", keys) if keys else 0
        return self._write({}, keys)

    def apply_logged(self, sets: dict[str, JsonBytes], deletes: Iterable[str]) -> int:
        """Apply writes the node has logged (durable RDDs); returns how many
        of ``deletes`` existed."""
        _check_wire(self, "apply_logged")
        return self._write(sets, deletes)

    def checkpoint_to(self, path: str, index: int) -> int:
        """Write the current data as a checkpoint (Parquet: key, value as
        JSON text, log_index) to ``path``, replacing it; returns the rows."""
        with self._lock:
            overlay = self._overlay_locked()
            base = self._base.acquire()
            rows = self._count
        try:
            self._bg.submit(self._engine.save, base, overlay, "parquet", path, True, index).result()
        finally:
            base.release()
        return rows

    def delete_groups(self, keys: list[str], groups: list[int], wait: bool = True) -> list[int]:
        """Wire helper for coalesced deletes: how many keys of each batch existed."""
        _check_wire(self, "delete_groups")
        self._rules.check_groups(groups, len(keys), "keys")
        keys = [check_lookup_key(k) for k in keys]
        # One locked section with one capacity check: the reader thread
        # (wait=False) never blocks half way through the groups.
        return self._write({}, keys, wait, groups=groups)

    def clear(self) -> None:
        """Remove every key."""
        if self._log is not None:
            raise InvalidInput("clear() is not available on a durable shared RDD: delete its keys, "
                               "or drop and recreate it")
        with self._lock:
            self._generation += 1
            old = self._base
            self._base = self._engine.empty_base(old.n)
            self._delta, self._delta_bytes, self._count = {}, 0, 0
            if self._frozen is not None:
                self._frozen = {}
            self._touch_locked()
        self._cache.clear_rdd(self._rid)
        old.retire()

    def _live_locked(self, key: str) -> bool:
        v = self._delta.get(key, _MISSING)
        if v is _MISSING and self._frozen is not None:
            v = self._frozen.get(key, _MISSING)
        if v is not _MISSING:
            return v is not None
        return self._base.contains(key)

    def _write(self, sets: dict[str, JsonBytes], deletes: Iterable[str], wait: bool = True,
               groups: Optional[list[int]] = None) -> Any:
        """Apply sets and deletes; returns how many deletes hit a key (per
        group of ``deletes`` when ``groups`` is given)."""
        discard, rid = self._cache.discard, self._rid
        counts: list[int] = []
        with self._lock:
            if not wait and self._must_wait_locked():
                raise WouldBlock()
            self._backpressure_locked()
            deleted = 0
            delta = self._delta
            # While a load runs, a key may be in the file being loaded:
            # a delete always leaves a tombstone, so the row cannot come
            # back when the load swaps in (its count is redone then).
            loading = self._load is not None and self._load.running
            bounds = itertools.accumulate(groups) if groups is not None else iter(())
            end = next(bounds, None)
            start_count = 0
            for i, k in enumerate(deletes):
                while end is not None and i >= end:
                    counts.append(deleted - start_count)
                    start_count = deleted
                    end = next(bounds, None)
                if not self._live_locked(k):
                    if loading and delta.get(k, _MISSING) is not None:
                        delta[k] = None
                        discard(rid, k)
                    continue
                deleted += 1
                self._count -= 1
                old = delta.get(k)
                if old is not None:
                    self._delta_bytes -= len(k) + len(old)
                if loading or self._base.contains(k) or (self._frozen is not None and k in self._frozen):
                    delta[k] = None  # tombstone over the data below
                else:
                    delta.pop(k, None)
                discard(rid, k)
            if groups is not None:
                while end is not None:
                    counts.append(deleted - start_count)
                    start_count = deleted
                    end = next(bounds, None)
            for k, v in sets.items():
                if not self._live_locked(k):
                    self._count += 1
                old = delta.get(k)
                self._delta_bytes += len(v) - (len(old) if old is not None else -len(k))
                delta[k] = v
                discard(rid, k)
            if sets or deleted:
                self._touch_locked()
            start = self._should_compact_locked()
        if start:
            self._bg.submit(self._compact)
        return counts if groups is not None else deleted

    def _touch_locked(self) -> None:
        self._version += 1
        self._rdd, self._df = None, None

    def _thresholds_locked(self) -> tuple[int, int]:
        b = self._base
        return max(self._engine.compact_min_entries, b.count // 4), max(COMPACT_MIN_BYTES, b.nbytes // 4)

    def _should_compact_locked(self) -> bool:
        if self._bg_busy or self._closed:
            return False
        entries, nbytes = self._thresholds_locked()
        if len(self._delta) < entries and self._delta_bytes < nbytes:
            return False
        # after failures, wait for a larger delta before trying again
        if self._bg_failures and len(self._delta) < entries * (1 + self._bg_failures):
            return False
        self._bg_busy = True
        return True

    def _must_wait_locked(self) -> bool:
        entries, nbytes = self._thresholds_locked()
        return (self._bg_busy and not self._closed
                and (len(self._delta) > BACKPRESSURE_FACTOR * entries
                     or self._delta_bytes > BACKPRESSURE_FACTOR * nbytes))

    def _backpressure_locked(self) -> None:
        while self._must_wait_locked():
            self._changed.wait(1.0)

    # -- compaction

    def compact(self) -> bool:
        """Merge pending writes into a new base now and wait for it (and for
        a compaction or load already running). Returns False if nothing was
        pending."""
        with self._lock:
            if not self._delta and self._frozen is None and not self._bg_busy:
                return False
        self._bg.submit(self._compact, True).result()
        self.wait_idle()
        return True

    def wait_idle(self, timeout: Optional[float] = None) -> bool:
        """Wait until no compaction or load runs or is queued; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._bg_busy and not self._closed:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._changed.wait(left if left is not None else 1.0)
        return True

    def _compact(self, forced: bool = False) -> bool:
        """Freeze the delta, merge it into a new base, swap (on the bg thread)."""
        with self._lock:
            if self._frozen is not None:
                return False  # a load froze the delta and merges it itself
            self._bg_busy = True
            if not self._delta or self._closed:
                self._bg_busy = False
                self._changed.notify_all()
                return False
            frozen, self._delta, self._delta_bytes = self._delta, {}, 0
            self._frozen = frozen
            base, gen = self._base.acquire(), self._generation
        began = time.monotonic()
        try:
            self._sc.setJobGroup("srdd-compact-%d" % self._rid, "srdd compaction of %s" % self.name)
            new = self._engine.rebuild(base, frozen, name="%s@%d" % (self.name, self._version))
        except BaseException as exc:
            log.warning("compaction of %r failed (writes are kept in the delta): %s", self.name, exc)
            with self._lock:
                self._unfreeze_locked(frozen, gen)
                self._bg_failures += 1
                self.stats_counters["rebuild_failures"] += 1
                self._bg_busy = False
                self._changed.notify_all()
            base.release()
            if forced:
                raise
            return False
        base.release()
        with self._lock:
            swapped = self._generation == gen and not self._closed
            if swapped:
                old, self._base = self._base, new
                self._touch_locked()
            self._frozen = None
            self._bg_failures = 0
            self._bg_busy = False
            self.stats_counters["compactions"] += 1
            took = time.monotonic() - began
            self.stats_counters["compaction_seconds"] += took
            self._job_hist["compaction"].observe(took)
            self._changed.notify_all()
            start = self._should_compact_locked()
        if swapped:
            old.retire()
            if not new.resident:  # resident bases serve every key from memory
                self._warm_cache(frozen, new)
        else:
            new.retire()
        if start:
            self._bg.submit(self._compact)
        return True

    def _unfreeze_locked(self, frozen: dict, gen: int) -> None:
        """Put a frozen delta back under the current one (a rebuild failed)."""
        if self._generation == gen:
            merged = dict(frozen)
            merged.update(self._delta)
            self._delta = merged
            self._delta_bytes = sum(len(k) + (len(v) if v else 0) for k, v in merged.items())
        self._frozen = None

    def _warm_cache(self, written: dict, base: Base) -> None:
        """Recently written keys stay hot after their compaction: move the
        newest of them into the cache, up to a quarter of it (so a burst of
        writes does not evict what readers made hot), in chunks so readers
        never wait long."""
        items = [(k, v) for k, v in written.items() if v is not None]
        budget = self._cache.max_bytes // 4
        if not items or not budget:
            return
        per = self._cache.cost(items[-1][0], items[-1][1])
        items = items[-max(1, budget // max(1, per)):]
        for i in range(0, len(items), 1000):
            with self._lock:
                # A load freezes the delta: stop (its writes may be newer).
                if self._base is not base or self._frozen is not None:
                    return
                delta = self._delta
                self._cache.put_many(self._rid, [(k, v) for k, v in items[i:i + 1000] if k not in delta])

    # -- Spark views

    def _overlay_locked(self) -> dict[str, Optional[bytes]]:
        if self._frozen:
            merged = dict(self._frozen)
            merged.update(self._delta)
            return merged
        return dict(self._delta)

    def _view(self, decode: bool) -> RDD:
        with self._lock:
            overlay = self._overlay_locked()
            base = self._base.acquire()
        try:
            rdd = self._engine.view(base, overlay, decode)
        except BaseException:
            base.release()
            raise
        finalize_with(rdd, base)
        return rdd

    @property
    def rdd(self) -> RDD:
        """A pair RDD (key, value) of the current data (pending writes
        included), hash-partitioned by key; the same RDD object is returned
        until the next write."""
        with self._lock:
            if self._rdd is not None and self._rdd_version == self._version:
                return self._rdd
            version = self._version
        rdd = self._view(decode=True)
        with self._lock:
            if self._version == version:
                self._rdd, self._rdd_version = rdd, version
        return rdd

    @property
    def df(self) -> DataFrame:
        """A DataFrame with columns key (string) and value (JSON text string)."""
        with self._lock:
            if self._df is not None and self._df_version == self._version:
                return self._df
            version = self._version
            overlay = self._overlay_locked()
            base = self._base.acquire()
        try:
            text = self._engine.view(base, overlay, decode=False)
            df = self._engine.spark.createDataFrame(text, schema="key string, value string")
        except BaseException:
            base.release()
            raise
        finalize_with(df, base)
        with self._lock:
            if self._version == version:
                self._df, self._df_version = df, version
        return df

    # -- bulk (bulk.py): the store orders a load against writes

    def load(self, path: str, fmt: str = "jsonl", mode: str = "merge",
             key_column: str = "key", value_column: str = "value", logged: bool = False) -> dict[str, Any]:
        """Start loading a file (JSON Lines, CSV or Parquet) in the
        background; ``load_status()`` reports progress. In mode "merge"
        loaded rows overwrite existing keys; "replace" drops the old data.
        Writes made while the load runs win over loaded rows."""
        if logged:
            _check_wire(self, "load(logged=True)")
        if self._log is not None and not logged:
            raise InvalidInput("load into a durable shared RDD through the node (POST /v1/rdds/%s/load), "
                               "which checkpoints it when the load ends" % self.name)
        bulk.check_load(path, fmt, mode, key_column, value_column)
        with self._lock:
            if self._load is not None and self._load.running:
                raise Busy("shared RDD %r is already loading %s" % (self.name, self._load.info["path"]))
            # The load is ordered here: writes acknowledged before this call
            # are below the loaded rows, later ones on top. A compaction in
            # progress owns the frozen layer: wait for it (seconds at most).
            while self._bg_busy and not self._closed:
                self._changed.wait(1.0)
            if self._closed:
                raise RuntimeError("shared RDD %r was dropped" % self.name)
            self._load_seq += 1
            state = bulk.Load(path, fmt, mode, "srdd-load-%d-%d" % (self._rid, self._load_seq))
            self._load = state
            self._bg_busy = True
            frozen, self._delta, self._delta_bytes = self._delta, {}, 0
            self._frozen = frozen
            base, gen = self._base.acquire(), self._generation
        self._bg.submit(self._run_load, state, key_column, value_column, frozen, base, gen)
        return self.load_status() or {}

    def load_status(self) -> Optional[dict[str, Any]]:
        """Progress of the running load, or the outcome of the last one."""
        with self._lock:
            state = self._load
        return None if state is None else state.status(self._engine)

    def _run_load(self, state: bulk.Load, key_col: str, value_col: str,
                  frozen: dict, base: Base, gen: int) -> None:
        try:
            new = state.read(self._engine, self.name, key_col, value_col, base, frozen,
                             "%s@load%d" % (self.name, self._load_seq))
        except BaseException as exc:
            base.release()
            with self._lock:
                message = state.failed(exc)
                self._unfreeze_locked(frozen, gen)
                self._bg_busy = False
                self._changed.notify_all()
            log.warning("load of %r from %s failed: %s", self.name, state.info["path"], message)
            return
        with self._lock:
            swapped = self._generation == gen and not self._closed
            if swapped:
                old, self._base = self._base, new
                # writes made during the load stay on top; recount them
                self._count = new.count + sum(
                    (v is not None) - new.contains(k) for k, v in self._delta.items())
                self._touch_locked()
            self._frozen = None
            self._bg_busy = False
            self._changed.notify_all()
            state.done()
            start = self._should_compact_locked()
        base.release()
        if swapped:
            self._cache.clear_rdd(self._rid)
            old.retire()
        else:
            new.retire()
        if start:
            self._bg.submit(self._compact)

    def save(self, path: str, fmt: str = "jsonl", overwrite: bool = False) -> dict[str, Any]:
        """Write the current data (pending writes included) to ``path`` as
        JSON Lines (``{"key","value"}`` rows), CSV or Parquet (columns key,
        value as JSON text). Spark writes a directory of part files."""
        bulk.check_save(path, fmt)
        with self._lock:
            overlay = self._overlay_locked()
            base = self._base.acquire()
            rows = self._count
        try:
            return bulk.save(self._engine, self._bg, base, overlay, rows, path, fmt, overwrite)
        finally:
            base.release()

    # -- lifecycle and introspection

    def stats(self) -> dict[str, Any]:
        with self._lock:
            b = self._base
            out = {"count": self._count, "partitions": b.n, "base_keys": b.count, "base_bytes": b.nbytes,
                   "delta": len(self._delta), "frozen": len(self._frozen or {}),
                   "compacting": self._bg_busy}
            out.update(self.stats_counters)
        out["compaction_seconds"] = round(out["compaction_seconds"], 3)
        out["lookup_seconds"] = round(out["lookup_seconds"], 3)
        return out

    def metrics_snapshot(self) -> dict[str, Any]:
        """stats() plus the name and the job latency histograms (stats.py)."""
        out = self.stats()
        with self._lock:
            out["jobs"] = {k: h.snapshot() for k, h in self._job_hist.items()}
            out["delta_bytes"] = self._delta_bytes
        out["name"] = self.name
        return out

    def unpersist(self) -> None:
        """Release everything (the RDD was dropped)."""
        with self._lock:
            self._closed = True
            base, self._base = self._base, self._engine.empty_base(self._base.n)
            self._rdd, self._df = None, None
            self._changed.notify_all()
        self._query.shutdown(wait=False)
        self._bg.shutdown(wait=False)
        self._cache.clear_rdd(self._rid)
        base.retire()
