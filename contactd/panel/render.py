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
    group: str | None = None  # a NavGroup name: shown in that group's drop-down; None = a top-level link
    prefix: str | None = None  # paths under this light the item (default: href); "/sms" for every SMS page

    def matches(self, path: str) -> int:
        """How specific a match `path` is for this item (0 = none): the longest prefix wins the highlight."""
        base = (self.prefix or self.href).rstrip("/")
        if not base:  # "/" is the desk only, not every page
            return 1 if path == "/" else 0
        return len(base) if path == base or path.startswith(base + "/") else 0


@dataclass(frozen=True)
class NavGroup:
    name: str
    label_key: str
    order: int = 100


@dataclass(frozen=True)
class NavEntry:
    """What base.html draws: one group (a drop-down, or a plain link when it holds one item) or a lone link."""
    label_key: str
    items: tuple[NavItem, ...]
    active: NavItem | None
    name: str = ""

    @property
    def href(self) -> str:
        return self.items[0].href


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
        self.nav_groups: dict[str, NavGroup] = {}

    def add_nav(self, item: NavItem) -> None:
        self.nav.append(item)
        self.nav.sort(key=lambda n: n.order)

    def add_nav_group(self, group: NavGroup) -> None:
        self.nav_groups[group.name] = group

    def menu(self, user: Any, path: str) -> list[NavEntry]:
        """The user's menu: items their role allows, grouped; empty groups vanish; the current section is marked."""
        visible = [n for n in self.nav if user is not None and allowed(user, n.role, n.permission)]
        best = max(visible, key=lambda n: n.matches(path), default=None)
        current = best if best is not None and best.matches(path) else None
        slots: dict[str, list[NavItem]] = {}
        order: dict[str, tuple[int, int]] = {}
        for item in visible:
            group = self.nav_groups.get(item.group or "")
            key = group.name if group else "item:" + item.href
            slots.setdefault(key, []).append(item)
            order.setdefault(key, (group.order if group else item.order, item.order))
        entries = []
        for key in sorted(slots, key=lambda k: order[k]):
            items = tuple(slots[key])
            group = self.nav_groups.get(key)
            active = current if current in items else None
            if group is None or len(items) == 1:  # a one-item drop-down is just a detour
                entries.append(NavEntry(items[0].label_key, items, active))
            else:
                entries.append(NavEntry(group.label_key, items, active, name=group.name))
        return entries

    def render(self, request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
        user = request.get(keys.USER)
        session = request.get(keys.SESSION)
        catalogue = catalogue_for(request)
        base = {
            "t": catalogue.t,
            # For keys built from stored codes (audit actions, ...): the code itself when no text exists yet.
            "t_or": lambda key, default, **params: catalogue.t(key, **params) if catalogue.has(key) else default,
            "lang": catalogue.language,
            "user": user,
            "csrf_token": session.csrf if session is not None else context.pop("csrf_token", ""),
            "nav": [n for n in self.nav if user is not None and allowed(user, n.role, n.permission)],
            "menu": self.menu(user, request.path),
            "path": request.path,
            "can": lambda role, permission=None: allowed(user, role, permission),
        }
        base.update(context)
        html = self.env.get_template(template).render(**base)
        response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
        response.headers["Cache-Control"] = "no-store"
        return response
