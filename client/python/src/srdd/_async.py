"""The asyncio client: :class:`AsyncClient` and its :class:`AsyncRDD`
handles. Requests, decoding, errors, chunking and paging are the same code
as the blocking client's (``_model.Ops``); only sending and sleeping differ."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable, Iterable, Mapping, Optional, Union

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


class AsyncClient(ClientBase):
    """The asyncio twin of :class:`srdd.Client` (same arguments, same
    failover rule); every call is a coroutine::

        async with srdd.AsyncClient(["http://n1:8998"]) as client:
            states = client.rdd("states")
            await states.set("hi", "Hawaii")
            print(await states.get("hi"))
    """

    _HTTP = httpx.AsyncClient
    _http: httpx.AsyncClient

    async def _send(self, req: Request) -> Response:
        last: Optional[BaseException] = None
        for at, base in self._tries(req):
            try:
                return self._answered(at, await self._http.request(**self._request_args(req, base)))
            except httpx.TransportError as e:
                last = self._failed(req, base, e)
        raise self._none_answered(last) from last

    async def _step(self, step: Any) -> Any:
        if isinstance(step, Request):
            return await self._send(step)
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
        return None

    async def _run(self, op: Op) -> Any:
        try:
            sent: Any = None
            while True:
                try:
                    step = op.send(sent)
                except StopIteration as stop:
                    return stop.value
                if isinstance(step, Out):
                    raise RuntimeError("srdd: an operation produced items outside a scan")
                sent = await self._step(step)
        finally:
            op.close()  # e.g. a load's progress bar, when the I/O raised

    async def _iter(self, op: Op) -> AsyncIterator[Any]:
        try:
            sent: Any = None
            while True:
                try:
                    step = op.send(sent)
                except StopIteration:
                    return
                if isinstance(step, Out):
                    sent = None
                    yield step.value
                else:
                    sent = await self._step(step)
        finally:
            op.close()  # e.g. a load's progress bar, when the I/O raised

    def rdd(self, name: str) -> "AsyncRDD":
        """A handle on the shared RDD ``name`` (no request is sent)."""
        return AsyncRDD(self, name)

    async def rdds(self) -> list[RDDInfo]:
        """Every shared RDD of the cluster."""
        return await self._run(self._ops.list_rdds())  # type: ignore[no-any-return]

    async def create_rdd(
        self,
        name: str,
        *,
        mode: Optional[str] = None,
        session: Union[int, str, None] = None,
        replicas: Optional[int] = None,
    ) -> "AsyncRDD":
        """Creates a shared RDD (``mode`` ``"durable"`` or ``"memory"``;
        ``replicas`` as in :meth:`srdd.Client.create_rdd`)."""
        await self._run(self._ops.create_rdd(name, mode, session, replicas))
        return AsyncRDD(self, name)

    async def describe_rdd(self, name: str) -> RDDInfo:
        """One shared RDD's description."""
        return await self._run(self._ops.describe(name))  # type: ignore[no-any-return]

    async def drop_rdd(self, name: str) -> None:
        """Drops a shared RDD and its data."""
        await self._run(self._ops.drop(name))

    async def aclose(self) -> None:
        """Closes the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


class AsyncRDD:
    """A shared RDD for asyncio code: the methods of :class:`srdd.RDD`
    as coroutines (``get``, ``set``, ``delete``, ``contains``, ``count``,
    ``get_many``, ``set_many``, ``delete_many``, ``load``, ``save``,
    ``checkpoint``) and ``scan`` as an async iterator."""

    def __init__(self, client: AsyncClient, name: str) -> None:
        self.client = client
        self.name = name

    def __repr__(self) -> str:
        return f"<srdd.AsyncRDD {self.name!r}>"

    @property
    def _ops(self) -> Ops:
        return self.client._ops

    async def __getitem__(self, key: str) -> Any:  # `await states["ak"]`
        return await self.client._run(self._ops.get(self.name, key))

    async def get(self, key: str, default: Any = None, *, consistency: Optional[str] = None) -> Any:
        """The value of key, or default if it is absent."""
        try:
            return await self.client._run(self._ops.get(self.name, key, consistency))
        except KeyNotFound:
            return default

    async def set(self, key: str, value: Any, *, idempotency_key: Optional[str] = None) -> None:
        """Writes key = value."""
        await self.client._run(self._ops.set(self.name, key, value, idempotency_key))

    async def delete(self, key: str, *, idempotency_key: Optional[str] = None) -> None:
        """Deletes key; KeyNotFound if it is absent."""
        await self.client._run(self._ops.delete(self.name, key, idempotency_key))

    async def contains(self, key: str) -> bool:
        """Whether key exists."""
        return await self.client._run(self._ops.contains(self.name, key))  # type: ignore[no-any-return]

    async def count(self) -> int:
        """The exact number of keys."""
        return await self.client._run(self._ops.count(self.name))  # type: ignore[no-any-return]

    async def get_many(self, keys: Iterable[str], *, consistency: Optional[str] = None) -> dict[str, Any]:
        """{key: value} for those of keys that exist (chunked)."""
        return await self.client._run(self._ops.get_many(self.name, keys, consistency))  # type: ignore[no-any-return]

    async def set_many(
        self, items: Union[Mapping[str, Any], Iterable[tuple[str, Any]]], *, idempotency_key: Optional[str] = None
    ) -> int:
        """Writes items in batches; see :meth:`srdd.RDD.set_many`."""
        return await self.client._run(self._ops.set_many(self.name, items, idempotency_key))  # type: ignore[no-any-return]

    async def delete_many(self, keys: Iterable[str], *, idempotency_key: Optional[str] = None) -> int:
        """Deletes keys in batches; returns how many existed."""
        return await self.client._run(self._ops.delete_many(self.name, keys, idempotency_key))  # type: ignore[no-any-return]

    def scan(self, prefix: str = "", *, page_size: int = SCAN_PAGE) -> AsyncIterator[tuple[str, Any]]:
        """``async for key, value in states.scan("a"):`` in key order."""
        return self.client._iter(self._ops.scan(self.name, prefix, page_size))

    async def describe(self) -> RDDInfo:
        return await self.client._run(self._ops.describe(self.name))  # type: ignore[no-any-return]

    async def drop(self) -> None:
        await self.client._run(self._ops.drop(self.name))

    async def load(
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
        """See :meth:`srdd.RDD.load`."""
        return await self.client._run(  # type: ignore[no-any-return]
            self._ops.load(
                self.name, path, fmt, mode=mode, key_column=key_column, value_column=value_column,
                progress=progress, wait=wait, poll=poll, timeout=timeout,
            )
        )

    async def save(self, path: str, fmt: Optional[str] = None, *, overwrite: bool = False) -> SaveResult:
        return await self.client._run(self._ops.save(self.name, path, fmt, overwrite))  # type: ignore[no-any-return]

    async def checkpoint(self) -> CheckpointResult:
        return await self.client._run(self._ops.checkpoint(self.name))  # type: ignore[no-any-return]
