"""Shared fixtures: one real local SparkSession for the whole test session."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PYTHON_DIR = Path(__file__).resolve().parent.parent
if str(PYTHON_DIR) not in sys.path:
    sys.path.insert(0, str(PYTHON_DIR))

# The data rules and their accept/reject cases, shared with the Go tests
# (kvstore/DESIGN.md, "The data rules").
DATA_RULES_FILE = PYTHON_DIR.parent.parent / "kvstore" / "testdata" / "data_rules.json"


@pytest.fixture(scope="session")
def data_rules() -> "object":
    """The node's default rules, as kvstore/testdata/data_rules.json has them."""
    from srdd_interpreter.rules import Rules

    return Rules.from_json(json.dumps(json.loads(DATA_RULES_FILE.read_text())["rules"]))


@pytest.fixture(scope="session")
def spark() -> Iterator["object"]:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("srdd-interpreter-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("WARN")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def sc(spark):  # type: ignore[no-untyped-def]
    return spark.sparkContext
