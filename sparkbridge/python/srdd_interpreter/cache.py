"""The driver's bounded hot-key cache (one per session, shared by its RDDs).

An LRU of (rdd id, key) -> canonical JSON bytes, bounded by an estimate of
the memory its entries take. It only ever holds values read from, or
written into, an RDD's base; the store keeps it coherent (see store.py:
a write drops the key's entry, and an entry is only added while no write
of that key is pending).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Optional

# What one entry costs beyond its key and value bytes: the str and bytes
# headers, the tuple key, and the OrderedDict's hash slot and link node.
ENTRY_OVERHEAD = 200
DEFAULT_MIB = 64


class HotCache:
    def __init__(self, max_bytes: int) -> None:
        self._lock = threading.Lock()
        self._data: "OrderedDict[tuple[int, str], bytes]" = OrderedDict()
        self._bytes = 0
        self.max_bytes = max(0, int(max_bytes))
        self.hits = 0
        self.misses = 0

    @staticmethod
    def cost(key: str, value: bytes) -> int:
        return len(key) + len(value) + ENTRY_OVERHEAD

    def get(self, rid: int, key: str) -> Optional[bytes]:
        k = (rid, key)
        with self._lock:
            v = self._data.get(k)
            if v is None:
                self.misses += 1
                return None
            self._data.move_to_end(k)
            self.hits += 1
            return v

    def put(self, rid: int, key: str, value: bytes) -> None:
        cost = self.cost(key, value)
        if cost > self.max_bytes:
            return
        k = (rid, key)
        with self._lock:
            old = self._data.pop(k, None)
            if old is not None:
                self._bytes -= self.cost(key, old)
            self._data[k] = value
            self._bytes += cost
            while self._bytes > self.max_bytes:
                (_, ek), ev = self._data.popitem(last=False)
                self._bytes -= self.cost(ek, ev)

    def put_many(self, rid: int, items: list) -> None:
        """put() for many (key, value) pairs under one lock acquisition."""
        with self._lock:
            data, cost = self._data, self.cost
            for key, value in items:
                c = cost(key, value)
                if c > self.max_bytes:
                    continue
                k = (rid, key)
                old = data.pop(k, None)
                if old is not None:
                    self._bytes -= cost(key, old)
                data[k] = value
                self._bytes += c
            while self._bytes > self.max_bytes and data:
                (_, ek), ev = data.popitem(last=False)
                self._bytes -= cost(ek, ev)

    def discard(self, rid: int, key: str) -> None:
        with self._lock:
            old = self._data.pop((rid, key), None)
            if old is not None:
                self._bytes -= self.cost(key, old)

    def clear_rdd(self, rid: int) -> None:
        with self._lock:
            doomed = [k for k in self._data if k[0] == rid]
            for k in doomed:
                self._bytes -= self.cost(k[1], self._data.pop(k))

    def resize(self, max_bytes: int) -> None:
        with self._lock:
            self.max_bytes = max(0, int(max_bytes))
            while self._bytes > self.max_bytes and self._data:
                (_, ek), ev = self._data.popitem(last=False)
                self._bytes -= self.cost(ek, ev)

    def stats(self) -> dict:
        with self._lock:
            return {"entries": len(self._data), "bytes": self._bytes, "max_bytes": self.max_bytes,
                    "hits": self.hits, "misses": self.misses}
