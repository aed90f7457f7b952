"""The half of the KV engine that runs inside Spark tasks.

Everything here runs in Spark's Python workers (and in the driver), uses
the standard library only, and is pickled *by value* (engine.py registers
this module with cloudpickle), so executors never need srdd_interpreter
on their path. Loaded rows are checked with the node's data rules
(rules.Rules, also pickled by value, handed in by the task closure).

A base partition is ONE record, an index tuple ``(n, keys, koff, vals, voff)``:

- ``keys``: the partition's keys as UTF-8, concatenated in ascending byte
  order (which is also Python's ``str`` order);
- ``koff``: n+1 native uint32 offsets into ``keys`` (``array('I')`` bytes);
- ``vals`` / ``voff``: the canonical JSON values and their offsets, in the
  same order.

Four ``bytes`` objects pickle and unpickle at memcpy speed, and a lookup is
a binary search over slices, so a task that touches one partition costs
the same whether the RDD holds a thousand keys or a million (partitions
are kept near a target size as data grows).

Keys and values are data: nothing here ever turns them into code
(docs/ARCHITECTURE.md invariant 1).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from itertools import accumulate
from typing import Any, Optional

Index = tuple  # (n, keys, koff, vals, voff)
Pair = tuple  # (key bytes, value bytes)

OFFSET_TYPE = "I"
MAX_PARTITION_BYTES = (1 << 32) - 1

EMPTY_INDEX: Index = (0, b"", array(OFFSET_TYPE, [0]).tobytes(), b"", array(OFFSET_TYPE, [0]).tobytes())


# ------------------------------------------------------------------ hashing

def key_hash(key: Any) -> int:
    """The partition function (``% n`` picks the partition). Accepts str
    (user code, ``states.rdd.partitioner``) or UTF-8 bytes; stable across
    processes, unlike ``hash()``."""
    if isinstance(key, str):
        key = key.encode("utf-8")
    return zlib.crc32(key)


def partition_of(kb: bytes, n: int) -> int:
    return zlib.crc32(kb) % n


def dir_hash(kb: bytes) -> int:
    """The 64-bit hash the driver's key directory holds (see engine.py)."""
    return int.from_bytes(hashlib.blake2b(kb, digest_size=8).digest(), "little")


# ------------------------------------------------------------------ index

def build(pairs: list) -> Index:
    """An index from (key bytes, value bytes) pairs sorted by key, keys unique."""
    if not pairs:
        return EMPTY_INDEX
    ks = [p[0] for p in pairs]
    vs = [p[1] for p in pairs]
    return _from_lists(ks, vs)


def _from_lists(ks: list, vs: list) -> Index:
    keys = b"".join(ks)
    vals = b"".join(vs)
    if len(keys) > MAX_PARTITION_BYTES or len(vals) > MAX_PARTITION_BYTES:
        raise OverflowError("a partition exceeds 4 GiB; use more partitions")
    koff = array(OFFSET_TYPE, [0])
    koff.extend(accumulate(map(len, ks)))
    voff = array(OFFSET_TYPE, [0])
    voff.extend(accumulate(map(len, vs)))
    return (len(ks), keys, koff.tobytes(), vals, voff.tobytes())


class View:
    """Random access to one index (offset arrays cast once, zero copy)."""

    __slots__ = ("n", "keys", "ko", "vals", "vo")

    def __init__(self, ix: Index) -> None:
        self.n, self.keys, ko, self.vals, vo = ix
        self.ko = memoryview(ko).cast(OFFSET_TYPE)
        self.vo = memoryview(vo).cast(OFFSET_TYPE)

    def key(self, i: int) -> bytes:
        return self.keys[self.ko[i]:self.ko[i + 1]]

    def value(self, i: int) -> bytes:
        return self.vals[self.vo[i]:self.vo[i + 1]]

    def lower_bound(self, kb: bytes, lo: int = 0) -> int:
        """The first position at or after ``lo`` whose key is >= kb."""
        hi = self.n
        keys, ko = self.keys, self.ko
        while lo < hi:
            mid = (lo + hi) >> 1
            if keys[ko[mid]:ko[mid + 1]] < kb:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def find(self, kb: bytes) -> Optional[bytes]:
        i = self.lower_bound(kb)
        if i < self.n and self.key(i) == kb:
            return self.value(i)
        return None

    def key_list(self, a: int = 0, b: Optional[int] = None) -> list:
        keys, ko = self.keys, self.ko
        b = self.n if b is None else b
        return [keys[ko[i]:ko[i + 1]] for i in range(a, b)]

    def value_list(self, a: int = 0, b: Optional[int] = None) -> list:
        vals, vo = self.vals, self.vo
        b = self.n if b is None else b
        return [vals[vo[i]:vo[i + 1]] for i in range(a, b)]


