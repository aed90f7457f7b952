from __future__ import annotations

import json
import pathlib
import os
from typing import Any

import pytest

# The shared test vectors (not imported from conftest: pytest runs this
# directory with client/livy, whose conftest shares the module name).
DATA_RULES_FILE = pathlib.Path(__file__).resolve().parents[3] / "kvstore" / "testdata" / "data_rules.json"
from srdd_interpreter.rules import RULES_ENV, InvalidInput, TooLarge
from srdd_interpreter.statements import StatementRunner
from srdd_interpreter.store import SharedRDD
from srdd_interpreter.tables import RDDTable

HOSTILE_KEY = 'x"); import os; os.system("touch /tmp/pwned"); ("'
PWNED = "/tmp/pwned"


@pytest.fixture()
def store(spark: Any) -> SharedRDD:
    return SharedRDD("states", spark.sparkContext, spark)


def test_set_get_overwrite_delete_count(store: SharedRDD) -> None:
    assert store.get("ak") is None
    assert store.count() == 0
    store.set("ak", "Alaska")
    store.set("ca", {"name": "California", "pop": 39})
    assert store.get("ak") == "Alaska"
    assert store.count() == 2
    store.set("ak", "Alaska!")  # overwrite: no stale value, no duplicate
    assert store.get("ak") == "Alaska!"
    assert store.count() == 2
    assert sorted(store.keys()) == ["ak", "ca"]
    assert dict(store.items()) == {"ak": "Alaska!", "ca": {"name": "California", "pop": 39}}
    assert store.get_many(["ca", "zz", "ak"]) == [{"name": "California", "pop": 39}, None, "Alaska!"]
    assert store.delete("ak") is True
    assert store.delete("ak") is False
    assert store.get("ak") is None
    assert store.count() == 1


def test_get_returns_a_copy(store: SharedRDD) -> None:
    store.set("k", {"list": [1]})
    got = store.get("k")
    got["list"].append(2)
    assert store.get("k") == {"list": [1]}


def test_bad_keys_rejected(store: SharedRDD) -> None:
    with pytest.raises(TypeError):
        store.set(1, "v")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.set("", "v")
    with pytest.raises(TypeError):
        store.get(None)  # type: ignore[arg-type]
    assert store.count() == 0


