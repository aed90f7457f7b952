"""The KV engine: the partition index (pure), compaction, coalesced lookups,
scans, views and bulk load/save, against a real local SparkSession."""

from __future__ import annotations

import gc
import json
import os
import threading
import time
from typing import Any

import pytest

from srdd_interpreter import tasks
from srdd_interpreter.cache import HotCache
from srdd_interpreter.engine import Engine
from srdd_interpreter.store import Busy, InvalidInput, SharedRDD


# ---------------------------------------------------------------- the index (no Spark)

def _ix(pairs: dict) -> tuple:
    return tasks.build(sorted((k.encode(), v.encode()) for k, v in pairs.items()))


def test_index_find_and_order() -> None:
    data = {"b": '"2"', "a": '"1"', "é": '"3"', "ab": "[]", "": "0"}
    data.pop("")
    ix = _ix(data)
    v = tasks.View(ix)
    assert [k.decode() for k in v.key_list()] == sorted(data)  # byte order == str order
    for k, val in data.items():
        assert v.find(k.encode()) == val.encode()
    assert v.find(b"zz") is None and v.find(b"a\x00") is None
    assert tasks.View(tasks.EMPTY_INDEX).find(b"a") is None


def test_index_merge_sets_overwrites_and_deletes() -> None:
    ix = _ix({"a": "1", "c": "3", "e": "5"})
    delta = sorted([(b"a", None), (b"b", b"2"), (b"c", b"33"), (b"f", b"6"), (b"zz", None)])
    merged = dict(tasks.pairs_of(tasks.merge(ix, delta)))
    assert merged == {b"b": b"2", b"c": b"33", b"e": b"5", b"f": b"6"}
    assert tasks.merge(ix, []) is ix


def test_scan_task_and_partitioning() -> None:
    ix = _ix({"app": "1", "apple": "2", "apricot": "3", "banana": "4"})
    run = tasks.scan_with(b"app\x00", b"ap", 10)
    assert list(run(iter([ix]))) == [(b"apple", b"2"), (b"apricot", b"3")]
    assert list(tasks.scan_with(b"", b"", 2)(iter([ix]))) == [(b"app", b"1"), (b"apple", b"2")]
    assert tasks.key_hash("ak") == tasks.key_hash(b"ak")
    assert tasks.partition_of("ak".encode(), 7) == tasks.key_hash("ak") % 7


def test_parse_rows_enforce_the_wire_rules(data_rules: Any) -> None:
    good = list(tasks.parse_jsonl(['{"key":"a","value":{"x":1.5e3}}', "", '{"key":"b","value":null}'], data_rules))
    assert good == [(b"a", b'{"x":1500.0}'), (b"b", b"null")]
    for bad in ['{"key":1,"value":2}', '{"key":"","value":2}', '{"value":2}', "not json",
                '{"key":"a","value":NaN}', '{"key":"a","value":1e400}', '{"key":"a","value":%s}' % ("9" * 400)]:
        with pytest.raises(tasks.BadRow):
            list(tasks.parse_jsonl([bad], data_rules))
    with pytest.raises(tasks.BadRow):
        list(tasks.parse_jsonl(['{"key":"%s","value":1}' % ("k" * 1025)], data_rules))
    with pytest.raises(tasks.BadRow):  # deeper than the rules allow, as over REST
        list(tasks.parse_jsonl(['{"key":"a","value":%s}' % ("[" * 257 + "]" * 257)], data_rules))
    assert list(tasks.parse_columns([("k", '"v"'), ("n", 5)], data_rules)) == [(b"k", b'"v"'), (b"n", b"5")]


def test_hot_cache_is_bounded_by_bytes() -> None:
    c = HotCache(10 * (HotCache.cost("k0", b"x" * 10)))
    for i in range(100):
        c.put(1, "k%d" % (i % 10 + 10), b"x" * 10)
    assert c.stats()["bytes"] <= c.max_bytes
    c.put(1, "big", b"x" * 10_000)  # larger than the cache: not kept
    assert c.get(1, "big") is None
    c.put(2, "other", b"1")
    c.clear_rdd(1)
    assert c.stats()["entries"] == 1 and c.get(2, "other") == b"1"
    c.put_many(3, [("a", b"1"), ("b", b"2"), ("huge", b"x" * 10_000)])
    assert c.get(3, "a") == b"1" and c.get(3, "huge") is None
    assert c.stats()["bytes"] <= c.max_bytes
    c.resize(0)
    assert c.stats()["entries"] == 0


# ---------------------------------------------------------------- the engine (Spark)

