"""The blocking client: :class:`Client` and its :class:`RDD` handles."""

from __future__ import annotations

import time
from collections.abc import ItemsView, Iterator, MutableMapping, ValuesView
from typing import Any, Callable, Iterable, Mapping, Optional, Union

import httpx

from ._errors import KeyNotFound
from ._model import (
    SCAN_PAGE,
    CheckpointResult,
    LoadStatus,
    Op,
    Ops,
    Out,
    RDDInfo,
    Request,
    Response,
    SaveResult,
    Sleep,
)
from ._transport import ClientBase

_MISSING = object()


class Client(ClientBase):
    """A client for an srdd cluster.

    Args:
        nodes: base URLs (``"http://n1:8998"``) or ``host:port`` addresses,
            as a list or one comma-separated string. Any node serves any
            call; the client stays on the node that answered last and moves
            to the next only when one cannot be dialled.
        token: a bearer token (``srdd auth add``).
        auth: ``(user, password)`` for HTTP Basic.
        ca_cert: PEM file of the CA that signed the nodes' certificates;
            addresses without a scheme then use https.
        timeout: seconds to wait for an answer (a save can take minutes).
        connect_timeout: seconds to wait for a connection before trying the
            next node.
        retry_timeout: how long, in all, to keep re-sending a request the
            server refused with 503 and Retry-After (``recovering``,
            ``starting``, ``no_leader``, ``moved``); 0 raises at once.
        consistency: the default read consistency (``"default"``,
            ``"linearizable"`` or ``"stale"``); each read can override it.
        trust_env: let httpx read proxy settings from the environment.

    Use it as a context manager, or call :meth:`close`.
    """

    _HTTP = httpx.Client
    _http: httpx.Client

    # I/O: the only part that differs from AsyncClient.

    def _send(self, req: Request) -> Response:
        last: Optional[BaseException] = None
        for at, base in self._tries(req):
            try:
                return self._answered(at, self._http.request(**self._request_args(req, base)))
            except httpx.TransportError as e:
                last = self._failed(req, base, e)
        raise self._none_answered(last) from last

    def _drive(self, op: Op) -> Iterator[Any]:
        try:
            sent: Any = None
            while True:
                try:
                    step = op.send(sent)
                except StopIteration as stop:
                    return stop.value
                sent = None
                if isinstance(step, Request):
                    sent = self._send(step)
                elif isinstance(step, Sleep):
                    time.sleep(step.seconds)
                elif isinstance(step, Out):
                    yield step.value
        finally:
            op.close()  # e.g. a load's progress bar, when the I/O raised

    def _run(self, op: Op) -> Any:
        it = self._drive(op)
        while True:
            try:
                next(it)
            except StopIteration as stop:
                return stop.value

    # Public API.

    def rdd(self, name: str) -> "RDD":
        """A handle on the shared RDD ``name`` (no request is sent)."""
        return RDD(self, name)

    def rdds(self) -> list[RDDInfo]:
        """Every shared RDD of the cluster."""
        return self._run(self._ops.list_rdds())

    def create_rdd(
        self,
        name: str,
        *,
        mode: Optional[str] = None,
        session: Union[int, str, None] = None,
        replicas: Optional[int] = None,
    ) -> "RDD":
        """Creates a shared RDD and returns its handle.

        Args:
            mode: ``"durable"`` (the server's default) or ``"memory"``.
            session: a session id or name to place it in (default: the
                node's default session).
            replicas: copies wanted, 1 up to the cluster's node count
                (default: 2 for a durable RDD on 2 or more nodes, else 1).
                Each copy is on a different node; one takes over when
                the owner's node is lost.

        Raises:
            Exists: an RDD of that name exists.
            BadRequest: ``replicas`` is out of range (the message
                names the limit).
        """
        self._run(self._ops.create_rdd(name, mode, session, replicas))
        return RDD(self, name)

    def describe_rdd(self, name: str) -> RDDInfo:
        """One shared RDD: mode, state, keys, load progress, checkpoint..."""
        return self._run(self._ops.describe(name))

    def drop_rdd(self, name: str) -> None:
        """Drops a shared RDD and its data."""
        self._run(self._ops.drop(name))

    def close(self) -> None:
        """Closes the connections."""
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _ScanItems(ItemsView):  # type: ignore[type-arg]
    """items() of a handle: one scan, not a get per key."""

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return self._mapping.scan()  # type: ignore[attr-defined,no-any-return]


class _ScanValues(ValuesView):  # type: ignore[type-arg]
    """values() of a handle: one scan, not a get per key."""

    def __iter__(self) -> Iterator[Any]:
        return (v for _, v in self._mapping.scan())  # type: ignore[attr-defined]


