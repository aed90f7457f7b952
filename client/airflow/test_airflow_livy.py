"""Airflow's LivyHook (apache-airflow-providers-apache-livy), unchanged,
submits a PySpark batch to a real srdd node and polls it to success, as
Airflow's LivyOperator does."""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from urllib.parse import urlparse

from conftest import Srdd

JOB = """
import sys
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
n = spark.sparkContext.parallelize(range(int(sys.argv[1])), 2).count()
open(sys.argv[2], "w").write(str(n))
print("airflow-batch-count", n, flush=True)
spark.stop()
"""


def test_livy_hook_batch_to_success(srdd: Srdd) -> None:
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="srdd-airflow-"))
    u = urlparse(srdd.url)
    # A connection as an Airflow user defines one (here: from the environment).
    os.environ["AIRFLOW_CONN_SRDD_LIVY"] = json.dumps({
        "conn_type": "livy", "host": u.hostname, "port": u.port, "schema": u.scheme,
        "login": srdd.auth[0], "password": srdd.auth[1],
    })
    from airflow.providers.apache.livy.hooks.livy import BatchState, LivyHook

    job = srdd.files / f"airflow-{uuid.uuid4().hex[:8]}.py"
    job.write_text(JOB)
    out = srdd.files / f"airflow-{uuid.uuid4().hex[:8]}.out"
    hook = LivyHook(livy_conn_id="srdd_livy", extra_options={"verify": srdd.ca, "check_response": False},
                    extra_headers={"X-Requested-By": "airflow"})
    batch_id = hook.post_batch(file=str(job), args=["1000", str(out)], name=f"airflow-{uuid.uuid4().hex[:6]}",
                               conf={"spark.sql.shuffle.partitions": "2"}, driver_memory="512m")
    deadline = time.time() + 600
    state = hook.get_batch_state(batch_id)
    seen = {state}
    while state not in LivyHook.TERMINAL_STATES and time.time() < deadline:
        time.sleep(2)
        state = hook.get_batch_state(batch_id)
        seen.add(state)
    assert state == BatchState.SUCCESS, (state, hook.get_batch_logs(batch_id, 0, 100))
    assert seen <= {BatchState.STARTING, BatchState.RUNNING, BatchState.SUCCESS}, seen
    assert out.read_text() == "1000"
    logs = hook.get_batch_logs(batch_id, 0, 10000)
    assert logs["id"] == batch_id and logs["total"] >= len(logs["log"]) > 0
    assert any("airflow-batch-count 1000" in line for line in logs["log"])
    info = hook.get_batch(batch_id)
    assert info["state"] == "success" and info["appId"].startswith("local-")
    # delete_batch on a finished batch answers Livy's message; the state stays.
    assert hook.delete_batch(batch_id) == {"msg": "deleted"}
    assert hook.get_batch_state(batch_id) == BatchState.SUCCESS