@pytest.fixture(scope="module")
def engine(spark: Any) -> Engine:
    e = Engine(spark.sparkContext, spark)
    e.compact_min_entries = 50
    e.target_partition_bytes = 512  # tiny partitions: growth is exercised
    return e


@pytest.fixture(scope="module")
def job_engine(spark: Any) -> Engine:
    """An engine without resident indexes: cold reads run Spark lookup jobs."""
    e = Engine(spark.sparkContext, spark)
    e.compact_min_entries = 50
    e.target_partition_bytes = 512
    e.resident = False
    return e


@pytest.fixture()
def store(spark: Any, engine: Engine) -> Any:
    s = SharedRDD("t", spark.sparkContext, spark, engine=engine)
    yield s
    s.unpersist()


@pytest.fixture()
def job_store(spark: Any, job_engine: Engine) -> Any:
    s = SharedRDD("tj", spark.sparkContext, spark, engine=job_engine)
    yield s
    s.unpersist()


def _settle(s: SharedRDD) -> None:
    s._bg.submit(lambda: None).result()  # background work queued so far is done
    assert s.wait_idle(120)  # and what it queued in turn


def test_overwrites_and_deletes_stay_correct_across_compactions(store: SharedRDD) -> None:
    expect: dict[str, Any] = {}
    for rnd in range(4):
        for i in range(120):
            k = "k%03d" % ((i * 7 + rnd * 31) % 200)
            store.set(k, [rnd, i])
            expect[k] = [rnd, i]
        doomed = sorted(expect)[rnd::5]
        assert store.delete_many(doomed) == len(doomed)
        for k in doomed:
            del expect[k]
        _settle(store)
        assert store.count() == len(expect)
    store.compact()
    st = store.stats()
    assert st["compactions"] >= 3 and st["delta"] == 0 and st["base_keys"] == len(expect)
    assert st["partitions"] > store._engine.min_partitions  # grew with the data
    store._cache.clear_rdd(store._rid)  # every read below needs Spark
    keys = sorted(expect) + ["absent", "k999"]
    assert store.get_many(keys) == [expect.get(k) for k in keys]
    assert dict(store.items()) == expect
    assert store.delete("absent") is False and store.count() == len(expect)
    # a deleted key stays deleted after it is compacted away, and can come back
    gone = sorted(set("k%03d" % i for i in range(200)) - set(expect))[0]
    assert store.get(gone) is None and gone not in store
    store.set(gone, "back")
    store.compact()
    assert store.get(gone) == "back" and store.count() == len(expect) + 1


def test_cold_reads_coalesce_into_few_jobs(job_store: SharedRDD, job_engine: Engine) -> None:
    store, engine = job_store, job_engine
    store.set_many({"c%02d" % i: i for i in range(40)})
    store.compact()
    store._cache.clear_rdd(store._rid)
    values, cold = store.get_json_local(["c01", "nope", "c02"])
    assert values == [None, None, None] and cold == [0, 2]  # absent keys need no Spark
    gate = threading.Event()
    entered = threading.Event()
    real = engine.lookup

    def slow_first(base: Any, keys: list) -> dict:
        if not entered.is_set():
            entered.set()
            gate.wait(30)
        return real(base, keys)

    engine.lookup = slow_first  # type: ignore[method-assign]
    jobs_before, engine.lookup_jobs = engine.lookup_jobs, 1
    try:
        jobs0 = store.stats()["lookup_jobs"]
        results: dict[int, Any] = {}
        first = threading.Thread(target=lambda: results.__setitem__(-1, store.get("c00")))
        first.start()
        assert entered.wait(30)
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, store.get("c%02d" % i)))
                   for i in range(1, 40)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(store._lookups._pending) < 39 and time.monotonic() < deadline:  # all queue behind the first job
            time.sleep(0.01)
        assert len(store._lookups._pending) == 39
        gate.set()
        first.join(60)
        for t in threads:
            t.join(60)
    finally:
        gate.set()
        engine.lookup = real  # type: ignore[method-assign]
        engine.lookup_jobs = jobs_before
    assert results == {**{-1: 0}, **{i: i for i in range(1, 40)}}
    jobs = store.stats()["lookup_jobs"] - jobs0
    assert jobs < 40 and jobs <= 1 + store._base.n, jobs  # one per partition at most, not one per key
    assert store.get("c05") == 5 and store._cache.get(store._rid, "c05") == b"5"  # now hot