def pairs_of(ix: Index) -> Iterator[Pair]:
    v = View(ix)
    return zip(v.key_list(), v.value_list())


def merge(ix: Index, delta: list) -> Index:
    """Apply ``delta`` — (key bytes, value bytes or None for a delete),
    sorted by key, keys unique — to an index."""
    if not delta:
        return ix
    v = View(ix)
    ks: list = []
    vs: list = []
    pos = 0
    for kb, vb in delta:
        i = v.lower_bound(kb, pos)
        if i > pos:
            ks.extend(v.key_list(pos, i))
            vs.extend(v.value_list(pos, i))
        if i < v.n and v.key(i) == kb:
            i += 1  # replaced or deleted
        if vb is not None:
            ks.append(kb)
            vs.append(vb)
        pos = i
    if pos < v.n:
        ks.extend(v.key_list(pos))
        vs.extend(v.value_list(pos))
    return _from_lists(ks, vs)


def meta(ix: Index) -> tuple:
    """(keys, bytes, sorted directory hashes as array('Q') bytes) of an index."""
    v = View(ix)
    hashes = array("Q", sorted(map(dir_hash, v.key_list())))
    return (v.n, len(v.keys) + len(v.vals), hashes.tobytes())


# ------------------------------------------------------------------ task bodies

def freeze_worker_heap() -> None:
    """Once per Python worker process: move the objects that live for the
    worker's whole life (PySpark's modules) out of the garbage collector's
    reach. PySpark's daemon runs a full ``gc.collect()`` after every task of
    a reused worker; over the whole heap that took 15-30 ms per task on a
    2-core test machine, more than the task itself (measured: a 1-task job
    79 ms -> 32 ms, an 8-task job 295 ms -> 79 ms). Objects created later,
    including every task's garbage, are still collected."""
    import gc
    import sys

    if not getattr(sys, "_srdd_gc_frozen", False):
        gc.collect()
        gc.freeze()
        sys._srdd_gc_frozen = True  # type: ignore[attr-defined]


def lookup_task(split: int, it: Iterable[Index]) -> Iterator[tuple]:
    """Find the keys the driver put in the task's local property
    ``srdd.lookup`` (JSON: partition -> [keys]); yields (key, value or None)."""
    from pyspark import TaskContext

    freeze_worker_heap()
    ctx = TaskContext.get()
    spec = ctx.getLocalProperty("srdd.lookup") if ctx is not None else None
    wanted = json.loads(spec).get(str(split), []) if spec else []
    for ix in it:
        v = View(ix)
        for key in wanted:
            yield key, v.find(key.encode("utf-8"))


def lookup_with(wanted_by_split: dict) -> Any:
    """A lookup task body with its keys in the closure (for batches too large
    for a local property)."""
    def run(split: int, it: Iterable[Index]) -> Iterator[tuple]:
        freeze_worker_heap()
        wanted = wanted_by_split.get(split, [])
        for ix in it:
            v = View(ix)
            for key in wanted:
                yield key, v.find(key.encode("utf-8"))
    return run


def scan_with(start: bytes, prefix: bytes, limit: int) -> Any:
    """A task body yielding up to ``limit`` (key, value) pairs with keys >=
    start that begin with prefix, in key order."""
    def run(it: Iterable[Index]) -> Iterator[Pair]:
        freeze_worker_heap()
        for ix in it:
            v = View(ix)
            i = v.lower_bound(start)
            taken = 0
            while i < v.n and taken < limit:
                kb = v.key(i)
                if not kb.startswith(prefix):
                    break
                yield kb, v.value(i)
                taken += 1
                i += 1
    return run


