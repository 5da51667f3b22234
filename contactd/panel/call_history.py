"""Call and recording history pages (seed 003 §7 통화내역, §8 녹취내역) and the recording file handler.

Who sees what: supervisors and admins search every call; an agent sees only the calls of their own extension
(the agent filter is forced on the server, whatever the query says) — the same rule RecordingService applies
to the recording files, so a row an agent can see is a recording they may play.

Recordings play in place (`<audio preload=none>`) from `/api/recordings/{call_id}`, served with HTTP Range
support (aiohttp's FileResponse answers 206 Partial Content), and download one at a time with `?download=1`.
The file path always comes from the call row, never from the client.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from ..crm.call_history import MAX_DAYS_BACK, CallHistoryError, CallHistoryService, CallPage
from ..crm.recordings import RecordingForbidden, RecordingNotFound
from ..store.models import User
from . import keys
from .auth import client_ip
from .render import error_text, json_error, json_response, local_time
from .routing import ROLE_RANK, PanelRoutes, Param

log = logging.getLogger(__name__)
routes = PanelRoutes("history")

SEARCH_PARAMS = (Param("start", description="YYYY-MM-DD (Korea time), at most a year back"),
                 Param("end", description="YYYY-MM-DD, included"),
                 Param("q", description="customer name, or (part of) a number"),
                 Param("agent", description="agent extension (supervisors; agents always see their own)"),
                 Param("exclude_internal", description="1 = leave out internal calls"),
                 Param("recorded", description="1 = only calls with a playable recording"),
                 Param("page", type="integer"), Param("per_page", type="integer"))


def sees_all(user: User) -> bool:
    return ROLE_RANK.get(user.role, 0) >= ROLE_RANK["supervisor"]


def _date(raw: str) -> date | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise CallHistoryError("history.err.bad_date", f"날짜 형식이 올바르지 않습니다: {raw}", value=raw) from None


def _int(raw: str, default: int) -> int:
    return int(raw) if raw.isdigit() else default


def search_args(request: web.Request) -> dict[str, Any]:
    query = request.query
    user: User = request[keys.USER]
    agent = query.get("agent", "").strip() or None
    if not sees_all(user):
        agent = user.extension or "-"  # no extension: nothing of anyone else's
    return {"start": _date(query.get("start", "")), "end": _date(query.get("end", "")), "query": query.get("q", ""),
            "agent_extension": agent, "exclude_internal": query.get("exclude_internal") == "1",
            "recorded_only": query.get("recorded") == "1", "page": _int(query.get("page", ""), 1),
            "per_page": _int(query.get("per_page", ""), 50)}


def call_json(row: Any) -> dict[str, Any]:
    call = row.call
    return {"id": call.id, "linkedid": call.linkedid, "direction": call.direction, "from_number": call.from_number,
            "from_name": call.from_name, "to_number": call.to_number, "agent_extension": call.agent_extension,
            "customer_id": call.customer_id, "customer_name": row.customer_name,
            "started_at": call.started_at.isoformat(), "answered_at": call.answered_at.isoformat()
            if call.answered_at else None, "billsec": call.billsec, "disposition": call.disposition,
            "harassment_kind": call.harassment_kind, "recording_status": call.recording_status,
            "recording_seconds": call.recording_seconds,
            "recording_url": f"/api/recordings/{call.id}" if call.recording_status == "ready" else None}


@routes.get("/history", role="agent")
async def history_page(request: web.Request) -> web.StreamResponse:
    app = request.app
    user: User = request[keys.USER]
    service: CallHistoryService = app[keys.CALL_HISTORY]
    error, status = "", 200
    try:
        args = search_args(request)
        page = await service.search(**args)
    except CallHistoryError as exc:
        error, status = error_text(request, exc), 422
        args = {"start": None, "end": None, "query": request.query.get("q", ""), "agent_extension": None,
                "exclude_internal": False, "recorded_only": False, "page": 1, "per_page": 50}
        page = CallPage([], 0, 1, 50)
    today = service.today()
    extensions = [e.number for e in await app[keys.ACCOUNTS].list_extensions()] if sees_all(user) else []
    base_query = {k: v for k, v in request.query.items() if k != "page"}
    return app[keys.RENDERER].render(
        request, "history/calls.html", status=status, error=error, page=page, rows=page.rows,
        start=(args["start"] or today).isoformat(), end=(args["end"] or args["start"] or today).isoformat(),
        earliest=service.earliest().isoformat(), today=today.isoformat(), q=args["query"],
        agent=request.query.get("agent", ""), extensions=extensions, sees_all=sees_all(user),
        exclude_internal=args["exclude_internal"], recorded=args["recorded_only"], local_time=local_time,
        page_url=lambda n: "/history?" + urlencode({**base_query, "page": n}), max_days=MAX_DAYS_BACK)


@routes.get("/api/call-history", role="agent",
            summary="Search calls (≤ 1 year back); agents get their own calls only", params=SEARCH_PARAMS,
            responses={200: '{"calls": [...], "total", "page", "pages"}', 422: "bad period"})
async def api_search(request: web.Request) -> web.StreamResponse:
    try:
        page = await request.app[keys.CALL_HISTORY].search(**search_args(request))
    except CallHistoryError as exc:
        return json_response({"error": error_text(request, exc), "code": exc.key}, 422)
    return json_response({"calls": [call_json(r) for r in page.rows], "total": page.total, "page": page.page,
                          "pages": page.pages})


@routes.get(r"/api/recordings/{id:\d+}", role="agent",
            summary="A call's recording (audio/wav). Range requests answer 206; ?download=1 saves it as a file",
            params=(Param("id", "path", "integer", True, "call id"),
                    Param("download", description="1 = Content-Disposition: attachment")),
            responses={200: "audio/wav", 206: "the requested byte range", 403: "not your call",
                       404: "no playable recording", 503: "recordings not running"})
async def recording(request: web.Request) -> web.StreamResponse:
    services = request.app[keys.SERVICES]
    user: User = request[keys.USER]
    call_id = int(request.match_info["id"])
    if services.recordings is None:
        return json_error(request, 503, "history.err.recordings_off")
    try:
        path = await services.recordings.path_for_call(call_id, user)
    except RecordingForbidden:
        log.info("recording of call %s refused to user %s", call_id, user.id)
        return json_error(request, 403, "auth.err.forbidden")
    except RecordingNotFound:
        return json_error(request, 404, "history.err.no_recording")
    download = request.query.get("download") == "1"
    headers = {"Content-Type": "audio/wav", "Cache-Control": "private, no-store"}
    if download:
        headers["Content-Disposition"] = f'attachment; filename="call-{call_id}.wav"'
        await request.app[keys.ACCOUNTS].audit(user.id, "recording.download", f"call:{call_id}",
                                               ip=client_ip(request))
    return web.FileResponse(path, headers=headers)


def setup(app: web.Application) -> None:
    if keys.CALL_HISTORY not in app:
        app[keys.CALL_HISTORY] = CallHistoryService(app[keys.SERVICES].db)