def test_views_include_pending_writes_and_survive_compaction(store: SharedRDD) -> None:
    store.set_many({"a": 1, "b": 2, "c": 3})
    store.compact()
    store.set("d", 4)  # pending
    store.delete("a")  # pending tombstone over the base
    store.set("b", 20)  # pending overwrite
    rdd = store.rdd
    assert rdd is store.rdd
    assert sorted(rdd.collect()) == [("b", 20), ("c", 3), ("d", 4)]
    assert sorted((r["key"], json.loads(r["value"])) for r in store.df.collect()) == [("b", 20), ("c", 3), ("d", 4)]
    assert rdd.partitioner is not None and rdd.getNumPartitions() == store._base.n
    store.compact()  # replaces the base the view reads
    assert sorted(rdd.collect()) == [("b", 20), ("c", 3), ("d", 4)]  # still readable: it holds its base
    assert store.rdd is not rdd
    assert sorted(store.keys()) == ["b", "c", "d"]


def test_lineage_stays_short(store: SharedRDD) -> None:
    for rnd in range(3):
        store.set_many({"l%d-%d" % (rnd, i): i for i in range(60)})
        store.compact()
    debug = store._base.rdd.toDebugString().decode()
    assert debug.count("\n") < 12, debug  # checkpointed: no chain of old bases


def test_scan_by_prefix_with_cursor(store: SharedRDD) -> None:
    store.set_many({"user:%03d" % i: i for i in range(30)})
    store.set_many({"other:1": 1, "user": "no colon"})
    store.compact()
    store.delete("user:005")  # pending tombstone
    store.set("user:010", "new")  # pending overwrite
    store.set("user:100", 100)  # pending insert
    seen: list[str] = []
    after = None
    while True:
        rows, more = store.scan("user:", after, 7)
        seen += [k for k, _ in rows]
        if not more:
            break
        after = rows[-1][0]
    want = sorted(["user:%03d" % i for i in range(30) if i != 5] + ["user:100"])
    assert seen == want
    assert dict(store.scan("user:01", None, 100)[0])["user:010"] == "new"
    assert store.scan("zzz")[0] == []
    with pytest.raises(InvalidInput):
        store.scan("", None, 0)


def test_load_and_save_round_trip(spark: Any, engine: Engine, store: SharedRDD, tmp_path: Any) -> None:
    store.set_many({"k%d" % i: {"i": i, "s": "é"} for i in range(100)})
    store.set("quote\"key", [1, None, True])
    for fmt in ("jsonl", "csv", "parquet"):
        out = str(tmp_path / ("out." + fmt))
        assert store.save(out, fmt)["rows"] == 101
        with pytest.raises(InvalidInput):
            store.save(out, fmt)  # exists
        store.save(out, fmt, overwrite=True)
        # A path the node cannot write is the client's mistake: 4xx, not 5xx.
        with pytest.raises(InvalidInput):
            store.save("nosuchscheme://x/" + fmt, fmt)
        copy = SharedRDD("copy_" + fmt, spark.sparkContext, spark, engine=engine)
        try:
            copy.set("k1", "overwritten by the load")
            copy.set("extra", 1)
            status = copy.load(out, fmt)
            assert status["state"] == "running"
            _settle(copy)
            status = copy.load_status()
            assert status is not None and status["state"] == "done", status
            assert status["rows"] == 101 and status["percent"] == 100.0
            assert copy.count() == 102
            assert copy.get("k7") == {"i": 7, "s": "é"} and copy.get("k1") == {"i": 1, "s": "é"}
            assert copy.get("quote\"key") == [1, None, True] and copy.get("extra") == 1
        finally:
            copy.unpersist()


def test_failed_load_changes_nothing(spark: Any, engine: Engine, store: SharedRDD, tmp_path: Any) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text('{"key":"a","value":1}\n{"key":"b","value":1e400}\n')
    store.set("a", "kept")
    store.load(str(src))
    _settle(store)
    status = store.load_status()
    assert status is not None and status["state"] == "failed"
    assert "finite" in status["error"] or "JSON" in status["error"], status["error"]
    assert store.get("a") == "kept" and store.count() == 1
    store.load(str(tmp_path / "missing.jsonl"))
    _settle(store)
    assert store.load_status()["state"] == "failed"  # type: ignore[index]
    with pytest.raises(InvalidInput):
        store.load(str(src), "xml")


def test_load_replace_mode_and_writes_on_top(spark: Any, store: SharedRDD, tmp_path: Any) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"key": "r%d" % i, "value": i}) + "\n" for i in range(10))
                   + json.dumps({"key": "r0", "value": "last row wins"}) + "\n")
    store.set_many({"old": 1, "r1": "old"})
    store.load(str(src), mode="replace")
    _settle(store)
    assert store.get("old") is None and store.get("r1") == 1 and store.get("r0") == "last row wins"
    assert store.count() == 10