@pytest.mark.parametrize("value", [object(), {1, 2}, b"bytes", float("nan"), float("inf"), 10 ** 400])
def test_non_json_value_from_code_rejected(store: SharedRDD, value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        store.set("k", value)
    assert store.get("k") is None
    assert store.count() == 0


def test_set_many_is_all_or_nothing(store: SharedRDD) -> None:
    store.set("keep", 1)
    with pytest.raises(TypeError):
        store.set_many([("a", 1), ("b", object())])
    assert store.keys() == ["keep"]
    assert store.set_many({"a": 1, "b": [2]}) == 2
    assert store.get_many(["a", "b"]) == [1, [2]]


def test_set_json_and_get_json(store: SharedRDD) -> None:
    written = store.set_json([("ak", b'{ "name" : "Alaska", "n": 1.5e3 }'), ("t", b"[true, null]")])
    assert written == 2
    assert store.get_json(["ak", "missing", "t"]) == [b'{"name":"Alaska","n":1500.0}', None, b"[true,null]"]
    assert store.get("ak") == {"name": "Alaska", "n": 1500.0}
    store.set("uni", "é✓")
    assert store.get_json(["uni"]) == ['"é✓"'.encode("utf-8")]  # ensure_ascii=False


@pytest.mark.parametrize("bad", [b"1e400", b"-1e400", b"NaN", b"[Infinity]", b'{"a": -Infinity}', b"not json",
                                 b"1" * 400])
def test_bad_batch_changes_nothing(store: SharedRDD, bad: bytes) -> None:
    store.set("a", "old")
    with pytest.raises(InvalidInput):
        store.set_json([("a", b'"new"'), ("b", b"2"), ("c", bad)])
    assert store.get("a") == "old"
    assert store.get("b") is None
    assert store.count() == 1


def test_rdd_is_a_real_pair_rdd_and_refreshes_after_write(spark: Any, store: SharedRDD) -> None:
    store.set_many({"ak": "Alaska", "ca": "California", "hi": "Hawaii"})
    rdd = store.rdd
    assert rdd is store.rdd  # cached object reused until the next write
    assert sorted(rdd.map(lambda kv: (kv[0], len(kv[1]))).collect()) == [("ak", 6), ("ca", 10), ("hi", 6)]
    assert rdd.getNumPartitions() == spark.sparkContext.defaultParallelism
    # hash-partitioned by key: each key lives in the partition its hash says
    # (checked on the executors, whose PYTHONHASHSEED Spark fixes)
    partitioner = rdd.partitioner
    assert partitioner is not None
    placed = rdd.mapPartitionsWithIndex(lambda i, it: [(i, partitioner(k)) for k, _ in it]).collect()
    assert len(placed) == 3 and all(i == p for i, p in placed)
    store.set("ak", "ALASKA")
    fresh = store.rdd
    assert fresh is not rdd
    assert dict(fresh.collect())["ak"] == "ALASKA"


def test_df_has_key_and_json_value_columns(store: SharedRDD) -> None:
    store.set("ak", {"name": "Alaska"})
    store.set("n", 7)
    df = store.df
    assert df.columns == ["key", "value"]
    assert [f.dataType.simpleString() for f in df.schema.fields] == ["string", "string"]
    rows = {r["key"]: r["value"] for r in df.collect()}
    assert rows == {"ak": '{"name":"Alaska"}', "n": "7"}
    assert json.loads(df.filter(df.key == "ak").collect()[0]["value"]) == {"name": "Alaska"}
    store.delete("n")
    assert store.df.count() == 1


def test_empty_store_spark_views(store: SharedRDD) -> None:
    assert store.rdd.collect() == []
    assert store.df.count() == 0


def test_hostile_key_is_data_not_code(spark: Any) -> None:
    if os.path.exists(PWNED):
        os.remove(PWNED)
    sc = spark.sparkContext
    tables = RDDTable(sc, spark)
    states = tables.create("states")
    states.set_json([(HOSTILE_KEY, b'"evil?"')])
    assert states.get(HOSTILE_KEY) == "evil?"
    assert states.get_json([HOSTILE_KEY]) == [b'"evil?"']
    # and from a statement, with the key passed as a value, never as source text
    runner = StatementRunner({"sc": sc, "spark": spark, "states": states, "hostile": HOSTILE_KEY}, sc)
    out = runner.execute("states.set(hostile, 'still data')\n%json states.get(hostile)")
    assert out["data"] == {"application/json": "still data"}, out
    assert dict(states.rdd.collect()) == {HOSTILE_KEY: "still data"}
    assert not os.path.exists(PWNED)


def test_code_writes_obey_the_node_limits(store: SharedRDD) -> None:
    # Issue 12: SharedRDD.set from session code on a memory RDD had no size
    # limit, so code could store a 2 KiB key that REST GET then refused
    # with 413. Code writes follow the rules REST writes do.
    with pytest.raises(InvalidInput):
        store.set("k" * 2048, 1)
    with pytest.raises(InvalidInput):
        store.set_many({"ok": 1, "k" * 1025: 2})  # all or nothing
    with pytest.raises(InvalidInput):
        store.set("big", "v" * (1 << 20))  # 1 MiB + 2 bytes of JSON text
    with pytest.raises(InvalidInput):
        store.set("deep", json.loads("[" * 257 + "]" * 257))
    assert store.count() == 0 and store.get("ok") is None
    store.set("k" * 1024, "v" * ((1 << 20) - 2))  # exactly at both limits
    assert store.count() == 1
    # reads of a longer key find nothing, as before (REST refuses them)
    assert store.get("k" * 2048) is None and store.delete("k" * 2048) is False


def test_limits_are_the_ones_the_node_hands_over(spark: Any, monkeypatch: Any) -> None:
    handed = dict(json.loads(DATA_RULES_FILE.read_text())["rules"], max_key_bytes=8, max_value_bytes=64)
    monkeypatch.setenv(RULES_ENV, json.dumps(handed))
    tables = RDDTable(spark.sparkContext, spark)
    small = tables.create("small")
    small.set("k" * 8, 1)
    with pytest.raises(TooLarge):
        small.set("k" * 9, 1)
    with pytest.raises(TooLarge):
        small.set("k", "v" * 63)
    with pytest.raises(InvalidInput):
        tables.create("lambda")
    tables.drop("small")


def test_rdd_table(spark: Any) -> None:
    tables = RDDTable(spark.sparkContext, spark)
    a = tables.create("a")
    tables.create("b")
    a.set("k", 1)
    with pytest.raises(KeyError):
        tables.create("a")
    assert tables.list() == [("a", 1), ("b", 0)]
    # User code sees a handle on the store (handle.py), never the store.
    assert tables.view["a"] is tables.handle("a") and tables.view["a"] is not a
    assert tables.view["a"].get("k") == 1 and not hasattr(tables.view["a"], "set_json")
    with pytest.raises(TypeError):
        tables.view["c"] = a  # type: ignore[index]  # read-only for user code
    tables.drop("a")
    with pytest.raises(KeyError):
        tables.get("a")
    with pytest.raises(KeyError):
        tables.drop("a")
    assert tables.names() == ["b"]