def _delta_of(deltas: Any, split: int) -> list:
    import pickle

    table = deltas.value if hasattr(deltas, "value") else deltas
    raw = table.get(split)
    return pickle.loads(raw) if raw else []


def merge_with(deltas: Any) -> Any:
    """A task body applying the delta of each partition (``deltas`` maps a
    partition to its pickled sorted delta list; it may be a Broadcast)."""
    def run(split: int, it: Iterable[Index]) -> Iterator[Index]:
        freeze_worker_heap()
        delta = _delta_of(deltas, split)
        found = False
        for ix in it:
            found = True
            yield merge(ix, delta)
        if not found:
            yield build([(k, v) for k, v in delta if v is not None])
    return run


def identity(x: Any) -> Any:
    return x


def repack(n: int) -> Any:
    """A task body re-cutting an old base partition into packs for ``n``
    new partitions: records (new partition, (-1, pack))."""
    def run(it: Iterable[Index]) -> Iterator[tuple]:
        freeze_worker_heap()
        for ix in it:
            for p, (_, pack) in pack_for_shuffle(n, -1, pairs_of(ix), None):
                yield p, (-1, pack)
    return run


def reduce_with(deltas: Any) -> Any:
    """A task body building a new partition from shuffled packs: the old
    base's packs (tag -1, keys unique), then the driver's frozen writes for
    this partition, then loaded packs in input order (later rows win)."""
    def run(split: int, it: Iterable[tuple]) -> Iterator[Index]:
        freeze_worker_heap()
        table: dict = {}
        loaded = []
        for _, (tag, pack) in it:
            if tag < 0:
                v = View(pack)
                table.update(zip(v.key_list(), v.value_list()))
            else:
                loaded.append((tag, pack))
        for kb, vb in _delta_of(deltas, split):
            if vb is None:
                table.pop(kb, None)
            else:
                table[kb] = vb
        loaded.sort(key=lambda t: t[0])
        for _, pack in loaded:
            v = View(pack)
            table.update(zip(v.key_list(), v.value_list()))
        # Sorting the keys alone, then looking the values up, is twice as
        # fast as sorting (key, value) tuples (benchmarks/profiling.md #16).
        ks = sorted(table)
        yield _from_lists(ks, list(map(table.__getitem__, ks))) if ks else EMPTY_INDEX
    return run


def hash_order(ix: Index) -> tuple:
    """(the keys' crc32 — the partition hash — sorted, as array('I') bytes;
    the key position of each, as array('I') bytes): a lookup bisects these
    in C instead of the keys in Python (engine.find_in), and reuses the
    crc32 it computed to pick the partition. Equal hashes are rare and only
    cost one more key comparison."""
    v = View(ix)
    crc = zlib.crc32
    hs = [crc(k) for k in v.key_list()]
    order = sorted(range(v.n), key=hs.__getitem__)
    return array(OFFSET_TYPE, [hs[i] for i in order]).tobytes(), array(OFFSET_TYPE, order).tobytes()


def index_task(split: int, it: Iterable[Index]) -> Iterator[tuple]:
    """(partition, index, hashes, positions) of each partition: the driver
    keeps them resident."""
    freeze_worker_heap()
    found = False
    for ix in it:
        found = True
        yield (split, ix) + hash_order(ix)
    if not found:
        yield (split, EMPTY_INDEX) + hash_order(EMPTY_INDEX)


def meta_task(it: Iterable[Index]) -> Iterator[tuple]:
    freeze_worker_heap()
    for ix in it:
        yield meta(ix)


