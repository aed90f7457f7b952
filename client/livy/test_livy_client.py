"""A real Livy client (the `livy` package) used unchanged against srdd."""

from __future__ import annotations

import time

import pandas as pd
import pytest
import requests
from conftest import Srdd
from livy import LivySession, SessionKind, SessionState
from livy.client import LivyClient
from livy.models import SparkRuntimeError, StatementState


def test_server_version(srdd: Srdd) -> None:
    client = LivyClient(srdd.url, **srdd.livy)
    assert not client.legacy_server()
    client.close()


def test_pyspark_session_end_to_end(srdd: Srdd) -> None:
    srdd_url, http = srdd.url, srdd.http
    with LivySession.create(srdd_url, kind=SessionKind.PYSPARK, name="livy-client-test", **srdd.livy) as session:
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
        r = http.post(f"{srdd_url}/v1/rdds", json={"name": "livy_states", "session": sid, "mode": "memory"})
        assert r.status_code == 201, r.text
        r = http.post(f"{srdd_url}/v1/rdds", json={"name": "livy_durable", "session": sid})
        assert r.status_code == 201 and r.json()["mode"] == "durable", r.text
        assert http.put(f"{srdd_url}/v1/rdds/livy_durable/keys/k", json={"kept": True}).status_code == 204
        assert http.put(f"{srdd_url}/v1/rdds/livy_states/keys/ak", json="Alaska").status_code == 204
        assert session.run("livy_states.get('ak')").text == "'Alaska'"

        # Cancel through the REST API the client does not wrap.
        client = LivyClient(srdd_url, **srdd.livy)
        st = client.create_statement(sid, "import time\nsc.parallelize(range(2), 2).map(lambda x: time.sleep(60) or x).count()")
        deadline = time.time() + 60
        while client.get_statement(sid, st.statement_id).state != StatementState.RUNNING and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1)
        assert http.post(f"{srdd_url}/sessions/{sid}/statements/{st.statement_id}/cancel",
                             headers={"X-Requested-By": "test"}).json() == {"msg": "canceled"}
        deadline = time.time() + 30
        while client.get_statement(sid, st.statement_id).state != StatementState.CANCELLED and time.time() < deadline:
            time.sleep(0.2)
        assert client.get_statement(sid, st.statement_id).state == StatementState.CANCELLED
        assert [s.statement_id for s in client.list_statements(sid)][-1] == st.statement_id
    # Leaving the context deleted the session.
    assert client.get_session(sid) is None
    # Its memory-mode RDD went with it; its durable RDD moved to another
    # session, with its data.
    assert http.get(f"{srdd_url}/v1/rdds/livy_states").status_code == 404
    deadline = time.time() + 180
    while time.time() < deadline:
        r = http.get(f"{srdd_url}/v1/rdds/livy_durable/keys/k")
        if r.status_code == 200:
            break
        time.sleep(0.5)
    assert r.status_code == 200 and r.json()["value"] == {"kept": True}, r.text
    assert http.get(f"{srdd_url}/v1/rdds/livy_durable").json()["session"] != sid
    client.close()


def test_sql_session_download_sql(srdd: Srdd) -> None:
    with LivySession.create(srdd.url, kind=SessionKind.SQL, **srdd.livy) as session:
        frame = session.download_sql("SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, 'y'")
        assert frame.sort_values("a").to_dict("list") == {"a": [1, 2], "b": ["x", "y"]}
        with pytest.raises(SparkRuntimeError):
            session.download_sql("SELECT * FROM no_such_table")


def test_credentials_are_required(srdd: Srdd) -> None:
    """Without credentials, or with a wrong password, a Livy client gets 401
    and srdd asks for Basic; a plain-HTTP client cannot talk to it at all."""
    for auth in (None, ("livy", "wrong")):
        r = requests.post(f"{srdd.url}/sessions", json={"kind": "pyspark"}, auth=auth, verify=srdd.ca)
        assert r.status_code == 401, r.text
        assert r.headers["WWW-Authenticate"] == 'Basic realm="srdd"'
    with pytest.raises(requests.HTTPError):
        LivyClient(srdd.url, auth=("livy", "wrong"), verify=srdd.ca).list_sessions()
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{srdd.url}/version")  # not signed by a CA requests trusts
    plain = srdd.url.replace("https://", "http://")
    try:
        r = requests.get(f"{plain}/version", timeout=5)
        assert r.status_code >= 400, r.text
    except requests.exceptions.ConnectionError:
        pass
