"""The REST API in process: ``webob`` requests on the ``WSGIApplication`` FamaApp registered into.

Every 200 body is validated against the response schema of the served
OpenAPI document (with a small validator for the JSON-Schema subset the
document uses: ``jsonschema`` is not in the venv), every error body
against its ``Error`` schema, and no response may ever carry a PHKT or a
key hash in any usual encoding.
"""

from __future__ import annotations

from fama_ryu import eventlet_compat  # noqa: F401  (before any ryu import)

# isort: split
import base64
import ipaddress
import json
import re
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import yaml
from fake_datapath import FakeDatapath, event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ryu import cfg
from ryu.app.wsgi import WSGIApplication
from ryu.ofproto import ofproto_v1_3, ofproto_v1_3_parser
from webob import Request

import fama_ryu.app as app_module
from fama_ryu import mh, rest
from fama_ryu.store import StoreError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from mn_factory import COA_1, COA_2, MobileNode  # noqa: E402

CONF = cfg.CONF
PREFIX = "/fama/v1"
DPID_A, DPID_B = 0xA, 0xB
CORE_A = 10
CORE_MAC = "02:00:00:00:ff:ff"
ROUTER_MAC_A = "02:00:00:00:0a:01"

DOMAIN = {
    "dars": [
        {
            "name": "dara",
            "dpid": DPID_A,
            "access_ports": [1, 2],
            "core_port": CORE_A,
            "gre_port": 20,
            "router_mac": ROUTER_MAC_A,
            "access_prefixes": ["2001:db8:a::/64", "2001:db8:a2::/64"],
            "anchor_address": "2001:db8:a::1",
            "core_next_hop": {"address": "2001:db8:ffff::ff", "mac": CORE_MAC},
            "binding_limit": 50,
        },
        {
            "name": "darb",
            "dpid": DPID_B,
            "access_ports": [1],
            "core_port": 10,
            "gre_port": 20,
            "router_mac": "02:00:00:00:0b:01",
            "access_prefixes": ["2001:db8:b::/64"],
            "anchor_address": "2001:db8:b::1",
            "core_next_hop": {"address": "2001:db8:ffff::ff", "mac": CORE_MAC},
            "return_routability": True,
        },
    ]
}
OPENAPI = json.loads(
    (Path(__file__).resolve().parents[2] / "fama_ryu" / "openapi.json").read_text()
)


def text(address: bytes) -> str:
    return str(ipaddress.IPv6Address(address))


# ---------------------------------------------------------------- a tiny JSON-Schema validator

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}
_ANNOTATIONS = {"description", "title", "example"}


