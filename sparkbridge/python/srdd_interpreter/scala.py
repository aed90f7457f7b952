"""Scala statements in the session's own driver JVM (after Livy's SparkInterpreter).

The Scala REPL (``scala.tools.nsc.interpreter.IMain`` from the
scala-compiler jar that ships in pyspark/jars) is created through the py4j
gateway of the session's SparkContext, so Python, Scala and SQL statements
share one JVM, one SparkContext, temp views and cached data. ``spark`` and
``sc`` are bound to the very SparkSession and SparkContext the Python side
uses.

The REPL starts on the first Scala statement or completion (it compiles
its first line in a few seconds). It runs in class-based mode and writes
its classes to the directory Spark was started with as
``spark.repl.class.outputDir`` (server.spark_conf), so executors load the
classes of Scala closures from the driver, as in spark-shell.

A small helper object is compiled inside the REPL itself (no jar to ship):
it runs a line with ``Console`` redirected to a per-statement buffer (so
``println`` is captured), binds values, encodes values as JSON for
``%json``/``%table`` and asks the REPL's completer.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import Any, Optional

log = logging.getLogger("srdd_interpreter.scala")

HELPER = "SrddReplHelper"

# Compiled in the REPL once it is up. Only Scala's own library, the
# compiler's REPL classes and Spark's Row are used.
HELPER_SOURCE = r'''
object SrddReplHelper {
  import scala.tools.nsc.interpreter.IMain
  private var seen: AnyRef = null

  def run(i: IMain, code: String, out: java.io.PrintStream): String =
    Console.withOut(out) { Console.withErr(out) { i.interpret(code).toString } }

  /** A buffer that keeps the first limit bytes and counts the rest. */
  class CappedBuffer(limit: Int) extends java.io.ByteArrayOutputStream {
    var dropped = 0L
    override def write(b: Int): Unit = synchronized { if (count < limit) super.write(b) else dropped += 1 }
    override def write(b: Array[Byte], off: Int, len: Int): Unit = synchronized {
      val n = math.max(0, math.min(len, limit - count))
      if (n > 0) super.write(b, off, n)
      dropped += len - n
    }
    override def reset(): Unit = synchronized { super.reset(); dropped = 0 }
    def text(): String = synchronized {
      val s = new String(buf, 0, count, "UTF-8")
      if (dropped > 0) s + "\n[output truncated: " + dropped + " more bytes]\n" else s
    }
  }
  def capped(limit: Int): CappedBuffer = new CappedBuffer(limit)
  def printStream(b: CappedBuffer): java.io.PrintStream = new java.io.PrintStream(b, true, "UTF-8")

  def bind(i: IMain, name: String, tpe: String, v: Any): String =
    i.bind(name, tpe, v, List("@transient")).toString

  /** The exception the last line threw, or null if it is the one seen before. */
  def newException(i: IMain): Throwable = i.valueOfTerm("lastException") match {
    case Some(t: Throwable) if !(t eq seen) => seen = t; t
    case _ => null
  }

  def traceback(t: Throwable): Array[String] = {
    val frames = t.getStackTrace
    val user = frames.lastIndexWhere(f => f.getClassName.startsWith("$line") && !f.getClassName.contains("$eval"))
    val keep = if (user >= 0) frames.take(user + 1) else frames.take(30)
    (t.toString +: keep.map("\tat " + _.toString)).toArray
  }

  def complete(i: IMain, buf: String, cursor: Int): Array[String] = {
    val c = new scala.tools.nsc.interpreter.shell.ReplCompletion(i)
    c.complete(buf, cursor, true).candidates.map(_.name).filter(n => n.nonEmpty && !n.contains("$")).distinct.toArray
  }

  def json(v: Any): String = { val sb = new StringBuilder; enc(v, sb); sb.toString }

  private def str(s: String, sb: StringBuilder): Unit = {
    sb += '"'
    s.foreach {
      case '"' => sb ++= "\\\""
      case '\\' => sb ++= "\\\\"
      case c if c < ' ' => sb ++= "\\u%04x".format(c.toInt)
      case c => sb += c
    }
    sb += '"'
  }

  private def seq(xs: Iterator[Any], sb: StringBuilder): Unit = {
    sb += '['
    var first = true
    xs.foreach { x => if (!first) sb += ','; first = false; enc(x, sb) }
    sb += ']'
  }

  private def obj(kv: Iterator[(String, Any)], sb: StringBuilder): Unit = {
    sb += '{'
    var first = true
    kv.foreach { case (k, x) => if (!first) sb += ','; first = false; str(k, sb); sb += ':'; enc(x, sb) }
    sb += '}'
  }

  private def enc(v: Any, sb: StringBuilder): Unit = v match {
    case null | None | () => sb ++= "null"
    case Some(x) => enc(x, sb)
    case s: String => str(s, sb)
    case c: Char => str(c.toString, sb)
    case b: Boolean => sb ++= b.toString
    case d: Double => if (d.isNaN || d.isInfinite) str(d.toString, sb) else sb ++= d.toString
    case f: Float => enc(f.toDouble, sb)
    case n @ (_: Int | _: Long | _: Short | _: Byte) => sb ++= n.toString
    case n: BigInt => sb ++= n.toString
    case n: BigDecimal => sb ++= n.bigDecimal.toPlainString
    case n: java.math.BigDecimal => sb ++= n.toPlainString
    case n: java.math.BigInteger => sb ++= n.toString
    case r: org.apache.spark.sql.Row =>
      if (r.schema != null) obj(r.schema.fieldNames.iterator.zip(r.toSeq.iterator), sb) else seq(r.toSeq.iterator, sb)
    case m: scala.collection.Map[_, _] => obj(m.iterator.map { case (k, x) => (String.valueOf(k), x) }, sb)
    case m: java.util.Map[_, _] =>
      val it = m.entrySet.iterator
      obj(Iterator.continually(it).takeWhile(_.hasNext).map(_.next()).map(e => (String.valueOf(e.getKey), e.getValue)), sb)
    case a: Array[_] => seq(a.iterator, sb)
    case xs: IterableOnce[_] => seq(xs.iterator, sb)
    case xs: java.lang.Iterable[_] => val it = xs.iterator; seq(Iterator.continually(it).takeWhile(_.hasNext).map(_.next()), sb)
    case p: Product if p.productArity > 0 => obj(p.productElementNames.zip(p.productIterator), sb)
    case other => str(other.toString, sb)
  }
}
'''

# Scala 2.13's REPL prints "val res0: Int = 2"; Livy (Scala 2.11/2.12)
# shows "res0: Int = 2". Strip the keyword the way 2.12 printed it.
_VAL_PREFIX = re.compile(r"^(?:val|var) (?=[^\s:]+: )", re.MULTILINE)
_COMPILE_ERROR = re.compile(r"^\s*error: (.*)$", re.MULTILINE)
# What a Scala statement may print (println and the like); more is cut
# with a note. The REPL itself cuts long result lines.
MAX_OUTPUT = 8 << 20


class ScalaError(Exception):
    """A Scala statement failed: compile error ("Error") or exception."""

    def __init__(self, ename: str, evalue: str, traceback: list[str]) -> None:
        super().__init__(evalue)
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback


class ScalaRepl:
    """One Scala REPL in the driver JVM of ``spark`` (thread-safe start;
    ``execute`` from the statement thread only, as StatementRunner does)."""

    def __init__(self, spark: Any, outdir: Optional[str]) -> None:
        self._spark = spark
        self._outdir = outdir
        self._lock = threading.Lock()
        self._imain: Any = None
        self._helper: Any = None
        self._rbuf: Any = None  # the REPL's reporter: results, compiler messages, exceptions
        self._cbuf: Any = None  # Console (println) of the running line, capped
        self._print: Any = None
        # IMain is not thread-safe: one user at a time. Completion does not
        # wait behind a running statement (it answers nothing instead).
        self._use = threading.Lock()
        self.start_seconds: Optional[float] = None

    @property
    def started(self) -> bool:
        return self._imain is not None

    def _start(self) -> None:
        with self._lock:
            if self._imain is not None:
                return
            t0 = time.monotonic()
            jvm = self._spark.sparkContext._jvm
            settings = jvm.scala.tools.nsc.Settings()
            args = "-usejavacp -Yrepl-class-based -deprecation:false"
            if self._outdir:
                args += " -Yrepl-outdir " + self._outdir
            ok = settings.processArgumentString(args)
            if not ok._1():
                raise RuntimeError("cannot configure the Scala REPL: %s" % ok)
            buffer = jvm.java.io.ByteArrayOutputStream()
            writer = jvm.java.io.PrintWriter(jvm.java.io.OutputStreamWriter(buffer, "UTF-8"), True)
            reporter = jvm.scala.tools.nsc.interpreter.shell.ReplReporterImpl(settings, writer)
            imain = jvm.scala.tools.nsc.interpreter.IMain(settings, reporter)
            if not imain.initializeCompiler():
                raise RuntimeError("the Scala compiler did not start")
            try:
                result = str(imain.interpret(HELPER_SOURCE))
                if result != "Success":
                    raise RuntimeError("cannot compile the REPL helper: %s" % buffer.toString("UTF-8"))
                # valueOfTerm finds vals, not objects.
                if str(imain.interpret("val srdd$helper = %s" % HELPER)) != "Success":
                    raise RuntimeError("cannot load the REPL helper: %s" % buffer.toString("UTF-8"))
                helper = imain.valueOfTerm("srdd$helper").get()
                cbuf = helper.capped(MAX_OUTPUT)
                out = helper.printStream(cbuf)
                jspark = self._spark._jsparkSession
                jsc = self._spark.sparkContext._jsc.sc()
                for name, value in (("spark", jspark), ("sc", jsc)):
                    bound = str(helper.bind(imain, name, value.getClass().getName(), value))
                    if bound != "Success":
                        raise RuntimeError("cannot bind %s in the Scala REPL: %s" % (name, buffer.toString("UTF-8")))
                for line in ("import org.apache.spark.SparkContext._", "import spark.implicits._",
                             "import spark.sql", "import org.apache.spark.sql.functions._"):
                    if str(helper.run(imain, line, out)) != "Success":
                        raise RuntimeError("Scala REPL set-up failed on %r: %s" % (line, buffer.toString("UTF-8")))
            except BaseException:
                imain.close()
                raise
            buffer.reset()
            self._imain, self._helper, self._rbuf, self._cbuf, self._print = imain, helper, buffer, cbuf, out
            self.start_seconds = time.monotonic() - t0
            log.info("Scala REPL started in %.1fs", self.start_seconds)

    def _run(self, code: str) -> tuple[str, str, str]:
        """Interpret ``code``; returns (result, what it printed, what the
        REPL reported: results, compiler messages, exceptions)."""
        self._rbuf.reset()
        self._cbuf.reset()
        result = str(self._helper.run(self._imain, code, self._print))
        self._print.flush()
        return result, str(self._cbuf.text()), str(self._rbuf.toString("UTF-8"))

    def _fail(self, result: str, output: str) -> ScalaError:
        exc = self._helper.newException(self._imain)
        if exc is not None:
            lines = [str(line) for line in self._helper.traceback(exc)]
            message = exc.getMessage()
            return ScalaError(str(exc.getClass().getName()), "" if message is None else str(message), lines)
        if result == "Incomplete":
            return ScalaError("Error", "incomplete statement", output.splitlines())
        errors = _COMPILE_ERROR.findall(output)
        return ScalaError("Error", errors[0] if errors else output.strip(), output.splitlines())

    def execute(self, code: str) -> str:
        """Run Scala source; returns what the REPL printed (Livy's text/plain)."""
        self._start()
        with self._use:
            result, printed, report = self._run(code)
            if result != "Success":
                raise self._fail(result, printed + report)
        # What the line printed comes before the REPL's report of its result.
        return (printed + _VAL_PREFIX.sub("", report)).rstrip("\n")

    def value_json(self, expr: str) -> Any:
        """The value of a Scala expression as JSON data (for %json/%table)."""
        self._start()
        with self._use:
            result, printed, report = self._run("val srdd$json: String = %s.json({%s\n})" % (HELPER, expr))
            if result != "Success":
                raise self._fail(result, printed + report)
            text = self._imain.valueOfTerm("srdd$json").get()
        return json.loads(text)

    def complete(self, code: str, cursor: int) -> list[str]:
        self._start()
        if not self._use.acquire(timeout=1.0):
            return []  # a Scala statement is running
        try:
            return sorted(set(str(c) for c in self._helper.complete(self._imain, code, cursor)))
        finally:
            self._use.release()


def split_magics(code: str) -> list[tuple[str, str]]:
    """Split Scala source into ("code", text) and (magic name, expr) parts:
    lines starting with '%' at column 0 are magics, as in Livy."""
    parts: list[tuple[str, str]] = []
    normal: list[str] = []
    for line in code.rstrip().split("\n"):
        if line.startswith("%"):
            if normal:
                parts.append(("code", "\n".join(normal)))
                normal = []
            bits = line[1:].strip().split(None, 1)
            parts.append((bits[0] if bits else "", bits[1].strip() if len(bits) > 1 else ""))
        else:
            normal.append(line)
    if normal and any(n.strip() for n in normal):
        parts.append(("code", "\n".join(normal)))
    return parts
