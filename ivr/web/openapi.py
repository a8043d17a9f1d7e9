"""The API's OpenAPI 3.1 document, made from the route table (so it cannot drift from it;
tests/web/test_api.py validates it and checks it against the table)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from ivr.web.routes import ROUTES, Route

VERSION = "1"
OPENAPI_PATH = "/api/v1/openapi.json"
_PARAMS = {
    "limit": "at most this many rows", "offset": "skip this many rows (pagination)",
    "practice": "only this practice (its id)", "night": "the night's date, YYYY-MM-DD",
    "disposition": "triage result", "outcome": "the call's outcome code",
    "needs_action": "1: only calls that need action",
    "to": "the number dialled (default: the practice's first number)",
    "forwarded_from": "the forwarding number (SIP Diversion)", "caller": "the caller ID",
    "at": "when the call comes (default now; zone-less: the practice's local time)",
    "keys": "menu keys pressed, one per attempt ('.' = none)",
}
_QUERY = {"api_calls": ("practice", "night", "disposition", "outcome", "needs_action",
                        "limit", "offset"),
          "api_reports": ("practice", "limit"), "api_audit": ("practice", "limit"),
          "api_simulate": ("practice", "to", "forwarded_from", "caller", "at", "keys")}
# POST bodies (JSON or a form): field -> description.
_BODY = {"api_override_set": {
    "mode": "closed or open", "until": "when it ends (zone-less: the practice's local time)",
    "from": "a later start (optional)", "reason": "why, at most 200 characters"}}
_BINARY = {"api_call_audio": "audio/wav", "api_call_note": "application/pdf",
           "api_report_file": "application/pdf"}


def _operation(route: Route) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", route.path)]
    params += [{"name": name, "in": "query", "required": False,
                "description": _PARAMS[name], "schema": {"type": "string"}}
               for name in _QUERY.get(route.name, ())]
    media = _BINARY.get(route.name, "application/json")
    ok: dict[str, Any] = {"description": "OK", "content": {
        media: {"schema": {"type": "string", "format": "binary"} if media != "application/json"
                else {"type": "object"}}}}
    problem = {"description": "Problem", "content": {"application/problem+json": {
        "schema": {"$ref": "#/components/schemas/Problem"}}}}
    responses: dict[str, Any] = {"200": ok, "401": problem, "403": problem}
    if params:
        responses["404"] = problem
    if route.name == "api_call_audio":
        responses["206"] = {**ok, "description": "The range asked for"}
    if route.method == "POST":
        responses["409"] = problem
    op = {"operationId": route.name, "summary": route.summary, "parameters": params,
          "responses": responses, "x-ivr-need": route.need.value}
    if route.name in _BODY:
        fields = _BODY[route.name]
        schema = {"type": "object", "required": ["mode", "until", "reason"], "properties": {
            name: {"type": "string", "description": text} for name, text in fields.items()}}
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": schema},
            "application/x-www-form-urlencoded": {"schema": schema}}}
    return op


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        if route.api:
            paths.setdefault(route.path[len("/api/v1"):], {})[route.method.lower()] = \
                _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "ivr portal API", "version": VERSION,
                 "description": "The portal's data as JSON. Every call needs a bearer "
                                "token (`ivr users token USER`)."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Problem": {"type": "object", "properties": {
                "type": {"type": "string"}, "title": {"type": "string"},
                "status": {"type": "integer"}, "detail": {"type": "string"}}}}},
    }


async def openapi_json(_request: web.Request) -> web.StreamResponse:
    return web.json_response(document())
