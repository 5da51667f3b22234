"""GET /api/openapi.json: an OpenAPI 3.1 document generated from the route registry (never written by hand)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from . import keys
from .render import json_response
from .routing import PUBLIC, PanelRoutes, RouteInfo

routes = PanelRoutes("meta")
_PATH_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "string"}, "code": {"type": "string"}},
                "required": ["error"]}


def build_document(infos: list[RouteInfo], *, version: str = "0.1.0") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for info in sorted(infos, key=lambda i: (i.path, i.method)):
        if not info.api:
            continue
        path = _PATH_PARAM.sub(r"{\1}", info.path)
        operation: dict[str, Any] = {
            "summary": info.summary or f"{info.method} {path}",
            "operationId": f"{info.method.lower()}_{info.handler.__name__}",
            "tags": [info.tag] if info.tag else [],
            "x-required-role": info.role,
            "parameters": [],
            "responses": {},
        }
        if info.permission:
            operation["x-required-permission"] = info.permission
        declared = {p.name for p in info.params}
        for name in _PATH_PARAM.findall(info.path):
            if name not in declared:
                operation["parameters"].append({"name": name, "in": "path", "required": True,
                                                "schema": {"type": "string"}})
        for param in info.params:
            operation["parameters"].append({"name": param.name, "in": param.location,
                                            "required": param.required or param.location == "path",
                                            "description": param.description, "schema": {"type": param.type}})
        if info.body is not None:
            operation["requestBody"] = {"required": True, "content": {info.body_type: {"schema": info.body}}}
        responses = dict(info.responses) or {200: "OK"}
        if info.role != PUBLIC:
            responses.setdefault(401, "not logged in")
            responses.setdefault(403, "role or permission missing, or CSRF token missing")
        for status, description in sorted(responses.items()):
            entry: dict[str, Any] = {"description": description}
            if status >= 400:
                entry["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
            operation["responses"][str(status)] = entry
        if info.method not in ("GET", "HEAD") and info.csrf and info.role != PUBLIC:
            operation["parameters"].append({"name": "X-CSRF-Token", "in": "header", "required": True,
                                            "schema": {"type": "string"},
                                            "description": "the session's CSRF token (GET /api/me)"})
        paths.setdefault(path, {})[info.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "contactd panel API", "version": version},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": "contactd_session"}},
        },
        "security": [{"session": []}],
    }


@routes.get("/api/openapi.json", role=PUBLIC, summary="This document", responses={200: "OpenAPI 3.1 JSON"})
async def openapi_json(request: web.Request) -> web.StreamResponse:
    return json_response(build_document(request.app[keys.ROUTES]))
