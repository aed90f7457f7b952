#!/usr/bin/env bash
# The CPU one PySpark start costs (a local[2] session, a cached RDD of
# 20,000 pairs, a lookup and a SQL sum, then stop), with the JVM's
# defaults and with the test targets' options (Makefile, TEST_JVM):
# CPU seconds of the whole process tree, from a cgroup's cpuacct, so the
# figure holds on a loaded machine where wall time does not. Needs root
# and cgroup v1's cpuacct (or cgroup v2) mounted under /sys/fs/cgroup.
# Usage: benchmarks/jvm-start-cpu.sh [PYTHON] [ROUNDS]
set -euo pipefail
PY=${1:-.venv/bin/python}
ROUNDS=${2:-3}
script=$(mktemp --suffix=.py)
trap 'rm -f "$script"' EXIT
cat >"$script" <<'PYEOF'
from pyspark.sql import SparkSession
s = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
rdd = s.sparkContext.parallelize(range(20000), 4).map(lambda x: (str(x), x)).cache()
assert rdd.count() == 20000 and rdd.lookup("77") == [77]
assert s.range(100000).selectExpr("sum(id)").collect()[0][0] == 4999950000
s.stop()
PYEOF
if [ -d /sys/fs/cgroup/cpuacct ]; then
  root=/sys/fs/cgroup/cpuacct
  usage() { awk '{printf "%.1f", $1/1e9}' "$1/cpuacct.usage"; }
else
  root=/sys/fs/cgroup
  usage() { awk '/^usage_usec/{printf "%.1f", $2/1e6}' "$1/cpu.stat"; }
fi
run() { # run NAME JAVA_TOOL_OPTIONS
  local cg="$root/srdd-jvm-$1-$$"
  mkdir "$cg"
  local t0; t0=$(date +%s.%N)
  JAVA_TOOL_OPTIONS="$2" bash -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' _ "$cg" "$PY" "$script" >/dev/null 2>&1
  local t1; t1=$(date +%s.%N)
  sleep 2 # the JVM ends after the Python process
  printf '%-9s cpu %5s s  wall %5.1f s\n' "$1" "$(usage "$cg")" "$(echo "$t1 - $t0" | bc)"
  rmdir "$cg" 2>/dev/null || true
}
echo "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$ROUNDS"); do
  run default ""
  run tests "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
done