def validate(value: Any, schema: dict[str, Any], where: str = "$") -> None:
    """Raise AssertionError unless ``value`` satisfies ``schema`` (the subset OpenAPI uses here)."""
    unknown = set(schema) - _ANNOTATIONS - {
        "$ref", "allOf", "type", "required", "properties", "additionalProperties",
        "items", "pattern", "minimum", "maximum",
    }  # fmt: skip
    assert not unknown, f"{where}: the validator does not know {sorted(unknown)}"
    if "$ref" in schema:
        reference = schema["$ref"]
        assert reference.startswith("#/"), reference
        target: Any = OPENAPI
        for part in reference[2:].split("/"):
            target = target[part]
        validate(value, target, where)
    for index, part in enumerate(schema.get("allOf", ())):
        validate(value, part, f"{where}(allOf[{index}])")
    if "type" in schema:
        assert _TYPES[schema["type"]](value), f"{where}: {value!r} is not {schema['type']}"
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            assert name in value, f"{where}: missing required {name!r}"
        properties = schema.get("properties", {})
        for name, item in value.items():
            if name in properties:
                validate(item, properties[name], f"{where}.{name}")
            else:
                extra = schema.get("additionalProperties", True)
                assert extra is not False, f"{where}: unexpected property {name!r}"
                if isinstance(extra, dict):
                    validate(item, extra, f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            validate(item, schema["items"], f"{where}[{index}]")
    if "pattern" in schema and isinstance(value, str):
        assert re.search(schema["pattern"], value), f"{where}: {value!r} !~ {schema['pattern']}"
    if "minimum" in schema and _TYPES["number"](value):
        assert value >= schema["minimum"], f"{where}: {value} < {schema['minimum']}"
    if "maximum" in schema and _TYPES["number"](value):
        assert value <= schema["maximum"], f"{where}: {value} > {schema['maximum']}"


def test_the_validator_rejects_what_it_should() -> None:
    binding = {"$ref": "#/components/schemas/Binding"}
    with pytest.raises(AssertionError, match="missing required"):
        validate({}, binding)
    with pytest.raises(AssertionError, match="not integer"):
        validate([True], {"type": "array", "items": {"type": "integer"}})
    with pytest.raises(AssertionError, match="unexpected property"):
        validate({"error": "x"}, {"type": "object", "additionalProperties": False})
    with pytest.raises(AssertionError, match="!~"):
        validate("00A", {"type": "string", "pattern": "^[0-9a-f]{3}$"})
    with pytest.raises(AssertionError, match="> 65535"):
        validate(70000, {"type": "integer", "maximum": 65535})
    with pytest.raises(AssertionError, match="does not know"):
        validate(1, {"oneOf": []})


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


_OPERATIONS = [
    (_template_regex(template), method, operation)
    for template, methods in OPENAPI["paths"].items()
    for method, operation in methods.items()
]


def documented_schema(method: str, path: str, status: int) -> dict[str, Any] | None:
    """The documented response schema, or None if the document lists no such response."""
    for pattern, documented_method, operation in _OPERATIONS:
        if documented_method == method.lower() and pattern.match(path):
            response = operation["responses"].get(str(status))
            if response is None:
                return None
            return response["content"]["application/json"]["schema"]
    return None


# ---------------------------------------------------------------- the app under test


class Api:
    """A FamaApp with two bound mobile nodes, and a client that checks every answer."""

    def __init__(self, app: app_module.FamaApp, wsgi: WSGIApplication, store_path: Path) -> None:
        self.app = app
        self.wsgi = wsgi
        self.store_path = store_path
        self.datapath = FakeDatapath(DPID_A)
        app._switch_features(event(self.datapath))
        ports = [SimpleNamespace(name=b"p%d" % n, port_no=n) for n in (1, 2, 10, 20)]
        app._port_desc(event(self.datapath, body=ports))
        self.nodes = [MobileNode.create(seed=1), MobileNode.create(seed=2)]
        self.coas = [COA_1, COA_2]
        for node, coa in zip(self.nodes, self.coas, strict=True):
            frame = mh.build_ethernet_frame(
                bytes.fromhex(CORE_MAC.replace(":", "")),
                bytes.fromhex(ROUTER_MAC_A.replace(":", "")),
                node.first_bu(1, coa),
            )
            app._packet_in(event(self.datapath, match={"in_port": CORE_A}, data=frame))
            app._commit_pending()
        self.datapath.sent.clear()
        dar = app.dars[DPID_A]
        self.secrets: list[str] = []
        for node in self.nodes:
            binding = dar.home_agent.cache.get(node.hoa)
            assert binding is not None
            for secret in (binding.phkt, binding.key_hash):
                self.secrets += encodings(secret)
        self.responses = 0

    def call(self, path: str, method: str = "GET") -> tuple[int, Any]:
        response = Request.blank(path, method=method).get_response(self.wsgi)
        body = response.body.decode("utf-8")
        self.responses += 1
        assert response.status_int != 500, f"{method} {path}: 500 {body}"
        assert "Traceback" not in body
        for secret in self.secrets:
            assert secret not in body, f"{method} {path} shows a secret"
        if path.startswith(PREFIX + "/"):
            assert response.content_type == "application/json", (path, response.content_type)
        data = json.loads(body)
        route = path.split("?", 1)[0]
        schema = documented_schema(method, route, response.status_int)
        if response.status_int == 200:
            assert schema is not None, f"{method} {route}: 200 not documented"
        if schema is None and response.status_int >= 400:
            schema = {"$ref": "#/components/schemas/Error"}
        if schema is not None:
            validate(data, schema)
        return response.status_int, data

    def ok(self, path: str, method: str = "GET") -> Any:
        status, data = self.call(path, method)
        assert status == 200, (path, data)
        return data

    def error(self, path: str, status: int, method: str = "GET") -> dict[str, Any]:
        got, data = self.call(path, method)
        assert got == status, (path, got, data)
        assert isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"]
        return data

    def stored_hoas(self) -> set[bytes]:
        connection = sqlite3.connect(f"file:{self.store_path}?mode=ro", uri=True)
        try:
            return {row[0] for row in connection.execute("SELECT hoa FROM bindings")}
        finally:
            connection.close()


def encodings(secret: bytes) -> list[str]:
    forms = {
        secret.hex(),
        secret.hex().upper(),
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode(),
        base64.b64encode(secret).decode().rstrip("="),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
        ":".join(f"{b:02x}" for b in secret),
    }
    return sorted(forms)


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    domain_file = tmp_path / "domain.yaml"
    domain_file.write_text(yaml.safe_dump(DOMAIN))
    store_path = tmp_path / "bindings.sqlite"
    CONF.set_override("domain_file", str(domain_file), group="fama")
    CONF.set_override("store_path", str(store_path), group="fama")
    monkeypatch.setattr(app_module.hub, "spawn", lambda *args, **kwargs: None)
    wsgi = WSGIApplication()
    app = app_module.FamaApp(wsgi=wsgi)
    try:
        yield Api(app, wsgi, store_path)
    finally:
        app.store.close()
        CONF.clear_override("domain_file", group="fama")
        CONF.clear_override("store_path", group="fama")


# ---------------------------------------------------------------- the document


def test_the_document_lists_exactly_the_routes() -> None:
    routes = set()
    for name in dir(rest.FamaRestController):
        info = getattr(getattr(rest.FamaRestController, name), "routing_info", None)
        if info is None or "{path" in info["path"]:
            continue
        for method in info["methods"]:
            routes.add((info["path"], method.lower()))
    documented = {
        (path, method) for path, methods in OPENAPI["paths"].items() for method in methods
    }
    assert routes == documented


def test_openapi_route_serves_the_document(api: Api) -> None:
    assert api.ok(PREFIX + "/openapi.json") == OPENAPI


# ---------------------------------------------------------------- 200s


def test_list_dars(api: Api) -> None:
    dars = api.ok(PREFIX + "/dars")
    assert [d["name"] for d in dars] == ["dara", "darb"]
    dara, darb = dars
    assert dara == {
        "dpid": "000000000000000a",
        "name": "dara",
        "connected": True,
        "anchor_address": "2001:db8:a::1",
        "access_prefixes": ["2001:db8:a::/64", "2001:db8:a2::/64"],
        "return_routability": False,
        "bindings": 2,
        "binding_limit": 50,
    }
    assert darb["connected"] is False and darb["return_routability"] is True
    assert darb["bindings"] == 0 and darb["binding_limit"] == 100_000


@pytest.mark.parametrize("dpid", ["000000000000000a", "a", "A", "0a", "00000000000000A"])
def test_get_dar_with_counters(api: Api, dpid: str) -> None:
    dar = api.ok(f"{PREFIX}/dars/{dpid}")
    assert dar["name"] == "dara" and dar["dpid"] == "000000000000000a"
    stats = dar["stats"]
    assert stats["bu_results"] == {"accepted": 2}
    assert stats["ba_status"] == {"0": 2}
    assert stats["events"]["packet_in"] == 2
    assert stats["drops"] == {}


def test_stats(api: Api) -> None:
    stats = api.ok(PREFIX + "/stats")
    assert set(stats) == {"dara", "darb"}
    assert stats["dara"]["dpid"] == "000000000000000a"
    assert stats["dara"]["bu_results"] == {"accepted": 2}
    assert stats["darb"] == {
        "dpid": "000000000000000b",
        "bu_results": {},
        "ba_status": {},
        "drops": {},
        "events": {},
    }


def test_list_bindings(api: Api) -> None:
    bindings = api.ok(PREFIX + "/bindings")
    assert sorted((b["hoa"], b["coa"]) for b in bindings) == sorted(
        (text(node.hoa), text(coa)) for node, coa in zip(api.nodes, api.coas, strict=True)
    )
    for binding in bindings:
        assert binding["dar"] == "dara" and binding["dpid"] == "000000000000000a"
        assert binding["sequence"] == 1 and binding["lifetime_s"] == 400
        assert binding["expires_at"] == pytest.approx(binding["registered_at"] + 400)
        assert 0 < binding["remaining_s"] <= 400
        assert set(binding) == set(OPENAPI["components"]["schemas"]["Binding"]["properties"])


def test_binding_filters(api: Api) -> None:
    first, second = api.nodes
    by_hoa = api.ok(f"{PREFIX}/bindings?hoa={text(first.hoa)}")
    assert [b["hoa"] for b in by_hoa] == [text(first.hoa)]
    by_coa = api.ok(f"{PREFIX}/bindings?coa={text(COA_2)}")
    assert [b["hoa"] for b in by_coa] == [text(second.hoa)]
    # Addresses in any spelling.
    exploded = ipaddress.IPv6Address(first.hoa).exploded.upper()
    assert len(api.ok(f"{PREFIX}/bindings?hoa={exploded}")) == 1
    assert len(api.ok(f"{PREFIX}/bindings?dpid=a")) == 2
    assert len(api.ok(f"{PREFIX}/bindings?dpid=000000000000000A")) == 2
    assert api.ok(f"{PREFIX}/bindings?dpid=b") == []
    assert api.ok(f"{PREFIX}/bindings?dpid=ff") == []
    both = api.ok(f"{PREFIX}/bindings?" + urlencode({"hoa": text(first.hoa), "coa": text(COA_1)}))
    assert len(both) == 1
    assert api.ok(f"{PREFIX}/bindings?hoa={text(first.hoa)}&coa={text(COA_2)}") == []
    assert api.ok(f"{PREFIX}/bindings?hoa=2001:db8:a::dead") == []


def test_get_bindings_of_one_hoa(api: Api) -> None:
    node = api.nodes[0]
    [binding] = api.ok(f"{PREFIX}/bindings/{text(node.hoa)}")
    assert binding["hoa"] == text(node.hoa) and binding["coa"] == text(COA_1)
    [same] = api.ok(f"{PREFIX}/bindings/{ipaddress.IPv6Address(node.hoa).exploded}")
    assert same["hoa"] == binding["hoa"]


def test_delete_revokes_the_binding(api: Api) -> None:
    node = api.nodes[0]
    body = api.ok(f"{PREFIX}/bindings/{text(node.hoa)}", method="DELETE")
    [revoked] = body["revoked"]
    assert revoked["hoa"] == text(node.hoa) and revoked["coa"] == text(COA_1)
    # Store, cache and switch follow.
    assert node.hoa not in api.stored_hoas() and api.nodes[1].hoa in api.stored_hoas()
    deletes = [m for m in api.datapath.sent if isinstance(m, ofproto_v1_3_parser.OFPFlowMod)]
    assert len(deletes) == 3
    assert all(m.command == ofproto_v1_3.OFPFC_DELETE_STRICT for m in deletes)
    assert {m.match.get("ipv6_dst") or m.match.get("ipv6_src") for m in deletes} == {text(node.hoa)}
    api.error(f"{PREFIX}/bindings/{text(node.hoa)}", 404)
    api.error(f"{PREFIX}/bindings/{text(node.hoa)}", 404, method="DELETE")
    assert [b["hoa"] for b in api.ok(PREFIX + "/bindings")] == [text(api.nodes[1].hoa)]
    assert api.ok(PREFIX + "/dars")[0]["bindings"] == 1
    assert api.ok(PREFIX + "/dars/a")["stats"]["events"]["binding_revoked"] == 1


# ---------------------------------------------------------------- 400s


@pytest.mark.parametrize(
    "path",
    [
        "/bindings?hoa=not-an-address",
        "/bindings?coa=10.0.0.1",
        "/bindings?hoa=",
        "/bindings?coa=2001:db8::1::2",
        "/bindings/nonsense",
        "/bindings/2001:db8:a:::1",
        "/bindings/ff02::1::",
    ],
)
def test_bad_address_is_400(api: Api, path: str) -> None:
    data = api.error(PREFIX + path, 400)
    assert data.get("parameter") in ("hoa", "coa")


def test_delete_with_a_bad_address_is_400(api: Api) -> None:
    assert api.error(PREFIX + "/bindings/nonsense", 400, method="DELETE")["parameter"] == "hoa"
    assert len(api.stored_hoas()) == 2


@pytest.mark.parametrize(
    "path",
    [
        "/dars/xyz",
        "/dars/00000000000000001",  # 17 digits
        "/dars/0x1",
        "/dars/-1",
        "/dars/%EF%BC%91",  # fullwidth digit one
        "/bindings?dpid=",
        "/bindings?dpid=g",
        "/bindings?dpid=1%202",
    ],
)
def test_bad_dpid_is_400(api: Api, path: str) -> None:
    assert api.error(PREFIX + path, 400)["parameter"] == "dpid"


@pytest.mark.parametrize(
    "route",
    ["/dars", "/dars/a", "/bindings", "/bindings/2001:db8:a::5", "/stats"],
)
def test_unknown_query_parameter_is_400(api: Api, route: str) -> None:
    data = api.error(f"{PREFIX}{route}?verbose=1", 400)
    assert "verbose" in data["error"]
    assert isinstance(data["allowed"], list)


def test_unknown_query_parameter_on_delete_is_400_and_revokes_nothing(api: Api) -> None:
    hoa = text(api.nodes[0].hoa)
    api.error(f"{PREFIX}/bindings/{hoa}?force=1", 400, method="DELETE")
    assert api.nodes[0].hoa in api.stored_hoas()


@pytest.mark.parametrize(
    "query",
    ["hoa=2001:db8:a::1&hoa=2001:db8:a::1", "dpid=a&dpid=b", "coa=x&coa=y"],
)
def test_duplicated_parameter_is_400(api: Api, query: str) -> None:
    assert "twice" in api.error(f"{PREFIX}/bindings?{query}", 400)["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/bindings/" + "1" * 100_000,
        "/bindings?hoa=" + "a" * 10_000,
        "/bindings?coa=" + "2001:db8::" + "0" * 5000 + "1",
        "/dars/" + "a" * 50_000,
        "/bindings?" + "&".join(f"k{n}=v" for n in range(2000)),
        "/bindings/" + quote("☃" * 3000),
    ],
)
def test_huge_input_is_400(api: Api, path: str) -> None:
    data = api.error(PREFIX + path, 400)
    assert len(json.dumps(data)) < 200_000