def view_with(deltas: Any, decode: bool) -> Any:
    """A task body turning an index (plus the driver's pending writes of that
    partition) into (key str, value) records: Python objects if ``decode``,
    else JSON text."""
    def run(split: int, it: Iterable[Index]) -> Iterator[tuple]:
        freeze_worker_heap()
        delta = _delta_of(deltas, split)
        loads = json.loads
        found = False
        for ix in it:
            found = True
            merged = merge(ix, delta) if delta else ix
            for kb, vb in pairs_of(merged):
                yield kb.decode("utf-8"), (loads(vb) if decode else vb.decode("utf-8"))
        if not found:
            for kb, vb in delta:
                if vb is not None:
                    yield kb.decode("utf-8"), (loads(vb) if decode else vb.decode("utf-8"))
    return run


# ------------------------------------------------------------------ bulk load

class BadRow(ValueError):
    """A row of an input file that cannot be loaded."""


def _row(key: Any, value: Any, rules: Any, where: str) -> Pair:
    """Validated (key bytes, canonical value bytes) of one loaded row, by
    the node's rules (rules.Rules, shipped in the task closure)."""
    try:
        kb = rules.key_bytes(key)
    except ValueError as exc:  # rules.InvalidInput
        raise BadRow("%s: %s" % (where, exc)) from None
    try:
        return kb, rules.encode_value(value)
    except ValueError as exc:
        raise BadRow("%s: the value: %s" % (where, exc)) from None


def parse_jsonl(lines: Iterable[str], rules: Any) -> Iterator[Pair]:
    """JSON Lines rows ``{"key": str, "value": any JSON}``; blank lines skipped."""
    decode = json.JSONDecoder().decode
    for n, line in enumerate(lines, 1):
        if not line or line.isspace():
            continue
        try:
            row = decode(line)
        except ValueError as exc:
            raise BadRow("line %d of its split is not JSON: %s" % (n, exc)) from None
        if not isinstance(row, dict) or "key" not in row or "value" not in row:
            raise BadRow('line %d of its split must be an object with "key" and "value"' % n)
        yield _row(row["key"], row["value"], rules, "line %d of its split" % n)


def parse_columns(rows: Iterable[Any], rules: Any) -> Iterator[Pair]:
    """(key, value) rows from CSV or Parquet: a string value is JSON text;
    any other value is converted to JSON as it is."""
    decode = json.JSONDecoder().decode
    for row in rows:
        key, value = row[0], row[1]
        if isinstance(value, str):
            try:
                value = decode(value)
            except ValueError as exc:
                raise BadRow("a value is not JSON text: %s" % exc) from None
        elif hasattr(value, "asDict"):
            value = value.asDict(recursive=True)
        yield _row(key, value, rules, "row")


def pack_for_shuffle(n: int, split: int, pairs: Iterable[Pair], counter: Any) -> Iterator[tuple]:
    """Group loaded pairs by target partition, as one packed record per
    partition (partition, (split, keys-index)) so the shuffle moves a few
    large byte strings instead of millions of small tuples. Rows keep
    their input order inside a pack (a later row of the same key wins)."""
    buckets: dict = {}
    rows = 0
    for kb, vb in pairs:
        p = zlib.crc32(kb) % n
        b = buckets.get(p)
        if b is None:
            b = buckets[p] = ([], [])
        b[0].append(kb)
        b[1].append(vb)
        rows += 1
    if counter is not None:
        counter.add(rows)
    for p, (ks, vs) in buckets.items():
        yield p, (split, _from_lists(ks, vs))


def parse_jsonl_with(rules: Any) -> Any:
    def run(it: Iterable[str]) -> Iterator[Pair]:
        return parse_jsonl(it, rules)
    return run


def parse_columns_with(rules: Any) -> Any:
    def run(it: Iterable[Any]) -> Iterator[Pair]:
        return parse_columns(it, rules)
    return run


def packer(n: int, counter: Any) -> Any:
    def run(split: int, it: Iterable[Pair]) -> Iterator[tuple]:
        freeze_worker_heap()
        return pack_for_shuffle(n, split, it, counter)
    return run


def jsonl_line(kv: tuple) -> str:
    """A JSON Lines row from a (key str, value JSON text) record."""
    k, v = kv
    return '{"key":%s,"value":%s}' % (json.dumps(k, ensure_ascii=False), v)
