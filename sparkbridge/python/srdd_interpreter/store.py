"""The key/value store behind one named shared RDD.

For now the data lives in a thread-safe driver-side dict. The public API
(get/set/delete/get_many/set_many/delete_many/count/keys/items, the ``rdd``
and ``df`` properties, and the wire helpers ``get_json``/``set_json``) is the
one a later, partitioned Spark engine will keep.

Every stored value is kept as its canonical JSON encoding
(``json.dumps(v, separators=(",", ":"), ensure_ascii=False, allow_nan=False)``
as UTF-8 bytes). So:
- everything stored can be served to REST readers (a read never fails);
- ``get`` returns a fresh copy: mutating it does not change the store;
- values are normalised the way JSON sees them (tuples become lists, dict
  keys become strings), identically for code and REST writers.

User data is data (ARCHITECTURE invariant 1): keys and values are only ever
dict keys and JSON text here, never source code.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Optional, Union

from pyspark import RDD, SparkContext
from pyspark.sql import DataFrame, SparkSession

JsonBytes = bytes


class InvalidInput(ValueError):
    """A key or value that the store refuses (maps to ``bad_request``)."""


class InvalidType(InvalidInput, TypeError):
    """A key or value of the wrong type (is both a ValueError and a TypeError)."""


# ---------------------------------------------------------------- validation

def check_key(key: Any) -> str:
    """Return ``key`` if it is a non-empty str encodable as UTF-8, else raise."""
    if not isinstance(key, str):
        raise InvalidType("key must be a str, got %s" % type(key).__name__)
    if not key:
        raise InvalidInput("key must not be empty")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput("key is not valid UTF-8 text: %s" % exc) from None
    return key


def _reject_constant(name: str) -> Any:
    raise InvalidInput("number %s is not allowed (values must be finite)" % name)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidInput("number %s does not fit a finite float" % _short(text))
    return value


def _parse_int(text: str) -> int:
    value = int(text)
    try:
        float(value)
    except OverflowError:
        raise InvalidInput("number %s does not fit a finite float" % _short(text)) from None
    return value


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def decode_json(data: Union[bytes, bytearray, str]) -> Any:
    """Strict JSON decode: only finite numbers (no NaN/Infinity, no 1e400)."""
    try:
        return json.loads(
            data,
            parse_float=_parse_float,
            parse_int=_parse_int,
            parse_constant=_reject_constant,
        )
    except InvalidInput:
        raise
    except (ValueError, TypeError) as exc:  # JSONDecodeError, UnicodeDecodeError, digit limits
        raise InvalidInput("value is not valid JSON: %s" % exc) from None


def encode_json(value: Any) -> JsonBytes:
    """Canonical encoding of a JSON value, as UTF-8 bytes."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _encode_checked(value: Any) -> JsonBytes:
    """Encode a value coming from Python code, with the same rules as the wire."""
    try:
        data = encode_json(value)
    except TypeError as exc:
        raise InvalidType("value is not JSON-serializable: %s" % exc) from None
    except ValueError as exc:  # NaN/Infinity, circular reference, int digit limit, surrogates
        raise InvalidInput("value is not JSON-serializable: %s" % exc) from None
    # Everything stored must also be acceptable to the wire decoder
    # (e.g. an int too large for a float is rejected from code as from REST).
    decode_json(data)
    return data


def _loads(data: JsonBytes) -> Any:
    return json.loads(data)


# ---------------------------------------------------------------- the store

