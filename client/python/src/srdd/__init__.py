"""srdd: a Python client for srdd's shared RDDs.

>>> import srdd
>>> client = srdd.Client(["http://127.0.0.1:8998"])
>>> states = client.create_rdd("states")
>>> states.set("hi", "Hawaii")
>>> states.get("hi")
'Hawaii'

See :class:`Client`, :class:`RDD`, :class:`AsyncClient` and the exceptions
(all subclasses of :class:`SrddError`).
"""

from ._async import AsyncClient, AsyncRDD
from ._errors import (
    ERROR_CODES,
    BadRequest,
    Busy,
    Conflict,
    ConnectionFailed,
    Exists,
    Forbidden,
    ForwardLoop,
    IdempotencyMismatch,
    InsufficientStorage,
    InternalError,
    KeyNotFound,
    LoadFailed,
    Lost,
    MethodNotAllowed,
    Moved,
    NoLeader,
    NotFound,
    OutcomeUnknown,
    Recovering,
    SrddError,
    Starting,
    TooLarge,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)
from ._model import CheckpointResult, LoadStatus, RDDInfo, SaveResult
from ._sync import RDD, Client
from ._version import __version__

__all__ = [
    "AsyncClient", "AsyncRDD", "Client", "RDD",
    "RDDInfo", "LoadStatus", "SaveResult", "CheckpointResult",
    "ERROR_CODES", "SrddError", "ConnectionFailed", "BadRequest", "Unauthorized", "Forbidden",
    "NotFound", "KeyNotFound", "MethodNotAllowed", "Conflict", "Exists", "Busy", "Lost", "TooLarge",
    "UnsupportedMediaType", "IdempotencyMismatch", "TooManyRequests", "InternalError", "Unavailable",
    "Recovering", "Starting", "NoLeader", "Moved", "OutcomeUnknown", "ForwardLoop", "InsufficientStorage", "LoadFailed",
    "__version__",
]
