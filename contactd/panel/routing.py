"""The route registry: every panel route declares who may call it and, for JSON routes, its OpenAPI shape.

The auth middleware reads the declaration from the handler, so a route cannot be added without saying its role;
/api/openapi.json is generated from the same declarations.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC = "public"
ROLE_RANK = {PUBLIC: 0, "agent": 1, "supervisor": 2, "admin": 3}
PERMISSIONS = ("edit_consultations", "export")
ATTR = "__panel_route__"


@dataclass(frozen=True)
class Param:
    name: str
    location: str = "query"  # query | path | header
    type: str = "string"
    required: bool = False
    description: str = ""


@dataclass
class RouteInfo:
    method: str
    path: str
    handler: Handler
    role: str  # public | agent | supervisor | admin: the least role that may call it
    permission: str | None = None  # edit_consultations | export
    api: bool = False  # JSON route: listed in OpenAPI, answers errors as JSON
    summary: str = ""
    params: tuple[Param, ...] = ()
    body: dict[str, Any] | None = None  # JSON schema of the request body
    body_type: str = "application/json"
    responses: dict[int, str] = field(default_factory=dict)
    csrf: bool = True  # unsafe methods need the session's CSRF token
    tag: str = ""


def allowed(user: Any, role: str, permission: str | None = None) -> bool:
    """Role hierarchy admin > supervisor > agent; admins hold every permission."""
    if role == PUBLIC:
        return True
    if user is None or ROLE_RANK.get(user.role, 0) < ROLE_RANK[role]:
        return False
    if permission is None or user.role == "admin":
        return True
    return bool(getattr(user, f"can_{permission}", False))


class PanelRoutes:
    """A feature module's routes: `routes = PanelRoutes("customers")`, then `@routes.get(path, role=...)`."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.routes: list[RouteInfo] = []

    def route(self, method: str, path: str, *, role: str, permission: str | None = None, api: bool | None = None,
              summary: str = "", params: tuple[Param, ...] = (), body: dict[str, Any] | None = None,
              body_type: str = "application/json", responses: dict[int, str] | None = None,
              csrf: bool = True) -> Callable[[Handler], Handler]:
        if role not in ROLE_RANK:
            raise ValueError(f"unknown role {role!r}")
        if permission is not None and permission not in PERMISSIONS:
            raise ValueError(f"unknown permission {permission!r}")

        def decorate(handler: Handler) -> Handler:
            info = RouteInfo(method.upper(), path, handler, role, permission,
                             path.startswith("/api/") if api is None else api, summary, params, body, body_type,
                             dict(responses or {}), csrf, self.tag)
            setattr(handler, ATTR, info)
            self.routes.append(info)
            return handler

        return decorate

    def get(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **kwargs)

    def install(self, app: web.Application, registry: list[RouteInfo]) -> None:
        for info in self.routes:
            app.router.add_route(info.method, info.path, info.handler)
            registry.append(info)


def route_info(request: web.Request) -> RouteInfo | None:
    handler = getattr(request.match_info.route, "handler", None)
    return getattr(handler, ATTR, None)
