"""The interpreter's part of durable RDDs: applying logged writes in order,
checkpoints and restores, and user code's writes going to the node's log."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from srdd_interpreter import durable
from srdd_interpreter.handle import handle
from srdd_interpreter.store import InvalidInput, SharedRDD, wire_writes


@pytest.fixture()
def store(spark: Any) -> SharedRDD:
    return SharedRDD("ledger", spark.sparkContext, spark)


@pytest.fixture(autouse=True)
def node_thread() -> Any:
    """The test thread plays the node: its wire writes are allowed
    (store.wire_writes); session code runs on threads of its own."""
    with wire_writes():
        yield


def entry(index: int, keys: list[str], values: list[bytes] | None = None, groups: list[int] | None = None) -> dict:
    e: dict[str, Any] = {"i": index, "k": keys, "g": groups or [len(keys)]}
    if values is None:
        e["d"] = True
    else:
        e["v"] = values
    return e


def test_apply_in_order_with_skipped_groups(store: SharedRDD) -> None:
    out = durable.apply_entries(store, [
        entry(1, ["a", "b"], [b"1", b'{"x": 2}']),
        entry(2, ["a", "c", "bad"], [b"10", b"3", b"{nope"], groups=[2, 1]),
        entry(3, ["b", "zz"]),
    ])
    assert out[0] == {"c": None, "e": [None]}
    assert out[1]["e"][0] is None and "bad" in out[1]["e"][1]
    assert out[2] == {"c": [1], "e": [None]}  # one of two keys existed
    assert store.get("a") == 10 and store.get("c") == 3
    assert store.get("b") is None and store.get("bad") is None
    assert store.count() == 2
    # A replay of a suffix over the same state changes nothing.
    durable.apply_entries(store, [entry(2, ["a", "c", "bad"], [b"10", b"3", b"{nope"], groups=[2, 1]), entry(3, ["b", "zz"])])
    assert store.count() == 2 and store.get("a") == 10


def test_malformed_entries_refused(store: SharedRDD) -> None:
    with pytest.raises(InvalidInput):
        durable.apply_entries(store, [{"i": 1, "k": ["a"], "v": [b"1"], "g": [2]}])
    with pytest.raises(InvalidInput):
        durable.apply_entries(store, [{"i": 1, "k": ["a", "b"], "v": [b"1"], "g": [2]}])
    assert store.count() == 0


def test_checkpoint_and_restore(store: SharedRDD, spark: Any, tmp_path: Any) -> None:
    store.set_many({"k%d" % i: {"i": i} for i in range(50)})
    store.delete("k7")
    path = str(tmp_path / "ckpt" / "00000000000000000042")
    res = durable.checkpoint(store, path, 42)
    assert res["rows"] == 49 and res["bytes"] > 0
    rows = spark.read.parquet(path).collect()
    assert len(rows) == 49 and {r.log_index for r in rows} == {42}
    assert json.loads(next(r.value for r in rows if r.key == "k3")) == {"i": 3}

    fresh = SharedRDD("ledger2", spark.sparkContext, spark)
    fresh.set("stale", 1)  # replaced by the restore
    out = durable.restore(fresh, path, 42)
    assert fresh.applied_index == 42
    # Entries the checkpoint holds are skipped; later ones apply.
    durable.apply_entries(fresh, [entry(40, ["k3"]), entry(43, ["k4"])])
    assert fresh.get("k3") == {"i": 3} and fresh.get("k4") is None
    fresh.set("k4", 4)
    assert out["rows"] == 49
    assert fresh.count() == 49 and fresh.get("k3") == {"i": 3} and fresh.get("k7") is None and fresh.get("stale") is None


class _Recorder(BaseHTTPRequestHandler):
    calls: list[tuple[str, Any]] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append((self.path, body, self.headers.get("X-Requested-By")))
        if type(self).status != 200:
            self.send_response(type(self).status)
            self.end_headers()
            self.wfile.write(json.dumps({"error": {"code": "invalid", "message": "no way"}}).encode())
            return
        out = {"written": len(body.get("items", {}))} if self.path.endswith("/set") else {"deleted": len(body["keys"])}
        self.send_response(200)
        self.end_headers()
        self.wfile.write(json.dumps(out).encode())

    def log_message(self, *args: Any) -> None:
        pass


def test_user_writes_go_to_the_node(store: SharedRDD) -> None:
    srv = HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        _Recorder.calls, _Recorder.status = [], 200
        store._log = durable.NodeLog("http://127.0.0.1:%d" % srv.server_address[1], "led ger/1")
        store.set("a", {"v": 1})
        assert store.set_many({"b": 2, "c": [3]}) == 2
        assert store.delete_many(["a", "b"]) == 2
        assert _Recorder.calls == [
            ("/v1/rdds/led%20ger%2F1/set", {"items": {"a": {"v": 1}}}, "srdd"),
            ("/v1/rdds/led%20ger%2F1/set", {"items": {"b": 2, "c": [3]}}, "srdd"),
            ("/v1/rdds/led%20ger%2F1/delete", {"keys": ["a", "b"]}, "srdd"),
        ]
        assert store.count() == 0  # nothing applied locally: the node's log applies it
        with pytest.raises(InvalidInput):
            store.clear()
        with pytest.raises(InvalidInput):
            store.load("/tmp/x.jsonl")
        _Recorder.status = 400
        with pytest.raises(InvalidInput, match="no way"):
            store.set("a", 1)
    finally:
        srv.shutdown()


def test_session_code_cannot_write_outside_the_log(store: SharedRDD) -> None:
    """Session code holds a handle with the user API only; the store's wire
    and replay methods refuse to write a durable RDD outside the node's
    apply (docs/ARCHITECTURE.md invariant 5)."""
    logged: list[Any] = []
    store._log = lambda op, items: logged.append((op, list(items))) or len(items)  # durable
    h = handle(store)
    for name in ("set_json", "set_json_groups", "delete_groups", "apply_logged", "stage_json",
                 "checkpoint_to", "get_json", "_log", "engine", "_write", "apply_lock", "clear_cache"):
        assert not hasattr(h, name), name
    with pytest.raises(TypeError):
        h.load("/tmp/x.parquet", "parquet", logged=True)
    results: list[Any] = []

    def session() -> None:  # a statement's thread: no wire context
        for attempt in (lambda: store.set_json([("a", b"1")]), lambda: store.set_json_groups([("a", b"1")], [1]),
                        lambda: store.delete_groups(["a"], [1]), lambda: store.apply_logged({"a": b"1"}, ()),
                        lambda: store.load("/tmp/x.parquet", "parquet", "replace", logged=True)):
            try:
                attempt()
                results.append("written")
            except InvalidInput as exc:
                results.append(str(exc))
        results.append(h.set("b", 2))
        results.append(h.delete_many(["b"]))

    t = threading.Thread(target=session)
    t.start()
    t.join()
    assert all("outside its log" in r for r in results[:5]), results
    assert store.count() == 0  # nothing reached memory but through the log
    assert logged == [("set", [("b", b"2")]), ("delete", ["b"])]
    # The node's apply (kv.apply) is what writes it.
    durable.apply_entries(store, [entry(1, ["a"], [b"1"])])
    assert h.get("a") == 1 and len(h) == 1 and "a" in h and h["a"] == 1 and h.name == "ledger" and h.durable
