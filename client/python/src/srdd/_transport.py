"""What the sync and async clients share about reaching nodes: the node
list, TLS and credentials, and the failover rule.

The failover rule is the Go SDK's (client/go/client.go): a request goes to
the node that answered last and moves on to the next only when a node
cannot be dialled, so a request that may have reached a node is never sent
to another one. A read (GET, batch get, scan, count) is the exception: it
changes nothing, so it may be sent again after a failure mid-way. A write
that fails after it was sent raises :class:`OutcomeUnknown` with its
Idempotency-Key, to be retried by the caller with that key.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from typing import Any, Optional, Sequence, Union

import httpx

from ._errors import ConnectionFailed, OutcomeUnknown, SrddError
from ._model import Ops, Request, Response
from ._version import __version__

Nodes = Union[str, Sequence[str]]


def parse_nodes(nodes: Nodes, https: bool) -> list[str]:
    """Base URLs from a list or a comma-separated string; an address
    without a scheme gets https when a CA is given, else http."""
    items = nodes.split(",") if isinstance(nodes, str) else list(nodes)
    out = []
    for a in items:
        a = a.strip()
        if not a:
            continue
        if "://" not in a:
            a = ("https://" if https else "http://") + a
        out.append(a.rstrip("/"))
    if not out:
        raise ValueError("srdd client: no node address")
    return out


def http_options(
    *,
    token: Optional[str],
    auth: Optional[tuple[str, str]],
    ca_cert: Optional[str],
    timeout: float,
    connect_timeout: float,
    trust_env: bool,
) -> dict[str, Any]:
    """Keyword arguments for httpx.Client / httpx.AsyncClient."""
    if token and auth:
        raise ValueError("give token= or auth=, not both")
    headers = {"User-Agent": f"srdd-python/{__version__}"}
    if token:
        headers["Authorization"] = "Bearer " + token
    opts: dict[str, Any] = {
        "headers": headers,
        "timeout": httpx.Timeout(timeout, connect=connect_timeout),
        "trust_env": trust_env,
        "follow_redirects": False,
    }
    if auth:
        opts["auth"] = httpx.BasicAuth(auth[0], auth[1])
    if ca_cert:
        # A context of our own: the CA given wins over SSL_CERT_FILE & co.
        ctx = ssl.create_default_context(cafile=ca_cert)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        opts["verify"] = ctx
    return opts


# Errors raised before any byte of the request left: another node may take it.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


class Nodes_:
    """The node list and the index of the node that answered last."""

    def __init__(self, bases: list[str]) -> None:
        self.bases = bases
        self._good = 0
        self._lock = threading.Lock()

    @property
    def good(self) -> int:
        """Index of the node the next request goes to first."""
        return self._good

    def order(self, req: Request) -> list[int]:
        """The nodes to try, in order. A read may also be tried a second
        time on the one node there is."""
        n, start = len(self.bases), self._good
        tries = [(start + i) % n for i in range(n)]
        if req.idempotent and n == 1:
            tries.append(start)
        return tries

    def answered(self, at: int) -> None:
        with self._lock:
            self._good = at


def not_sent_error(bases: list[str], err: Optional[BaseException]) -> SrddError:
    return ConnectionFailed(f"no node of {bases} could be reached: {err}")


def maybe_sent_error(req: Request, base: str, err: BaseException) -> SrddError:
    return OutcomeUnknown(
        f"{req.method} {req.path} to {base} failed after it was sent ({type(err).__name__}: {err}); "
        f"it may have been applied: retry with idempotency_key={req.retry_key!r}",
        code="outcome_unknown",
        idempotency_key=req.retry_key,
    )


class ClientBase:
    """What :class:`srdd.Client` and :class:`srdd.AsyncClient` share: their
    arguments (documented on :class:`srdd.Client`), the nodes they fail over
    between, the operations (``_model.Ops``) and an httpx client of the
    subclass's kind (``_HTTP``)."""

    _HTTP: Any  # httpx.Client or httpx.AsyncClient
    _http: Any

    def __init__(
        self,
        nodes: Nodes = "http://127.0.0.1:8998",
        *,
        token: Optional[str] = None,
        auth: Optional[tuple[str, str]] = None,
        ca_cert: Optional[str] = None,
        timeout: float = 300.0,
        connect_timeout: float = 5.0,
        retry_timeout: float = 30.0,
        consistency: Optional[str] = None,
        trust_env: bool = True,
        max_batch_keys: int = 10_000,
    ) -> None:
        self._nodes = Nodes_(parse_nodes(nodes, https=ca_cert is not None))
        self._ops = Ops(retry_timeout=retry_timeout, consistency=consistency, max_batch_keys=max_batch_keys)
        self._http = self._HTTP(
            **http_options(
                token=token, auth=auth, ca_cert=ca_cert, timeout=timeout,
                connect_timeout=connect_timeout, trust_env=trust_env,
            )
        )

    @property
    def nodes(self) -> list[str]:
        """The nodes' base URLs, in the order given."""
        return list(self._nodes.bases)

    @property
    def current_node(self) -> str:
        """The node the next request goes to first (the last that answered)."""
        return self._nodes.bases[self._nodes.good]

    # One request's tries, the same for both clients: only the I/O in their
    # _send loops (blocking or awaited) differs.

    def _tries(self, req: Request) -> Iterator[tuple[int, str]]:
        """(index, base URL) of each node to try req on, in order."""
        for at in self._nodes.order(req):
            yield at, self._nodes.bases[at]

    @staticmethod
    def _request_args(req: Request, base: str) -> dict[str, Any]:
        """Keyword arguments of httpx's request() for req sent to base."""
        return {"method": req.method, "url": base + req.path, "params": req.params,
                "content": req.body, "headers": req.headers()}

    def _answered(self, at: int, r: httpx.Response) -> Response:
        """The node at index at answered r: the next request goes there first."""
        self._nodes.answered(at)
        return Response(r.status_code, r.headers, r.content)

    @staticmethod
    def _failed(req: Request, base: str, err: httpx.TransportError) -> httpx.TransportError:
        """A try that failed: err is returned when the next node may take
        the request (it was not sent, or it is a read); a write that may
        have reached base raises OutcomeUnknown."""
        if not isinstance(err, NOT_SENT) and not req.idempotent:
            raise maybe_sent_error(req, base, err) from err
        return err

    def _none_answered(self, last: Optional[BaseException]) -> SrddError:
        return not_sent_error(self._nodes.bases, last)