def test_group_helpers_apply_valid_batches_only(store: SharedRDD) -> None:
    written, errors = store.set_json_groups(
        [("a", b"1"), ("b", b"2"), ("c", b"1e400"), ("d", b'"x"')], [2, 1, 1])
    assert written == 3 and errors[0] is None and errors[1] and errors[2] is None
    assert store.get_many(["a", "b", "c", "d"]) == [1, 2, None, "x"]
    assert store.delete_groups(["a", "zz", "a", "d"], [2, 2]) == [1, 1]
    with pytest.raises(InvalidInput):
        store.set_json_groups([("a", b"1")], [2])



def test_second_load_is_busy_and_writes_after_a_load_request_win(store: SharedRDD, engine: Engine,
                                                                 tmp_path: Any) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"key": "k", "value": "loaded"}) + "\n")
    gate = threading.Event()
    real = engine.rebuild

    def held(*args: Any, **kw: Any) -> Any:
        gate.wait(30)
        return real(*args, **kw)

    engine.rebuild = held  # type: ignore[method-assign]
    try:
        store.set("k", "before the load")
        store.load(str(src))
        with pytest.raises(Busy):
            store.load(str(src))
        store.set("k", "after the load request")  # acknowledged after the load began
        assert store.get("k") == "after the load request"
        gate.set()
        _settle(store)
    finally:
        gate.set()
        engine.rebuild = real  # type: ignore[method-assign]
    assert store.load_status()["state"] == "done"  # type: ignore[index]
    assert store.get("k") == "after the load request" and store.count() == 1


def test_large_deltas_travel_as_broadcasts(store: SharedRDD, monkeypatch: Any) -> None:
    from srdd_interpreter import engine as engine_module

    monkeypatch.setattr(engine_module, "BROADCAST_LIMIT", 0)
    store.set_many({"b%d" % i: i for i in range(80)})
    store.compact()  # the merge's delta is a broadcast, unpersisted after the rebuild
    store.set("late", 1)
    assert sorted(store.rdd.collect())[:2] == [("b0", 0), ("b1", 1)]  # the view's overlay too
    store._cache.clear_rdd(store._rid)
    assert store.get("b42") == 42 and store.count() == 81


# ---------------------------------------------------------------- resident indexes (issue 16)

def test_resident_reads_need_no_spark_job(store: SharedRDD) -> None:
    """Cold keys are served from the driver's resident indexes: misses,
    updates and deletes after a cold read, and compactions in between."""
    assert store._base.resident
    store.set_many({"r%03d" % i: {"i": i} for i in range(300)})
    store.compact()
    assert store._base.n > 1 and store._base.count == 300
    jobs0 = store.stats()["lookup_jobs"]
    store._cache.clear_rdd(store._rid)
    keys = ["r%03d" % i for i in range(0, 300, 7)] + ["missing", "r999"]
    values, cold = store.get_json_local(keys)
    assert cold == []  # nothing needs Spark
    assert values == [json.dumps({"i": i}, separators=(",", ":")).encode() for i in range(0, 300, 7)] + [None, None]
    assert store.get("r005") == {"i": 5}
    store.set("r005", "new")  # update after a cold read
    assert store.delete("r006") is True  # delete after a cold read
    assert store.get("r005") == "new" and store.get("r006") is None
    store.compact()  # both now in the base
    store._cache.clear_rdd(store._rid)
    assert store.get_many(["r005", "r006", "r007"]) == ["new", None, {"i": 7}]
    assert store.delete("r006") is False and store.count() == 299
    store.set("r006", 6)
    assert store.get("r006") == 6 and "r006" in store
    store.compact()
    assert store.get("r006") == 6 and store.count() == 300
    # a large local batch is left to a worker, which answers it all
    many = ["r%03d" % (i % 300) for i in range(600)]
    values, cold = store.get_json_local(many)
    assert len(cold) > 0
    assert store.get_json(many) == [store.get_json([k])[0] for k in many]
    assert store.stats()["lookup_jobs"] == jobs0  # no Spark lookup job at all


