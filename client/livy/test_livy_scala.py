"""Scala and mixed-language sessions through a real Livy client (the `livy`
package) and plain requests, against the node of conftest.py.

One `kind: spark` session serves every test here: the Scala REPL takes
tens of seconds to start on a small machine, so it is started once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pandas as pd
import pytest
from conftest import Srdd
from livy import LivySession, SessionKind, SessionState
from livy.client import LivyClient
from livy.models import SparkRuntimeError, StatementKind, StatementState

JSON = "application/json"
TABLE = "application/vnd.livy.table.v1+json"


@pytest.fixture(scope="module")
def scala(srdd: Srdd) -> Iterator[LivySession]:
    with LivySession.create(srdd.url, kind=SessionKind.SPARK, name="livy-scala-test", **srdd.livy) as session:
        assert session.state == SessionState.IDLE
        yield session


def _run(srdd: Srdd, sid: int, code: str, kind: str | None = None) -> dict:
    """Submit a statement over plain HTTP and wait for it (long-poll)."""
    body = {"code": code} if kind is None else {"code": code, "kind": kind}
    r = srdd.http.post(f"{srdd.url}/sessions/{sid}/statements", json=body)
    assert r.status_code == 201, r.text
    stid = r.json()["id"]
    deadline = time.time() + 300
    while time.time() < deadline:
        st = srdd.http.get(f"{srdd.url}/sessions/{sid}/statements/{stid}", params={"wait": 60}).json()
        if st["state"] in ("available", "error", "cancelled"):
            return st
    pytest.fail(f"statement {stid} did not finish: {st}")


def test_scala_dbt_flow(srdd: Srdd, scala: LivySession) -> None:
    # The first Scala statement starts the REPL; res0 is the user's first result.
    assert scala.run("1 + 1").text == "res0: Int = 2"
    # As dbt's Livy adapter does: SQL wrapped in Scala, the rows back as JSON.
    out = scala.run('val rows = spark.sql("SELECT 1 AS a, \'x\' AS b").collect()\n%json rows')
    assert out.json == [{"a": 1, "b": "x"}]
    out = scala.run('%json spark.sql("SELECT 2 AS a").collect()')
    assert out.json == [{"a": 2}]
    st = _run(srdd, scala.session_id, 'case class P(name: String, n: Int)\nval ps = Seq(P("a", 1), P("b", 2))\n%table ps')
    table = st["output"]["data"][TABLE]
    assert table == {"headers": [{"name": "name", "type": "STRING_TYPE"}, {"name": "n", "type": "INT_TYPE"}],
                     "data": [["a", 1], ["b", 2]]}
    # println is captured; closures run on executors (classes served by the driver).
    assert scala.run('println("hello from scala")').text == "hello from scala"
    assert scala.run("sc.parallelize(1 to 4).map(_ * 2).reduce(_ + _)").text.endswith("Int = 20")
    # pylivy's own Scala templates: upload and download a DataFrame.
    scala.upload("scala_up", pd.DataFrame({"x": [1, 2, 3]}))
    assert scala.download("scala_up").sort_values("x")["x"].tolist() == [1, 2, 3]


def test_scala_errors(scala: LivySession) -> None:
    with pytest.raises(SparkRuntimeError) as err:
        scala.run("val y: Int = undefinedName")
    assert err.value.ename == "Error"
    assert "not found: value undefinedName" in err.value.evalue
    with pytest.raises(SparkRuntimeError) as err:
        scala.run("1 / 0")
    assert err.value.ename == "java.lang.ArithmeticException"
    assert err.value.evalue == "/ by zero"
    assert err.value.traceback[0].startswith("java.lang.ArithmeticException")
    # The session goes on.
    assert scala.run("val z = 41 + 1").text == "z: Int = 42"


def test_mixed_session_and_shared_rdd(srdd: Srdd, scala: LivySession) -> None:
    sid = scala.session_id
    http = srdd.http
    # A Python statement in the Scala session defines a temp view.
    st = _run(srdd, sid, "spark.createDataFrame([('ak', 1), ('hi', 2)], ['code', 'rank']).createOrReplaceTempView('ranks')",
              "pyspark")
    assert st["output"]["status"] == "ok", st
    # A Scala statement reads it: same SparkSession.
    assert scala.run('spark.table("ranks").count()').text.endswith("Long = 2")
    # A shared RDD of the session, written over REST, joined from SQL.
    r = http.post(f"{srdd.url}/v1/rdds", json={"name": "mixed_states", "session": sid, "mode": "memory"})
    assert r.status_code == 201, r.text
    r = http.post(f"{srdd.url}/v1/rdds/mixed_states/set", json={"items": {"ak": "Alaska", "hi": "Hawaii", "tx": "Texas"}})
    assert r.status_code == 200, r.text
    st = _run(srdd, sid, "SELECT r.code, s.value FROM ranks r JOIN mixed_states s ON r.code = s.key ORDER BY r.rank", "sql")
    assert st["output"]["status"] == "ok", st
    assert st["output"]["data"][JSON]["data"] == [["ak", '"Alaska"'], ["hi", '"Hawaii"']]
    # The view follows writes made before each statement; Scala sees it too.
    assert http.put(f"{srdd.url}/v1/rdds/mixed_states/keys/ca", json="California").status_code == 204
    assert scala.run('spark.table("mixed_states").count()').text.endswith("Long = 4")
    # Python's namespace still has the RDD object.
    st = _run(srdd, sid, "mixed_states.get('ca')", "pyspark")
    assert st["output"]["data"]["text/plain"] == "'California'"


def test_scala_cancel(srdd: Srdd, scala: LivySession) -> None:
    sid = scala.session_id
    client = LivyClient(srdd.url, **srdd.livy)
    st = client.create_statement(sid, "sc.parallelize(1 to 2, 2).map { x => Thread.sleep(120000); x }.count()",
                                 StatementKind.SPARK)
    deadline = time.time() + 120
    while time.time() < deadline:
        progress = srdd.http.get(f"{srdd.url}/sessions/{sid}/statements/{st.statement_id}").json()
        if progress["state"] == "running":
            break
        time.sleep(0.3)
    time.sleep(2)  # let the Spark job start
    r = srdd.http.post(f"{srdd.url}/sessions/{sid}/statements/{st.statement_id}/cancel", json={})
    assert r.json() == {"msg": "canceled"}
    deadline = time.time() + 60
    while client.get_statement(sid, st.statement_id).state != StatementState.CANCELLED and time.time() < deadline:
        time.sleep(0.3)
    assert client.get_statement(sid, st.statement_id).state == StatementState.CANCELLED
    # The job was interrupted, not left running: the next job runs at once.
    assert scala.run("sc.parallelize(1 to 3).count()").text.endswith("Long = 3")
    client.close()


def test_scala_completion_and_wire(srdd: Srdd, scala: LivySession) -> None:
    sid, http = scala.session_id, srdd.http
    r = http.post(f"{srdd.url}/sessions/{sid}/completion", json={"code": "spark.rang", "kind": "spark", "cursor": 10})
    assert r.status_code == 200 and "range" in r.json()["candidates"], r.text
    # A spark session's default completion kind is Scala.
    r = http.post(f"{srdd.url}/sessions/{sid}/completion", json={"code": "sc.paralleli"})
    assert "parallelize" in r.json()["candidates"], r.text
    # Livy's shapes: total_statements, {"msg"} on errors beside srdd's error.
    body = http.get(f"{srdd.url}/sessions/{sid}/statements", params={"size": 1}).json()
    assert body["total_statements"] > 1 and len(body["statements"]) == 1
    body = http.get(f"{srdd.url}/sessions/{sid}/statements").json()  # Livy: all of them by default
    assert len(body["statements"]) == body["total_statements"]
    # Livy's /log without from: the newest size lines.
    lg = http.get(f"{srdd.url}/sessions/{sid}/log", params={"size": 2}).json()
    assert lg["id"] == sid and len(lg["log"]) <= 2 and lg["from"] == max(0, lg["total"] - 2), lg
    lg = http.get(f"{srdd.url}/sessions/{sid}/log", params={"from": 0, "size": 2}).json()
    assert lg["from"] == 0 and len(lg["log"]) == min(2, lg["total"]), lg
    r = http.get(f"{srdd.url}/sessions/987654")
    assert r.status_code == 404 and r.json()["msg"] == r.json()["error"]["message"]
    r = http.post(f"{srdd.url}/sessions", json={"kind": "sparkr"})
    assert r.status_code == 400 and "there is no R here" in r.json()["msg"]
    r = http.post(f"{srdd.url}/sessions/{sid}/statements", json={"code": "1", "kind": "sparkr"})
    assert r.status_code == 400 and "there is no R here" in r.json()["msg"]
