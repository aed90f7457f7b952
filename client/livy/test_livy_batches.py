"""Livy batches through a real Livy client (the `livy` package's
LivyBatch and LivyClient) against bin/srdd: spark-submit of a PySpark
file, its log, a kill through DELETE, and a batch that fails."""

from __future__ import annotations

import json
import os
import time
import uuid

from conftest import Srdd
from livy import LivyBatch, SessionState
from livy.client import LivyClient

JOB = """
import json, sys
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
total = spark.sparkContext.parallelize(range(1, int(sys.argv[1]) + 1), 2).sum()
with open(sys.argv[2], "w") as f:
    json.dump({"total": total, "app": spark.sparkContext.applicationId}, f)
print("batch-job-total", total, flush=True)
spark.stop()
"""

WAIT = """
import time
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
print("batch-waiting", spark.sparkContext.applicationId, flush=True)
time.sleep(900)
"""


def _write(srdd: Srdd, code: str) -> str:
    path = srdd.files / f"job-{uuid.uuid4().hex[:8]}.py"
    path.write_text(code)
    return str(path)


def _processes_with(arg: str) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if arg.encode() in f.read():
                    out.append(int(pid))
        except OSError:
            pass
    return out


def test_pyspark_batch_succeeds_and_logs(srdd: Srdd) -> None:
    job = _write(srdd, JOB)
    result = srdd.files / f"result-{uuid.uuid4().hex[:8]}.json"
    batch = LivyBatch.create(srdd.url, file=job, args=["100", str(result)], name="livy-batch-test",
                             driver_memory="512m", spark_conf={"spark.sql.shuffle.partitions": "2"}, **srdd.livy)
    assert batch.wait() == SessionState.SUCCESS
    written = json.loads(result.read_text())
    assert written["total"] == 5050
    log = batch.log(from_=0, size=100000)
    assert any("batch-job-total 5050" in line for line in log), log[-20:]
    client = LivyClient(srdd.url, **srdd.livy)
    info = client.get_batch(batch.batch_id)
    assert info is not None and info.app_id == written["app"]
    assert info.app_info is not None and info.app_info["driverLogUrl"].endswith(f"/batches/{batch.batch_id}/log")
    assert batch.batch_id in [b.batch_id for b in client.list_batches()]
    # Livy's log paging: from/size windows, total counts every line.
    page = srdd.http.get(f"{srdd.url}/batches/{batch.batch_id}/log", params={"from": 1, "size": 2}).json()
    assert page["id"] == batch.batch_id and page["from"] == 1 and len(page["log"]) == 2
    assert page["total"] == len(log)
    state = srdd.http.get(f"{srdd.url}/batches/{batch.batch_id}/state").json()
    assert state == {"id": batch.batch_id, "state": "success"}
    client.close()


def test_batch_killed_through_delete(srdd: Srdd) -> None:
    job = _write(srdd, WAIT)
    batch = LivyBatch.create(srdd.url, file=job, **srdd.livy)
    deadline = time.time() + 300
    while batch.state != SessionState.RUNNING and time.time() < deadline:
        assert batch.state == SessionState.STARTING
        time.sleep(1)
    assert batch.state == SessionState.RUNNING
    deadline = time.time() + 120
    while not any("batch-waiting" in line for line in batch.log(from_=0, size=100000)) and time.time() < deadline:
        time.sleep(1)
    assert _processes_with(job), "the driver is not running"
    r = srdd.http.delete(f"{srdd.url}/batches/{batch.batch_id}", headers={"X-Requested-By": "test"})
    assert r.status_code == 200 and r.json() == {"msg": "deleted"}, r.text
    assert batch.state == SessionState.KILLED
    deadline = time.time() + 30
    while _processes_with(job) and time.time() < deadline:
        time.sleep(0.5)
    assert not _processes_with(job), "the driver outlived DELETE"
    batch.client.close()


def test_failing_batch_ends_dead(srdd: Srdd) -> None:
    job = _write(srdd, "import sys\nprint('batch-about-to-fail', flush=True)\nsys.exit(3)\n")
    batch = LivyBatch.create(srdd.url, file=job, **srdd.livy)
    assert batch.wait() == SessionState.DEAD
    log = batch.log(from_=0, size=100000)
    assert any("batch-about-to-fail" in line for line in log), log
    assert any("exit status 3" in line for line in log), log
    batch.client.close()


def test_batch_bad_input(srdd: Srdd) -> None:
    h = {"X-Requested-By": "test"}
    r = srdd.http.post(f"{srdd.url}/batches", json={"file": "/etc/passwd"}, headers=h)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_path"
    r = srdd.http.post(f"{srdd.url}/batches", json={"file": _write(srdd, "pass"), "driverMemory": "900g"}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "conf_too_large"
    r = srdd.http.post(f"{srdd.url}/batches", json={"className": "x"}, headers=h)
    assert r.status_code == 400
    # proxyUser is for admins only, as for sessions.
    r = srdd.http.post(f"{srdd.url}/batches", json={"file": _write(srdd, "pass"), "proxyUser": "root"}, headers=h)
    assert r.status_code == 403
    assert srdd.http.get(f"{srdd.url}/batches/987654").status_code == 404
