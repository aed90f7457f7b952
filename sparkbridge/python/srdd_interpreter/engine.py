"""The Spark half of the KV engine, on the driver: bases and the jobs over them.

A *base* is one immutable snapshot of an RDD's data held by Spark: a
cached, locally checkpointed RDD with one index record per partition
(tasks.py), hash-partitioned by key, plus what the driver keeps about it:
the key count, the size, and a *key directory* — each partition's sorted
64-bit key hashes — so the driver knows without a Spark job whether a key
is in the base (a get of an absent key, a delete, the key count). A
64-bit hash can collide: for a million keys the chance that a given
absent key looks present is about 5e-14, and a lookup of such a key just
comes back empty.

Jobs here:
- lookup: one job over only the partitions holding the wanted keys; the
  keys travel as a task-local property, so the job reuses one pickled
  task function per base (measured: ~5 ms less per job than a fresh
  closure);
- rebuild: merge a frozen write delta into a new base (no shuffle when
  the partition count stays), or re-cut the base into more partitions as
  data grows, or load files; the new base is persisted and
  ``localCheckpoint``-ed, so lineage never grows;
- scan, view (``states.rdd`` / ``states.df``), save.

Every base is reference counted: lookups, scans and views hold a
reference, and a replaced base is unpersisted only when the last one is
released, so a job never loses its input mid-flight.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import sys
import threading
import weakref
import zlib
from array import array
from concurrent.futures import ThreadPoolExecutor
from bisect import bisect_left
from typing import Any, Optional

from . import rules, tasks
from .cache import DEFAULT_MIB, HotCache

log = logging.getLogger("srdd_interpreter.engine")

# Spark settings (spark.srdd.kv.*) that tune the engine; --spark-conf or a
# session's "conf" can set them.
CONF_CACHE_MIB = "spark.srdd.kv.cacheMiB"
CONF_PARTITION_KIB = "spark.srdd.kv.partitionKiB"
CONF_COMPACT_MIN = "spark.srdd.kv.compactMinEntries"
CONF_LOOKUP_JOBS = "spark.srdd.kv.lookupJobs"
CONF_PARTS_PER_JOB = "spark.srdd.kv.partitionsPerLookup"
CONF_RESIDENT = "spark.srdd.kv.residentIndex"

# Per-task overhead dominates small tasks (tens of ms per task on two
# cores), so partitions are fairly large: a lookup task moves 8 MiB in a
# few ms; loads and compactions need 4x fewer tasks than with 2 MiB.
DEFAULT_PARTITION_KIB = 8192
DEFAULT_COMPACT_MIN = 100_000
DEFAULT_LOOKUP_JOBS = 2
# A lookup's keys ride in a task-local property up to this size (bytes of
# JSON); larger batches ship their keys in the task closure instead.
LOCAL_PROPERTY_LIMIT = 256 << 10
# Deltas bigger than this (pickled) are shipped as a broadcast variable.
BROADCAST_LIMIT = 1 << 20
SWITCH_INTERVAL = 0.0005
# Resident indexes are fetched by jobs of at most this many bytes of
# partitions each: PythonRDD.runJob gathers a job's results in the JVM heap
# before it serves them to the driver.
RESIDENT_FETCH_BYTES = 16 << 20
# Fetch jobs in flight at once: while the driver reads one job's results
# from its socket and unpickles them, the next job's tasks keep the cores
# busy (one at a time, the cores idled during every transfer).
RESIDENT_FETCH_JOBS = 2

_pickling_ready = False
_pickling_lock = threading.Lock()


def _ship_tasks_by_value() -> None:
    """Executors need not import srdd_interpreter: tasks.py and the data
    rules it checks loaded rows with (rules.py) travel by value."""
    global _pickling_ready
    with _pickling_lock:
        if _pickling_ready:
            return
        try:
            from pyspark import cloudpickle
        except ImportError:  # pragma: no cover - older layouts
            import cloudpickle  # type: ignore[no-redef]
        cloudpickle.register_pickle_by_value(tasks)
        cloudpickle.register_pickle_by_value(rules)
        _pickling_ready = True


class Base:
    """One immutable snapshot of an RDD's data in Spark (see module doc)."""

    def __init__(self, engine: "Engine", rdd: Any, n: int, metas: list,
                 indexes: Optional[list] = None) -> None:
        self.engine = engine
        self.rdd = rdd  # None: nothing in Spark yet (the RDD is empty)
        self.n = n
        self.count = sum(m[0] for m in metas)
        self.nbytes = sum(m[1] for m in metas)
        # Resident mode (docs/ARCHITECTURE.md, "Resident partition
        # indexes"): the driver holds every partition's index record, the
        # same immutable bytes Spark holds, and answers every read from it;
        # the key directory is then not needed. Otherwise: the directory.
        self.views: Optional[list] = None
        if indexes is not None:
            # (View, sorted hashes, key positions in hash order) per partition
            self.views = [(tasks.View(ix), array(tasks.OFFSET_TYPE, hs), memoryview(pos).cast(tasks.OFFSET_TYPE))
                          for ix, hs, pos in indexes]
            self.dirs: list = []
        else:
            self.dirs = [array("Q", m[2]) if m[2] else array("Q") for m in metas]
        self.resident = indexes is not None
        # Set once a view over this base was handed to user code: the user
        # may derive RDDs and DataFrames from it that outlive every
        # reference we can count, so such a base is never unpersisted by
        # us; Spark's ContextCleaner drops its blocks when the JVM no longer
        # references the RDD (docs/ARCHITECTURE.md, "Views outlive compaction").
        self.shared = False
        self._lock = threading.Lock()
        self._refs = 1  # the owner's
        self._lookup: Any = None
        self._jlists: dict = {}
        if rdd is not None:
            from pyspark.rdd import Partitioner

            rdd.partitioner = Partitioner(n, tasks.key_hash)

    def partition(self, key: str) -> int:
        return tasks.partition_of(key.encode("utf-8"), self.n)

    def contains(self, key: str) -> bool:
        if self.count == 0:
            return False
        kb = key.encode("utf-8")
        if self.resident:
            views = self.views
            h = zlib.crc32(kb)
            return views is not None and find_in(views[h % self.n], kb, h) is not None
        d = self.dirs[tasks.partition_of(kb, self.n)]
        h = tasks.dir_hash(kb)
        i = bisect_left(d, h)
        return i < len(d) and d[i] == h

    # -- references

    def acquire(self) -> "Base":
        with self._lock:
            if self._refs <= 0:
                raise RuntimeError("base already released")
            self._refs += 1
        return self

    def release(self) -> None:
        with self._lock:
            self._refs -= 1
            done = self._refs == 0
        if done:
            self._free()

    def retire(self) -> None:
        """The owner lets go (the base was replaced)."""
        self.release()

    def _free(self) -> None:
        rdd, self.rdd, self._lookup, self._jlists = self.rdd, None, None, {}
        # Readers that took the list before keep it alive until they finish.
        self.views = None
        if rdd is not None and not self.shared:
            try:
                rdd.unpersist(blocking=False)
            except Exception:  # the context may be stopping; the cache dies with it
                pass

    # -- job helpers

    def lookup_rdd(self) -> Any:
        if self._lookup is None:
            self._lookup = self.rdd.mapPartitionsWithIndex(tasks.lookup_task)
        return self._lookup

    def java_partitions(self, parts: tuple) -> Any:
        """A java.util.ArrayList of partition ids, built once per set (py4j
        builds a Python list element by element, one call each)."""
        jl = self._jlists.get(parts)
        if jl is None:
            jl = self.engine.java_list(parts)
            if len(self._jlists) < 4096:
                self._jlists[parts] = jl
        return jl


