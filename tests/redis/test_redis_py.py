"""redis-py, unchanged, against srdd's Redis port (issue 26): sync,
pipelines and asyncio, in RESP2 and RESP3, through a node that does not
hold the RDD (every data call is forwarded to its owner)."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio

from conftest import RedisCluster, rest


def client(c: RedisCluster, token: str | None, protocol: int = 2) -> redis.Redis:
    return redis.Redis(host=c.redis_host, port=c.redis_port, password=token, protocol=protocol,
                       decode_responses=True, socket_timeout=30)


@pytest.mark.parametrize("protocol", [2, 3])
def test_seed_flow(cluster: RedisCluster, protocol: int) -> None:
    r = client(cluster, cluster.tokens["ana"], protocol)
    assert r.ping()
    assert r.set("states:ak", "Alaska")
    assert r.get("states:ak") == "Alaska"
    # The same data over REST, on the owner.
    st, body = rest("GET", cluster.owner_http + "/v1/rdds/states/keys/ak", cluster.tokens["ana"])
    assert st == 200 and body["value"] == "Alaska"
    st, _ = rest("PUT", cluster.owner_http + "/v1/rdds/states/keys/hi", cluster.tokens["ana"], "Hawaii")
    assert st == 204
    assert r.get("states:hi") == "Hawaii"
    assert r.get("states:none") is None
    with pytest.raises(redis.ResponseError, match="no such shared RDD 'states2'"):
        r.get("states2:x")


def test_batches_and_pipeline(cluster: RedisCluster) -> None:
    r = client(cluster, cluster.tokens["ana"])
    assert r.mset({"states:ca": "California", "states:ny": "New York"})
    assert r.mget("states:ca", "states:none", "states:ny") == ["California", None, "New York"]
    with pytest.raises(redis.ResponseError, match="one shared RDD"):
        r.mset({"states:a": "1", "other:b": "2"})
    with r.pipeline(transaction=False) as p:
        for i in range(40):
            p.set(f"states:p{i:02d}", str(i))
        for i in range(40):
            p.get(f"states:p{i:02d}")
        out = p.execute()
    assert out[:40] == [True] * 40 and out[40:] == [str(i) for i in range(40)]
    assert r.exists("states:p00", "states:p01", "states:none") == 2
    assert r.delete(*[f"states:p{i:02d}" for i in range(40)]) == 40


def test_scan(cluster: RedisCluster) -> None:
    r = client(cluster, cluster.tokens["ana"], 3)
    r.mset({f"states:s{i:03d}": str(i) for i in range(25)})
    keys = list(r.scan_iter(match="states:s*", count=7))
    assert keys == [f"states:s{i:03d}" for i in range(25)]
    assert r.keys("states:s00*") == [f"states:s00{i}" for i in range(10)]
    with pytest.raises(redis.ResponseError, match="MATCH"):
        r.scan(0)
    r.delete(*keys)


def test_auth_failures(cluster: RedisCluster) -> None:
    with pytest.raises(redis.AuthenticationError):
        client(cluster, None).get("states:ak")
    with pytest.raises(redis.AuthenticationError):
        client(cluster, "not-a-token").ping()
    bob = client(cluster, cluster.tokens["bob"])
    assert bob.get("states:ak") == "Alaska"
    with pytest.raises(redis.exceptions.NoPermissionError):
        bob.set("states:ak", "x")


def test_asyncio(cluster: RedisCluster) -> None:
    async def main() -> list:
        r = redis.asyncio.Redis(host=cluster.redis_host, port=cluster.redis_port, password=cluster.tokens["ana"],
                                protocol=3, decode_responses=True)
        try:
            await r.set("states:tx", "Texas")
            async with r.pipeline(transaction=False) as p:
                p.get("states:tx")
                p.get("states:ak")
                p.mget("states:tx", "states:none")
                out = await p.execute()
            out.append(await asyncio.gather(*(r.get("states:ak") for _ in range(10))))
            return out
        finally:
            await r.aclose()

    got = asyncio.run(main())
    assert got[:3] == ["Texas", "Alaska", ["Texas", None]]
    assert got[3] == ["Alaska"] * 10
