"""The panel's aiohttp application: routes from every feature module, middlewares, templates, static files.

`create_panel_app(services)` is all the daemon needs; everything the handlers share hangs off typed AppKeys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from ..crm.accounts import AccountService
from ..crm.customers import CustomerService
from ..services import Services
from . import (
    admin_users,
    auth,
    blacklist,
    business_hours,
    call_history,
    calls_api,
    consultations,
    customers,
    desk,
    health,
    inbox,
    keys,
    openapi,
    order_import,
    orders,
    phonebook,
    products,
    screenpop,
    sms,
    stats,
    tickets,
)
from .i18n import Catalogues
from .render import NavGroup, NavItem, Renderer
from .screenpop import ScreenPop, default_sections
from .sessions import SessionCodec
from .tabs import default_tabs

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
FEATURE_MODULES = (auth, health, openapi, desk, screenpop, customers, calls_api, admin_users,
                   tickets, inbox, call_history, blacklist, phonebook, business_hours, sms,
                   orders, products, order_import, consultations, stats)
MAX_BODY = 20 * 1024 * 1024  # Excel uploads

DEFAULT_SETTINGS: dict[str, Any] = {
    "login_limit": 5,  # failures per username + address ...
    "login_window": 300,  # ... within this many seconds → 429
    "heartbeat": 15.0,  # SSE comment line interval
    "secure_cookies": False,  # true behind HTTPS
}


def create_panel_app(services: Services, *, web_dir: Path | None = None,
                     settings: dict[str, Any] | None = None) -> web.Application:
    root = web_dir or WEB_DIR
    app = web.Application(middlewares=[auth.security_headers, auth.auth_middleware], client_max_size=MAX_BODY)
    app[keys.SERVICES] = services
    app[keys.SETTINGS] = {**DEFAULT_SETTINGS, **(settings or {})}
    app[keys.ACCOUNTS] = AccountService(services.db)
    app[keys.CUSTOMERS] = CustomerService(services.db)
    app[keys.CATALOGUES] = Catalogues(root / "i18n", default=services.config.web.language)
    app[keys.SESSIONS] = SessionCodec(services.config.web.session_key)
    renderer = Renderer(root / "templates")
    app[keys.RENDERER] = renderer
    app[keys.CUSTOMER_TABS] = default_tabs()
    hub = ScreenPop(services.bus, app[keys.CUSTOMERS], app[keys.CATALOGUES])
    default_sections(hub, services.db)
    app[keys.SCREENPOP] = hub
    for module in (tickets, inbox, call_history, phonebook, sms,  # their services, tabs and hubs
                   orders, order_import, consultations, stats):
        module.setup(app)

    registry: list[Any] = []
    for module in FEATURE_MODULES:
        module.routes.install(app, registry)
    app[keys.ROUTES] = registry
    app.router.add_static("/static", root / "static", append_version=True)

    # The menu: six drop-downs by what people do; role filtering hides items, and a group left empty.
    for group in (NavGroup("desk", "nav.group.desk", 10), NavGroup("customers", "nav.group.customers", 20),
                  NavGroup("sms", "nav.group.sms", 30), NavGroup("history", "nav.group.history", 40),
                  NavGroup("stats", "nav.group.stats", 50), NavGroup("admin", "nav.group.admin", 90)):
        renderer.add_nav_group(group)
    for item in (NavItem("nav.desk", "/", order=10, group="desk"),
                 NavItem("inbox.nav", "/inbox", order=12, group="desk"),
                 NavItem("tickets.nav.new", "/tickets/new", order=14, group="desk", prefix="/tickets"),
                 NavItem("nav.customers", "/customers", order=20, group="customers"),
                 NavItem("orders.nav", "/orders", order=25, group="customers"),
                 NavItem("products.nav", "/products", role="supervisor", order=32, group="customers"),
                 NavItem("sms.nav", "/sms/compose", order=50, group="sms", prefix="/sms"),
                 NavItem("history.nav", "/history", order=40, group="history"),
                 NavItem("consultations.nav", "/consultations", order=42, group="history"),
                 NavItem("stats.nav", "/stats/daily", role="supervisor", order=60, group="stats", prefix="/stats"),
                 NavItem("nav.users", "/admin/users", role="admin", order=80, group="admin"),
                 NavItem("nav.extensions", "/admin/extensions", role="admin", order=81, group="admin"),
                 NavItem("blacklist.nav", "/admin/blacklist", role="supervisor", order=82, group="admin"),
                 NavItem("tickets.nav.types", "/admin/consultation-types", role="supervisor", order=83,
                         group="admin"),
                 NavItem("hours.nav", "/admin/hours", role="admin", order=84, group="admin"),
                 NavItem("phonebook.nav", "/phonebook", order=85, group="admin"),
                 NavItem("nav.import", "/customers/import", role="supervisor", order=86, group="admin"),
                 NavItem("orders.import.nav", "/orders/import", role="supervisor", order=87, group="admin"),
                 NavItem("nav.audit", "/admin/audit", role="admin", order=89, group="admin")):
        renderer.add_nav(item)

    async def start_hub(_: web.Application) -> None:
        await hub.start()

    async def stop_hub(_: web.Application) -> None:
        await hub.stop()

    app.on_startup.append(start_hub)
    app.on_shutdown.append(stop_hub)  # on_shutdown: open SSE streams must end before the server waits on them
    return app
