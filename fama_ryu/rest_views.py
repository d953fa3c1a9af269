"""The REST API's answers, as plain data (no ryu, no web framework).

Every handler of ``fama_ryu.rest`` calls one function here and turns its
:class:`ApiResponse` into HTTP.  Input is validated with precise errors
(400 with a JSON body), unknown things are 404, and nothing secret is ever
shown: no PHKT, no key material (P12).  Catalogue::

    GET    /fama/v1/dars                 every DAR of the domain
    GET    /fama/v1/dars/{dpid}          one DAR (dpid: 16 hex digits), with counters
    GET    /fama/v1/bindings             bindings; filters hoa=, coa=, dpid=
    GET    /fama/v1/bindings/{hoa}       the bindings of one home address
    DELETE /fama/v1/bindings/{hoa}       administrative revoke (flows removed, tombstoned)
    GET    /fama/v1/stats                BUs by result and status, drops by reason
    GET    /fama/v1/openapi.json         this API's OpenAPI document
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fama_ryu.binding_cache import Binding
from fama_ryu.dar import Dar

MAX_QUERY_VALUE_LEN = 64
BINDING_FILTERS = frozenset({"hoa", "coa", "dpid"})

Revoke = Callable[[bytes], list[tuple[Dar, Binding | None]]]


class StoreUnavailable(Exception):
    """The binding store refused a change the API was asked to make (503)."""


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: Any

    def json_bytes(self) -> bytes:
        return json.dumps(self.body, indent=2, sort_keys=False).encode() + b"\n"


def error(status: int, message: str, **details: Any) -> ApiResponse:
    return ApiResponse(status, {"error": message, **details})


def shown(text: str) -> str:
    """``text`` as an error may echo it: cut to MAX_QUERY_VALUE_LEN, so that a huge
    request never turns into a huge answer (found by tests/hardening)."""
    if len(text) <= MAX_QUERY_VALUE_LEN:
        return text
    return text[:MAX_QUERY_VALUE_LEN] + f"... ({len(text)} characters)"


def _parse_address(text: str, what: str) -> bytes | ApiResponse:
    if len(text) > MAX_QUERY_VALUE_LEN:
        return error(400, f"{what} is too long", parameter=what)
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        return error(400, f"{what} is not an IPv6 address", parameter=what)
    if address.scope_id is not None:
        # ipaddress takes "fe80::1%eth0"; a zone means nothing to a binding (RFC 4007 §11).
        return error(400, f"{what} must not carry a zone index", parameter=what)
    return address.packed


def _parse_dpid(text: str) -> int | ApiResponse:
    if not 1 <= len(text) <= 16 or any(c not in "0123456789abcdefABCDEF" for c in text):
        return error(400, "dpid must be 1 to 16 hexadecimal digits", parameter="dpid")
    return int(text, 16)


def _address(address: bytes) -> str:
    return str(ipaddress.IPv6Address(address))


def binding_view(dar: Dar, binding: Binding, now: float) -> dict[str, Any]:
    return {
        "hoa": _address(binding.hoa),
        "coa": _address(binding.coa),
        "dar": dar.name,
        "dpid": f"{dar.dpid:016x}",
        "sequence": binding.sequence,
        "lifetime_s": binding.lifetime_s,
        "registered_at": binding.registered_at,
        "expires_at": binding.expires_at,
        "remaining_s": max(0.0, round(binding.expires_at - now, 3)),
    }


def dar_view(dar: Dar) -> dict[str, Any]:
    config = dar.config
    return {
        "dpid": f"{dar.dpid:016x}",
        "name": dar.name,
        "connected": dar.connected,
        "anchor_address": str(config.anchor_address),
        "access_prefixes": [str(prefix) for prefix in config.access_prefixes],
        "return_routability": config.return_routability,
        "bindings": len(dar.home_agent.cache),
        "binding_limit": config.binding_limit,
    }


def stats_view(dar: Dar) -> dict[str, Any]:
    """Counters grouped as the API documents them."""
    groups: dict[str, dict[str, int]] = {
        "bu_results": {},
        "ba_status": {},
        "drops": {},
        "events": {},
    }
    group_of = {"bu_result": "bu_results", "ba_status": "ba_status", "drop": "drops"}
    for key, value in sorted(dar.counters.items()):
        prefix, _, name = key.partition(":")
        if name and prefix in group_of:
            groups[group_of[prefix]][name] = value
        else:
            groups["events"][key] = value
    return groups


def _check_query(query: Mapping[str, str], allowed: Iterable[str]) -> ApiResponse | None:
    unknown = sorted(set(query) - set(allowed))
    if unknown:
        return error(400, f"unknown query parameter {shown(unknown[0])!r}", allowed=sorted(allowed))
    return None


def list_dars(dars: Iterable[Dar], query: Mapping[str, str]) -> ApiResponse:
    problem = _check_query(query, ())
    if problem is not None:
        return problem
    return ApiResponse(200, [dar_view(dar) for dar in dars])


def get_dar(dars: Mapping[int, Dar], dpid_text: str, query: Mapping[str, str]) -> ApiResponse:
    problem = _check_query(query, ())
    if problem is not None:
        return problem
    dpid = _parse_dpid(dpid_text)
    if isinstance(dpid, ApiResponse):
        return dpid
    dar = dars.get(dpid)
    if dar is None:
        return error(404, "no such DAR", dpid=f"{dpid:016x}")
    return ApiResponse(200, {**dar_view(dar), "stats": stats_view(dar)})


def list_bindings(dars: Iterable[Dar], query: Mapping[str, str], now: float) -> ApiResponse:
    problem = _check_query(query, BINDING_FILTERS)
    if problem is not None:
        return problem
    wanted: dict[str, Any] = {}
    for name in ("hoa", "coa"):
        if name in query:
            parsed = _parse_address(query[name], name)
            if isinstance(parsed, ApiResponse):
                return parsed
            wanted[name] = parsed
    if "dpid" in query:
        dpid = _parse_dpid(query["dpid"])
        if isinstance(dpid, ApiResponse):
            return dpid
        wanted["dpid"] = dpid
    views = []
    for dar in dars:
        if "dpid" in wanted and dar.dpid != wanted["dpid"]:
            continue
        for binding in dar.bindings():
            if "hoa" in wanted and binding.hoa != wanted["hoa"]:
                continue
            if "coa" in wanted and binding.coa != wanted["coa"]:
                continue
            views.append(binding_view(dar, binding, now))
    return ApiResponse(200, views)


def _home_address_argument(hoa_text: str, query: Mapping[str, str]) -> bytes | ApiResponse:
    """The {hoa} path argument of a route that takes no query parameters."""
    problem = _check_query(query, ())
    if problem is not None:
        return problem
    return _parse_address(hoa_text, "hoa")


def get_bindings_of(
    dars: Iterable[Dar], hoa_text: str, query: Mapping[str, str], now: float
) -> ApiResponse:
    hoa = _home_address_argument(hoa_text, query)
    if isinstance(hoa, ApiResponse):
        return hoa
    views = [
        binding_view(dar, binding, now)
        for dar in dars
        if (binding := dar.home_agent.cache.get(hoa)) is not None
    ]
    if not views:
        return error(404, "no binding for this home address", hoa=_address(hoa))
    return ApiResponse(200, views)


def revoke_bindings_of(
    revoke: Revoke, hoa_text: str, query: Mapping[str, str], now: float
) -> ApiResponse:
    hoa = _home_address_argument(hoa_text, query)
    if isinstance(hoa, ApiResponse):
        return hoa
    removed = revoke(hoa)
    if not removed:
        return error(404, "no binding for this home address", hoa=_address(hoa))
    return ApiResponse(
        200,
        {
            "revoked": [
                binding_view(dar, binding, now) for dar, binding in removed if binding is not None
            ]
        },
    )


def stats(dars: Iterable[Dar], query: Mapping[str, str]) -> ApiResponse:
    problem = _check_query(query, ())
    if problem is not None:
        return problem
    return ApiResponse(
        200, {dar.name: {"dpid": f"{dar.dpid:016x}", **stats_view(dar)} for dar in dars}
    )


def openapi_document() -> ApiResponse:
    text = resources.files("fama_ryu").joinpath("openapi.json").read_text()
    return ApiResponse(200, json.loads(text))
