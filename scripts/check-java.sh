#!/usr/bin/env bash
# PySpark 4 needs Java 17 or newer. Say clearly what to install if it is missing.
set -euo pipefail
if ! command -v java >/dev/null 2>&1; then
  echo "srdd: Java 17+ is required by PySpark and no 'java' is on PATH." >&2
  echo "      Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless" >&2
  exit 1
fi
ver=$(java -version 2>&1 | sed -nE 's/.*version "([0-9]+)(\.[0-9]+)*.*/\1/p' | head -n1)
if [ -z "$ver" ] || [ "$ver" -lt 17 ]; then
  echo "srdd: Java 17+ is required by PySpark; found: $(java -version 2>&1 | head -n1)" >&2
  echo "      Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless" >&2
  exit 1
fi
