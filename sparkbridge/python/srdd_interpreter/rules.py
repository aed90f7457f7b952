"""The data rules, interpreter side: names, keys, values, group sizes.

The node is the gate (kvstore/DESIGN.md, "The data rules"): every REST
write and everything that enters the Raft log passes kvstore/validate.go
first. The interpreter applies the same rules to what only it sees:
writes made by session code (``states.set(...)``), rows of a bulk load
(in Spark tasks) and names given to ``rdd.create``. Values the node
already checked are checked again the same way, so a value the node
accepted is never refused when the log is replayed.

The limits are not constants here: the node hands them over at start-up
as JSON (kvstore ``Limits.Rules``) in ``SRDD_DATA_RULES``. ``FALLBACK``
serves only when that is unset (tests that run the interpreter without a
node); the tests check it against kvstore/testdata/data_rules.json, which
both the Go and the Python tests run.

Every stored value is its canonical JSON encoding
(``json.dumps(v, separators=(",", ":"), ensure_ascii=False, allow_nan=False)``
as UTF-8 bytes): everything stored can be served to REST readers, and code
and REST writers are normalised the same way.

This module uses the standard library only: Spark tasks (tasks.py) use
``Rules`` to check loaded rows, and it travels to executors by value
(engine.py).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Union

JsonBytes = bytes

RULES_ENV = "SRDD_DATA_RULES"


class InvalidInput(ValueError):
    """A key, value or name that the store refuses (maps to ``invalid``)."""


class InvalidType(InvalidInput, TypeError):
    """A key or value of the wrong type (is both a ValueError and a TypeError)."""


class TooLarge(InvalidInput):
    """A key or value over its size limit (the node answers 413 for these)."""


@dataclass(frozen=True)
class Rules:
    """The limits of kvstore ``Rules`` (same field names as its JSON)."""

    max_key_bytes: int
    max_value_bytes: int
    max_value_depth: int
    max_batch: int
    name_pattern: str
    reserved_names: frozenset = field(default_factory=frozenset)

    @classmethod
    def from_json(cls, text: Union[str, bytes]) -> "Rules":
        try:
            d = json.loads(text)
            return cls(max_key_bytes=int(d["max_key_bytes"]), max_value_bytes=int(d["max_value_bytes"]),
                       max_value_depth=int(d["max_value_depth"]), max_batch=int(d["max_batch"]),
                       name_pattern=str(d["name_pattern"]), reserved_names=frozenset(d["reserved_names"]))
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError("cannot read the data rules %.200r: %s" % (text, exc)) from None

    # -- names and keys

    def check_name(self, name: Any) -> str:
        """Return ``name`` if it may name a shared RDD, else raise InvalidInput."""
        if not isinstance(name, str):
            raise InvalidType("name must be a str, got %s" % type(name).__name__)
        if not re.fullmatch(self.name_pattern, name):
            raise InvalidInput("rdd name %r must match %s" % (name, self.name_pattern))
        if name in self.reserved_names:
            raise InvalidInput("rdd name %r is reserved (Python keyword or a name sessions already bind)" % name)
        return name

    def check_key(self, key: Any) -> str:
        """Return ``key`` if it may be written: a non-empty str of UTF-8
        text of at most ``max_key_bytes`` bytes."""
        self.key_bytes(key)
        return key

    def key_bytes(self, key: Any) -> bytes:
        """The UTF-8 bytes of ``key`` if it may be written (check_key)."""
        kb = _key_bytes(key)
        if len(kb) > self.max_key_bytes:
            raise TooLarge("key of %d bytes exceeds the limit of %d" % (len(kb), self.max_key_bytes))
        return kb

    # -- values

    def encode_value(self, value: Any) -> JsonBytes:
        """The canonical bytes of a value written by Python code, with the
        rules of the wire (the size is that of the canonical text)."""
        try:
            data = encode_json(value)
        except InvalidInput:
            raise
        except TypeError as exc:
            raise InvalidType("value is not JSON-serializable: %s" % exc) from None
        except ValueError as exc:  # NaN/Infinity, circular reference, int digit limit
            raise InvalidInput("value is not JSON-serializable: %s" % exc) from None
        if len(data) > self.max_value_bytes:
            raise TooLarge("value of %d bytes exceeds the limit of %d" % (len(data), self.max_value_bytes))
        self.check_depth(data)
        # What is stored must also pass the wire decoder: an int too large
        # for a float is refused from code as from REST. Only a run of 309
        # digits can be one, so the walk is rare.
        if len(data) > 308 and _LONG_DIGITS.search(data):
            _check_ints(value)
        return data

    def canonical(self, raw: Any) -> JsonBytes:
        """Validate one wire value (JSON text, as the node sent it) and
        return its canonical form. The size limit applies to the text as
        sent (canonical text may be longer: ``1e5`` is ``100000.0``)."""
        if not isinstance(raw, (bytes, bytearray, str)):
            raise InvalidType("value must be JSON bytes, got %s" % type(raw).__name__)
        if len(raw) > self.max_value_bytes:
            n = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
            if n > self.max_value_bytes:
                raise TooLarge("value of %d bytes exceeds the limit of %d" % (n, self.max_value_bytes))
        data = encode_json(decode_json(raw))
        self.check_depth(data)
        return data

    def check_depth(self, data: JsonBytes) -> None:
        """Refuse canonical JSON nested deeper than ``max_value_depth``."""
        if data.count(b"[") + data.count(b"{") <= self.max_value_depth:
            return  # cannot be that deep (the common case, at C speed)
        depth = 0
        for m in _STRUCTURE.finditer(data):
            c = m.group()
            if c in (b"[", b"{"):
                depth += 1
                if depth > self.max_value_depth:
                    raise InvalidInput("value is nested deeper than %d levels" % self.max_value_depth)
            elif c in (b"]", b"}"):
                depth -= 1

    # -- batches of several clients

    @staticmethod
    def check_groups(groups: Any, n: int, what: str = "items") -> list[int]:
        """Return ``groups`` if they are non-negative int sizes that add up
        to ``n`` (several clients' batches back to back)."""
        if not isinstance(groups, list) or not all(
                isinstance(g, int) and not isinstance(g, bool) and g >= 0 for g in groups) or sum(groups) != n:
            raise InvalidInput("groups must be sizes that add up to the number of %s" % what)
        return groups


_LONG_DIGITS = re.compile(rb"[0-9]{309}")
# Strings (skipped whole) or a bracket: the structure of canonical JSON.
_STRUCTURE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')

# The rules when the node hands over none: tests only (see module doc).
FALLBACK = Rules(
    max_key_bytes=1 << 10, max_value_bytes=1 << 20, max_value_depth=256, max_batch=10_000,
    name_pattern="[A-Za-z][A-Za-z0-9_]{0,63}",
    reserved_names=frozenset((
        "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
        "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in",
        "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
        "sc", "spark", "sqlContext", "shared_rdds")),
)


def from_env(environ: Optional[dict] = None) -> Rules:
    """The rules the node handed over (``SRDD_DATA_RULES``), else FALLBACK."""
    text = (os.environ if environ is None else environ).get(RULES_ENV)
    return Rules.from_json(text) if text else FALLBACK


def _check_ints(value: Any) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            raise InvalidInput("number %s does not fit a finite float" % _short(str(value))) from None
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_ints(v)
    elif isinstance(value, dict):
        for v in value.values():
            _check_ints(v)


def check_lookup_key(key: Any) -> str:
    """Return ``key`` if it is a non-empty str encodable as UTF-8. Reads and
    deletes take any such key: one longer than the limit is never found."""
    _key_bytes(key)
    return key


def _key_bytes(key: Any) -> bytes:
    if not isinstance(key, str):
        raise InvalidType("key must be a str, got %s" % type(key).__name__)
    if not key:
        raise InvalidInput("key must not be empty")
    try:
        return key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput("key is not valid UTF-8 text: %s" % exc) from None


# ---------------------------------------------------------------- JSON

def _reject_constant(name: str) -> Any:
    raise InvalidInput("number %s is not allowed (values must be finite)" % name)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidInput("number %s does not fit a finite float" % _short(text))
    return value


def _parse_int(text: str) -> int:
    value = int(text)
    if len(text) > 300:
        try:
            float(value)
        except OverflowError:
            raise InvalidInput("number %s does not fit a finite float" % _short(text)) from None
    return value


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


class _StrictDecoder(json.JSONDecoder):
    """The wire's decoder. It pickles as "make a new one" (its C scanner
    cannot be pickled), so rules.py can travel to executors by value."""

    def __init__(self) -> None:
        super().__init__(parse_float=_parse_float, parse_int=_parse_int, parse_constant=_reject_constant)

    def __reduce__(self) -> Any:
        return (_StrictDecoder, ())


# Built once: json.loads/dumps with options build a new coder on every call.
_DECODER = _StrictDecoder()
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_decode = _DECODER.decode
_encode = _ENCODER.encode


def decode_json(data: Union[bytes, bytearray, str]) -> Any:
    """Strict JSON decode: only finite numbers (no NaN/Infinity, no 1e400)."""
    try:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
        return _decode(text)
    except InvalidInput:
        raise
    except (ValueError, TypeError) as exc:  # JSONDecodeError, UnicodeDecodeError, digit limits
        raise InvalidInput("value is not valid JSON: %s" % exc) from None
    except RecursionError:
        raise InvalidInput("value is nested too deeply") from None


def encode_json(value: Any) -> JsonBytes:
    """Canonical encoding of a JSON value, as UTF-8 bytes. Raises
    InvalidInput for what JSON text can hold but UTF-8 cannot (a lone
    surrogate escape) and for nesting too deep to re-encode."""
    try:
        return _encode(value).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("value holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not valid Unicode") from None
    except RecursionError:
        raise InvalidInput("value is nested too deeply") from None
