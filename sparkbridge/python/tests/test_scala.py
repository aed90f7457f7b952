"""The parts of the Scala statement support that need no JVM; the REPL
itself runs in client/livy/test_livy_scala.py against a real node."""

from __future__ import annotations

from srdd_interpreter.scala import _VAL_PREFIX, split_magics
from srdd_interpreter.statements import TABLE_MIME, error_output, magic_table
from srdd_interpreter.scala import ScalaError


def test_split_magics() -> None:
    assert split_magics("1 + 1") == [("code", "1 + 1")]
    assert split_magics('val r = spark.sql("SELECT 1").collect()\n%json r') == [
        ("code", 'val r = spark.sql("SELECT 1").collect()'), ("json", "r")]
    assert split_magics("%table  xs.map(_ * 2)  \n") == [("table", "xs.map(_ * 2)")]
    # A '%' not at column 0 is Scala (the modulo operator).
    assert split_magics("val a = 7\n  % 3") == [("code", "val a = 7\n  % 3")]
    assert split_magics("%") == [("", "")]


def test_result_lines_read_like_livy() -> None:
    f = lambda text: _VAL_PREFIX.sub("", text)  # noqa: E731
    assert f("val res0: Int = 2") == "res0: Int = 2"
    assert f("var n: Long = 3\nval s: String = val x") == "n: Long = 3\ns: String = val x"
    assert f("def f(x: Int): Int") == "def f(x: Int): Int"
    assert f("class P") == "class P"


def test_table_keeps_scala_field_order() -> None:
    rows = [{"name": "a", "n": 1}, {"name": "b", "n": None}]
    table = magic_table(rows, sort_keys=False)[TABLE_MIME]
    assert table == {"headers": [{"name": "name", "type": "STRING_TYPE"}, {"name": "n", "type": "INT_TYPE"}],
                     "data": [["a", 1], ["b", None]]}
    assert [h["name"] for h in magic_table(rows)[TABLE_MIME]["headers"]] == ["n", "name"]


def test_scala_error_output() -> None:
    out = error_output(4, ScalaError("java.lang.ArithmeticException", "/ by zero",
                                     ["java.lang.ArithmeticException: / by zero", "\tat $line3.$read$$iw.<init>(<console>:1)"]))
    assert out == {"status": "error", "execution_count": 4, "ename": "java.lang.ArithmeticException",
                   "evalue": "/ by zero",
                   "traceback": ["java.lang.ArithmeticException: / by zero", "\tat $line3.$read$$iw.<init>(<console>:1)"]}