class Engine:
    """Shared by the RDDs of one session: Spark handles, settings, the cache."""

    def __init__(self, sc: Any, spark: Any = None, data_rules: Optional[rules.Rules] = None) -> None:
        _ship_tasks_by_value()
        self.sc = sc
        # The node's data rules (rules.from_env); loads check rows with them.
        self.rules = data_rules or rules.from_env()
        self._spark = spark
        conf = sc.getConf()
        mib = float(conf.get(CONF_CACHE_MIB, str(DEFAULT_MIB)))
        self.cache = HotCache(int(mib * (1 << 20)))
        self.min_partitions = max(1, int(sc.defaultParallelism))
        self.target_partition_bytes = int(float(conf.get(CONF_PARTITION_KIB, str(DEFAULT_PARTITION_KIB))) * 1024)
        self.compact_min_entries = int(conf.get(CONF_COMPACT_MIN, str(DEFAULT_COMPACT_MIN)))
        self.lookup_jobs = max(1, int(conf.get(CONF_LOOKUP_JOBS, str(DEFAULT_LOOKUP_JOBS))))
        # Partitions one lookup job may touch (non-resident mode): by default
        # every partition its keys live in, so a batch costs one job
        # (issue 16: a 100-key batch over 32 partitions took 32 jobs, one
        # after another, as long as a 10,000-key batch).
        self.parts_per_job = max(1, int(conf.get(CONF_PARTS_PER_JOB, "0")) or 1 << 30)
        self.resident = conf.get(CONF_RESIDENT, "true").strip().lower() not in ("false", "0", "no")
        self._jsc_sc = sc._jsc.sc()
        # py4j looks a static method up in the JVM on every attribute access:
        # keep the member (one call per job instead of two).
        self._run_job = sc._jvm.PythonRDD.runJob
        self._array_list = sc._jvm.java.util.ArrayList
        _quiet_unpersist_warning(sc)
        # The reader thread must get the GIL back quickly after a socket read
        # while a compaction or lookup thread does Python work; the default
        # 5 ms switch interval put 5 ms bubbles into the KV pipeline.
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)

    @property
    def spark(self) -> Any:
        if self._spark is None:
            from pyspark.sql import SparkSession

            self._spark = SparkSession.builder.getOrCreate()
        return self._spark

    # -- bases

    def empty_base(self, n: Optional[int] = None) -> Base:
        n = n or self.min_partitions
        empty = (tasks.EMPTY_INDEX,) + tasks.hash_order(tasks.EMPTY_INDEX)
        return Base(self, None, n, [(0, 0, b"")] * n, [empty] * n if self.resident else None)

    def partitions_for(self, nbytes: int, current: int) -> int:
        """Keep partitions near the target size: double as data grows, halve
        when it shrinks a lot; never fewer than the default parallelism."""
        want = self.min_partitions
        while want * self.target_partition_bytes < nbytes:
            want *= 2
        if want > current or want * 4 <= current:
            return want
        return current

    @staticmethod
    def growth(base: Base, delta: dict) -> int:
        """About how many bytes applying ``delta`` adds to ``base``: new keys
        add their size, deletes remove an average entry, overwrites add
        nothing (their size change is noise here)."""
        avg = base.nbytes // base.count if base.count else 0
        grow = 0
        for k, v in delta.items():
            if base.contains(k):
                if v is None:
                    grow -= avg
            elif v is not None:
                grow += len(k) + len(v)
        return grow

    def java_list(self, items: tuple) -> Any:
        jl = self._array_list(len(items))
        for x in items:
            jl.add(x)
        return jl

    def run_job(self, rdd_jrdd: Any, deserializer: Any, jparts: Any) -> list:
        from pyspark.rdd import _load_from_socket

        sock = self._run_job(self._jsc_sc, rdd_jrdd, jparts)
        with _load_from_socket(sock, deserializer) as stream:
            return list(stream)

    def lookup(self, base: Base, keys: list) -> dict:
        """Values (bytes, or None if absent) of ``keys`` in ``base``: one job
        over the partitions that hold them."""
        if base.rdd is None or not keys:
            return {}
        by_split: dict = {}
        for k in keys:
            by_split.setdefault(base.partition(k), []).append(k)
        parts = tuple(sorted(by_split))
        spec = json.dumps({str(p): ks for p, ks in by_split.items()}, ensure_ascii=False, separators=(",", ":"))
        if len(spec) <= LOCAL_PROPERTY_LIMIT:
            lk = base.lookup_rdd()
            self.sc.setLocalProperty("srdd.lookup", spec)
            rows = self.run_job(lk._jrdd, lk._jrdd_deserializer, base.java_partitions(parts))
        else:
            lk = base.rdd.mapPartitionsWithIndex(tasks.lookup_with(by_split))
            rows = self.run_job(lk._jrdd, lk._jrdd_deserializer, self.java_list(parts))
        return dict(rows)

    def scan(self, base: Base, start: bytes, prefix: bytes, limit: int) -> list:
        """Up to ``limit`` pairs per partition with key >= start and the prefix."""
        if base.rdd is None or base.count == 0:
            return []
        rdd = base.rdd.mapPartitions(tasks.scan_with(start, prefix, limit))
        return self.run_job(rdd._jrdd, rdd._jrdd_deserializer, base.java_partitions(tuple(range(base.n))))

    def _payload(self, groups: dict) -> Any:
        """Per-partition pickled sorted deltas; a broadcast when large."""
        table = {p: pickle.dumps(sorted(items), protocol=pickle.HIGHEST_PROTOCOL) for p, items in groups.items()}
        if sum(len(v) for v in table.values()) > BROADCAST_LIMIT:
            return self.sc.broadcast(table)
        return table

    @staticmethod
    def group(delta: dict, n: int) -> dict:
        """{partition: [(key bytes, value bytes or None)]} of a delta."""
        groups: dict = {}
        for k, v in delta.items():
            kb = k.encode("utf-8")
            groups.setdefault(tasks.partition_of(kb, n), []).append((kb, v))
        return groups

    def _source(self, base: Base) -> Any:
        if base.rdd is not None:
            return base.rdd
        return self.sc.parallelize([], base.n)

    def view(self, base: Base, overlay: dict, decode: bool) -> Any:
        """A pair RDD of base + overlay (the driver's pending writes), keys
        as str; values decoded or as JSON text."""
        payload = self._payload(self.group(overlay, base.n))
        rdd = self._source(base).mapPartitionsWithIndex(tasks.view_with(payload, decode), preservesPartitioning=True)
        from pyspark.rdd import Partitioner

        rdd.partitioner = Partitioner(base.n, tasks.key_hash)
        return rdd

    def rebuild(self, base: Base, frozen: dict, loaded: Optional[Any] = None, loaded_bytes: int = 0,
                replace: bool = False, counter: Any = None, name: str = "") -> Base:
        """A new base: ``base`` (unless ``replace``) with ``frozen`` applied
        and, if given, ``loaded`` (an RDD of (key bytes, value bytes) rows
        that win over both) merged in."""
        if replace:
            base_bytes, frozen = 0, {}
        else:
            base_bytes = base.nbytes
        n = self.partitions_for(base_bytes + self.growth(base, frozen) + loaded_bytes, base.n)
        payload = self._payload(self.group(frozen, n))
        if loaded is None and n == base.n:
            rdd = self._source(base).mapPartitionsWithIndex(tasks.merge_with(payload), preservesPartitioning=True)
        else:
            parts = []
            if base.rdd is not None and not replace:
                parts.append(base.rdd.mapPartitions(tasks.repack(n)))
            if loaded is not None:
                parts.append(loaded.mapPartitionsWithIndex(tasks.packer(n, counter)))
            if not parts:
                parts.append(self.sc.parallelize([], n))
            src = parts[0] if len(parts) == 1 else self.sc.union(parts)
            rdd = src.partitionBy(n, tasks.identity).mapPartitionsWithIndex(tasks.reduce_with(payload))
        try:
            return self.materialise(rdd, n, name)
        finally:
            # The new base is checkpointed: no task reads the delta again, so
            # drop the workers' copies. (Not destroy(): the base's task
            # function still refers to the broadcast, and every job over the
            # base serializes that function.)
            if hasattr(payload, "unpersist"):
                try:
                    payload.unpersist(blocking=False)
                except Exception:
                    pass

    def materialise(self, rdd: Any, n: int, name: str) -> Base:
        from pyspark import StorageLevel

        rdd.setName("srdd:%s" % name)
        if not self.resident:
            rdd.persist(StorageLevel.MEMORY_AND_DISK)
            rdd.localCheckpoint()
            metas = rdd.mapPartitions(tasks.meta_task).collect()
            if len(metas) != n:
                raise RuntimeError("rebuild produced %d partitions, want %d" % (len(metas), n))
            return Base(self, rdd, n, metas)
        # Resident mode: Spark keeps its copy on disk (views, scans, saves and
        # the next rebuild read it from there), the driver keeps the indexes
        # in memory: one copy of the data in RAM, not two.
        rdd.persist(StorageLevel.DISK_ONLY)
        rdd.localCheckpoint()
        indexes = self.fetch_indexes(rdd, n)
        metas = [(ix[0], len(ix[1]) + len(ix[3]), b"") for ix, _, _ in indexes]
        return Base(self, rdd, n, metas, indexes)

    def fetch_indexes(self, rdd: Any, n: int) -> list:
        """Every partition's index record, in partition order: jobs over
        groups of partitions, RESIDENT_FETCH_JOBS at a time, so the JVM never
        holds more than about RESIDENT_FETCH_JOBS x RESIDENT_FETCH_BYTES of
        results at once."""
        from pyspark.util import inheritable_thread_target

        per_job = max(1, RESIDENT_FETCH_BYTES // max(1, self.target_partition_bytes))
        got = rdd.mapPartitionsWithIndex(tasks.index_task)
        indexes: list = [None] * n
        groups = [tuple(range(first, min(n, first + per_job))) for first in range(0, n, per_job)]

        # The jobs run on pool threads with this thread's job group and
        # scheduler pool (progress, cancel and fair scheduling still apply).
        def run(parts: tuple) -> list:
            return self.run_job(got._jrdd, got._jrdd_deserializer, self.java_list(parts))

        fetch = inheritable_thread_target(self.spark)(run)

        # (the first job alone runs the shuffle's map stage; the others
        # wait on that same stage, not a copy of it)
        pool = ThreadPoolExecutor(max_workers=max(1, min(RESIDENT_FETCH_JOBS, len(groups))), thread_name_prefix="srdd-fetch")
        try:
            for rows in pool.map(fetch, groups):
                for split, ix, hs, pos in rows:
                    indexes[split] = (ix, hs, pos)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        missing = [p for p, ix in enumerate(indexes) if ix is None]
        if missing:
            raise RuntimeError("rebuild produced no index for partitions %s" % missing[:8])
        return indexes

    # -- bulk input and output

    def input_bytes(self, path: str) -> int:
        jvm = self.sc._jvm
        p = jvm.org.apache.hadoop.fs.Path(path)
        fs = p.getFileSystem(self.sc._jsc.hadoopConfiguration())
        return int(fs.getContentSummary(p).getLength())

    def delete_path(self, path: str) -> bool:
        jvm = self.sc._jvm
        p = jvm.org.apache.hadoop.fs.Path(path)
        fs = p.getFileSystem(self.sc._jsc.hadoopConfiguration())
        return bool(fs.exists(p)) and bool(fs.delete(p, True))

    def path_exists(self, path: str) -> bool:
        jvm = self.sc._jvm
        p = jvm.org.apache.hadoop.fs.Path(path)
        return bool(p.getFileSystem(self.sc._jsc.hadoopConfiguration()).exists(p))

    def read_rows(self, fmt: str, path: str, key_col: str, value_col: str, nbytes: int) -> Any:
        """An RDD of validated (key bytes, canonical value bytes) from a file."""
        if fmt == "jsonl":
            splits = max(self.min_partitions * 2, math.ceil(nbytes / (16 << 20)))
            lines = self.sc.textFile(path, splits)
            return lines.mapPartitions(tasks.parse_jsonl_with(self.rules))
        reader = self.spark.read
        if fmt == "csv":
            df = reader.option("header", "true").option("escape", '"').option("multiLine", "true").csv(path)
        elif fmt == "parquet":
            df = reader.parquet(path)
        else:
            raise ValueError("unknown format %r" % fmt)
        missing = [c for c in (key_col, value_col) if c not in df.columns]
        if missing:
            # never echo the header: it is the file's first line
            raise ValueError("%s file has no column %s" % (fmt, ", ".join(missing)))
        return df.select(key_col, value_col).rdd.mapPartitions(tasks.parse_columns_with(self.rules))

    def delete_children(self, directory: str, keep: list[str], node: str = "") -> int:
        """Delete every entry of ``directory`` whose path is not in ``keep``
        (and, with ``node``, that this node wrote: checkpoints are named
        ``INDEX-MILLIS-NODE``, and several nodes may share the directory,
        each deleting only its own)."""
        jvm = self.sc._jvm
        d = jvm.org.apache.hadoop.fs.Path(directory)
        fs = d.getFileSystem(self.sc._jsc.hadoopConfiguration())
        if not fs.exists(d):
            return 0
        kept = {str(fs.makeQualified(jvm.org.apache.hadoop.fs.Path(k)).toString()) for k in keep}
        n = 0
        for st in fs.listStatus(d):
            p = st.getPath()
            parts = p.getName().split("-", 2)
            if node and (len(parts) != 3 or parts[2] != node):
                continue
            if str(fs.makeQualified(p).toString()) not in kept and fs.delete(p, True):
                n += 1
        return n

    def save(self, base: Base, overlay: dict, fmt: str, path: str, overwrite: bool,
             index: Optional[int] = None) -> None:
        if self.path_exists(path):
            if not overwrite:
                raise FileExistsError("%s exists; pass overwrite to replace it" % path)
            self.delete_path(path)
        if fmt == "jsonl":
            text = self.view(base, overlay, decode=False)
            text.map(tasks.jsonl_line).saveAsTextFile(path)
            return
        df = self.spark.createDataFrame(self.view(base, overlay, decode=False), schema="key string, value string")
        if index is not None:
            from pyspark.sql.functions import lit
            df = df.withColumn("log_index", lit(int(index)).cast("long"))
        writer = df.write.mode("overwrite")
        if fmt == "csv":
            writer.option("header", "true").option("escape", '"').csv(path)
        elif fmt == "parquet":
            writer.parquet(path)
        else:
            raise ValueError("unknown format %r" % fmt)

    # -- progress of a job group

    def group_progress(self, group: str, first_weight: float = 0.8) -> float:
        """Progress of a job group's work in [0, 1]: the first stage (reading
        the input, most of a load's time) counts ``first_weight``, the later
        stages (building partitions) the rest, each by finished tasks."""
        tracker = self.sc.statusTracker()
        stages = []
        for job_id in sorted(tracker.getJobIdsForGroup(group)):
            job = tracker.getJobInfo(job_id)
            if job is None:
                continue
            for stage_id in sorted(job.stageIds):
                st = tracker.getStageInfo(stage_id)
                if st is not None and st.numTasks:
                    stages.append(st.numCompletedTasks / st.numTasks)
        if not stages:
            return 0.0
        if len(stages) == 1:
            return stages[0] * first_weight
        rest = sum(stages[1:]) / len(stages[1:])
        return stages[0] * first_weight + rest * (1 - first_weight)


def find_in(part: tuple, kb: bytes, h: int) -> Optional[bytes]:
    """The value of key ``kb`` (crc32 ``h``, which also picked the
    partition) in one resident partition (Base.views), or None: a C
    bisection of the partition's sorted key hashes, then a key comparison."""
    view, hashes, pos = part
    i = bisect_left(hashes, h)
    n = len(hashes)
    while i < n and hashes[i] == h:
        j = pos[i]
        if view.key(j) == kb:
            return view.value(j)
        i += 1
    return None


def _quiet_unpersist_warning(sc: Any) -> None:
    """Every replaced base is unpersisted on purpose, and Spark warns each
    time that a locally checkpointed RDD cannot be recomputed after that;
    keep the session log for real news."""
    try:
        jvm = sc._jvm
        jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(
            "org.apache.spark.api.python.PythonRDD", jvm.org.apache.logging.log4j.Level.ERROR)
    except Exception:  # a different logging backend: keep the warning
        pass


def finalize_with(obj: Any, base: Base) -> None:
    """Release ``base`` when ``obj`` (an RDD or DataFrame handed to user
    code) is garbage collected. The base is marked shared: what user code
    derived from ``obj`` may outlive it, so its Spark blocks are left to
    Spark's ContextCleaner (see Base.shared)."""
    base.shared = True
    weakref.finalize(obj, base.release)