class SharedRDD:
    """The KV store for one named shared RDD (thread-safe)."""

    def __init__(self, name: str, sc: SparkContext, spark: Optional[SparkSession] = None,
                 num_partitions: Optional[int] = None) -> None:
        self.name = name
        self._sc = sc
        self._spark = spark
        self._num_partitions = num_partitions
        self._lock = threading.RLock()
        self._data: dict[str, JsonBytes] = {}
        self._version = 0  # bumped by every write that changes data
        self._rdd: Optional[RDD] = None
        self._rdd_version = -1
        self._df: Optional[DataFrame] = None
        self._df_version = -1

    def __repr__(self) -> str:
        return "SharedRDD(name=%r, count=%d)" % (self.name, self.count())

    # -- reads

    def get(self, key: str) -> Any:
        """The value stored under ``key`` (a fresh copy), or None."""
        check_key(key)
        with self._lock:
            data = self._data.get(key)
        return None if data is None else _loads(data)

    def get_many(self, keys: Iterable[str]) -> list[Any]:
        """Values for ``keys`` in the same order; None where absent."""
        return [None if d is None else _loads(d) for d in self.get_json(keys)]

    def get_json(self, keys: Iterable[str]) -> list[Optional[JsonBytes]]:
        """Canonical JSON bytes for ``keys`` in the same order; None where absent."""
        keys = [check_key(k) for k in keys]
        with self._lock:
            return [self._data.get(k) for k in keys]

    def count(self) -> int:
        with self._lock:
            return len(self._data)

    def __len__(self) -> int:
        return self.count()

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._data

    def keys(self) -> list[str]:
        """A snapshot of the keys."""
        with self._lock:
            return list(self._data)

    def items(self) -> list[tuple[str, Any]]:
        """A snapshot of (key, value) pairs (values are fresh copies)."""
        with self._lock:
            snapshot = list(self._data.items())
        return [(k, _loads(d)) for k, d in snapshot]

    # -- writes

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` (must be JSON-serializable, finite numbers only)."""
        check_key(key)
        data = _encode_checked(value)
        self._apply({key: data}, ())

    def set_many(self, items: Union[Mapping[str, Any], Iterable[tuple[str, Any]]]) -> int:
        """Store many pairs; all are validated first, then all or none applied."""
        pairs = items.items() if isinstance(items, Mapping) else items
        staged: dict[str, JsonBytes] = {}
        for pair in pairs:
            key, value = pair
            staged[check_key(key)] = _encode_checked(value)
        self._apply(staged, ())
        return len(staged)

    def set_json(self, items: Iterable[tuple[str, Union[bytes, bytearray, str]]]) -> int:
        """Wire helper: store (key, JSON text) pairs.

        Every key and value is validated (and re-encoded canonically) before
        anything is applied, so a bad batch changes nothing. Raises
        InvalidInput on the first bad item. Returns the number of items.
        """
        staged: list[tuple[str, JsonBytes]] = []
        for index, pair in enumerate(items):
            try:
                key, raw = pair
            except (TypeError, ValueError):
                raise InvalidInput("item %d is not a [key, value] pair" % index) from None
            check_key(key)
            if not isinstance(raw, (bytes, bytearray, str)):
                raise InvalidType("value of item %d must be JSON bytes, got %s" % (index, type(raw).__name__))
            try:
                staged.append((key, encode_json(decode_json(raw))))
            except InvalidInput as exc:
                raise type(exc)("item %d (key %r): %s" % (index, key, exc)) from None
        self._apply(dict(staged), ())
        return len(staged)

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it was present."""
        return self.delete_many([key]) == 1

    def delete_many(self, keys: Iterable[str]) -> int:
        """Remove ``keys``; returns how many were present."""
        keys = [check_key(k) for k in keys]
        return self._apply({}, keys)

    def clear(self) -> None:
        with self._lock:
            changed = bool(self._data)
            self._data.clear()
            stale = self._invalidate_locked() if changed else None
        self._release(stale)

    def _apply(self, sets: dict[str, JsonBytes], deletes: Iterable[str]) -> int:
        with self._lock:
            deleted = 0
            for key in deletes:
                if self._data.pop(key, None) is not None:
                    deleted += 1
            self._data.update(sets)
            stale = self._invalidate_locked() if (sets or deleted) else None
        self._release(stale)
        return deleted

    def _invalidate_locked(self) -> Optional[RDD]:
        self._version += 1
        stale, self._rdd = self._rdd, None
        self._df = None
        return stale

    @staticmethod
    def _release(stale: Optional[RDD]) -> None:
        if stale is not None:
            try:
                stale.unpersist(blocking=False)
            except Exception:  # the context may be stopping; the cache dies with it
                pass

    # -- Spark views

    @property
    def rdd(self) -> RDD:
        """A pair RDD (key, value) of the current data, hash-partitioned by key
        and cached; the same RDD object is returned until the next write."""
        with self._lock:
            if self._rdd is not None and self._rdd_version == self._version:
                return self._rdd
            version = self._version
            snapshot = list(self._data.items())
        n = self._partitions()
        pairs = [(k, _loads(d)) for k, d in snapshot]
        rdd = self._sc.parallelize(pairs, n).partitionBy(n)
        rdd.setName("srdd:%s@v%d" % (self.name, version))
        rdd.cache()
        loser: Optional[RDD] = None
        with self._lock:
            if self._version == version:
                if self._rdd is None:
                    self._rdd, self._rdd_version = rdd, version
                else:  # another thread built the same version first: use that one
                    loser, rdd = rdd, self._rdd
        self._release(loser)
        # If a write landed meanwhile, ``rdd`` is still a consistent snapshot,
        # just not the newest; it is not kept for reuse.
        return rdd

    @property
    def df(self) -> DataFrame:
        """A DataFrame with columns key (string) and value (JSON text string)."""
        with self._lock:
            if self._df is not None and self._df_version == self._version:
                return self._df
            version = self._version
            rows = [(k, d.decode("utf-8")) for k, d in self._data.items()]
        spark = self._spark or SparkSession.builder.getOrCreate()
        df = spark.createDataFrame(rows, schema="key string, value string")
        with self._lock:
            if self._version == version:
                self._df, self._df_version = df, version
        return df

    def _partitions(self) -> int:
        if self._num_partitions:
            return self._num_partitions
        return max(1, int(self._sc.defaultParallelism))

    def unpersist(self) -> None:
        with self._lock:
            stale, self._rdd, self._df = self._rdd, None, None
        self._release(stale)


# ---------------------------------------------------------------- registry

class NotFound(KeyError):
    pass


class AlreadyExists(KeyError):
    pass


class Registry:
    """The shared RDDs of one session, by name (thread-safe).

    ``view`` is a live read-only mapping for user code (``shared_rdds``), so
    statements can look RDDs up but cannot add or drop them behind the
    node's back.
    """

    def __init__(self, sc: SparkContext, spark: Optional[SparkSession] = None) -> None:
        self._sc = sc
        self._spark = spark
        self._lock = threading.Lock()
        self._rdds: dict[str, SharedRDD] = {}
        self.view: Mapping[str, SharedRDD] = MappingProxyType(self._rdds)

    def create(self, name: str) -> SharedRDD:
        if not isinstance(name, str) or not name:
            raise InvalidInput("name must be a non-empty str")
        with self._lock:
            if name in self._rdds:
                raise AlreadyExists(name)
            store = SharedRDD(name, self._sc, self._spark)
            self._rdds[name] = store
            return store

    def drop(self, name: str) -> SharedRDD:
        with self._lock:
            store = self._rdds.pop(name, None)
        if store is None:
            raise NotFound(name)
        store.unpersist()
        return store

    def get(self, name: str) -> SharedRDD:
        with self._lock:
            store = self._rdds.get(name)
        if store is None:
            raise NotFound(name)
        return store

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._rdds)

    def list(self) -> list[tuple[str, int]]:
        with self._lock:
            stores = sorted(self._rdds.items())
        return [(name, store.count()) for name, store in stores]
