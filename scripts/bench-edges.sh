#!/usr/bin/env bash
# Measures the edges (issue 11) with the real binary: process start to
# /readyz for one node and for three, and the time from a leader's or a
# follower's kill -9 to the first successful create through a survivor.
# The figures come from the same tests `make test` runs (which assert only
# that every call succeeds first time); this writes them to
# benchmarks/EDGES.md with the machine they ran on.
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/EDGES.md
log=$(mktemp)
trap 'rm -f "$log"' EXIT
SRDD_TEST_PYTHON="$PWD/.venv/bin/python" go test -count=1 -v -timeout 30m \
  -run 'TestFreshNodeTakesFirstCallsAfterReadyz|TestFreshClusterTakesFirstCallsAfterReadyz|TestCreatesThroughSurvivorsAfterLeaderKill|TestCreatesThroughSurvivorsAfterFollowerKill' \
  ./cmd/srdd | tee "$log"
{
  echo "# Edges: readiness and creates through failures"
  echo
  echo "Measured $(date -u +%Y-%m-%d) by \`make bench-edges\` (scripts/bench-edges.sh) on $(nproc) cores,"
  echo "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), loopback."
  echo "Real \`bin/srdd\` processes, \`local[1]\` Spark. Clients never retry."
  echo
  echo '```'
  grep -E 'process start to /readyz|time from|leads after|created on|load [0-9]+ reads' "$log" | sed -E 's/^ +//; s/edges_e2e_test.go:[0-9]+: //'
  echo '```'
} > "$out"
echo "wrote $out"
