"""Responses: Jinja2 pages with the user's catalogue, CSRF token and menu; JSON bodies and JSON errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from ..crm.phone import display as phone_display
from . import keys
from .i18n import Catalogue
from .routing import allowed

SEOUL = ZoneInfo("Asia/Seoul")


@dataclass(frozen=True)
class NavItem:
    label_key: str
    href: str
    role: str = "agent"
    permission: str | None = None
    order: int = 100


def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Stored times are UTC; people read Korea time."""
    if value is None:
        return ""
    return value.astimezone(SEOUL).strftime(fmt)


def catalogue_for(request: web.Request) -> Catalogue:
    user = request.get(keys.USER)
    catalogues = request.app[keys.CATALOGUES]
    return catalogues.get(user.language if user is not None else None)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda obj: json.dumps(obj, ensure_ascii=False,
                                                                              default=str))


def json_error(request: web.Request, status: int, key: str, **params: Any) -> web.Response:
    """{"error": "<message in the user's language>", "code": key}; Korean unless the user chose English."""
    return json_response({"error": catalogue_for(request).t(key, **params), "code": key}, status)


def error_text(request: web.Request, exc: Exception) -> str:
    """A service error in the user's language when it carries a catalogue key, else its own (Korean) text."""
    key = getattr(exc, "key", None)
    catalogue = catalogue_for(request)
    if key and catalogue.has(key):
        return catalogue.t(key, **getattr(exc, "params", {}))
    return str(exc)


class Renderer:
    def __init__(self, templates_dir: Path) -> None:
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir)),
                                      autoescape=jinja2.select_autoescape(("html", "xml")),
                                      undefined=jinja2.StrictUndefined, enable_async=False)
        self.env.filters["phone"] = lambda digits: phone_display(digits or "")
        self.env.filters["localtime"] = local_time
        self.nav: list[NavItem] = []

    def add_nav(self, item: NavItem) -> None:
        self.nav.append(item)
        self.nav.sort(key=lambda n: n.order)

    def render(self, request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
        user = request.get(keys.USER)
        session = request.get(keys.SESSION)
        catalogue = catalogue_for(request)
        base = {
            "t": catalogue.t,
            "lang": catalogue.language,
            "user": user,
            "csrf_token": session.csrf if session is not None else context.pop("csrf_token", ""),
            "nav": [n for n in self.nav if user is not None and allowed(user, n.role, n.permission)],
            "path": request.path,
            "can": lambda role, permission=None: allowed(user, role, permission),
        }
        base.update(context)
        html = self.env.get_template(template).render(**base)
        response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
        response.headers["Cache-Control"] = "no-store"
        return response
