"""SQL statements, %matplot, completion and progress (Livy features)."""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

from srdd_interpreter.statements import PNG_MIME, SQL_MAX_ROWS, StatementRunner


def make_runner(spark: Any) -> StatementRunner:
    return StatementRunner({"spark": spark, "sc": spark.sparkContext}, sc=spark.sparkContext)


def test_sql_statement_has_livy_schema_and_data(spark: Any) -> None:
    runner = make_runner(spark)
    runner.execute("spark.createDataFrame([('ak', 'Alaska', 1959), ('hi', 'Hawaii', 1959)], "
                   "['code', 'name', 'year']).createOrReplaceTempView('states_view')")
    out = runner.execute("SELECT code, year FROM states_view ORDER BY code", "sql")
    assert out["status"] == "ok", out
    body = out["data"]["application/json"]
    assert [f["name"] for f in body["schema"]["fields"]] == ["code", "year"]
    assert body["data"] == [["ak", 1959], ["hi", 1959]]


def test_sql_caps_rows_and_renders_dates(spark: Any) -> None:
    runner = make_runner(spark)
    out = runner.execute("SELECT id, DATE'2024-01-02' AS d FROM range(%d)" % (SQL_MAX_ROWS + 5), "sql")
    rows = out["data"]["application/json"]["data"]
    assert len(rows) == SQL_MAX_ROWS
    assert rows[0] == [0, "2024-01-02"]


def test_sql_error_is_livy_error(spark: Any) -> None:
    out = make_runner(spark).execute("SELECT * FROM no_such_table_xyz", "sql")
    assert out["status"] == "error"
    assert "no_such_table_xyz" in out["evalue"]


def test_matplot_magic_gives_png(spark: Any) -> None:
    runner = make_runner(spark)
    out = runner.execute("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
                         "plt.plot([1, 2, 3], [3, 1, 2])\n%matplot plt")
    assert out["status"] == "ok", out
    png = base64.b64decode(out["data"][PNG_MIME])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    bad = runner.execute("%matplot 42")
    assert bad["status"] == "error" and bad["ename"] == "TypeError"


def test_completion_uses_the_session_namespace() -> None:
    runner = StatementRunner()
    runner.execute("shared_value = 1\nshared_values = 2\nimport json")
    assert runner.complete("x = shared_v", 12) == ["shared_value", "shared_values"]
    assert "json.dumps" in runner.complete("json.du", 7)
    assert runner.complete("1 + ", 4) == []
    # The cursor decides what is completed, not the end of the code.
    assert runner.complete("shared_v + json", 8) == ["shared_value", "shared_values"]


def test_progress_reports_the_running_statement(spark: Any) -> None:
    runner = make_runner(spark)
    assert runner.progress() is None
    seen: list[float] = []
    done = threading.Event()

    def run() -> None:
        runner.execute("import time\nsc.parallelize(range(4), 4).map(lambda x: time.sleep(1.5 * x) or x).count()")
        done.set()

    t = threading.Thread(target=run)
    t.start()
    deadline = time.time() + 60
    while not done.is_set() and time.time() < deadline:
        p = runner.progress()
        if p is not None:
            seen.append(p)
        time.sleep(0.2)
    t.join()
    assert done.is_set()
    assert any(0 < p < 1 for p in seen), seen
    assert runner.progress() is None


def test_cancel_also_stops_jobs_started_after_the_request(spark: Any) -> None:
    runner = make_runner(spark)
    out: dict[str, Any] = {}

    def run() -> None:
        # The job starts about 1 s after the statement: cancel arrives first.
        out.update(runner.execute("import time\ntime.sleep(1)\n"
                                  "sc.parallelize(range(2), 2).map(lambda x: time.sleep(60) or x).count()"))

    t = threading.Thread(target=run)
    t.start()
    while runner.progress() is None:
        time.sleep(0.05)
    assert runner.cancel() is not None
    t.join(timeout=45)
    assert not t.is_alive(), "the Spark job submitted after cancel was not cancelled"
    assert out["status"] == "error" and "cancel" in out["evalue"].lower(), out
