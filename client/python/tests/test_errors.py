"""The client's error table against the server's: every code the Go code
can answer (httpapi/*.go: the errorStatus table and each writeError call)
must be in srdd.ERROR_CODES with the same status, and the other way round,
so the two cannot drift apart."""

from __future__ import annotations

import http
import re

import pytest

import srdd
from conftest import REPO

# `http.StatusConflict, "busy"` in a table row or a writeError call.
STATUS_CODE = re.compile(r'http\.Status(\w+),\s*"([a-z_]+)"(?:,\s*"(\d*)")?')


def go_codes() -> dict[str, tuple[int, bool]]:
    """code -> (status, sent with a Retry-After) from httpapi's Go source."""
    out: dict[str, tuple[int, bool]] = {}
    files = sorted(p for p in (REPO / "httpapi").glob("*.go") if not p.name.endswith("_test.go"))
    assert files, "no httpapi/*.go found"
    for f in files:
        for m in STATUS_CODE.finditer(f.read_text()):
            name = re.sub(r"(?<!^)(?=[A-Z])", "_", m.group(1)).upper()
            status = int(http.HTTPStatus[name])
            retry = bool(m.group(3))
            code = m.group(2)
            if code in out and out[code][0] != status:
                pytest.fail(f"{code} is sent with two statuses: {out[code][0]} and {status}")
            out[code] = (status, retry or out.get(code, (0, False))[1])
    return out


def test_the_go_source_is_parsed():
    codes = go_codes()
    # A few rows of each kind, so a broken regexp cannot pass as "no codes".
    assert codes["recovering"] == (503, True)
    assert codes["key_not_found"][0] == 404
    assert codes["unauthorized"][0] == 401
    assert codes["outcome_unknown"] == (503, False)
    assert len(codes) >= 30


def test_every_server_code_has_a_client_row_with_its_status():
    go = go_codes()
    missing = sorted(set(go) - set(srdd.ERROR_CODES))
    extra = sorted(set(srdd.ERROR_CODES) - set(go))
    assert not missing, f"codes the server sends that srdd.ERROR_CODES lacks: {missing}"
    assert not extra, f"codes in srdd.ERROR_CODES the server never sends: {extra}"
    wrong = {c: (go[c][0], srdd.ERROR_CODES[c][0]) for c in go if go[c][0] != srdd.ERROR_CODES[c][0]}
    assert not wrong, f"status differs (server, client): {wrong}"


def test_codes_with_retry_after_are_unavailable():
    # The client waits out a 503 with Retry-After: only Unavailable ones.
    for code, (status, retry) in go_codes().items():
        cls = srdd.ERROR_CODES[code][1]
        if retry:
            assert status == 503 and issubclass(cls, srdd.Unavailable), code
        assert issubclass(cls, srdd.SrddError)


def test_class_by_code_then_by_status():
    from srdd._errors import error_class

    assert error_class(404, "key_not_found") is srdd.KeyNotFound
    assert issubclass(srdd.KeyNotFound, KeyError) and issubclass(srdd.KeyNotFound, srdd.NotFound)
    assert error_class(503, "recovering") is srdd.Recovering
    assert error_class(409, "some_new_code") is srdd.Conflict  # a newer server's code
    assert error_class(418, "") is srdd.SrddError
