#!/usr/bin/env bash
# Measures Livy batches on a real node (bin/srdd, local[1] Spark): the time
# from POST /batches to state "running" (the application has an id) and to
# "success", for a small PySpark job, N times in a row (default 3). Polls
# /batches/{id}/state every 100 ms. Writes benchmarks/BATCHES.md with the
# machine and its load average. Never part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
work=$(mktemp -d)
log=$work/srdd.log
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/data/files"
cat > "$work/data/files/job.py" <<'PY'
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
print("sum", spark.sparkContext.parallelize(range(1000), 2).sum())
spark.stop()
PY
bin/srdd server --http-addr 127.0.0.1:0 --raft-addr 127.0.0.1:0 --data-dir "$work/data" \
  --python "$PWD/.venv/bin/python" --spark-master 'local[1]' --log-level warn 2>"$log" &
pid=$!
url=
for _ in $(seq 1 300); do
  url=$(grep -o 'serving on http://[0-9.:]*' "$log" | head -1 | cut -d' ' -f3) && [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "srdd did not start" >&2; cat "$log" >&2; exit 1; }
now() { date +%s.%N; }
lines=()
for i in $(seq 1 "$runs"); do
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  t0=$(now)
  id=$(curl -sf -H 'Content-Type: application/json' "$url/batches" \
    -d "{\"file\":\"$work/data/files/job.py\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  running=
  while :; do
    st=$(curl -sf "$url/batches/$id/state" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
    case $st in
      running) [ -n "$running" ] || running=$(now) ;;
      success) done=$(now); break ;;
      dead|killed) echo "batch $id ended $st" >&2; exit 1 ;;
    esac
    sleep 0.1
  done
  [ -n "$running" ] || running=$done
  lines+=("$(awk -v i="$i" -v t0="$t0" -v r="$running" -v d="$done" -v l="$load" \
    'BEGIN { printf "run %d: POST to running %.1f s, POST to success %.1f s (load average before: %s)", i, r-t0, d-t0, l }')")
  echo "${lines[-1]}"
done
{
  echo "# Livy batches: submit to running and to success"
  echo
  echo "Measured $(date -u +%Y-%m-%d) by \`scripts/bench-batches.sh $runs\` on $(nproc) cores,"
  echo "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')."
  echo "One \`bin/srdd\` node, \`local[1]\` Spark; the job sums 1000 numbers in 2 partitions."
  echo "\"running\" is when the driver's SparkContext has an application id; most of the"
  echo "time before it is the JVM and SparkContext starting."
  echo
  echo '```'
  printf '%s\n' "${lines[@]}"
  echo '```'
} > benchmarks/BATCHES.md
echo "wrote benchmarks/BATCHES.md"
