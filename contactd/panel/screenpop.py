"""Live screen-pop: one bus subscription per panel process fans call events out to the agents' SSE streams.

A `call.ringing` goes only to the agent whose extension rings (and to supervisors who opted into all calls),
enriched once with the customer found by the caller's number, recent calls and pluggable sections (open tickets,
recent orders, ...). Later events of the same call (answered, transferred, ended) follow it to the same streams.
Pushed, never polled; with the Redis bus every node's agents get the events of the node that owns the AMI link.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from ..bus import Bus, BusConsumer, BusEvent
from ..crm.customers import CustomerService
from ..crm.phone import PhoneNumberError, is_mobile, normalize
from ..crm.phone import display as phone_display
from ..store.models import Customer
from . import keys
from .i18n import Catalogues
from .render import local_time
from .routing import ROLE_RANK, PanelRoutes, Param
from .sms import compose_link

log = logging.getLogger(__name__)
routes = PanelRoutes("events")

Section = Callable[[Customer | None, str], Awaitable[list[Any]]]
TOPICS = ("call.*", "callback.*")
IVR_CHOICES = ("1", "2", "3", "0")
ENRICH_TIMEOUT = 2.0
CLIENT_QUEUE = 100


@dataclass(eq=False)
class Client:
    user_id: int
    extension: str | None
    language: str
    watch_all: bool
    queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = field(
        default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))
    linkedids: set[str] = field(default_factory=set)
    dropped: int = 0

    def offer(self, item: tuple[str, dict[str, Any]] | None) -> None:
        """Never wait: a tab that stopped reading loses its own oldest events, nobody else's."""
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(item)


def action_links(number: str, linkedid: str, customer: Customer | None) -> dict[str, str]:
    """The pop's one-click "접수" (ticket for this call) and "문자" (SMS to the caller's mobile) targets.

    SMS goes to the customer's mobile when the call came from a landline; no mobile at all → no "문자" link.
    """
    query = {"number": number if number.isdigit() else "", "linkedid": linkedid}
    if customer is not None:
        query["customer_id"] = str(customer.id)
    links = {"ticket_url": "/tickets/new?" + urlencode({k: v for k, v in query.items() if v}), "sms_url": ""}
    mobile = next((n for n in ((customer.mobile if customer else None), number) if n and is_mobile(n)), "")
    if mobile:
        links["sms_url"] = compose_link(mobile, customer.name if customer else "",
                                        customer.id if customer else None)
    return links


def _customer_dict(customer: Customer) -> dict[str, Any]:
    return {"id": customer.id, "name": customer.name, "mobile": customer.mobile or "",
            "mobile_display": phone_display(customer.mobile or ""), "phone": customer.phone or "",
            "phone_display": phone_display(customer.phone or ""), "zip": customer.zip, "address": customer.address,
            "vip": customer.vip, "caution": customer.caution, "sms_opt_out": customer.sms_opt_out,
            "memo": customer.memo, "url": f"/customers/{customer.id}"}


class ScreenPop:
    def __init__(self, bus: Bus, customers: CustomerService, catalogues: Catalogues) -> None:
        self.bus = bus
        self.customers = customers
        self.catalogues = catalogues
        self.sections: dict[str, Section] = {}
        self.clients: set[Client] = set()
        self._consumer = BusConsumer(bus, *TOPICS, handle=self.dispatch, name="panel-screenpop")
        self._event_id = 0

    # ---- plug-in sections --------------------------------------------------------------------------------
    def add_section(self, name: str, fn: Section) -> None:
        """`fn(customer_or_None, digits) -> list` of JSON-able items, shown under the pop; same name replaces."""
        self.sections[name] = fn

    # ---- lifecycle ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()
        for client in list(self.clients):
            client.offer(None)  # ends each open stream so shutdown does not wait on them

    def connect(self, user: Any, *, watch_all: bool = False) -> Client:
        client = Client(user.id, user.extension, user.language,
                        watch_all and ROLE_RANK.get(user.role, 0) >= ROLE_RANK["supervisor"])
        self.clients.add(client)
        return client

    def disconnect(self, client: Client) -> None:
        self.clients.discard(client)

    # ---- fan-out ------------------------------------------------------------------------------------------
    async def dispatch(self, event: BusEvent) -> None:
        payload = event.payload
        linkedid = str(payload.get("linkedid") or "")
        if event.topic == "call.ringing":
            extension = str(payload.get("extension") or "")
            targets = [c for c in self.clients if c.watch_all or (extension and c.extension == extension)]
            if not targets:
                return  # nobody is looking: skip the lookups
            try:
                pop = await asyncio.wait_for(self.enrich(payload), ENRICH_TIMEOUT)
            except Exception:
                log.exception("screen-pop: enrichment failed; sending the bare call")
                pop = self.bare(payload)
            for client in targets:
                if linkedid:
                    client.linkedids.add(linkedid)
                client.offer(("ringing", self.localize(pop, client.language)))
            return
        name = event.topic.split(".", 1)[1]
        if event.topic.startswith("callback."):
            for client in self.clients:
                client.offer((f"callback.{name}", payload))
            return
        extensions = {str(payload.get(k)) for k in ("extension", "from_extension", "to_extension") if payload.get(k)}
        for client in self.clients:
            if client.watch_all or linkedid in client.linkedids or (client.extension in extensions):
                client.offer((name, payload))
                if name == "transferred" and payload.get("to_extension") == client.extension and linkedid:
                    client.linkedids.add(linkedid)
                if name == "ended":
                    client.linkedids.discard(linkedid)

    def bare(self, payload: dict[str, Any]) -> dict[str, Any]:
        raw = str(payload.get("caller_number") or "")
        try:
            digits = normalize(raw)
        except PhoneNumberError:
            digits = ""
        choice = str(payload.get("ivr_choice") or "")
        new_fields = {"mobile" if is_mobile(digits) else "phone": digits} if digits else {}
        if payload.get("caller_name"):
            new_fields["name"] = str(payload["caller_name"])
        return {
            "linkedid": payload.get("linkedid"), "uniqueid": payload.get("uniqueid"),
            "number": digits or raw, "number_display": phone_display(digits) if digits else raw,
            "caller_name": payload.get("caller_name") or "", "extension": payload.get("extension"),
            "queue": payload.get("queue"), "direction": payload.get("direction") or "in",
            "ivr_choice": choice if choice in IVR_CHOICES else None,
            "customer": None, "other_matches": 0, "recent_calls": [], "sections": {},
            "new_customer_url": "/customers/new?" + urlencode(new_fields),
            **action_links(digits, str(payload.get("linkedid") or ""), None),
            "pushed_at": time.time(),
        }

    async def enrich(self, payload: dict[str, Any]) -> dict[str, Any]:
        pop = self.bare(payload)
        digits = pop["number"] if str(pop["number"]).isdigit() else ""
        customer: Customer | None = None
        if digits:
            matches = await self.customers.find_by_number(digits)
            if matches:
                customer = matches[0]
                pop["customer"] = _customer_dict(customer)
                pop["other_matches"] = len(matches) - 1
                pop.update(action_links(digits, str(payload.get("linkedid") or ""), customer))
            numbers = [digits] + ([customer.mobile, customer.phone] if customer else [])
            calls = await self.customers.recent_calls(customer_id=customer.id if customer else None,
                                                      numbers=[n for n in numbers if n], limit=5)
            pop["recent_calls"] = [{"started_at": local_time(c.started_at), "direction": c.direction,
                                    "agent_extension": c.agent_extension or "", "billsec": c.billsec,
                                    "disposition": c.disposition} for c in calls
                                   if c.linkedid != payload.get("linkedid")]
        for name, fn in list(self.sections.items()):
            try:
                pop["sections"][name] = await fn(customer, digits)
            except Exception:  # a plug-in failing must not cost the agent the pop
                log.exception("screen-pop section %s failed", name)
        pop["pushed_at"] = time.time()
        return pop

    def localize(self, pop: dict[str, Any], language: str) -> dict[str, Any]:
        t = self.catalogues.get(language).t
        out = dict(pop)
        out["ivr_label"] = t(f"ivr.choice.{pop['ivr_choice']}") if pop.get("ivr_choice") else ""
        return out

    def next_id(self) -> int:
        self._event_id += 1
        return self._event_id


