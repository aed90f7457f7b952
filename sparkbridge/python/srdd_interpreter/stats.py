"""The ``stats`` op: what the node exports as Prometheus metrics about this
interpreter (see sparkbridge/DESIGN.md, "stats").

The node polls it when it is scraped, with a short timeout, and keeps the
last answer if this one is late; so it must stay cheap: no Spark job, only
counters kept by the engine, one py4j call for the JVM heap and two reads
of /proc.

Job latencies are cumulative histograms with fixed bucket bounds
(JOB_BUCKETS, in seconds), so the node can export them as Prometheus
histograms and sum them across RDDs.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from typing import Any, Optional

# Upper bounds (seconds) of the job latency buckets; +Inf is implied.
JOB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class JobHistogram:
    """Counts of job durations per bucket. Not thread-safe: the store
    observes and snapshots it under its own lock."""

    def __init__(self) -> None:
        self.counts = [0] * (len(JOB_BUCKETS) + 1)  # the last is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(JOB_BUCKETS, seconds)] += 1
        self.sum += seconds

    def snapshot(self) -> dict[str, Any]:
        """Per-bucket (not cumulative) counts, the sum and the total count."""
        return {"counts": list(self.counts), "sum": self.sum, "count": sum(self.counts)}


def rss_bytes(pid: int) -> Optional[int]:
    """Resident set size of a process from /proc, or None if unknown."""
    try:
        with open("/proc/%d/statm" % pid, "rb") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def jvm_stats(sc: Any) -> dict[str, Any]:
    """Heap of the driver JVM (py4j) and its RSS (the gateway process)."""
    out: dict[str, Any] = {}
    try:
        rt = sc._jvm.java.lang.Runtime.getRuntime()
        total, free, limit = int(rt.totalMemory()), int(rt.freeMemory()), int(rt.maxMemory())
        out.update({"heap_used": total - free, "heap_committed": total, "heap_max": limit})
    except Exception:  # the JVM is stopping: report what we can
        pass
    proc = getattr(getattr(sc, "_gateway", None), "proc", None)
    pid = getattr(proc, "pid", None)
    if isinstance(pid, int):
        rss = rss_bytes(pid)
        if rss is not None:
            out["rss"] = rss
    return out


def collect(tables: Any, sc: Any, pending: int) -> dict[str, Any]:
    """The answer of the ``stats`` op for a session's RDDTable. ``pending``
    is the number of ops waiting for a worker thread."""
    rdds = []
    for store in tables.stores():
        rdds.append(store.metrics_snapshot())
    out: dict[str, Any] = {
        "buckets": list(JOB_BUCKETS),
        "rss": rss_bytes(os.getpid()) or 0,
        "jvm": jvm_stats(sc),
        "cache": tables.engine.cache.stats(),
        "pending": pending,
        "rdds": rdds,
    }
    return out
