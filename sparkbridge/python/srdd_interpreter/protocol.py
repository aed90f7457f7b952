"""Frames: a 4-byte big-endian unsigned length, then one MessagePack map.

Strings stay ``str`` and binary stays ``bytes`` on both sides
(``use_bin_type=True`` when packing, ``raw=False`` when unpacking).
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO, Optional

import msgpack

MAX_FRAME_SIZE = 64 * 1024 * 1024  # 64 MiB, the payload limit of one frame
_HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """The byte stream is not a valid frame sequence; the connection must close."""


class FrameTooLarge(ProtocolError):
    """A frame (read or about to be written) exceeds the size limit."""


def encode_frame(msg: dict[str, Any], max_size: int = MAX_FRAME_SIZE) -> bytes:
    """Pack ``msg`` into one frame (header + payload).

    Raises FrameTooLarge when the payload exceeds ``max_size``; msgpack's own
    errors (TypeError, OverflowError, ValueError) propagate for values that
    cannot be packed.
    """
    if not isinstance(msg, dict):
        raise TypeError("a frame must hold a map, got %s" % type(msg).__name__)
    payload = msgpack.packb(msg, use_bin_type=True)
    if len(payload) > max_size:
        raise FrameTooLarge("frame of %d bytes exceeds the %d byte limit" % (len(payload), max_size))
    return _HEADER.pack(len(payload)) + payload


def decode_payload(payload: bytes) -> dict[str, Any]:
    """Unpack one frame payload; it must be exactly one MessagePack map."""
    try:
        msg = msgpack.unpackb(payload, raw=False)
    except Exception as exc:  # ExtraData, FormatError, StackError, UnicodeDecodeError, ...
        raise ProtocolError("undecodable frame: %s: %s" % (type(exc).__name__, exc)) from exc
    if not isinstance(msg, dict):
        raise ProtocolError("frame holds %s, not a map" % type(msg).__name__)
    return msg


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    chunks: list[bytes] = []
    remaining = n
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: BinaryIO, max_size: int = MAX_FRAME_SIZE) -> Optional[dict[str, Any]]:
    """Read one frame from a binary stream.

    Returns None on a clean end of stream (EOF before any byte of a frame).
    Raises ProtocolError on a truncated frame, an undecodable payload or a
    payload that is not a map, and FrameTooLarge (without reading the
    payload) when the announced length exceeds ``max_size``.
    """
    header = _read_exact(stream, _HEADER.size)
    if not header:
        return None
    if len(header) < _HEADER.size:
        raise ProtocolError("connection closed inside a frame header")
    (length,) = _HEADER.unpack(header)
    if length > max_size:
        raise FrameTooLarge("frame of %d bytes exceeds the %d byte limit" % (length, max_size))
    payload = _read_exact(stream, length)
    if len(payload) < length:
        raise ProtocolError("connection closed inside a frame (%d of %d bytes)" % (len(payload), length))
    return decode_payload(payload)


def write_frame(stream: BinaryIO, msg: dict[str, Any], max_size: int = MAX_FRAME_SIZE) -> None:
    """Write one frame and flush. Nothing is written if encoding fails."""
    data = encode_frame(msg, max_size)
    stream.write(data)
    stream.flush()
