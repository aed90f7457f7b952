"""The sync and async clients against one real node (users file, TLS)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

import srdd
from conftest import PATIENCE, Node


def name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def client(node: Node) -> Iterator[srdd.Client]:
    with srdd.Client([node.url], auth=node.auth, ca_cert=node.ca, trust_env=False, retry_timeout=PATIENCE) as c:
        yield c


@pytest.fixture(scope="module")
def states(client: srdd.Client) -> srdd.RDD:
    # The first create starts the node's default session (Spark): slow.
    return client.create_rdd(name("states"))


def test_seed_quickstart(client: srdd.Client, states: srdd.RDD):
    # The seed article's two calls, on a first-class shared RDD.
    states.set("ak", "Alaska")
    assert states.get("ak") == "Alaska"
    states.set("hi", "Hawaii")
    assert states.get("hi") == "Hawaii"
    assert states.name in [r.name for r in client.rdds()]
    info = states.describe()
    assert info.mode == "durable" and info.state == "ready" and info.keys is not None and info.keys >= 2


def test_mapping_behaviour(client: srdd.Client):
    m = client.create_rdd(name("mapping"), mode="memory")
    try:
        assert len(m) == 0 and "ak" not in m
        m["ak"] = "Alaska"
        m["hi"] = {"name": "Hawaii", "pop": 1455271, "islands": ["Oahu", "Maui"], "capital": True}
        assert m["hi"] == {"name": "Hawaii", "pop": 1455271, "islands": ["Oahu", "Maui"], "capital": True}
        assert "ak" in m and "zz" not in m and 42 not in m  # type: ignore[operator]
        assert len(m) == 2
        assert list(m) == ["ak", "hi"]
        assert dict(m.items()) == {"ak": "Alaska", "hi": m["hi"]}
        assert list(m.values()) == ["Alaska", m["hi"]] and list(m.keys()) == ["ak", "hi"]
        with pytest.raises(KeyError):
            m["zz"]
        with pytest.raises(srdd.KeyNotFound) as ei:
            m["zz"]
        assert ei.value.status == 404 and ei.value.code == "key_not_found"
        assert m.get("zz") is None and m.get("zz", 7) == 7
        del m["ak"]
        assert "ak" not in m and len(m) == 1
        with pytest.raises(KeyError):
            del m["ak"]
        # Keys with characters that need escaping round-trip.
        odd = 'a/b "c"?d=e&f%20 é'
        m[odd] = 1.5
        assert m[odd] == 1.5 and odd in m
        assert m.pop(odd) == 1.5 and odd not in m
        m.update({"u1": 1}, u2=2)
        assert m.get_many(["u1", "u2"]) == {"u1": 1, "u2": 2}
        assert m.describe().mode == "memory"
    finally:
        m.drop()
    with pytest.raises(srdd.NotFound) as ei2:
        m.describe()
    assert ei2.value.code == "rdd_not_found" and not isinstance(ei2.value, KeyError)


def raw_post(node: Node, path: str, body: bytes) -> httpx.Response:
    with httpx.Client(verify=__import__("ssl").create_default_context(cafile=node.ca), auth=node.auth,
                      trust_env=False, timeout=120) as h:
        return h.post(node.url + path, content=body, headers={"Content-Type": "application/json"})


def test_get_many_and_set_many_chunk_past_the_batch_limit(node: Node, states: srdd.RDD):
    items = {f"chunk:{i:05}": i for i in range(12_000)}
    # The server refuses one request this big: the client must chunk it.
    r = raw_post(node, f"/v1/rdds/{states.name}/set", json.dumps({"items": items}).encode())
    assert r.status_code == 400 or r.status_code == 413, r.text
    assert states.set_many(items) == 12_000
    got = states.get_many(list(items) + ["chunk:nope"])
    assert got == items
    # By bytes too: 5,000 values of 1 KiB are over the 4 MiB body limit.
    big = {f"big:{i:04}": "x" * 1024 for i in range(5_000)}
    r = raw_post(node, f"/v1/rdds/{states.name}/set", json.dumps({"items": big}).encode())
    assert r.status_code == 413, r.text
    assert states.set_many(big.items()) == 5_000
    assert len(states.get_many(big)) == 5_000
    assert states.delete_many(list(big) + ["big:nope"]) == 5_000
    assert states.get_many(["big:0000"]) == {}


def test_scan_follows_cursors_in_key_order(client: srdd.Client, states: srdd.RDD):
    want = {f"scan:{i:03}": {"i": i} for i in range(53)}
    states.set_many(want)
    states.set("scan", "not under the prefix scan:")
    pages = []
    hook = lambda req: pages.append(str(req.url)) if "/scan" in str(req.url) else None  # noqa: E731
    client._http.event_hooks["request"].append(hook)
    try:
        got = list(states.scan("scan:", page_size=10))
    finally:
        client._http.event_hooks["request"].remove(hook)
    assert got == sorted(want.items())
    assert len(pages) == 6 and sum("cursor=" in p for p in pages) == 5
    assert [k for k, _ in states.scan("scan:00")] == [f"scan:00{i}" for i in range(10)]
    assert list(states.scan("nothing-has-this-prefix")) == []


def test_consistency_per_call(client: srdd.Client, states: srdd.RDD):
    states.set("c", 1)
    for level in ("default", "linearizable", "stale"):
        assert states.get("c", consistency=level) == 1
        assert states.get_many(["c"], consistency=level) == {"c": 1}
    with pytest.raises(ValueError):
        states.get("c", consistency="strong")


def test_a_retried_write_never_double_applies(client: srdd.Client, states: srdd.RDD):
    # The first write, then a later one; a retry of the first with its key
    # is answered like the first and changes nothing.
    states.set("idem", "first", idempotency_key="py-idem-1")
    states.set("idem", "later")
    states.set("idem", "first", idempotency_key="py-idem-1")
    assert states["idem"] == "later"
    # The same key with another request is refused.
    with pytest.raises(srdd.IdempotencyMismatch) as ei:
        states.set("idem", "other", idempotency_key="py-idem-1")
    assert ei.value.status == 422 and ei.value.idempotency_key == "py-idem-1"
    # A delete re-sent with its key does not fail as "already deleted".
    states.set("gone", 1)
    states.delete("gone", idempotency_key="py-idem-del")
    states.delete("gone", idempotency_key="py-idem-del")
    with pytest.raises(srdd.KeyNotFound):
        states.delete("gone")


def test_set_many_retry_with_base_key(node: Node, states: srdd.RDD):
    # A chunked set_many retried with its base key skips every batch that
    # made it, so a write in between survives.
    with srdd.Client([node.url], auth=node.auth, ca_cert=node.ca, trust_env=False, max_batch_keys=100,
                     retry_timeout=PATIENCE) as c:
        s = c.rdd(states.name)
        items = {f"retry:{i:03}": i for i in range(250)}  # three batches
        assert s.set_many(items, idempotency_key="py-base") == 250
        s["retry:000"] = "changed"
        assert s.set_many(items, idempotency_key="py-base") == 250
        assert s["retry:000"] == "changed"
        assert s.get_many(["retry:249"]) == {"retry:249": 249}


def test_load_with_progress_save_checkpoint(node: Node, client: srdd.Client, capsys: pytest.CaptureFixture[str]):
    rows = 20_000
    with open(node.files / "cities.jsonl", "w") as f:
        for i in range(rows):
            f.write(json.dumps({"key": f"city:{i:05}", "value": {"n": i}}) + "\n")
    cities = client.create_rdd(name("cities"))
    seen: list[srdd.LoadStatus] = []
    st = cities.load("cities.jsonl", "jsonl", progress=seen.append, poll=0.2, timeout=300)
    assert st.state == "done" and st.rows == rows, st
    assert seen[0].state in ("running", "done") and seen[-1] == st
    assert len(cities) == rows and cities["city:01234"] == {"n": 1234}
    assert cities.describe().state == "ready"
    # The tqdm bar, driven by the same load state. (A write first: a second
    # load with no logged write since the first one's checkpoint would get
    # a checkpoint at the same Raft index, which the registry refuses as
    # stale, so the RDD would stay "loading"; reported to the lead.)
    cities["written-between-loads"] = 1
    st = cities.load("cities.jsonl", "jsonl", mode="replace", poll=0.2, timeout=300)
    bar = capsys.readouterr().err
    assert f"load {cities.name}" in bar and "100%" in bar and f"{rows:,} rows" in bar, bar
    # Save, then checkpoint.
    assert len(cities) == rows  # replace: the write between the loads is gone
    saved = cities.save("cities-out", "jsonl", overwrite=True)
    assert saved.rows == rows and saved.format == "jsonl"
    assert any((node.files / "cities-out").glob("part-*")), list((node.files / "cities-out").iterdir())
    # (A write first again: a checkpoint with no logged write since the
    # last one answers 500, the registry refusing it as stale; reported.)
    cities["written-before-checkpoint"] = 2
    ck = cities.checkpoint()
    assert ck.rows == rows + 1 and ck.index > 0
    assert cities.describe().checkpoint["index"] == ck.index  # type: ignore[index]
    # A load that cannot be read fails clearly.
    with pytest.raises(srdd.Forbidden) as ei:
        cities.load("/etc/passwd", "jsonl", progress=False)
    assert ei.value.code == "forbidden_path"
    cities.drop()


def test_errors_from_the_server(node: Node, client: srdd.Client, states: srdd.RDD):
    with pytest.raises(srdd.NotFound) as ei:
        client.rdd("no_such_rdd").get("k")
    assert ei.value.code == "rdd_not_found" and ei.value.status == 404
    with pytest.raises(srdd.Exists):
        client.create_rdd(states.name)
    with pytest.raises(srdd.BadRequest) as bi:
        client.create_rdd("not a name")
    assert bi.value.code == "invalid" and bi.value.message
    # One node: one copy is the most an RDD may want.
    with pytest.raises(srdd.BadRequest) as bi:
        client.create_rdd(name("two_copies"), replicas=2)
    assert "between 1 and 1" in bi.value.message
    with pytest.raises(srdd.TooLarge):
        states.set("k" * 2000, 1)
    # Authentication and roles.
    with srdd.Client([node.url], ca_cert=node.ca, trust_env=False) as anon:
        with pytest.raises(srdd.Unauthorized):
            anon.rdds()
    with srdd.Client([node.url], auth=("py", "wrong"), ca_cert=node.ca, trust_env=False) as bad:
        with pytest.raises(srdd.Unauthorized):
            bad.rdd(states.name).get("ak")
    with srdd.Client([node.url], token=node.reader_token, ca_cert=node.ca, trust_env=False) as reader:
        r = reader.rdd(states.name)
        assert r["ak"] == "Alaska"
        with pytest.raises(srdd.Forbidden) as fi:
            r["ak"] = "no"
        assert fi.value.code == "forbidden"
    # TLS: without the CA, the node's certificate is not trusted.
    with srdd.Client([node.url], auth=node.auth, trust_env=False) as untrusted:
        with pytest.raises(srdd.ConnectionFailed):
            untrusted.rdds()


def test_async_client(node: Node, states: srdd.RDD):
    async def go() -> None:
        async with srdd.AsyncClient([node.url], auth=node.auth, ca_cert=node.ca, trust_env=False,
                                     retry_timeout=PATIENCE) as c:
            s = c.rdd(states.name)
            await asyncio.gather(*(s.set(f"async:{i:02}", i) for i in range(40)))
            assert await s.get("async:07") == 7
            assert await s["async:08"] == 8
            assert await s.get("async:nope", "dflt") == "dflt"
            with pytest.raises(srdd.KeyNotFound):
                await s["async:nope"]
            assert await s.contains("async:00") and not await s.contains("async:nope")
            got = await s.get_many([f"async:{i:02}" for i in range(45)], consistency="linearizable")
            assert got == {f"async:{i:02}": i for i in range(40)}
            assert [kv async for kv in s.scan("async:", page_size=7)] == [(f"async:{i:02}", i) for i in range(40)]
            assert await s.set_many({"async:a": 1, "async:b": 2}) == 2
            assert await s.delete_many(["async:a", "async:b"]) == 2
            await s.delete("async:00")
            assert not await s.contains("async:00")
            assert await s.count() >= 39
            assert states.name in [r.name for r in await c.rdds()]
            m = await c.create_rdd(name("amem"), mode="memory", replicas=1)
            info = await m.describe()
            assert info.mode == "memory" and info.replicas == 1 and len(info.copies) == 1
            assert not info.under_replicated and info.at_risk == ""
            await m.drop()
            with pytest.raises(srdd.NotFound):
                await c.describe_rdd(m.name)

    asyncio.run(go())


def test_recovering_honours_retry_after(node: Node, client: srdd.Client):
    """Kills the interpreter that holds a durable RDD: the node rebuilds it
    in a new session, answering 503 recovering with Retry-After meanwhile.
    Runs last in this module: every RDD of the node's session is rebuilt."""
    r = client.create_rdd(name("recover"))
    r.set_many({"a": 1, "b": 2})
    pids = node.proc.children()
    assert pids, "the node has no interpreter process"
    for pid in pids:
        try:
            __import__("os").kill(pid, 9)
        except ProcessLookupError:
            pass
    impatient = srdd.Client([node.url], auth=node.auth, ca_cert=node.ca, trust_env=False, retry_timeout=0)
    deadline = time.monotonic() + 60
    err = None
    while time.monotonic() < deadline:
        try:
            impatient.rdd(r.name).get("a")
        except srdd.Recovering as e:
            err = e
            break
        except srdd.Unavailable:
            pass
        time.sleep(0.1)
    impatient.close()
    assert err is not None, "never saw 503 recovering"
    assert err.status == 503 and err.retry_after == 2.0
    # The patient client waits it out (Retry-After) and gets the value.
    with srdd.Client([node.url], auth=node.auth, ca_cert=node.ca, trust_env=False, retry_timeout=180) as patient:
        assert patient.rdd(r.name).get("a") == 1
        assert patient.rdd(r.name).describe().state == "ready"
