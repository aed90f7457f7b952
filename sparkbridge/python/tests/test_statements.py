from __future__ import annotations

from typing import Any

import pytest

from srdd_interpreter.statements import StatementRunner, parse_statement

TABLE = "application/vnd.livy.table.v1+json"


@pytest.fixture()
def runner() -> StatementRunner:
    return StatementRunner({})


def ok_data(out: dict[str, Any]) -> dict[str, Any]:
    assert out["status"] == "ok", out
    return out["data"]


def test_trailing_expression_repr(runner: StatementRunner) -> None:
    out = runner.execute("1 + 1")
    assert out == {"status": "ok", "execution_count": 0, "data": {"text/plain": "2"}}


def test_execution_count_increments_on_ok_and_error(runner: StatementRunner) -> None:
    assert runner.execute("x = 1")["execution_count"] == 0
    assert runner.execute("1 / 0")["execution_count"] == 1
    assert runner.execute("1 +")["execution_count"] == 2
    assert runner.execute("x")["execution_count"] == 3


def test_print_output_and_final_newline_stripped(runner: StatementRunner) -> None:
    data = ok_data(runner.execute("print('hello')\nprint('world')"))
    assert data == {"text/plain": "hello\nworld"}


def test_only_last_node_is_interactive(runner: StatementRunner) -> None:
    # "1 + 1" in the middle is not echoed; "'a' * 3" at the end is, as a repr.
    data = ok_data(runner.execute("1 + 1\nprint('p')\n'a' * 3"))
    assert data == {"text/plain": "p\n'aaa'"}


def test_no_output_gives_empty_text(runner: StatementRunner) -> None:
    assert ok_data(runner.execute("y = 5")) == {"text/plain": ""}


def test_variables_shared_across_statements(runner: StatementRunner) -> None:
    ok_data(runner.execute("def double(v):\n    return v * 2\ncounter = 20"))
    ok_data(runner.execute("counter += 1"))
    assert ok_data(runner.execute("double(counter)")) == {"text/plain": "42"}


def test_json_magic(runner: StatementRunner) -> None:
    data = ok_data(runner.execute("%json {'a': [1, 2.5, None, True], 'b': ('x',)}"))
    assert data == {"application/json": {"a": [1, 2.5, None, True], "b": ["x"]}}


def test_json_magic_mixed_with_code_like_the_seed(runner: StatementRunner) -> None:
    data = ok_data(runner.execute('data = [["ak", "Alaska"]]\n%json data'))
    assert data == {"application/json": [["ak", "Alaska"]]}


def test_json_magic_keeps_printed_text(runner: StatementRunner) -> None:
    data = ok_data(runner.execute("print('note')\n%json 3"))
    assert data == {"application/json": 3, "text/plain": "note"}


def test_json_magic_rejects_unserializable(runner: StatementRunner) -> None:
    out = runner.execute("%json object()")
    assert out["status"] == "error"
    assert out["ename"] == "TypeError"
    out = runner.execute("%json float('nan')")
    assert out["status"] == "error" and out["ename"] == "ValueError"


def test_outputs_are_always_sendable(runner: StatementRunner) -> None:
    out = runner.execute("%json 2 ** 70")  # beyond MessagePack's 64-bit ints
    assert out["status"] == "error" and out["ename"] == "ValueError"
    out = runner.execute("print('a\\udcffb')")  # a lone surrogate cannot be UTF-8
    assert ok_data(out) == {"text/plain": "a?b"}
    out = runner.execute("class E(Exception):\n    def __str__(self):\n        raise RuntimeError()\nraise E()")
    assert out["status"] == "error" and out["ename"] == "E" and out["evalue"] == "<exception str() failed>"


def test_table_magic_list_of_dicts(runner: StatementRunner) -> None:
    code = "rows = [{'name': 'ak', 'pop': 733, 'area': 1.5, 'ok': True}, {'name': 'ca', 'pop': None, 'area': 2.0, 'ok': False}]\n%table rows"
    table = ok_data(runner.execute(code))[TABLE]
    assert table["headers"] == [
        {"name": "area", "type": "DOUBLE_TYPE"},
        {"name": "name", "type": "STRING_TYPE"},
        {"name": "ok", "type": "BOOLEAN_TYPE"},
        {"name": "pop", "type": "INT_TYPE"},
    ]
    assert table["data"] == [[1.5, "ak", True, 733], [2.0, "ca", False, None]]


