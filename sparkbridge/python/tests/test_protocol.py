from __future__ import annotations

import io
import struct

import pytest

from srdd_interpreter.protocol import (
    MAX_FRAME_SIZE,
    FrameTooLarge,
    ProtocolError,
    encode_frame,
    read_frame,
    write_frame,
)


def test_round_trip_keeps_str_and_bytes_apart() -> None:
    msgs = [
        {"id": 1, "op": "kv.set", "args": {"name": "states", "items": [["ak", b'"Alaska"'], ["é", b"{}"]]}},
        {"id": 2, "ok": True, "result": {"values": [b"1", None]}},
        {"id": 0, "event": "ready", "data": {"spark_version": "4.3.0", "app_id": "local-1", "master": "local[2]"}},
    ]
    buf = io.BytesIO()
    for msg in msgs:
        write_frame(buf, msg)
    buf.seek(0)
    got = [read_frame(buf) for _ in msgs]
    assert got == msgs
    assert isinstance(got[0]["args"]["items"][0][0], str)
    assert isinstance(got[0]["args"]["items"][0][1], bytes)
    assert read_frame(buf) is None  # clean EOF at a frame boundary


def test_header_is_big_endian_length() -> None:
    frame = encode_frame({"id": 7, "op": "ping", "args": {}})
    (length,) = struct.unpack(">I", frame[:4])
    assert length == len(frame) - 4


def test_oversized_frame_rejected_on_read_without_reading_payload() -> None:
    header = struct.pack(">I", MAX_FRAME_SIZE + 1)
    with pytest.raises(FrameTooLarge):
        read_frame(io.BytesIO(header))  # no payload follows: must fail on the length alone


def test_oversized_frame_rejected_on_write() -> None:
    buf = io.BytesIO()
    with pytest.raises(FrameTooLarge):
        write_frame(buf, {"id": 1, "blob": b"x" * 2048}, max_size=1024)
    assert buf.getvalue() == b""  # nothing written
    write_frame(buf, {"id": 1, "blob": b"x" * 100}, max_size=1024)
    buf.seek(0)
    assert read_frame(buf, max_size=1024) == {"id": 1, "blob": b"x" * 100}


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x00",  # truncated header
        struct.pack(">I", 10) + b"\x81",  # truncated payload
        struct.pack(">I", 1) + b"\x01",  # payload is an int, not a map
        struct.pack(">I", 2) + b"\x81\xc1",  # invalid msgpack byte
    ],
)
def test_malformed_frames_are_protocol_errors(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        read_frame(io.BytesIO(data))