class RDD(MutableMapping):  # type: ignore[type-arg]
    """A shared RDD, used like a dict of JSON values::

        states = client.rdd("states")
        states["ak"] = "Alaska"
        states["ak"]            # 'Alaska'; KeyNotFound (a KeyError) if absent
        "ak" in states, len(states)
        del states["ak"]

    Iterating goes through the keys in order (a scan). Every write carries a
    fresh Idempotency-Key, or the one you pass to retry an
    :class:`~srdd.OutcomeUnknown` write.
    """

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name

    def __repr__(self) -> str:
        return f"<srdd.RDD {self.name!r}>"

    def _run(self, op: Op) -> Any:
        return self.client._run(op)

    @property
    def _ops(self) -> Ops:
        return self.client._ops

    # Mapping protocol.

    def __getitem__(self, key: str) -> Any:
        return self._run(self._ops.get(self.name, key))

    def __setitem__(self, key: str, value: Any) -> None:
        self._run(self._ops.set(self.name, key, value))

    def __delitem__(self, key: str) -> None:
        self._run(self._ops.delete(self.name, key))

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return self._run(self._ops.contains(self.name, key))  # type: ignore[no-any-return]

    def __len__(self) -> int:
        return self._run(self._ops.count(self.name))  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self.scan())

    def items(self) -> _ScanItems:  # type: ignore[override]
        return _ScanItems(self)

    def values(self) -> _ScanValues:  # type: ignore[override]
        return _ScanValues(self)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:  # type: ignore[override]
        """dict.update, as batched writes (:meth:`set_many`)."""
        items = dict(other.items() if isinstance(other, Mapping) else other)
        items.update(kwargs)
        if items:
            self.set_many(items)

    # Keys, with options.

    def get(self, key: str, default: Any = None, *, consistency: Optional[str] = None) -> Any:  # type: ignore[override]
        """The value of key, or default if it is absent.

        consistency: ``"default"``, ``"linearizable"`` or ``"stale"``
        (durable RDDs; README "Read consistency")."""
        try:
            return self._run(self._ops.get(self.name, key, consistency))
        except KeyNotFound:
            return default

    def set(self, key: str, value: Any, *, idempotency_key: Optional[str] = None) -> None:
        """Writes key = value (any JSON value)."""
        self._run(self._ops.set(self.name, key, value, idempotency_key))

    def delete(self, key: str, *, idempotency_key: Optional[str] = None) -> None:
        """Deletes key; KeyNotFound if it is absent."""
        self._run(self._ops.delete(self.name, key, idempotency_key))

    def get_many(self, keys: Iterable[str], *, consistency: Optional[str] = None) -> dict[str, Any]:
        """{key: value} for those of keys that exist, in batches under the
        server's limit (10,000 keys, 4 MiB a request)."""
        return self._run(self._ops.get_many(self.name, keys, consistency))  # type: ignore[no-any-return]

    def set_many(
        self, items: Union[Mapping[str, Any], Iterable[tuple[str, Any]]], *, idempotency_key: Optional[str] = None
    ) -> int:
        """Writes items in batches under the server's limit; each batch is
        all-or-nothing, the whole call is not. Returns how many were
        written. On an error, retrying with ``idempotency_key=err.idempotency_key``
        applies no batch twice (durable RDDs)."""
        return self._run(self._ops.set_many(self.name, items, idempotency_key))  # type: ignore[no-any-return]

    def delete_many(self, keys: Iterable[str], *, idempotency_key: Optional[str] = None) -> int:
        """Deletes keys in batches; returns how many existed."""
        return self._run(self._ops.delete_many(self.name, keys, idempotency_key))  # type: ignore[no-any-return]

    def scan(self, prefix: str = "", *, page_size: int = SCAN_PAGE) -> Iterator[tuple[str, Any]]:
        """(key, value) pairs whose key starts with prefix, in key order,
        fetched page by page as you iterate."""
        return self.client._drive(self._ops.scan(self.name, prefix, page_size))

    # Whole-RDD operations.

    def describe(self) -> RDDInfo:
        """Mode, state, keys, owner node, load progress, checkpoint..."""
        return self._run(self._ops.describe(self.name))  # type: ignore[no-any-return]

    def drop(self) -> None:
        """Drops the RDD and its data."""
        self._run(self._ops.drop(self.name))

    def load(
        self,
        path: str,
        fmt: Optional[str] = None,
        *,
        mode: Optional[str] = None,
        key_column: Optional[str] = None,
        value_column: Optional[str] = None,
        progress: Union[bool, Callable[[LoadStatus], None]] = True,
        wait: bool = True,
        poll: float = 0.5,
        timeout: Optional[float] = None,
    ) -> LoadStatus:
        """Loads a file in one of the owner's file roots.

        Args:
            path: the file (relative paths are in the node's first root).
            fmt: ``"jsonl"`` (server default), ``"csv"`` or ``"parquet"``.
            mode: ``"merge"`` (default) or ``"replace"``.
            progress: True shows a tqdm bar driven by the RDD's load state;
                a callable gets each :class:`LoadStatus` instead.
            wait: wait until the load is over (and, for a durable RDD, its
                checkpoint recorded); False returns once it started.
            poll: seconds between two looks at the load state.
            timeout: with wait, raise TimeoutError after this many seconds
                (the load goes on on the server).

        Raises:
            LoadFailed: the load ended in state ``failed``.
            Busy: a load is already running.
        """
        return self._run(  # type: ignore[no-any-return]
            self._ops.load(
                self.name, path, fmt, mode=mode, key_column=key_column, value_column=value_column,
                progress=progress, wait=wait, poll=poll, timeout=timeout,
            )
        )

    def save(self, path: str, fmt: Optional[str] = None, *, overwrite: bool = False) -> SaveResult:
        """Writes the data to path (a directory of part files in a file
        root) as ``jsonl``, ``csv`` or ``parquet``."""
        return self._run(self._ops.save(self.name, path, fmt, overwrite))  # type: ignore[no-any-return]

    def checkpoint(self) -> CheckpointResult:
        """Writes a checkpoint of a durable RDD now and records it."""
        return self._run(self._ops.checkpoint(self.name))  # type: ignore[no-any-return]
