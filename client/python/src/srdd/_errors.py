"""Typed exceptions for srdd's error codes.

Every error response of srdd is ``{"error": {"code", "message"}}`` (see
docs/ARCHITECTURE.md invariant 7). :data:`ERROR_CODES` maps each wire code
to the status the server sends with it and the exception raised for it;
``tests/test_errors.py`` reads httpapi/*.go so this table cannot drift from
the server's.
"""

from __future__ import annotations

from typing import Optional


class SrddError(Exception):
    """Base of every error this client raises.

    Attributes:
        status: the HTTP status (0 when no node answered).
        code: srdd's error code (``"rdd_not_found"``, ``"recovering"``, ...).
        message: the server's message.
        retry_after: seconds from the ``Retry-After`` header, if any.
        idempotency_key: for a write, the ``Idempotency-Key`` it was sent
            with; pass it back as ``idempotency_key=`` to retry the same
            write without applying it twice.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str = "",
        retry_after: Optional[float] = None,
        idempotency_key: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.idempotency_key = idempotency_key

    def __str__(self) -> str:
        if self.status:
            return f"{self.status} {self.code}: {self.message}"
        return self.message


class ConnectionFailed(SrddError):
    """No node of the client's list could be dialled: nothing was sent."""


class BadRequest(SrddError):
    """400: the request was refused as invalid; nothing changed."""


class Unauthorized(SrddError):
    """401: no or wrong credentials."""


class Forbidden(SrddError):
    """403: the caller may not do this (role, file root, host, cluster key)."""


class NotFound(SrddError):
    """404: no such shared RDD, session, statement, node or route."""


class KeyNotFound(NotFound, KeyError):
    """404 ``key_not_found``: the key is absent (also a :class:`KeyError`,
    so a handle behaves like a mapping)."""

    def __str__(self) -> str:  # KeyError would print repr(args)
        return SrddError.__str__(self)


class MethodNotAllowed(SrddError):
    """405: the route exists but not with this method."""


class Conflict(SrddError):
    """409: the request conflicts with the current state (``exists``,
    ``busy``, ``session_dead``, ``not_durable``...)."""


class Exists(Conflict):
    """409 ``exists``: an RDD or session of that name exists already."""


class Busy(Conflict):
    """409 ``busy``: a bulk load is already running on this RDD."""


class Lost(SrddError):
    """410 ``lost``: the session holding a memory-mode RDD died; its data
    is gone until the RDD is dropped and re-created."""


class TooLarge(SrddError):
    """413/431: a key, value, body or header over the server's limits."""


class UnsupportedMediaType(SrddError):
    """415: a mutating call without a JSON content type (CSRF guard)."""


class IdempotencyMismatch(SrddError):
    """422: an Idempotency-Key reused with a different request."""


class TooManyRequests(SrddError):
    """429: a limit (``limit_reached``) or a session's queue (``queue_full``)."""


class InternalError(SrddError):
    """500: a bug on the server (logged there)."""


class Unavailable(SrddError):
    """503: the node or the owner cannot serve this now. With
    :attr:`retry_after` set the server asks to retry after that many
    seconds, which the client does on its own up to its ``retry_timeout``."""


class Recovering(Unavailable):
    """503 ``recovering``: a durable RDD is being rebuilt (Retry-After)."""


class Starting(Unavailable):
    """503 ``starting``: a session has not come up yet (Retry-After)."""


class NoLeader(Unavailable):
    """503 ``no_leader``: the cluster has no Raft leader now (Retry-After)."""


class Moved(Unavailable):
    """503 ``moved``: the RDD moved to another node (Retry-After)."""


class OutcomeUnknown(Unavailable):
    """The write may or may not have been applied: the server answered
    503 ``outcome_unknown``, or the connection failed after the request was
    sent. Retry it with the same ``idempotency_key`` (:attr:`idempotency_key`)
    and a durable RDD applies it at most once."""


class InsufficientStorage(SrddError):
    """507 ``insufficient_storage``: the node's data dir or checkpoint dir
    is full; the write was refused and not applied. Writes pass again once
    space is freed; reads go on meanwhile."""


class ForwardLoop(SrddError):
    """508: nodes kept forwarding the request to each other."""


# wire code -> (status, exception class). One row per code the server
# sends; tests/test_errors.py checks it against httpapi/*.go.
ERROR_CODES: dict[str, tuple[int, type[SrddError]]] = {
    "invalid": (400, BadRequest),
    "bad_http": (400, BadRequest),
    "remote_uri_not_allowed": (400, BadRequest),
    "conf_not_allowed": (400, BadRequest),
    "conf_too_large": (400, BadRequest),
    "unauthorized": (401, Unauthorized),
    "forbidden": (403, Forbidden),
    "forbidden_path": (403, Forbidden),
    "forbidden_host": (403, Forbidden),
    "not_admitted": (403, Forbidden),
    "plaintext_cluster": (403, Forbidden),
    "rdd_not_found": (404, NotFound),
    "file_not_found": (404, NotFound),
    "key_not_found": (404, KeyNotFound),
    "session_not_found": (404, NotFound),
    "batch_not_found": (404, NotFound),
    "statement_not_found": (404, NotFound),
    "node_not_found": (404, NotFound),
    "no_route": (404, NotFound),
    "method_not_allowed": (405, MethodNotAllowed),
    "exists": (409, Exists),
    "busy": (409, Busy),
    "session_inactive": (409, Conflict),
    "session_dead": (409, Conflict),
    "not_durable": (409, Conflict),
    "node_removed": (409, Conflict),
    "address_in_use": (409, Conflict),
    "lost": (410, Lost),
    "too_large": (413, TooLarge),
    "headers_too_large": (431, TooLarge),
    "unsupported_media_type": (415, UnsupportedMediaType),
    "request_timeout": (408, Unavailable),
    "idempotency_mismatch": (422, IdempotencyMismatch),
    "limit_reached": (429, TooManyRequests),
    "queue_full": (429, TooManyRequests),
    "internal": (500, InternalError),
    "recovering": (503, Recovering),
    "starting": (503, Starting),
    "no_leader": (503, NoLeader),
    "moved": (503, Moved),
    "outcome_unknown": (503, OutcomeUnknown),
    "unavailable": (503, Unavailable),
    "registry_halted": (503, Unavailable),
    "owner_unavailable": (503, Unavailable),
    "insufficient_storage": (507, InsufficientStorage),
    "forward_loop": (508, ForwardLoop),
}

# For a code this client does not know (a newer server), the class by status.
_BY_STATUS: dict[int, type[SrddError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    410: Lost,
    413: TooLarge,
    415: UnsupportedMediaType,
    422: IdempotencyMismatch,
    429: TooManyRequests,
    431: TooLarge,
    500: InternalError,
    503: Unavailable,
    507: InsufficientStorage,
    508: ForwardLoop,
}


def error_class(status: int, code: str) -> type[SrddError]:
    """The exception class for an error answer: by code, else by status."""
    row = ERROR_CODES.get(code)
    if row is not None:
        return row[1]
    return _BY_STATUS.get(status, SrddError)


class LoadFailed(SrddError):
    """A bulk load ended in state ``failed`` (the message says why)."""
