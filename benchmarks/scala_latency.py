"""Scala statement latency on one srdd node (make bench-scala).

Starts bin/srdd on 127.0.0.1 (ports chosen by the OS), creates a
`kind: spark` session and times, end to end over HTTP (POST the statement,
then long-poll GET ?wait= until it is available):
  - the first Scala statement `1 + 1`, which starts the Scala REPL (cold);
  - N more `1 + 1` on the warm REPL;
  - N Python `1 + 1` in the same session, for comparison.
Prints a Markdown table; benchmarks/SCALA.md keeps the results.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "helpers"))
import srdd_node  # noqa: E402


def run(http: requests.Session, base: str, sid: int, code: str, kind: str) -> tuple[float, dict]:
    t0 = time.perf_counter()
    r = http.post(f"{base}/sessions/{sid}/statements", json={"code": code, "kind": kind})
    r.raise_for_status()
    stid = r.json()["id"]
    while True:
        st = http.get(f"{base}/sessions/{sid}/statements/{stid}", params={"wait": 120}).json()
        if st["state"] in ("available", "error", "cancelled"):
            return time.perf_counter() - t0, st


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=30, help="warm statements of each kind")
    ap.add_argument("--srdd", default=str(REPO / "bin" / "srdd"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="srdd-bench-scala-"))
    proc = subprocess.Popen(
        [args.srdd, "server", "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--bootstrap",
         "--data-dir", str(work / "data"), "--python", sys.executable, "--spark-master", "local[2]",
         "--log-level", "warn"], stderr=subprocess.PIPE, text=True)
    try:
        base = srdd_node.serving_url(proc, "http")
        if base is None:
            sys.exit("srdd did not start")
        srdd_node.drain(proc)
        http = requests.Session()
        t0 = time.perf_counter()
        sid = http.post(f"{base}/sessions", json={"kind": "spark"}).json()["id"]
        while http.get(f"{base}/sessions/{sid}/state").json()["state"] != "idle":
            time.sleep(0.1)
        start = time.perf_counter() - t0
        cold, st = run(http, base, sid, "1 + 1", "spark")
        assert st["output"]["data"]["text/plain"] == "res0: Int = 2", st
        warm = []
        for _ in range(args.n):
            secs, st = run(http, base, sid, "1 + 1", "spark")
            assert st["output"]["status"] == "ok", st
            warm.append(secs)
        py = []
        for _ in range(args.n):
            secs, st = run(http, base, sid, "1 + 1", "pyspark")
            assert st["output"]["data"]["text/plain"] == "2", st
            py.append(secs)
        load = os.getloadavg()
        ms = lambda xs, q: 1000 * statistics.quantiles(xs, n=100)[q - 1]  # noqa: E731
        print(f"load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, {os.cpu_count()} cores")
        print("| what | result |\n|---|---|")
        print(f"| session POST -> idle (PySpark start) | {start:.1f} s |")
        print(f"| first Scala `1 + 1` (starts the REPL) | {cold:.1f} s |")
        print(f"| warm Scala `1 + 1`, {args.n} runs | p50 {ms(warm, 50):.0f} ms, p90 {ms(warm, 90):.0f} ms, "
              f"min {1000 * min(warm):.0f} ms |")
        print(f"| Python `1 + 1` in the same session, {args.n} runs | p50 {ms(py, 50):.0f} ms, "
              f"p90 {ms(py, 90):.0f} ms, min {1000 * min(py):.0f} ms |")
    finally:
        srdd_node.stop(proc)


if __name__ == "__main__":
    main()
