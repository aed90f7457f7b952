"""The data rules against kvstore/testdata/data_rules.json, the cases the Go
tests (kvstore/validate_test.go) run too. No Spark needed."""

from __future__ import annotations

import json
import pathlib
from typing import Any, Union

import pytest

# The shared test vectors (not imported from conftest: pytest runs this
# directory with client/livy, whose conftest shares the module name).
DATA_RULES_FILE = pathlib.Path(__file__).resolve().parents[3] / "kvstore" / "testdata" / "data_rules.json"
from srdd_interpreter import rules
from srdd_interpreter.rules import InvalidInput, Rules, TooLarge

VECTORS = json.loads(DATA_RULES_FILE.read_text())


def make(spec: Any) -> Union[str, bytes]:
    """An input of the file: a string, {"nest": n}, or before + hex bytes +
    repeat * times + after (bytes if it is not UTF-8)."""
    if isinstance(spec, str):
        return spec
    raw = (spec.get("before", "").encode() + bytes.fromhex(spec.get("hex", ""))
           + spec.get("repeat", "").encode() * spec.get("times", 0) + spec.get("after", "").encode()
           + b"[" * spec.get("nest", 0) + b"]" * spec.get("nest", 0))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def outcome(fn: Any, *args: Any) -> str:
    try:
        fn(*args)
    except TooLarge:
        return "too_large"
    except InvalidInput:
        return "invalid"
    return "ok"


def cases(section: str) -> list[Any]:
    out = VECTORS[section]
    assert out, "empty section %s" % section
    return [pytest.param(c, id="%s-%d" % (section, i)) for i, c in enumerate(out)]


def test_fallback_is_what_the_node_hands_over(data_rules: Rules) -> None:
    # The interpreter's FALLBACK (no SRDD_DATA_RULES: tests only) must be
    # kvstore.DefaultLimits().Rules(), which the file holds (Go checks that).
    assert rules.FALLBACK == data_rules


def test_rules_come_from_the_environment() -> None:
    handed = dict(VECTORS["rules"], max_key_bytes=8, max_value_bytes=16)
    got = rules.from_env({rules.RULES_ENV: json.dumps(handed)})
    assert got.max_key_bytes == 8 and got.max_value_bytes == 16
    assert got.check_key("k" * 8) and outcome(got.check_key, "k" * 9) == "too_large"
    assert got.encode_value("v" * 14) == b'"' + b"v" * 14 + b'"'  # 16 bytes of JSON text
    assert outcome(got.encode_value, "v" * 15) == "too_large"
    assert rules.from_env({}) is rules.FALLBACK
    with pytest.raises(ValueError, match="cannot read the data rules"):
        rules.from_env({rules.RULES_ENV: '{"max_key_bytes": 8}'})


@pytest.mark.parametrize("case", cases("names"))
def test_name_vectors(case: dict, data_rules: Rules) -> None:
    assert outcome(data_rules.check_name, make(case["in"])) == case["want"], case


@pytest.mark.parametrize("case", cases("keys"))
def test_key_vectors(case: dict, data_rules: Rules) -> None:
    # A key written by session code or over the wire.
    assert outcome(data_rules.check_key, make(case["in"])) == case["want"], case


@pytest.mark.parametrize("case", cases("values"))
def test_value_vectors(case: dict, data_rules: Rules) -> None:
    text = make(case["in"])
    raw = text.encode("utf-8") if isinstance(text, str) else text
    # Over the wire (kv.set, and kv.apply replaying the log): the node has
    # accepted exactly the "ok" ones, and the interpreter must too.
    assert outcome(data_rules.canonical, raw) == case["want"], case
    # From session code: the value as Python decodes it (if it can), by
    # the same rules; whitespace does not count, as code has no text.
    try:
        value = json.loads(raw)
    except ValueError:
        return  # not JSON at all: nothing code could hold
    want = case["want"]
    if want == "ok":
        assert data_rules.encode_value(value) == data_rules.canonical(raw)
    else:
        assert outcome(data_rules.encode_value, value) == want, case


@pytest.mark.parametrize("case", cases("groups"))
def test_group_vectors(case: dict, data_rules: Rules) -> None:
    assert outcome(data_rules.check_groups, case["groups"], case["n"]) == case["want"], case


def test_batches_are_the_nodes() -> None:
    # A REST call's size: the node checks it; the interpreter never sees calls.
    assert VECTORS["batches"] and VECTORS["rules"]["max_batch"] == rules.FALLBACK.max_batch
