"""The failover rule on real sockets, one layer (as client/go's
failover_test.go): a node that cannot be dialled is skipped; a node that
took a write and then dropped the connection is not, and the write raises
OutcomeUnknown with its Idempotency-Key; a read moves on."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

import srdd
from conftest import SocketServer, free_addr


class TinyServer(SocketServer):
    """Answers each request with a fixed response, or (drop=True) reads the
    request and closes the connection without a word."""

    def __init__(self, body: bytes = b'{"rdds":[{"name":"states"}]}', drop: bool = False) -> None:
        self.body, self.drop = body, drop
        self.requests: list[bytes] = []
        super().__init__(16)

    def _one(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, rest = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v)
                while len(rest) < length:
                    rest += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + rest[:length])
                buf = rest[length:]
                if self.drop:
                    return  # took the request, then vanished
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(self.body), self.body))


@pytest.fixture
def live() -> Iterator[TinyServer]:
    s = TinyServer()
    yield s
    s.close()


@pytest.fixture
def dropper() -> Iterator[TinyServer]:
    s = TinyServer(drop=True)
    yield s
    s.close()


def test_fails_over_to_a_node_that_can_be_dialled(live: TinyServer):
    dead = "http://" + free_addr()
    with srdd.Client([dead, live.url], trust_env=False) as c:
        assert [r.name for r in c.rdds()] == ["states"]
        # The live node is remembered: the next call goes straight to it.
        assert c.current_node == live.url
        c.rdds()
        assert len(live.requests) == 2


def test_all_nodes_down_is_connection_failed():
    with srdd.Client([free_addr(), free_addr()], trust_env=False) as c:
        with pytest.raises(srdd.ConnectionFailed, match="no node of"):
            c.rdds()


def test_a_write_that_reached_a_node_is_not_sent_elsewhere(dropper: TinyServer, live: TinyServer):
    with srdd.Client([dropper.url, live.url], trust_env=False) as c:
        states = c.rdd("states")
        with pytest.raises(srdd.OutcomeUnknown) as ei:
            states.set("ak", "Alaska")
        assert len(dropper.requests) == 1 and live.requests == []
        key = ei.value.idempotency_key
        assert key and b"Idempotency-Key: " + key.encode() in dropper.requests[0]
        # The caller's retry with that key sends the same key.
        with pytest.raises(srdd.OutcomeUnknown):
            states.set("ak", "Alaska", idempotency_key=key)
        assert b"Idempotency-Key: " + key.encode() in dropper.requests[1] and live.requests == []


def test_a_read_that_reached_a_node_moves_on(dropper: TinyServer, live: TinyServer):
    with srdd.Client([dropper.url, live.url], trust_env=False) as c:
        assert [r.name for r in c.rdds()] == ["states"]
        assert len(dropper.requests) == 1 and len(live.requests) == 1
        assert c.current_node == live.url


def test_async_client_follows_the_same_rule(dropper: TinyServer, live: TinyServer):
    async def go() -> None:
        async with srdd.AsyncClient([free_addr(), dropper.url, live.url], trust_env=False) as c:
            with pytest.raises(srdd.OutcomeUnknown):
                await c.rdd("states").delete("ak")
            assert live.requests == []
            assert [r.name for r in await c.rdds()] == ["states"]
            assert c.current_node == live.url

    asyncio.run(go())


def test_write_headers_and_body(live: TinyServer):
    with srdd.Client(live.url.removeprefix("http://"), token="t0k", trust_env=False) as c:
        c.rdd("a/b").set("k y", {"n": [1, 2.5, None, "é"]})
    req = live.requests[0]
    head, _, body = req.partition(b"\r\n\r\n")
    assert head.startswith(b"PUT /v1/rdds/a%2Fb/keys/k%20y HTTP/1.1")
    assert b"Authorization: Bearer t0k" in head and b"Content-Type: application/json" in head
    assert body.decode() == '{"n":[1,2.5,null,"é"]}'
    # Values JSON cannot hold fail before anything is sent.
    with srdd.Client(live.url, trust_env=False) as c:
        with pytest.raises(ValueError):
            c.rdd("x").set("k", float("nan"))
        with pytest.raises(TypeError):
            c.rdd("x").set("k", object())
    assert len(live.requests) == 1
