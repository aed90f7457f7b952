"""Spark Connect through srdd against Spark's own server (make
bench-connect; issue 27's benchmark).

Two runs on this machine, one after the other, each in a JVM of its own
(`local[2]`, a 1g driver), with pyspark-client (the `.venv-connect` venv)
on 127.0.0.1, plaintext, no token:
  - direct: Spark's own Spark Connect server (spark-submit --class
    org.apache.spark.sql.connect.service.SparkConnectServer) from the
    pinned pyspark;
  - srdd: bin/srdd with --connect-addr (no users file, so loopback and
    plaintext), one pyspark session; each stream goes through srdd's port
    and its proxy into the Spark Connect server inside that session.
Each run measures, on a warm client session:
  - time to first result of spark.range(1).count(), N times;
  - rows/s of toPandas() of a 1M-row DataFrame (three columns), R times.
The srdd interpreter's own Spark Connect server is not reachable from
here (its port and token never leave the node), so Spark's own server,
same version, same settings, is this client's direct baseline. The
issue's own measure, the same session's Spark Connect port directly
against through srdd, needs the token, so it runs in-process:
BenchmarkConnectProxyCost (node/connect_bench_test.go), which `make
bench-connect` runs first; with --proxy-bench and --proxy-pairs (its
output and its pairs), its figures head the page. Writes
benchmarks/CONNECT.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from pyspark.sql import SparkSession

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "helpers"))
import srdd_node  # noqa: E402

ROWS = 1_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


def measure(url: str, n: int, r: int) -> dict:
    spark = SparkSession.builder.remote(url).create()
    try:
        for _ in range(3):  # warm: the plan path, the JIT, the client
            spark.range(1).count()
        first = []
        for _ in range(n):
            t0 = time.perf_counter()
            assert spark.range(1).count() == 1
            first.append(time.perf_counter() - t0)
        df = spark.range(ROWS).selectExpr("id", "id * 2 AS twice", "cast(id AS string) AS s")
        assert len(df.toPandas()) == ROWS  # warm
        rps = []
        for _ in range(r):
            t0 = time.perf_counter()
            pdf = df.toPandas()
            rps.append(ROWS / (time.perf_counter() - t0))
            assert len(pdf) == ROWS
        first.sort()
        return {"first_p50_ms": statistics.median(first) * 1e3, "first_p90_ms": first[int(0.9 * (len(first) - 1))] * 1e3,
                "rows_per_s": statistics.median(rps), "rows_per_s_all": rps}
    finally:
        spark.stop()


def direct(pyspark_home: Path, n: int, r: int, work: Path) -> dict:
    port = free_port()
    log = open(work / "direct.log", "w")
    proc = subprocess.Popen(
        [str(pyspark_home / "bin" / "spark-submit"), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
         "--master", "local[2]", "--conf", "spark.driver.memory=1g",
         "--conf", "spark.connect.grpc.binding.address=127.0.0.1", "--conf", f"spark.connect.grpc.binding.port={port}",
         "spark-internal"], stdout=log, stderr=log, start_new_session=True)
    try:
        wait_port(port)
        return measure(f"sc://127.0.0.1:{port}", n, r)
    finally:
        srdd_node.stop(proc)
        log.close()


def through_srdd(binary: str, node_python: str, n: int, r: int, work: Path) -> dict:
    connect = free_port()
    log = open(work / "srdd.log", "w")
    proc = subprocess.Popen(
        [binary, "server", "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--data-dir", str(work / "data"),
         "--python", node_python, "--spark-master", "local[2]", "--connect-addr", f"127.0.0.1:{connect}",
         "--log-level", "warn"], stderr=subprocess.PIPE, text=True, start_new_session=True,
        # pyspark-client marks this process as a Spark Connect client
        # (SPARK_CONNECT_MODE_ENABLED, SPARK_REMOTE): the node and its
        # interpreters must not inherit that.
        env={k: v for k, v in os.environ.items() if not k.startswith("SPARK_")})
    try:
        base = srdd_node.serving_url(proc, "http", log)
        if base is None:
            raise RuntimeError(f"srdd did not start; see {work / 'srdd.log'}")
        srdd_node.drain(proc, log)

        def call(method: str, path: str, body=None) -> dict:
            req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json", "X-Requested-By": "bench"})
            with urllib.request.urlopen(req, timeout=60) as resp:
                return json.loads(resp.read() or b"{}")

        sid = call("POST", "/sessions", {"kind": "pyspark", "driverMemory": "1g"})["id"]
        deadline = time.monotonic() + 300
        while (state := call("GET", f"/sessions/{sid}/state")["state"]) != "idle":
            if time.monotonic() > deadline or state in ("dead", "error", "killed"):
                raise RuntimeError(f"the session did not start ({state}); see {work / 'srdd.log'}")
            time.sleep(0.5)
        return measure(f"sc://127.0.0.1:{connect}/;x-srdd-session={sid}", n, r)
    finally:
        srdd_node.stop(proc)
        log.close()


def proxy_section(bench: Path, pairs: Path) -> list[str]:
    """The page's first section, from BenchmarkConnectProxyCost's output
    line (its metrics) and its pairs file (direct and srdd rows/s, direct
    and srdd ms to the whole answer of the count, one pair a line)."""
    # go test mixes the node's log lines into its output, even into the
    # benchmark's result line: find each metric by its unit.
    text = bench.read_text()
    metrics = {unit: float(v) for v, unit in re.findall(
        r"([-\d.]+) (direct-first-ms|srdd-first-ms|direct-rows/s|srdd-rows/s|proxy-cost-%)", text)}
    rows = [tuple(float(x) for x in ln.split()) for ln in pairs.read_text().splitlines() if ln.strip()]
    metrics["pairs"] = len(rows)
    if len(metrics) < 6 or not rows:
        raise RuntimeError(f"no BenchmarkConnectProxyCost result in {bench} and {pairs}")
    costs = sorted(100 * (1 - s / d) for d, s, _, _ in rows)
    q = statistics.quantiles(costs, n=4)
    cost = metrics["proxy-cost-%"]
    return [
        "## The session's own Spark Connect port, directly and through srdd (the issue's measure)",
        "",
        "BenchmarkConnectProxyCost (node/connect_bench_test.go), in-process on real PySpark (`local[2]`, 1g driver): "
        "the same ExecutePlan request sent to one warm session's own Spark Connect server, directly (its loopback "
        "port and the token only the node holds) and through srdd's port, alternating, so both paths meet the same "
        f"JVM in the same state. {int(metrics['pairs'])} pairs of each query, the order of each pair alternating. "
        "The answers are read as Arrow batches, not converted to pandas, so the proxy's share of the time is larger "
        "than a real client's.",
        "",
        "| path | `SELECT count(*) FROM range(1)`: whole answer, p50 ms | 1M rows, 3 columns: rows/s (median) |",
        "|---|---|---|",
        f"| direct | {metrics['direct-first-ms']:.1f} | {metrics['direct-rows/s']:,.0f} |",
        f"| srdd | {metrics['srdd-first-ms']:.1f} | {metrics['srdd-rows/s']:,.0f} |",
        "",
        f"Proxy cost on rows/s, median over pairs: {cost:.1f}% (target: at most 10%: "
        f"{'met' if cost <= 10 else '**missed**'}); quartiles of the pairs' costs {q[0]:.1f}%, {q[1]:.1f}%, {q[2]:.1f}%.",
        "",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--srdd", default=str(REPO / "bin" / "srdd"))
    ap.add_argument("--node-python", default=str(REPO / ".venv" / "bin" / "python"))
    ap.add_argument("-n", type=int, default=50, help="range(1).count() runs")
    ap.add_argument("-r", type=int, default=5, help="toPandas() runs")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "CONNECT.md"))
    ap.add_argument("--proxy-bench", help="BenchmarkConnectProxyCost's output")
    ap.add_argument("--proxy-pairs", help="its pairs (SRDD_BENCH_PAIRS)")
    a = ap.parse_args()
    pyspark_home = Path(os.path.abspath(a.node_python)).parents[1] / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / "pyspark"
    work = Path(tempfile.mkdtemp(prefix="srdd-bench-connect-"))
    load = os.getloadavg()
    res = {"direct": direct(pyspark_home, a.n, a.r, work), "srdd": through_srdd(a.srdd, a.node_python, a.n, a.r, work)}
    d, s = res["direct"], res["srdd"]
    cost = 1 - s["rows_per_s"] / d["rows_per_s"]
    lines = [
        "# Spark Connect through srdd",
        "",
        f"Generated by `make bench-connect` (benchmarks/connect_bench.py) on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
        f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}.",
        "",
    ]
    if a.proxy_bench and a.proxy_pairs:
        lines += proxy_section(Path(a.proxy_bench), Path(a.proxy_pairs))
    lines += [
        "## pyspark-client through srdd against Spark's own server",
        "",
        "pyspark-client 4.2.0 on 127.0.0.1, plaintext. *direct*: Spark's own Spark Connect server (the pinned pyspark's, "
        "`local[2]`, 1g driver). *srdd*: the same client through `bin/srdd --connect-addr` into a pyspark session "
        "(`local[2]`, 1g driver) and the Spark Connect server inside it. Runs one after the other, never together.",
        "",
        f"| path | `range(1).count()` p50 ms | p90 ms | `toPandas()` of {ROWS:,} rows: rows/s (median of {a.r}) |",
        "|---|---|---|---|",
    ]
    for k in ("direct", "srdd"):
        v = res[k]
        lines.append(f"| {k} | {v['first_p50_ms']:.1f} | {v['first_p90_ms']:.1f} | {v['rows_per_s']:,.0f} |")
    lines += ["",
              f"Proxy cost on rows/s: {cost * 100:.1f}% (target: at most 10%: {'met' if cost <= 0.10 else '**missed**'}). "
              f"Time to first result: {s['first_p50_ms'] - d['first_p50_ms']:+.1f} ms at the median.",
              "", "Every toPandas() run, rows/s: direct " + ", ".join(f"{x:,.0f}" for x in d["rows_per_s_all"])
              + "; srdd " + ", ".join(f"{x:,.0f}" for x in s["rows_per_s_all"]) + ".", ""]
    Path(a.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