@pytest.mark.parametrize(
    "path",
    [
        "/bindings/" + quote("\u202e2001:db8:a::1"),
        "/bindings/" + quote("２００１:db8::1"),
        "/bindings/" + quote("💥"),
        "/bindings?hoa=" + quote("2001:db8:a::１"),
        "/bindings?" + quote("ĥoa") + "=1",
        "/dars/" + quote("ａ"),
        "/bindings/%00",
        "/bindings/2001:db8::1%00",
        "/bindings/%25%25",
        "/bindings?hoa=%0d%0aSet-Cookie:%20x=1",
    ],
)
def test_unicode_and_percent_encoded_junk_is_400(api: Api, path: str) -> None:
    api.error(PREFIX + path, 400)


# ---------------------------------------------------------------- 404s


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/dars/ff", "GET"),
        ("/dars/ffffffffffffffff", "GET"),
        ("/bindings/2001:db8:a::dead", "GET"),
        ("/bindings/2001:db8:a::dead", "DELETE"),
        ("/bindings/2001:db8:99::1", "GET"),
        ("/nope", "GET"),
        ("/", "GET"),
        ("/dars/a/extra", "GET"),
        ("/bindings/", "GET"),
        ("/dars/", "GET"),
        ("/stats/x", "GET"),
        ("/%2e%2e/dars", "GET"),
        ("/" + quote("ünïcödé"), "GET"),
    ],
)
def test_unknown_things_are_404(api: Api, path: str, method: str) -> None:
    api.error(PREFIX + path, 404, method=method)


