"""pyspark's Spark Connect client (pyspark-client, unchanged) against a
real srdd node: DataFrames run in a live srdd session's SparkContext,
next to its Livy statements and shared RDDs (issue 27)."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from conftest import Node


def connect(url: str) -> SparkSession:
    # create(), not getOrCreate(): every test gets its own client session.
    return SparkSession.builder.remote(url).create()


@pytest.fixture
def spark(node: Node):
    s = connect(node.url())
    yield s
    s.stop()


def test_range_count(spark: SparkSession) -> None:
    assert spark.range(100).count() == 100


def test_any_node_answers(node: Node) -> None:
    # Three nodes: the session's own, and two that route its streams to
    # it over the peer channel. The same calls, and the same shared data,
    # through each.
    st, body = node.rest("POST", "/v1/rdds", {"name": "routed", "session": node.session, "mode": "memory"})
    assert st == 201, body
    st, body = node.rest("POST", "/v1/rdds/routed/set", {"items": {"a": 1, "b": 2}})
    assert st == 200, body
    assert set(node.connects) == {"n1", "n2", "n3"} and node.session_node in node.connects
    for via in sorted(node.connects):
        s = connect(node.url(via=via))
        try:
            assert s.range(100).count() == 100, via
            rows = s.table("global_temp.routed").orderBy("key").collect()
            assert [(r.key, r.value) for r in rows] == [("a", "1"), ("b", "2")], via
            assert s.sql("SELECT 1 AS one").toPandas()["one"].tolist() == [1], via
        finally:
            s.stop()
    # Refusals come from the node dialled, before any routing.
    other = next(n for n in sorted(node.connects) if n != node.session_node)
    bob = connect(node.url(user="bob", via=other))
    try:
        with pytest.raises(Exception) as exc:
            bob.range(1).count()
        assert "PERMISSION_DENIED" in str(exc.value), exc.value
    finally:
        bob.stop()


def test_runs_in_the_sessions_own_context(node: Node, spark: SparkSession) -> None:
    # The Livy statement and the Connect client see one SparkContext.
    app = node.statement("print(sc.applicationId)")["data"]["text/plain"]
    assert spark.sql("SELECT 1").count() == 1
    assert app.startswith("local-")
    assert spark.conf.get("spark.app.id") == app


def test_shared_rdd_is_a_global_temp_view(node: Node, spark: SparkSession) -> None:
    st, body = node.rest("POST", "/v1/rdds", {"name": "states", "session": node.session, "mode": "memory"})
    assert st == 201, body
    for key, value in {"ak": "Alaska", "hi": {"name": "Hawaii"}}.items():
        st, body = node.rest("PUT", "/v1/rdds/states/keys/" + key, value)
        assert st == 204, body
    rows = {r["key"]: r["value"] for r in spark.table("global_temp.states").collect()}
    assert rows == {"ak": '"Alaska"', "hi": '{"name":"Hawaii"}'}
    # A write after it is seen by the next query (views are refreshed
    # before each plan).
    st, _ = node.rest("PUT", "/v1/rdds/states/keys/ca", "California")
    assert st == 204
    df = spark.sql("SELECT key FROM global_temp.states WHERE key < 'd' ORDER BY key")
    assert [r["key"] for r in df.collect()] == ["ak", "ca"]
    # Dropped, the view goes too.
    st, _ = node.rest("DELETE", "/v1/rdds/states")
    assert st in (200, 204)
    assert not spark.catalog.tableExists("states", "global_temp")


def test_global_view_of_a_livy_statement(node: Node, spark: SparkSession) -> None:
    node.statement("spark.range(7).createOrReplaceGlobalTempView('seven')")
    assert spark.table("global_temp.seven").count() == 7
    # Temp views are each client's own.
    spark.range(3).createOrReplaceTempView("mine")
    other = connect(node.url())
    try:
        assert not other.catalog.tableExists("mine")
        assert spark.table("mine").count() == 3
    finally:
        other.stop()


def test_metrics_count_result_rows(node: Node, spark: SparkSession) -> None:
    # The port counts the rows of the Arrow batches it passes back, read
    # from Spark's own ExecutePlanResponse messages, on the node that runs
    # the session: summed over the nodes, each stream counts once, routed
    # or not.
    rows, calls = node.metric("srdd_connect_result_rows_total"), node.metric("srdd_connect_streams_total")
    sent = node.metric("srdd_connect_sent_bytes_total")
    assert len(spark.range(1234).collect()) == 1234
    assert node.metric("srdd_connect_result_rows_total") - rows == 1234
    assert node.metric("srdd_connect_streams_total") > calls
    assert node.metric("srdd_connect_sent_bytes_total") > sent


def test_conf_policy(spark: SparkSession) -> None:
    # spark.conf.set is a Config call: the node's session conf policy
    # rules it before Spark sees it, as POST /sessions.
    spark.conf.set("spark.sql.shuffle.partitions", "3")
    assert spark.conf.get("spark.sql.shuffle.partitions") == "3"
    for key, value, message in [
        ("spark.executorEnv.SECRET", "x", "cannot be set by a client"),
        ("spark.executor.memory", "999g", "--max-executor-memory"),
    ]:
        with pytest.raises(Exception) as exc:
            spark.conf.set(key, value)
        assert "PERMISSION_DENIED" in str(exc.value) and message in str(exc.value), exc.value
    assert spark.conf.get("spark.sql.shuffle.partitions") == "3"


def test_add_artifacts(spark: SparkSession, tmp_path) -> None:
    # AddArtifacts passes the node's name and size rules and reaches the
    # session's Spark.
    f = tmp_path / "helper_mod.py"
    f.write_text("VALUE = 42\n")
    spark.addArtifacts(str(f), pyfile=True)
    assert spark.range(1).count() == 1


def test_pandas_round_trip(spark: SparkSession) -> None:
    pdf = pd.DataFrame({"k": ["a", "b", "c"], "v": [1, 2, 3]})
    back = spark.createDataFrame(pdf).selectExpr("k", "v * 10 AS v").toPandas()
    assert back["k"].tolist() == ["a", "b", "c"]
    assert back["v"].tolist() == [10, 20, 30]


@pytest.mark.parametrize("user,code,message", [
    (None, "UNAUTHENTICATED", "needs srdd credentials"),
    ("not-a-token", "UNAUTHENTICATED", "unknown token"),
    ("bob", "PERMISSION_DENIED", "modify access"),  # code role, not ana's session
    ("eve", "PERMISSION_DENIED", "code role"),
])
def test_auth_failures(node: Node, user, code: str, message: str) -> None:
    s = connect(node.url(user=user))
    try:
        with pytest.raises(Exception, match=code) as info:
            s.range(1).count()
        assert message in str(info.value)
    finally:
        s.stop()


@pytest.mark.parametrize("session,code", [("", "INVALID_ARGUMENT"), ("no-such-session", "NOT_FOUND")])
def test_session_errors(node: Node, session: str, code: str) -> None:
    s = connect(node.url(session=session))
    try:
        with pytest.raises(Exception, match=code):
            s.range(1).count()
    finally:
        s.stop()


def test_session_by_name(node: Node) -> None:
    s = connect(node.url(session="connect-test"))
    try:
        assert s.range(5).count() == 5
    finally:
        s.stop()


# A plan runs in an ExecutePlan stream, and after a reattach in a
# ReattachExecute one.
PLAN_METHODS = ("ExecutePlan", "ReattachExecute")


def test_interrupt_and_open_streams(node: Node, spark: SparkSession) -> None:
    # A plan that would run for hours: while it runs, the session's open
    # streams (GET /sessions/{id}/spark-connect, the console's rows) list it
    # with its caller and the node that routed it; interruptAll (an
    # Interrupt call, routed like any other) ends it with Spark's
    # cancellation, and it leaves the list.
    failure: list[BaseException] = []

    def run() -> None:
        try:
            spark.range(0, 10**13, numPartitions=2).selectExpr("sum(id)").collect()
        except BaseException as exc:  # noqa: BLE001 - what the client raised is the point
            failure.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    via = "" if node.session_node == "n1" else "n1"  # node.url() dials n1
    deadline = time.monotonic() + 120
    while True:
        st, body = node.rest("GET", "/sessions/%d/spark-connect" % node.session)
        assert st == 200 and body["enabled"] and body["node"] == node.session_node, body
        plans = [s for s in body["streams"] if s["method"] in PLAN_METHODS]
        if plans:
            break
        assert worker.is_alive(), failure
        assert time.monotonic() < deadline, body
        time.sleep(0.2)
    assert plans[0]["principal"] == "ana" and plans[0].get("via", "") == via, plans
    assert plans[0]["bytes_in"] > 0 and plans[0]["seconds"] >= 0, plans
    # eve may not see ana's session's streams.
    st, body = node.rest("GET", "/sessions/%d/spark-connect" % node.session, user="eve")
    assert st == 403, body

    interrupted = spark.interruptAll()
    assert interrupted, "interruptAll interrupted nothing"
    worker.join(timeout=120)
    assert not worker.is_alive(), "the interrupted plan did not end"
    assert failure and "CANCEL" in str(failure[0]).upper(), failure
    deadline = time.monotonic() + 60
    while any(s["method"] in PLAN_METHODS for s in node.rest("GET", "/sessions/%d/spark-connect" % node.session)[1]["streams"]):
        assert time.monotonic() < deadline, "the interrupted plan is still listed"
        time.sleep(0.2)
    # The session goes on: the next plan runs.
    assert spark.range(10).count() == 10
