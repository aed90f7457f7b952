"""The shared RDDs of one session, by name: the name -> SharedRDD table.

(In Go, "registry" is the Raft FSM that says which session owns which
RDD; this is only the session's own table of what it holds.)
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Optional

from pyspark import SparkContext
from pyspark.sql import SparkSession

from . import rules
from .engine import Engine
from .handle import handle
from .store import SharedRDD


class NotFound(KeyError):
    pass


class AlreadyExists(KeyError):
    pass


class RDDTable:
    """The shared RDDs of one session, by name (thread-safe).

    ``view`` is a live read-only mapping for user code (``shared_rdds``), so
    statements can look RDDs up but cannot add or drop them behind the
    node's back; it maps names to handles (handle.py), never to stores. Names follow the node's data rules (``data_rules``, by
    default what the node handed over: rules.from_env).
    """

    def __init__(self, sc: SparkContext, spark: Optional[SparkSession] = None,
                 data_rules: Optional[rules.Rules] = None) -> None:
        self._sc = sc
        self._spark = spark
        self.rules = data_rules or rules.from_env()
        self._lock = threading.Lock()
        self._rdds: dict[str, SharedRDD] = {}
        self._handles: dict[str, Any] = {}
        self._engine: Optional[Engine] = None
        self.view: Mapping[str, Any] = MappingProxyType(self._handles)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine(self._sc, self._spark, self.rules)
        return self._engine

    def create(self, name: str, log: Any = None) -> SharedRDD:
        self.rules.check_name(name)
        with self._lock:
            if name in self._rdds:
                raise AlreadyExists(name)
            store = SharedRDD(name, self._sc, self._spark, engine=self.engine, log=log)
            self._rdds[name] = store
            self._handles[name] = handle(store)
            return store

    def drop(self, name: str) -> SharedRDD:
        with self._lock:
            store = self._rdds.pop(name, None)
            self._handles.pop(name, None)
        if store is None:
            raise NotFound(name)
        store.unpersist()
        return store

    def get(self, name: str) -> SharedRDD:
        store = self._rdds.get(name)  # a dict read is atomic; the hot path takes no lock
        if store is None:
            raise NotFound(name)
        return store

    def handle(self, name: str) -> Any:
        """Session code's handle on RDD ``name`` (handle.py)."""
        h = self._handles.get(name)
        if h is None:
            raise NotFound(name)
        return h

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._rdds)

    def list(self) -> list[tuple[str, int]]:
        with self._lock:
            stores = sorted(self._rdds.items())
        return [(name, store.count()) for name, store in stores]

    def stores(self) -> list[SharedRDD]:
        with self._lock:
            return [s for _, s in sorted(self._rdds.items())]
