"""The agent's inbox (seed 004 담당자관련이력, 003 §19-21): per-agent tabs with counts — today's calls, received
and sent transfers, my open tickets, callbacks — plus temp-saved, unfinished and recall lists.

Counts are pushed where cheap: one bus subscription per process (`ticket.*`, `callback.*`, `call.ended`) tells
every open inbox "something changed" over SSE, and the page re-reads its own counts (one aggregate query).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..bus import Bus, BusConsumer, BusEvent
from ..crm.call_history import CallHistoryService
from ..crm.callbacks import CallbackError, CallbackService
from ..crm.tickets import TicketNotFound, is_overdue
from ..store.models import User, utcnow
from . import keys
from .render import json_response
from .routing import PanelRoutes, Param
from .tickets import TICKETS

log = logging.getLogger(__name__)
routes = PanelRoutes("inbox")

TABS = ("calls", "received", "sent", "mine", "callbacks", "temp", "unfinished", "recall")
TICKET_TABS = {"received": "received_transfers", "sent": "sent_transfers", "mine": "my_open", "temp": "temp",
               "unfinished": "unfinished", "recall": "recall"}
COUNT_OF = {"calls": "todays_calls", "received": "received_transfers", "sent": "sent_transfers",
            "mine": "my_open_tickets", "callbacks": "callbacks"}
TOPICS = ("ticket.*", "callback.*", "call.ended")
CLIENT_QUEUE = 20


@dataclass(eq=False)
class InboxClient:
    user_id: int
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))

    def offer(self, item: str | None) -> None:
        # A stalled tab only needs to know that something changed: drop instead of waiting.
        if item is not None and self.queue.full():
            return
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(item)


class InboxHub:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.clients: set[InboxClient] = set()
        self._consumer = BusConsumer(bus, *TOPICS, handle=self._fan_out, name="panel-inbox")

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()
        for client in list(self.clients):
            client.offer(None)

    async def _fan_out(self, event: BusEvent) -> None:
        for client in list(self.clients):
            client.offer(event.topic)

    def connect(self, user: User) -> InboxClient:
        client = InboxClient(user.id)
        self.clients.add(client)
        return client

    def disconnect(self, client: InboxClient) -> None:
        self.clients.discard(client)


def callbacks_service(app: web.Application) -> CallbackService:
    services = app[keys.SERVICES]
    if services.callbacks is None:  # the daemon builds it; a bare panel (tests) gets its own
        services.callbacks = CallbackService(services.db, services.bus)
    return services.callbacks


async def _calls_today(request: web.Request, user: User) -> list[Any]:
    if not user.extension:
        return []
    history: CallHistoryService = request.app[keys.CALL_HISTORY]
    page = await history.search(agent_extension=user.extension, per_page=200)
    return page.rows


@routes.get("/inbox", role="agent")
async def inbox_page(request: web.Request) -> web.StreamResponse:
    app = request.app
    user: User = request[keys.USER]
    tab = request.query.get("tab", "received")
    if tab not in TABS:
        tab = "received"
    counts = (await app[TICKETS].inbox_counts(user)).as_dict()
    context: dict[str, Any] = {"calls": [], "tickets": [], "callbacks": []}
    if tab == "calls":
        context["calls"] = await _calls_today(request, user)
    elif tab == "callbacks":
        context["callbacks"] = await callbacks_service(app).list(done=False, limit=500)
    else:
        context["tickets"] = await app[TICKETS].list(tab=TICKET_TABS[tab], user=user, limit=500)
    users = await app[keys.ACCOUNTS].list_users()
    return app[keys.RENDERER].render(request, "inbox/inbox.html", tab=tab, tabs=TABS, counts=counts,
                                     count_of=COUNT_OF, now=utcnow(), is_overdue=is_overdue,
                                     names={u.id: u.display_name or u.username for u in users}, **context)


@routes.post(r"/inbox/recall/{id:\d+}/done", role="agent")
async def recall_done(request: web.Request) -> web.StreamResponse:
    try:
        await request.app[TICKETS].mark_recall_done(request[keys.USER], int(request.match_info["id"]))
    except TicketNotFound:
        raise web.HTTPNotFound() from None
    raise web.HTTPFound("/inbox?tab=recall")


@routes.post(r"/inbox/callbacks/{id:\d+}/done", role="agent")
async def callback_done(request: web.Request) -> web.StreamResponse:
    try:
        await callbacks_service(request.app).mark_done(int(request.match_info["id"]), request[keys.USER].id)
    except CallbackError:
        raise web.HTTPNotFound() from None
    raise web.HTTPFound("/inbox?tab=callbacks")


def _customer_target(data: Any) -> int | str:
    raw_id = str(data.get("customer_id") or "")
    if raw_id.isdigit():
        return int(raw_id)
    number = str(data.get("number") or "")
    if not number:
        raise CallbackError("고객이나 번호가 필요합니다 (customer_id or number required)")
    return number


@routes.post("/inbox/callbacks/done-for-customer", role="agent")
async def callbacks_done_for_customer(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        await callbacks_service(request.app).mark_done_for_customer(_customer_target(form), request[keys.USER].id)
    except CallbackError as exc:
        return request.app[keys.RENDERER].render(request, "error.html", status=422, message=str(exc))
    target = str(form.get("next") or "")
    raise web.HTTPFound(target if target.startswith("/") and not target.startswith("//") else "/inbox?tab=callbacks")


# ---- JSON API -------------------------------------------------------------------------------------------------
@routes.get("/api/inbox/counts", role="agent", summary="My inbox tab counts",
            responses={200: '{"todays_calls", "received_transfers", "sent_transfers", "my_open_tickets", '
                            '"callbacks"}'})
async def api_counts(request: web.Request) -> web.StreamResponse:
    counts = await request.app[TICKETS].inbox_counts(request[keys.USER])
    return json_response(counts.as_dict())


@routes.get("/api/inbox/events", role="agent",
            summary="Server-sent events: `changed` whenever a ticket, callback or call changes (re-read the counts)",
            responses={200: "text/event-stream"})
async def api_events(request: web.Request) -> web.StreamResponse:
    app = request.app
    hub: InboxHub = app[keys.INBOX_HUB]
    heartbeat = float(app[keys.SETTINGS]["heartbeat"])
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    client = hub.connect(request[keys.USER])
    try:
        await response.write(b"retry: 3000\n: connected\n\n")
        while True:
            try:
                topic = await asyncio.wait_for(client.queue.get(), heartbeat)
            except TimeoutError:
                await response.write(b": heartbeat\n\n")
                continue
            if topic is None:
                break
            await response.write(f"event: changed\ndata: {topic}\n\n".encode())
    except (ConnectionResetError, ConnectionError):
        pass  # the browser went away
    finally:
        hub.disconnect(client)
    return response


@routes.get("/api/callbacks", role="agent", summary="Open callback requests, newest first",
            params=(Param("customer_id", type="integer"), Param("limit", type="integer")),
            responses={200: '{"callbacks": [...]}'})
async def api_callbacks(request: web.Request) -> web.StreamResponse:
    from ..crm.callbacks import callback_payload

    raw = request.query.get("customer_id", "")
    raw_limit = request.query.get("limit", "")
    rows = await callbacks_service(request.app).list(done=False, customer_id=int(raw) if raw.isdigit() else None,
                                                     limit=int(raw_limit) if raw_limit.isdigit() else 500)
    return json_response({"callbacks": [callback_payload(cb) for cb in rows]})


@routes.post(r"/api/callbacks/{id:\d+}/done", role="agent", summary="Mark one callback done",
             params=(Param("id", "path", "integer", True),), responses={200: '{"ok": true}', 404: "no such callback"})
async def api_callback_done(request: web.Request) -> web.StreamResponse:
    try:
        await callbacks_service(request.app).mark_done(int(request.match_info["id"]), request[keys.USER].id)
    except CallbackError as exc:
        return json_response({"error": str(exc), "code": "CallbackError"}, 404)
    return json_response({"ok": True})


@routes.post("/api/callbacks/done-for-customer", role="agent",
             summary="콜백완료: close every open callback of a customer (or of a number)",
             body={"type": "object", "properties": {"customer_id": {"type": "integer"}, "number": {"type": "string"}}},
             responses={200: '{"closed": n}', 422: "neither customer_id nor a valid number"})
async def api_callbacks_done_for_customer(request: web.Request) -> web.StreamResponse:
    try:
        data = await request.json()
        if not isinstance(data, dict):
            raise ValueError("body must be an object")
        closed = await callbacks_service(request.app).mark_done_for_customer(_customer_target(data),
                                                                             request[keys.USER].id)
    except (CallbackError, ValueError) as exc:
        return json_response({"error": str(exc), "code": "CallbackError"}, 422)
    return json_response({"closed": closed})


def setup(app: web.Application) -> None:
    services = app[keys.SERVICES]
    if keys.CALL_HISTORY not in app:
        app[keys.CALL_HISTORY] = CallHistoryService(services.db)
    hub = InboxHub(services.bus)
    app[keys.INBOX_HUB] = hub

    async def start(_: web.Application) -> None:
        await hub.start()

    async def stop(_: web.Application) -> None:
        await hub.stop()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
