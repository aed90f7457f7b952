"""The stats op's collector, against a real local SparkSession."""

from __future__ import annotations

import os
from typing import Any

from srdd_interpreter import stats
from srdd_interpreter.stats import JOB_BUCKETS, JobHistogram
from srdd_interpreter.tables import RDDTable


def test_job_histogram_buckets() -> None:
    h = JobHistogram()
    for s in (0.001, 0.005, 0.0051, 7.0, 1000.0):
        h.observe(s)
    snap = h.snapshot()
    assert len(snap["counts"]) == len(JOB_BUCKETS) + 1
    assert snap["counts"][0] == 2  # 0.001 and 0.005 (a bound is inclusive, as in Prometheus)
    assert snap["counts"][1] == 1
    assert snap["counts"][JOB_BUCKETS.index(10.0)] == 1
    assert snap["counts"][-1] == 1  # +Inf
    assert snap["count"] == 5 and abs(snap["sum"] - 1007.0111) < 1e-9


def test_rss_of_this_process() -> None:
    rss = stats.rss_bytes(os.getpid())
    assert rss is not None and rss > 10 << 20
    assert stats.rss_bytes(2 ** 22 + 12345) is None


def test_collect_reports_engine_jvm_and_jobs(spark: Any) -> None:
    sc = spark.sparkContext
    tables = RDDTable(sc, spark)
    store = tables.create("metered")
    # Lookup jobs run only without resident indexes (engine.py).
    resident, store.engine.resident = store.engine.resident, False
    try:
        store.set_many({"k%d" % i: i for i in range(50)})
        store.compact()
        store._cache.clear_rdd(store._rid)  # the read below needs a lookup job
        assert store.get("k7") == 7
        store.set("fresh", 1)  # stays in the delta
        out = stats.collect(tables, sc, 3)
    finally:
        store.engine.resident = resident
        tables.drop("metered")
    assert out["buckets"] == list(JOB_BUCKETS)
    assert out["pending"] == 3
    assert out["rss"] > 0
    jvm = out["jvm"]
    assert 0 < jvm["heap_used"] <= jvm["heap_committed"] <= jvm["heap_max"], jvm
    assert jvm["rss"] > jvm["heap_used"] // 4, jvm  # the gateway process is the JVM
    assert out["cache"]["misses"] >= 1
    (r,) = out["rdds"]
    assert r["name"] == "metered" and r["count"] == 51 and r["delta"] == 1 and r["delta_bytes"] > 0
    assert r["compactions"] == 1 and r["jobs"]["compaction"]["count"] == 1
    assert r["lookup_jobs"] >= 1 and r["jobs"]["lookup"]["count"] == r["lookup_jobs"]
    assert sum(r["jobs"]["lookup"]["counts"]) == r["jobs"]["lookup"]["count"]
    assert r["jobs"]["lookup"]["sum"] > 0
