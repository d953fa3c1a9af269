"""REST routes on Ryu's WSGI server; the answers come from ``rest_views``.

Only routing and HTTP plumbing live here (this module imports ryu).  Every
path under ``/fama/v1/`` answers JSON: unknown paths and methods a path
lacks 404, bad input 400, a refusing binding store 503, and an unexpected
failure 500 with a JSON body, never a traceback.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ryu.app.wsgi import ControllerBase, Response, route

from fama_ryu import rest_views
from fama_ryu.rest_views import ApiResponse

APP_KEY = "fama_app"
PREFIX = "/fama/v1"
LOG = logging.getLogger("fama_ryu.rest")


def _http(answer: ApiResponse) -> Response:
    return Response(status=answer.status, content_type="application/json", body=answer.json_bytes())


def _query(request: Any) -> dict[str, str] | ApiResponse:
    query: dict[str, str] = {}
    try:
        items = list(request.GET.items())
    except UnicodeDecodeError:
        return rest_views.error(400, "query string is not UTF-8")
    for key, value in items:
        if key in query:
            return rest_views.error(400, f"query parameter {rest_views.shown(key)!r} given twice")
        query[key] = value
    return query


def _raw_path(request: Any) -> str:
    """The request path as the server received it (never fails to decode)."""
    return str(request.environ.get("PATH_INFO", ""))


class FamaRestController(ControllerBase):
    def __init__(self, request: Any, link: Any, data: dict[str, Any], **config: Any) -> None:
        super().__init__(request, link, data, **config)
        self.app = data[APP_KEY]

    def _answer(self, request: Any, view: Any, *args: Any) -> Response:
        try:
            query = _query(request)
            if isinstance(query, ApiResponse):
                return _http(query)
            return _http(view(*args, query))
        except rest_views.StoreUnavailable as error:
            return _http(rest_views.error(503, "binding store unavailable", reason=str(error)))
        except Exception:  # the API never shows a traceback
            LOG.exception("REST %s %r failed", request.method, _raw_path(request))
            return _http(rest_views.error(500, "internal error"))

    @route("fama", PREFIX + "/dars", methods=["GET"])
    def list_dars(self, request: Any, **_: Any) -> Response:
        return self._answer(request, rest_views.list_dars, self.app.dars.values())

    @route("fama", PREFIX + "/dars/{dpid}", methods=["GET"])
    def get_dar(self, request: Any, dpid: str, **_: Any) -> Response:
        return self._answer(request, rest_views.get_dar, self.app.dars, dpid)

    @route("fama", PREFIX + "/bindings", methods=["GET"])
    def list_bindings(self, request: Any, **_: Any) -> Response:
        def view(query: dict[str, str]) -> ApiResponse:
            return rest_views.list_bindings(self.app.dars.values(), query, time.time())

        return self._answer(request, view)

    @route("fama", PREFIX + "/bindings/{hoa}", methods=["GET"])
    def get_bindings_of(self, request: Any, hoa: str, **_: Any) -> Response:
        def view(query: dict[str, str]) -> ApiResponse:
            return rest_views.get_bindings_of(self.app.dars.values(), hoa, query, time.time())

        return self._answer(request, view)

    @route("fama", PREFIX + "/bindings/{hoa}", methods=["DELETE"])
    def revoke_bindings_of(self, request: Any, hoa: str, **_: Any) -> Response:
        def view(query: dict[str, str]) -> ApiResponse:
            return rest_views.revoke_bindings_of(self.app.revoke, hoa, query, time.time())

        return self._answer(request, view)

    @route("fama", PREFIX + "/stats", methods=["GET"])
    def stats(self, request: Any, **_: Any) -> Response:
        return self._answer(request, rest_views.stats, self.app.dars.values())

    @route("fama", PREFIX + "/openapi.json", methods=["GET"])
    def openapi(self, request: Any, **_: Any) -> Response:
        return _http(rest_views.openapi_document())

    # Ryu connects routes in the alphabetical order of the method names and
    # the first match wins: this catch-all must sort last.
    @route("fama", PREFIX + "/{path:[\\s\\S]*}")
    def unmatched_path(self, request: Any, path: str, **_: Any) -> Response:
        """Anything else under the prefix (or a method a path lacks): JSON 404."""
        path_shown = rest_views.shown(_raw_path(request))
        return _http(rest_views.error(404, "no such resource", path=path_shown))
