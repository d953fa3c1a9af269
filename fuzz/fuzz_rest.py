"""Fuzz target: REST path and query handling, through Ryu's in-process WSGI application.

The controller of ``fama_ryu.rest`` is registered on a ``WSGIApplication``
over the shared domain's DARs (one holding a binding).  Input layout: the
first byte picks the method, bit 3 of the second byte prefixes the path
with ``/fama/v1/``; the rest is ``path[?query]`` as raw bytes, handed over
as a WSGI server does (PEP 3333: PATH_INFO percent-decoded, then latin-1;
QUERY_STRING as received).  Revocations are not committed, so every input
meets the same state.

Findings: an exception out of the application, a 500, a body under
``/fama/v1/`` that is not a JSON document with an ``error`` member for
statuses >= 400, or a body that shows the binding's PHKT.
"""

from __future__ import annotations

import io
import json
import sys
import time
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote_to_bytes

import atheris
import harness

with atheris.instrument_imports(include=["fama_ryu"]):
    import fuzz_domain

    from fama_ryu import (
        eventlet_compat,  # noqa: F401  (before any ryu import)
        rest,
    )
    from fama_ryu.dar import Dar

from ryu.app.wsgi import WSGIApplication  # noqa: E402

METHODS = ("GET", "GET", "GET", "DELETE", "POST", "HEAD", "PUT", "OPTIONS")
PREFIX_FLAG = 0x08
SECRETS = (fuzz_domain.BOUND_PHKT.hex(), fuzz_domain.BOUND_PHKT.hex().upper())


def _revoke_without_commit(dars: dict[int, Dar]) -> Any:
    """The app's revoke, answered as if stored but never committed (state stays)."""

    def revoke(hoa: bytes) -> list[tuple[Dar, Any]]:
        now = time.time()
        removed = []
        for dar in dars.values():
            binding = dar.home_agent.cache.get(hoa)
            work = dar.revoke(hoa, now)
            if work is not None:
                dar.store_failed(work, "fuzz")  # releases the change, keeps the binding
                removed.append((dar, binding))
        return removed

    return revoke


def make_wsgi() -> WSGIApplication:
    dars = fuzz_domain.make_dars()
    app = SimpleNamespace(dars=dars, revoke=_revoke_without_commit(dars))
    wsgi = WSGIApplication()
    wsgi.register(rest.FamaRestController, {rest.APP_KEY: app})
    return wsgi


WSGI = make_wsgi()


def request(method: str, raw_path: bytes, raw_query: bytes | None) -> tuple[int, str, bytes]:
    """One WSGI call; returns (status, content type, body)."""
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(raw_path).decode("latin-1"),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_LENGTH": "0",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if raw_query is not None:
        environ["QUERY_STRING"] = raw_query.decode("latin-1")
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
        answer["status"] = int(status.split()[0])
        answer["type"] = dict((k.lower(), v) for k, v in headers).get("content-type", "")

    body = b"".join(WSGI(environ, start_response))
    return answer["status"], answer["type"], body


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    method = METHODS[data[0] & 7]
    target = data[2:]
    if data[1] & PREFIX_FLAG:
        target = rest.PREFIX.encode() + b"/" + target
    raw_path, separator, raw_query = target.partition(b"?")
    status, content_type, body = request(method, raw_path, raw_query if separator else None)
    assert status != 500, (status, body[:200])
    path = unquote_to_bytes(raw_path)
    if path.startswith(rest.PREFIX.encode() + b"/") and method != "HEAD":
        assert content_type.startswith("application/json"), (status, content_type)
        document = json.loads(body)
        if status >= 400:
            assert isinstance(document, dict) and isinstance(document.get("error"), str), body
    text = body.decode("utf-8", "replace")
    assert not any(secret in text for secret in SECRETS), "a response shows the PHKT"


if __name__ == "__main__":
    harness.fuzz(one_input)
