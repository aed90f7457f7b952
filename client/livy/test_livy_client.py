"""A real Livy client (the `livy` package) used unchanged against srdd."""

from __future__ import annotations

import time

import pandas as pd
import pytest
import requests
from livy import LivySession, SessionKind, SessionState
from livy.client import LivyClient
from livy.models import SparkRuntimeError, StatementState


def test_server_version(srdd_url: str) -> None:
    client = LivyClient(srdd_url)
    assert not client.legacy_server()
    client.close()


def test_pyspark_session_end_to_end(srdd_url: str) -> None:
    with LivySession.create(srdd_url, kind=SessionKind.PYSPARK, name="livy-client-test") as session:
        assert session.state == SessionState.IDLE
        assert session.run("1 + 1").text == "2"
        assert session.run("data = {'ak': 'Alaska'}\n%json data").json == {"ak": "Alaska"}
        with pytest.raises(SparkRuntimeError) as err:
            session.run("1 / 0")
        assert err.value.ename == "ZeroDivisionError"

        session.run("df = spark.createDataFrame([(1, 'a'), (2, 'b')], ['n', 's'])")
        frame = session.download("df")
        assert frame.sort_values("n").to_dict("list") == {"n": [1, 2], "s": ["a", "b"]}
        session.upload("uploaded", pd.DataFrame({"x": [10, 20, 30]}))
        assert session.run("uploaded.agg({'x': 'sum'}).collect()[0][0]").text == "60"

        # A shared RDD made over srdd's REST API is visible to the Livy session.
        sid = session.session_id
        r = requests.post(f"{srdd_url}/v1/rdds", json={"name": "livy_states", "session": sid, "mode": "memory"})
        assert r.status_code == 201, r.text
        r = requests.post(f"{srdd_url}/v1/rdds", json={"name": "livy_durable", "session": sid})
        assert r.status_code == 201 and r.json()["mode"] == "durable", r.text
        assert requests.put(f"{srdd_url}/v1/rdds/livy_durable/keys/k", data='{"kept": true}').status_code == 204
        assert requests.put(f"{srdd_url}/v1/rdds/livy_states/keys/ak", data='"Alaska"').status_code == 204
        assert session.run("livy_states.get('ak')").text == "'Alaska'"

        # Cancel through the REST API the client does not wrap.
        client = LivyClient(srdd_url)
        st = client.create_statement(sid, "import time\nsc.parallelize(range(2), 2).map(lambda x: time.sleep(60) or x).count()")
        deadline = time.time() + 60
        while client.get_statement(sid, st.statement_id).state != StatementState.RUNNING and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1)
        assert requests.post(f"{srdd_url}/sessions/{sid}/statements/{st.statement_id}/cancel").json() == {"msg": "canceled"}
        deadline = time.time() + 30
        while client.get_statement(sid, st.statement_id).state != StatementState.CANCELLED and time.time() < deadline:
            time.sleep(0.2)
        assert client.get_statement(sid, st.statement_id).state == StatementState.CANCELLED
        assert [s.statement_id for s in client.list_statements(sid)][-1] == st.statement_id
    # Leaving the context deleted the session.
    assert client.get_session(sid) is None
    # Its memory-mode RDD went with it; its durable RDD moved to another
    # session, with its data.
    assert requests.get(f"{srdd_url}/v1/rdds/livy_states").status_code == 404
    deadline = time.time() + 180
    while time.time() < deadline:
        r = requests.get(f"{srdd_url}/v1/rdds/livy_durable/keys/k")
        if r.status_code == 200:
            break
        time.sleep(0.5)
    assert r.status_code == 200 and r.json()["value"] == {"kept": True}, r.text
    assert requests.get(f"{srdd_url}/v1/rdds/livy_durable").json()["session"] != sid
    client.close()


def test_sql_session_download_sql(srdd_url: str) -> None:
    with LivySession.create(srdd_url, kind=SessionKind.SQL) as session:
        frame = session.download_sql("SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, 'y'")
        assert frame.sort_values("a").to_dict("list") == {"a": [1, 2], "b": ["x", "y"]}
        with pytest.raises(SparkRuntimeError):
            session.download_sql("SELECT * FROM no_such_table")