def test_unknown_dar_404_names_the_dpid(api: Api) -> None:
    assert api.error(PREFIX + "/dars/ff", 404)["dpid"] == "00000000000000ff"


@pytest.mark.parametrize(
    ("path", "method"),
    [("/dars", "POST"), ("/stats", "DELETE"), ("/bindings", "PUT"), ("/openapi.json", "PATCH")],
)
def test_wrong_method_never_succeeds(api: Api, path: str, method: str) -> None:
    status, data = api.call(PREFIX + path, method)
    assert status in (404, 405) and "error" in data


def test_a_method_a_path_lacks_is_a_json_404(api: Api) -> None:
    """rest.py documents it: a method a path lacks is answered like an unknown path."""
    response = Request.blank(PREFIX + "/dars", method="POST").get_response(api.wsgi)
    assert response.status_int == 404
    assert response.content_type == "application/json"
    assert "error" in response.json


# ---------------------------------------------------------------- regressions


def test_non_utf8_path_is_a_json_error(api: Api) -> None:
    api.error(PREFIX + "/%ff", 404)


@pytest.mark.parametrize("query", ["hoa=%ff", "%fe=1", "dpid=%c3"])
def test_non_utf8_query_is_400(api: Api, query: str) -> None:
    api.error(f"{PREFIX}/bindings?{query}", 400)


