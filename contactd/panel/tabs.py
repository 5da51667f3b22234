"""The customer page's tabs: a registry so features added later (tickets, orders, SMS) bring their own tab.

A tab loader gets the request and the customer and returns a TabContent (a table of catalogue-keyed columns) or
ready HTML (markupsafe.Markup) when a table is not enough.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from markupsafe import Markup

from ..crm.phone import display as phone_display
from ..store.models import Customer
from . import keys
from .render import local_time
from .routing import allowed


@dataclass
class TabContent:
    columns: list[str]  # catalogue keys
    rows: list[list[Any]] = field(default_factory=list)
    empty_key: str = "common.empty"
    # Column index → "tel": the cell is a phone number rendered with a click-to-call button.
    kinds: dict[int, str] = field(default_factory=dict)


Loader = Callable[[web.Request, Customer], Awaitable["TabContent | Markup"]]


@dataclass
class CustomerTab:
    name: str
    label_key: str
    loader: Loader
    role: str = "agent"
    permission: str | None = None
    order: int = 100


class CustomerTabs:
    def __init__(self) -> None:
        self._tabs: dict[str, CustomerTab] = {}

    def add(self, tab: CustomerTab) -> None:
        """Register (or replace, by name) a tab."""
        self._tabs[tab.name] = tab

    def visible(self, user: Any) -> list[CustomerTab]:
        return sorted((t for t in self._tabs.values() if allowed(user, t.role, t.permission)),
                      key=lambda t: (t.order, t.name))

    def get(self, name: str) -> CustomerTab | None:
        return self._tabs.get(name)


async def calls_tab(request: web.Request, customer: Customer) -> TabContent:
    calls = await request.app[keys.CUSTOMERS].recent_calls(customer_id=customer.id,
                                                           numbers=[n for n in (customer.mobile, customer.phone)
                                                                    if n], limit=100)
    rows = [[local_time(c.started_at), f"call.direction.{c.direction}", c.from_number, c.to_number,
             c.agent_extension or "", c.billsec, f"call.disposition.{c.disposition}"] for c in calls]
    return TabContent(["call.col.started", "call.col.direction", "call.col.from", "call.col.to",
                       "call.col.agent", "call.col.billsec", "call.col.disposition"], rows,
                      "customer.tab.calls.empty", kinds={1: "key", 2: "tel", 3: "tel", 6: "key"})


async def callbacks_tab(request: web.Request, customer: Customer) -> TabContent:
    rows = [[local_time(cb.at), cb.number, "callback.done" if cb.done else "callback.open"]
            for cb in await request.app[keys.CUSTOMERS].callbacks(customer)]
    return TabContent(["callback.col.at", "callback.col.number", "callback.col.status"], rows,
                      "customer.tab.callbacks.empty", kinds={1: "tel", 2: "key"})


def default_tabs() -> CustomerTabs:
    tabs = CustomerTabs()
    tabs.add(CustomerTab("calls", "customer.tab.calls", calls_tab, order=10))
    tabs.add(CustomerTab("callbacks", "customer.tab.callbacks", callbacks_tab, order=20))
    return tabs


__all__ = ["CustomerTab", "CustomerTabs", "TabContent", "default_tabs", "phone_display"]