def test_resident_reads_during_a_compaction(store: SharedRDD, engine: Engine) -> None:
    """Reads while a compaction builds the next base see the frozen writes."""
    store.set_many({"f%03d" % i: i for i in range(200)})
    store.compact()
    gate = threading.Event()
    entered = threading.Event()
    real = engine.rebuild

    def slow(*a: Any, **kw: Any) -> Any:
        entered.set()
        gate.wait(60)
        return real(*a, **kw)

    engine.rebuild = slow  # type: ignore[method-assign]
    try:
        store.set_many({"f%03d" % i: -i for i in range(0, 200, 2)})
        store.delete("f001")
        done = store._bg.submit(store._compact, True)
        assert entered.wait(60)
        store.set("f003", "during")
        expect = [None if i == 1 else "during" if i == 3 else -i if i % 2 == 0 else i for i in range(200)]
        assert store.get_many(["f%03d" % i for i in range(200)]) == expect
    finally:
        gate.set()
        engine.rebuild = real  # type: ignore[method-assign]
    done.result(120)
    store.compact()
    store._cache.clear_rdd(store._rid)
    assert store.get_many(["f%03d" % i for i in range(200)]) == expect


@pytest.mark.parametrize("which", ["store", "job_store"])
def test_held_dataframe_survives_compactions(which: str, request: Any) -> None:
    """A DataFrame derived from states.df stays readable after the view it
    came from is dropped and two compactions replace its base (it used to
    fail: the old base was unpersisted, and a locally checkpointed RDD
    cannot be recomputed)."""
    s: SharedRDD = request.getfixturevalue(which)
    s.set_many({"h%02d" % i: i for i in range(40)})
    s.compact()
    derived = s.df.filter("key < 'h10'")
    expect = sorted(("h%02d" % i, str(i)) for i in range(10))
    for rnd in range(2):
        s.set_many({"h%02d" % i: 100 + rnd for i in range(40)})
        s.compact()
    gc.collect()  # the store's own views are gone; so are their finalizers' references
    assert sorted((r["key"], r["value"]) for r in derived.collect()) == expect
    assert s.get("h05") == 101


def test_batch_lookup_is_one_job(job_store: SharedRDD) -> None:
    """Without resident indexes, a batch of cold keys over many partitions
    costs one Spark job, not one per partition."""
    store = job_store
    store.set_many({"b%03d" % i: i for i in range(300)})
    store.compact()
    assert store._base.n >= 4
    store._cache.clear_rdd(store._rid)
    jobs0 = store.stats()["lookup_jobs"]
    keys = ["b%03d" % i for i in range(300)]
    assert store.get_many(keys) == list(range(300))
    assert store.stats()["lookup_jobs"] - jobs0 == 1


def test_resident_find_by_hash_handles_equal_hashes() -> None:
    """engine.find_in bisects the partition's sorted crc32s, then compares
    keys: every key is found, absent keys are not, and keys whose hashes
    are equal (forced here) are told apart by the comparison."""
    import zlib
    from array import array

    from srdd_interpreter.engine import find_in

    keys = sorted(("key:%05d" % i).encode() for i in range(2000))
    ix = tasks.build([(k, b"%d" % i) for i, k in enumerate(keys)])
    hs, pos = tasks.hash_order(ix)
    part = (tasks.View(ix), array("I", hs), memoryview(pos).cast("I"))
    for i, k in enumerate(keys):
        assert find_in(part, k, zlib.crc32(k)) == b"%d" % i
    for k in (b"nope", b"key:99999", b""):
        assert find_in(part, k, zlib.crc32(k)) is None
    same = (tasks.View(ix), array("I", [7] * len(keys)), memoryview(array("I", range(len(keys))).tobytes()).cast("I"))
    assert find_in(same, keys[1234], 7) == b"1234" and find_in(same, b"nope", 7) is None


def test_index_fetch_jobs_run_in_the_loads_job_group(spark: Any, store: SharedRDD, tmp_path: Any,
                                                     monkeypatch: Any) -> None:
    """The resident indexes are fetched by several jobs, two at a time, on
    pool threads: each must still carry the load's job group, or the
    load's progress and cancel would not see it."""
    from srdd_interpreter import engine as engine_mod

    monkeypatch.setattr(engine_mod, "RESIDENT_FETCH_BYTES", 2 * store._engine.target_partition_bytes)
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"key": "f%04d" % i, "value": {"i": i}}) + "\n" for i in range(400)))
    store.load(str(path), "jsonl")
    _settle(store)
    status = store.load_status()
    assert status is not None and status["state"] == "done" and status["rows"] == 400, status
    n = store._base.n
    assert n >= 8, "the load should span many partitions, got %d" % n
    group = "srdd-load-%d-%d" % (store._rid, store._load_seq)
    jobs = spark.sparkContext.statusTracker().getJobIdsForGroup(group)
    # the fetch alone is ceil(n / 2) jobs
    assert len(jobs) >= (n + 1) // 2, (len(jobs), n)
    assert [store.get("f%04d" % i) for i in (0, 199, 399)] == [{"i": 0}, {"i": 199}, {"i": 399}]