def default_sections(pop: ScreenPop, db: Any) -> None:
    """Open tickets and recent orders of the caller, when those features are installed."""
    try:
        from ..crm.tickets import TicketService
        from ..store.models.tickets import OPEN_STATUSES
    except ImportError:  # pragma: no cover - tickets not installed
        TicketService = None  # noqa: N806
    if TicketService is not None:
        tickets = TicketService(db)

        async def open_tickets(customer: Customer | None, number: str) -> list[Any]:
            if customer is None:
                return []
            rows = await tickets.list(tab="customer", customer_id=customer.id, limit=20)
            return [{"id": t.id, "number": t.number, "title": t.title, "status": t.status,
                     "created_at": local_time(t.created_at)} for t in rows if t.status in OPEN_STATUSES][:5]

        pop.add_section("tickets", open_tickets)
    try:
        from ..crm.orders import OrderService
    except ImportError:  # pragma: no cover - orders not installed
        OrderService = None  # noqa: N806
    if OrderService is not None:
        orders = OrderService(db)

        async def recent_orders(customer: Customer | None, number: str) -> list[Any]:
            if customer is None:
                return []
            views = await orders.search(period="all", customer_id=customer.id, limit=5)
            return [{"id": v.order.id, "order_no": v.order.order_no, "order_date": str(v.order.order_date),
                     "status": v.order.status, "source": v.source,
                     "products": ", ".join(line.product_name for line in v.lines)} for v in views]

        pop.add_section("orders", recent_orders)


def _sse(event: str, data: dict[str, Any], event_id: int) -> bytes:
    body = json.dumps(data, ensure_ascii=False, default=str)
    return f"id: {event_id}\nevent: {event}\ndata: {body}\n\n".encode()


@routes.get("/api/events", role="agent", summary="Server-sent events: screen-pops and live call state",
            params=(Param("all", description="supervisors: 1 = every call, not only my extension"),),
            responses={200: "text/event-stream: ringing, answered, transferred, ended, callback.* events"})
async def events(request: web.Request) -> web.StreamResponse:
    app = request.app
    hub = app[keys.SCREENPOP]
    heartbeat = float(app[keys.SETTINGS]["heartbeat"])
    user = request[keys.USER]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    client = hub.connect(user, watch_all=request.query.get("all") == "1")
    try:
        await response.write(b"retry: 3000\n: connected\n\n")
        while True:
            try:
                item = await asyncio.wait_for(client.queue.get(), heartbeat)
            except TimeoutError:
                await response.write(b": heartbeat\n\n")
                # Re-read the account: deactivated users lose their stream, a changed extension applies.
                fresh = await app[keys.ACCOUNTS].get(user.id)
                if fresh is None or not fresh.active:
                    break
                client.extension, client.language = fresh.extension, fresh.language
                continue
            if item is None:
                break
            await response.write(_sse(item[0], item[1], hub.next_id()))
    except (ConnectionResetError, ConnectionError):
        pass  # the browser went away
    finally:
        hub.disconnect(client)
    return response
