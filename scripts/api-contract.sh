#!/usr/bin/env bash
# Runs schemathesis against a real srdd node (bin/srdd, real PySpark
# sessions) with authentication on, from the node's own GET /openapi.json.
# It fails on any server error (5xx), a response whose body breaks the
# documented schema, or a status or content type the document does not
# list for that operation (docs/ARCHITECTURE.md, "The API contract").
#
#   scripts/api-contract.sh PYTHON MAX_EXAMPLES [extra st run args...]
#
# The node runs with low limits (2 sessions, 20 shared RDDs): generated
# creates of sessions and RDDs start at most two interpreters.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:?python}; examples=${2:?max examples}; shift 2
st="$(dirname "$py")/st"
[ -x "$st" ] || { echo "api-contract: $st missing (pip install -r tests/api/requirements.txt)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/srdd-api-contract-XXXXXX")
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# A user with every data role but admin: generated calls to the cluster's
# join and remove must not reshape the (one-node) cluster under the test.
token=$(bin/srdd auth add --file "$work/users.json" --name fuzz --role code --role 'create:*' \
  --role 'read:*' --role 'write:*' --role metrics 2>/dev/null | head -n1)
[ -n "$token" ] || { echo "api-contract: no token" >&2; exit 1; }

bin/srdd server --http-addr 127.0.0.1:0 --raft-addr 127.0.0.1:0 --data-dir "$work/data" \
  --python "$py" --spark-master 'local[1]' --spark-conf spark.driver.memory=512m \
  --auth-file "$work/users.json" --max-sessions 2 --max-sessions-per-principal 2 --max-rdds 20 \
  --log-level warn 2>"$work/node.log" &
pid=$!
url=
for _ in $(seq 1 120); do
  url=$(grep -o 'serving on http://[0-9.:]*' "$work/node.log" | head -n1 | sed 's/serving on //') || true
  [ -n "$url" ] && curl -fs "$url/readyz" >/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/node.log" >&2; exit 1; }
  sleep 0.5
done
[ -n "$url" ] || { echo "api-contract: node did not start" >&2; cat "$work/node.log" >&2; exit 1; }

# Some data to find: an RDD in the node's default session (started and
# warmed now, not by the first generated create).
auth=(-H "Authorization: Bearer $token" -H 'Content-Type: application/json')
# The RDD's session starts in the background: while it does, calls answer
# 503 starting (with Retry-After); on a busy machine that takes minutes.
setup() { # PATH BODY: POST until it is not 503
  local code
  for _ in $(seq 1 60); do
    code=$(curl -sS -o "$work/setup.json" -w '%{http_code}' "${auth[@]}" -d "$2" "$url$1")
    case $code in
      2??|409) return 0 ;;
      503) sleep 5 ;;
      *) echo "api-contract: POST $1: $code $(cat "$work/setup.json")" >&2; return 1 ;;
    esac
  done
  echo "api-contract: POST $1 still 503 after 5 min: $(cat "$work/setup.json")" >&2
  return 1
}
# A session of the token's user, so session routes get past their
# owner check; it holds the RDD.
setup /sessions '{"kind":"pyspark","name":"fuzz"}'
for _ in $(seq 1 120); do
  state=$(curl -sS "${auth[@]}" "$url/sessions/fuzz/state" | sed -n 's/.*"state":"\([a-z_]*\)".*/\1/p')
  case $state in
    idle) break ;;
    dead|error|killed) echo "api-contract: session fuzz is $state" >&2; exit 1 ;;
  esac
  sleep 2
done
[ "$state" = idle ] || { echo "api-contract: session fuzz is still $state" >&2; exit 1; }
setup /v1/rdds '{"name":"states","mode":"memory","session":"fuzz"}'
setup /v1/rdds/states/set '{"items":{"ak":"Alaska","hi":"Hawaii"}}'

began=$(date +%s)
status=0
"$st" --config-file tests/api/schemathesis.toml run "$url/openapi.json" -H "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance \
  --phases examples,coverage,fuzzing --max-examples "$examples" --workers 1 \
  --request-timeout 120 --seed "${SEED:-1}" --no-color "$@" || status=$?
echo "api-contract: schemathesis took $(( $(date +%s) - began )) s (max examples $examples), exit $status"
if grep -q '\[ERROR\]' "$work/node.log"; then
  echo "api-contract: the node logged errors:" >&2
  grep '\[ERROR\]' "$work/node.log" | grep -v 'srdd.sessions' >&2 || true
fi
exit "$status"