def test_non_utf8_path_and_query_is_a_json_error(api: Api) -> None:
    api.call(PREFIX + "/bindings/%ff?x=%ff")


def test_path_with_a_newline_is_json(api: Api) -> None:
    api.error(PREFIX + "/x%0Ay", 404)


def test_revoke_with_a_failing_store_is_not_404(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(changes: object, run_blocking: object = None) -> None:
        raise StoreError("read_only", "read-only file system")

    monkeypatch.setattr(api.app.store, "commit", refuse)
    hoa = text(api.nodes[0].hoa)
    response = Request.blank(f"{PREFIX}/bindings/{hoa}", method="DELETE").get_response(api.wsgi)
    assert api.ok(f"{PREFIX}/bindings/{hoa}")  # still bound
    assert response.status_int == 503, response.body
    assert response.json["error"] == "binding store unavailable"


# ---------------------------------------------------------------- fuzzing


_SEGMENT = st.one_of(
    st.sampled_from(
        ["dars", "bindings", "stats", "openapi.json", "a", "000000000000000a", "2001:db8:a::1",
         "..", ".", "", "%", "%25", "%2F", "%00", "::", "ff02::1", "0" * 17, "%C3%A9"]
    ),
    st.text(max_size=40).map(lambda s: quote(s, safe=":@!$&'()*+,;=")),
)  # fmt: skip
_QUERY = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(["hoa", "coa", "dpid", "x", ""]), st.text(max_size=10)),
        st.one_of(
            st.sampled_from(["2001:db8:a::1", "a", "", "::", "0x1", "1" * 80]),
            st.text(max_size=60),
        ),
    ),
    max_size=4,
)


def test_fuzzed_requests_never_fail_or_leak(api: Api) -> None:
    @settings(
        max_examples=400,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        segments=st.lists(_SEGMENT, min_size=0, max_size=4),
        query=_QUERY,
        method=st.sampled_from(["GET", "GET", "GET", "DELETE", "POST", "PUT"]),
    )
    def check(segments: list[str], query: list[tuple[str, str]], method: str) -> None:
        path = PREFIX + "/" + "/".join(segments)
        if query:
            path += "?" + urlencode(query)
        if "%0A" in path.split("?")[0].upper():
            return  # known bug: test_path_with_a_newline_is_json
        status, data = api.call(path, method)
        assert status in (200, 400, 404, 405), (path, status, data)
        if status != 200:
            assert isinstance(data, dict) and "error" in data

    check()
    assert api.responses >= 300
    # Whatever the fuzzer deleted, the secrets of what remains are still never shown.
    api.ok(PREFIX + "/bindings")
