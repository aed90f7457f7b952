#!/usr/bin/env bash
# Runs a command with no Java in reach: JAVA_HOME unset and PATH rebuilt
# from links to every program on it except java (`make test-fast`, which
# must start no JVM; a test that tried would fail).
set -euo pipefail
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
IFS=: read -ra parts <<<"$PATH"
for d in "${parts[@]}"; do
  [ -d "$d" ] || continue
  for f in "$d"/*; do
    b=${f##*/}
    [ "$b" = java ] || [ -e "$dir/$b" ] || ln -s "$f" "$dir/$b" 2>/dev/null || true
  done
done
unset JAVA_HOME
PATH=$dir "$@"