def test_table_magic_list_of_tuples(runner: StatementRunner) -> None:
    table = ok_data(runner.execute("%table [('ak', 1), ('ca', 2)]"))[TABLE]
    assert table == {
        "headers": [{"name": "0", "type": "STRING_TYPE"}, {"name": "1", "type": "INT_TYPE"}],
        "data": [["ak", 1], ["ca", 2]],
    }


def test_table_magic_null_column_takes_later_type(runner: StatementRunner) -> None:
    table = ok_data(runner.execute("%table [[None], [3]]"))[TABLE]
    assert table["headers"] == [{"name": "0", "type": "INT_TYPE"}]


def test_table_magic_inconsistent_types_is_an_error(runner: StatementRunner) -> None:
    out = runner.execute("%table [[1], ['x']]")
    assert out["status"] == "error"
    assert "different types" in out["evalue"]


def test_exception_shape(runner: StatementRunner) -> None:
    out = runner.execute("x = 1\ndef f():\n    raise ValueError('boom')\nf()")
    assert set(out) == {"status", "execution_count", "ename", "evalue", "traceback"}
    assert out["status"] == "error"
    assert out["ename"] == "ValueError"
    assert out["evalue"] == "boom"
    tb = out["traceback"]
    assert isinstance(tb, list) and all(isinstance(line, str) for line in tb)
    assert tb[0].startswith("Traceback (most recent call last)")
    assert tb[-1] == "ValueError: boom\n"
    joined = "".join(tb)
    assert "<stdin>" in joined and "in f" in joined
    assert "statements.py" not in joined  # the runner's own frames are hidden


def test_syntax_error_shape(runner: StatementRunner) -> None:
    out = runner.execute("1 +")
    assert out["status"] == "error" and out["ename"] == "SyntaxError"
    assert out["traceback"][-1].startswith("SyntaxError")


def test_unknown_magic(runner: StatementRunner) -> None:
    out = runner.execute("%nope x")
    assert out["status"] == "error" and out["ename"] == "UnknownMagic"


def test_system_exit_does_not_escape(runner: StatementRunner) -> None:
    out = runner.execute("import sys\nsys.exit(3)")
    assert out["status"] == "error" and out["ename"] == "SystemExit"
    assert ok_data(runner.execute("'alive'")) == {"text/plain": "'alive'"}


def test_percent_inside_string_is_not_magic() -> None:
    nodes = parse_statement('s = """\n%json not a magic\n"""\nlen(s)')
    assert len(nodes) == 1


def test_error_stops_the_statement(runner: StatementRunner) -> None:
    out = runner.execute("a = 1\nraise KeyError('k')\na = 2")
    assert out["ename"] == "KeyError"
    assert ok_data(runner.execute("a")) == {"text/plain": "1"}


SHAREABLE_RDD = """
class ShareableRdd():

    def __init__(self):
        self.data = sc.parallelize([])

    def get(self, key):
        return self.data.filter(lambda row: row[0] == key).take(1)

    def set(self, key, value):
        new_key = sc.parallelize([[key, value]])
        self.data = self.data.union(new_key)
"""


def test_seed_shareable_rdd(spark: Any) -> None:
    sc = spark.sparkContext
    runner = StatementRunner({"sc": sc, "spark": spark}, sc)
    ok_data(runner.execute(SHAREABLE_RDD))
    ok_data(runner.execute("srdd = ShareableRdd()\nsrdd.set('ak', 'Alaska')\nsrdd.set('ca', 'California')"))
    assert ok_data(runner.execute('srdd.get("ak")')) == {"text/plain": "[['ak', 'Alaska']]"}
    data = ok_data(runner.execute('data = srdd.get("ak")\n%json data'))
    assert data == {"application/json": [["ak", "Alaska"]]}
    # the seed's "on the way" form works too
    assert ok_data(runner.execute('%json srdd.get("ca")')) == {"application/json": [["ca", "California"]]}
