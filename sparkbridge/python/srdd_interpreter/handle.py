"""What session code gets under a shared RDD's name: its user API only.

The store (store.SharedRDD) also has the node's wire and replay methods
(``set_json``, ``set_json_groups``, ``delete_groups``, ``apply_logged``,
``checkpoint_to``, ``stage_json``, ``load(logged=True)``...), which write
straight into memory. For a durable RDD that would bypass the Raft log
(docs/ARCHITECTURE.md invariant 5) and vanish at the next rebuild. So
statements never see the store: ``states`` and ``shared_rdds["states"]``
are a handle whose methods are closures over it, with no attribute that
holds it. Its writes are the store's user writes, which for a durable RDD
go to the node's log (durable.NodeLog) and come back through ``kv.apply``.

This is a wall against mistakes, not against a hostile statement: code
in the interpreter's process can always reach its objects through
introspection. What such code could change is this session's in-memory
copy only; the log stays the truth, and the store refuses wire writes to
a durable RDD outside the node's apply (store.wire_writes).
"""

from __future__ import annotations

from typing import Any, Optional

from .store import SharedRDD as Store

# The user API: method name -> docstring source. Everything else of the
# store is the node's.
USER_METHODS = ("get", "get_many", "count", "keys", "items", "scan", "set", "set_many", "delete",
                "delete_many", "clear", "compact", "wait_idle", "load_status", "save", "stats")


def handle(store: Store) -> Any:
    """A new handle on ``store`` for session code."""

    def method(name: str) -> Any:
        target = getattr(store, name)

        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            return target(*args, **kwargs)
        call.__name__ = call.__qualname__ = name
        call.__doc__ = target.__doc__
        return call

    def load(self: Any, path: str, fmt: str = "jsonl", mode: str = "merge",
             key_column: str = "key", value_column: str = "value") -> dict[str, Any]:
        return store.load(path, fmt, mode, key_column, value_column)
    load.__doc__ = store.load.__doc__

    body: dict[str, Any] = {name: method(name) for name in USER_METHODS}
    body.update({
        "__slots__": (),
        "__doc__": "Shared RDD %r: get/set/delete keys, scan, and Spark views (.rdd, .df)." % store.name,
        "__module__": "srdd",
        "name": property(lambda self: store.name, doc="The RDD's name."),
        "durable": property(lambda self: store._log is not None, doc="True if writes go through the node's log."),
        "rdd": property(lambda self: store.rdd, doc=Store.rdd.__doc__),
        "df": property(lambda self: store.df, doc=Store.df.__doc__),
        "load": load,
        "__len__": lambda self: store.count(),
        "__contains__": lambda self, key: key in store,
        "__repr__": lambda self: repr(store),
        "__getitem__": _getitem(store),
        "__setitem__": lambda self, key, value: store.set(key, value),
        "__delitem__": _delitem(store),
    })
    return type("SharedRDD", (), body)()


def _getitem(store: Store) -> Any:
    def getitem(self: Any, key: str) -> Any:
        value: Optional[Any] = store.get(key)
        if value is None and key not in store:
            raise KeyError(key)
        return value
    return getitem


def _delitem(store: Store) -> Any:
    def delitem(self: Any, key: str) -> None:
        if not store.delete(key):
            raise KeyError(key)
    return delitem
