"""REST bad input beyond tests/app/test_rest.py: raw bytes, sizes, methods, and the OpenAPI surface.

The app is the one tests/app/test_rest.py builds (fixture ``rest_api``: a
FamaApp with two bound mobile nodes, in-process WSGI); ``Api.call`` checks every
answer (never 500, JSON, documented schema, no secret shown).  Here
requests also arrive as raw WSGI environs, the way a server hands over
bytes that are not UTF-8, and a hypothesis search walks every documented
operation with values drawn from each parameter's documented meaning and
from arbitrary text, asserting that each status is one the OpenAPI
document lists for that operation and each body validates (jsonschema)
against the documented schema.
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any
from urllib.parse import quote, urlencode

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_rest import OPENAPI, PREFIX, Api  # tests/app, on the path by conftest.py
from webob import Request


def raw_request(
    rest_api: Api, method: str, path: bytes, query: bytes | None = None
) -> tuple[int, Any]:
    """One WSGI call with PATH_INFO and QUERY_STRING as a server builds them from raw bytes
    (PEP 3333: percent-decoded path, then latin-1)."""
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path.decode("latin-1"),
        "QUERY_STRING": (query or b"").decode("latin-1"),
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
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
        answer["status"] = int(status.split()[0])
        answer["type"] = dict((k.lower(), v) for k, v in headers).get("content-type", "")

    body = b"".join(rest_api.wsgi(environ, start_response))
    assert answer["status"] != 500, body
    assert answer["type"].startswith("application/json"), (path, answer)
    document = json.loads(body)
    if answer["status"] >= 400:
        assert isinstance(document, dict) and isinstance(document.get("error"), str), document
    return answer["status"], document


NOT_UTF8 = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"2001:db8::\xe9"]


@pytest.mark.parametrize("junk", NOT_UTF8, ids=lambda b: b.hex())
@pytest.mark.parametrize(
    ("method", "route"), [("GET", b"/dars/"), ("GET", b"/bindings/"), ("DELETE", b"/bindings/")]
)
def test_non_utf8_path_argument_is_a_json_400_or_404(
    rest_api: Api, junk: bytes, method: str, route: bytes
) -> None:
    got, _ = raw_request(rest_api, method, PREFIX.encode() + route + junk)
    assert got in (400, 404)
    assert len(rest_api.stored_hoas()) == 2  # nothing revoked


@pytest.mark.parametrize("junk", NOT_UTF8, ids=lambda b: b.hex())
@pytest.mark.parametrize("route", [b"/dars", b"/dars/a", b"/bindings", b"/stats"])
def test_raw_non_utf8_query_is_400(rest_api: Api, junk: bytes, route: bytes) -> None:
    for query in (b"hoa=" + junk, junk + b"=1", b"dpid=a&" + junk):
        assert raw_request(rest_api, "GET", PREFIX.encode() + route, query)[0] == 400


@pytest.mark.parametrize(
    ("path", "query"),
    [
        (b"/bindings/" + b"f" * 1_000_000, None),
        (b"/dars/" + b"0" * 1_000_000, None),
        (b"/bindings", b"hoa=" + b"1" * 1_000_000),
        (b"/bindings", b"k" * 1_000_000 + b"=1"),
        (b"/bindings", b"&".join(b"hoa=%d" % n for n in range(20_000))),
        (b"/stats", b"=" * 100_000),
        (b"/bindings", b"hoa" * 100_000 + b"=1&" + b"hoa" * 100_000 + b"=2"),
        (b"/" + b"a/" * 50_000, None),
    ],
    ids=[
        "1MB-hoa",
        "1MB-dpid",
        "1MB-value",
        "1MB-key",
        "20k-parameters",
        "100k-equals",
        "300k-key-twice",
        "deep",
    ],
)
def test_huge_raw_input_is_a_small_json_error(
    rest_api: Api, path: bytes, query: bytes | None
) -> None:
    """Regression: an unknown parameter name and an unknown path were echoed whole, so a
    1 MB request got a 1 MB error back."""
    status, document = raw_request(rest_api, "GET", PREFIX.encode() + path, query)
    assert status in (400, 404)
    assert len(json.dumps(document)) < 10_000  # the error does not echo the input back


@pytest.mark.parametrize(
    "text",
    [
        "\u200b2001:db8:a::1",  # zero-width space
        "2001:db8:a::1\u0301",  # combining accent
        "2001\uff1adb8:a::1",  # fullwidth colon
        "\ufeff2001:db8:a::1",  # byte order mark
        "\U0001f4a5" * 100,
        "\x00\x01\x02",
        "\t2001:db8:a::1",
        "2001:db8:a::1\r\n",
        "ａ",  # fullwidth a
        "١٢٣",  # Arabic-Indic digits
    ],
)
@pytest.mark.parametrize("where", ["path-hoa", "path-dpid", "query-hoa", "query-dpid"])
def test_unicode_never_breaks_an_answer(rest_api: Api, text: str, where: str) -> None:
    if where == "path-hoa":
        path = f"{PREFIX}/bindings/{quote(text, safe='')}"
    elif where == "path-dpid":
        path = f"{PREFIX}/dars/{quote(text, safe='')}"
    else:
        path = f"{PREFIX}/bindings?{urlencode({where.split('-')[1]: text})}"
    status, data = rest_api.call(path)
    assert status in (400, 404), (path, data)


@pytest.mark.parametrize("address", ["fe80::1%eth0", "2001:db8:a::1%1", "::%x"])
@pytest.mark.parametrize("where", ["path", "query-hoa", "query-coa"])
def test_an_address_with_a_zone_index_is_400(rest_api: Api, address: str, where: str) -> None:
    """Regression: ipaddress accepts a zone ("%eth0") and dropped it silently, so
    ``?hoa=fe80::1%25eth0`` answered 200 for the unzoned address."""
    if where == "path":
        path = f"{PREFIX}/bindings/{quote(address, safe='')}"
    else:
        path = f"{PREFIX}/bindings?{urlencode({where.split('-')[1]: address})}"
    data = rest_api.error(path, 400)
    assert data["parameter"] == where.split("-")[-1].replace("path", "hoa")
    assert "zone" in data["error"]


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "PATCH", "PUT", "POST", "TRACE", "BREW"])
@pytest.mark.parametrize(
    "path",
    [template.replace("{dpid}", "a").replace("{hoa}", "::1") for template in OPENAPI["paths"]],
)
def test_undocumented_methods_never_succeed(rest_api: Api, method: str, path: str) -> None:
    documented = OPENAPI["paths"][next(t for t in OPENAPI["paths"] if _same_route(t, path))]
    if method.lower() in documented:
        pytest.skip("documented")
    response = Request.blank(path, method=method).get_response(rest_api.wsgi)
    assert response.status_int in (404, 405), (method, path, response.status)
    if method != "HEAD":
        assert "error" in response.json
    assert len(rest_api.stored_hoas()) == 2


def _same_route(template: str, path: str) -> bool:
    return template.replace("{dpid}", "a").replace("{hoa}", "::1") == path


def test_a_request_body_changes_nothing(rest_api: Api) -> None:
    hoa = rest_api.call(f"{PREFIX}/bindings")[1][0]["hoa"]
    for body in (b"\xff" * 1000, b'{"hoa": "::"}', b"x" * 1_000_000):
        request = Request.blank(f"{PREFIX}/bindings/{hoa}", method="GET", body=body)
        response = request.get_response(rest_api.wsgi)
        assert response.status_int == 200 and response.json[0]["hoa"] == hoa


# ---------------------------------------------------------------- the OpenAPI surface


def _hex_dpid() -> st.SearchStrategy[str]:
    return st.from_regex(r"\A[0-9a-fA-F]{1,16}\Z")


_ADDRESS = st.ip_addresses(v=6).map(str)
# Values by what the document says each parameter means, mixed with anything at all.
PARAMETER_VALUES: dict[str, st.SearchStrategy[str]] = {
    "dpid": st.one_of(_hex_dpid(), st.sampled_from(["a", "A", "0" * 16, "0" * 17, ""]), st.text()),
    "hoa": st.one_of(_ADDRESS, st.sampled_from(["::", "2001:db8:a::1", ""]), st.text()),
    "coa": st.one_of(_ADDRESS, st.text()),
}
OPERATIONS = [
    (template, method, operation)
    for template, methods in OPENAPI["paths"].items()
    for method, operation in methods.items()
]


def _schema_for(operation: dict[str, Any], status: int) -> dict[str, Any]:
    response = operation["responses"][str(status)]
    schema = dict(response["content"]["application/json"]["schema"])
    schema["components"] = OPENAPI["components"]  # "#/components/..." resolves from here
    return schema


@st.composite
def documented_requests(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
    template, method, operation = draw(st.sampled_from(OPERATIONS))
    path = template
    query: list[tuple[str, str]] = []
    for parameter in operation.get("parameters", []):
        value = draw(PARAMETER_VALUES.get(parameter["name"], st.text()))
        if parameter["in"] == "path":
            path = path.replace("{" + parameter["name"] + "}", quote(value, safe=""))
        elif draw(st.booleans()):
            query.append((parameter["name"], value))
    if draw(st.integers(0, 9)) == 0:
        query.append((draw(st.text(min_size=1, max_size=8)), draw(st.text(max_size=8))))
    if query:
        path += "?" + urlencode(query)
    return method.upper(), path, operation


def test_the_documented_surface_answers_only_what_it_documents(rest_api: Api) -> None:
    seen: set[tuple[str, int]] = set()

    @settings(
        max_examples=500,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(request=documented_requests())
    def check(request: tuple[str, str, dict[str, Any]]) -> None:
        method, path, operation = request
        status, data = rest_api.call(path, method)
        assert str(status) in operation["responses"], (method, path, status, data)
        jsonschema.validate(data, _schema_for(operation, status))
        seen.add((operation.get("operationId", path), status))

    check()
    statuses = {status for _, status in seen}
    assert {200, 400, 404} <= statuses, seen
    assert len(rest_api.stored_hoas()) == 2
