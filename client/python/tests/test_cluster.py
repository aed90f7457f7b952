"""Failover across a real three-node cluster (bin/srdd --join): a stopped
node is skipped, and a write whose answer was lost is retried with its
Idempotency-Key without applying twice."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator

import pytest

import srdd
from conftest import PATIENCE, Cluster, Proc, SocketServer, members


class DroppingProxy(SocketServer):
    """Forwards requests to a node and drops the connection as soon as the
    node starts to answer: the request was served, its answer is lost."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.served = 0
        super().__init__(8)

    def _one(self, client: socket.socket) -> None:
        up = socket.create_connection(self.upstream)

        def pump() -> None:
            try:
                while data := client.recv(65536):
                    up.sendall(data)
            except OSError:
                pass

        threading.Thread(target=pump, daemon=True).start()
        try:
            if up.recv(1):  # the node answers: it has served the request
                self.served += 1
        except OSError:
            pass
        for s in (client, up):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


@pytest.fixture(scope="module")
def rdd_name(cluster: Cluster) -> Iterator[str]:
    name = f"fo_{uuid.uuid4().hex[:8]}"
    with srdd.Client([p.url for p in cluster.nodes], trust_env=False, retry_timeout=PATIENCE) as c:
        r = c.create_rdd(name)  # durable: writes go through Raft
        r.set_many({f"k{i:02}": i for i in range(20)})
        yield name


def test_stopped_node_is_skipped(cluster: Cluster, rdd_name: str):
    with srdd.Client([p.url for p in cluster.nodes], trust_env=False, retry_timeout=PATIENCE) as c:
        owner = c.describe_rdd(rdd_name).node
    leader = next(m["id"] for m in members(cluster.status()) if m.get("leader"))
    # The victim is neither the RDD's owner nor the Raft leader, so what
    # remains keeps serving; the client talks to it first.
    victim = next(p for p in cluster.nodes if p.id not in (owner, leader))
    order: list[Proc] = [victim] + [p for p in cluster.nodes if p is not victim]
    with srdd.Client([p.url for p in order], trust_env=False, retry_timeout=PATIENCE) as c:
        r = c.rdd(rdd_name)
        assert r["k03"] == 3 and c.current_node == victim.url
        victim.stop()
        cluster.stopped.add(victim.id)
        # Writes and reads go on through the next node.
        r["after-stop"] = "written"
        assert c.current_node != victim.url
        assert r.get("after-stop", consistency="linearizable") == "written"
        assert r.set_many({"m1": 1, "m2": 2}) == 2
        assert r.get_many(["k00", "m2"]) == {"k00": 0, "m2": 2}
        assert [k for k, _ in r.scan("k1")] == [f"k1{i}" for i in range(10)]
        assert len(r) == 23
        assert rdd_name in [x.name for x in c.rdds()]
    # A client of the stopped node alone cannot reach anything.
    with srdd.Client([victim.url], trust_env=False, connect_timeout=2) as alone:
        with pytest.raises(srdd.ConnectionFailed):
            alone.rdd(rdd_name).get("k00")


def test_lost_answer_is_outcome_unknown_and_retry_applies_once(cluster: Cluster, rdd_name: str):
    live = [p for p in cluster.nodes if p.id not in cluster.stopped]
    proxy = DroppingProxy(live[0].url)
    try:
        others = [p.url for p in live]
        with srdd.Client([proxy.url] + others, trust_env=False, retry_timeout=PATIENCE) as via_proxy, \
                srdd.Client(others, trust_env=False, retry_timeout=PATIENCE) as direct:
            r, d = via_proxy.rdd(rdd_name), direct.rdd(rdd_name)
            d["victim"] = "here"
            # The delete reaches the node and is applied; its answer is lost.
            with pytest.raises(srdd.OutcomeUnknown) as ei:
                r.delete("victim")
            assert proxy.served == 1
            key = ei.value.idempotency_key
            assert key
            assert "victim" not in d  # it was applied...
            # ...and was not re-sent to another node by the client.
            # Retried with its key it is answered like the first time (no
            # 404 for a key already deleted) and applies nothing again.
            d.delete("victim", idempotency_key=key)
            d["victim"] = "back"
            d.delete("victim", idempotency_key=key)
            assert d["victim"] == "back"
            # Same for a set: the retry does not overwrite a later write.
            with pytest.raises(srdd.OutcomeUnknown) as ei2:
                r.set("counter", 1)
            d["counter"] = 2
            d.set("counter", 1, idempotency_key=ei2.value.idempotency_key)
            assert d["counter"] == 2
            # Reads through the proxy move on to a node that answers.
            assert r["counter"] == 2
    finally:
        proxy.close()
