"""Business hours admin page and API: the weekly schedule (per-weekday overrides of `[hours]`) and holidays.

Admins only: these decide whether callers reach an agent or the after-hours callback menu.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web

from ..crm.business_hours import WEEKDAYS, BusinessHours, BusinessHoursError, DaySchedule
from . import keys
from .auth import client_ip
from .render import json_response
from .routing import PanelRoutes, Param

routes = PanelRoutes("hours")


def service(app: web.Application) -> BusinessHours:
    services = app[keys.SERVICES]
    if services.hours is None:  # the daemon builds it; a bare panel (tests) gets its own
        services.hours = BusinessHours(services.db, services.config.hours)
    return services.hours


def day_json(day: DaySchedule) -> dict[str, Any]:
    return {"weekday": day.name, "open": day.open.strftime("%H:%M") if day.open else None,
            "close": day.close.strftime("%H:%M") if day.close else None, "closed": day.closed,
            "overnight": day.overnight, "source": day.source}


async def _audit(request: web.Request, action: str, target: str, detail: str = "") -> None:
    await request.app[keys.ACCOUNTS].audit(request[keys.USER].id, action, target, detail, ip=client_ip(request))


async def _page(request: web.Request, *, error: str = "", status: int = 200) -> web.Response:
    hours = service(request.app)
    return request.app[keys.RENDERER].render(request, "hours/hours.html", status=status, error=error,
                                             days=await hours.get_schedule(), holidays=await hours.list_holidays())


async def _set_day(request: web.Request, data: Any) -> DaySchedule:
    hours = service(request.app)
    weekday = str(data.get("weekday") or "")
    if data.get("reset") in ("1", True, "true", "on"):
        await hours.reset_day(weekday)
        return (await hours.get_schedule())[WEEKDAYS.index(weekday[:3].lower())]
    closed = data.get("closed") in ("1", True, "true", "on")
    return await hours.set_day(weekday, None if closed else str(data.get("open") or ""),
                               None if closed else str(data.get("close") or ""), closed=closed)


def _day(raw: Any) -> date:
    try:
        return date.fromisoformat(str(raw or "").strip())
    except ValueError:
        raise BusinessHoursError(f"날짜 형식이 올바르지 않습니다 (YYYY-MM-DD): {raw}") from None


@routes.get("/admin/hours", role="admin")
async def page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


@routes.post("/admin/hours/day", role="admin")
async def day_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        day = await _set_day(request, form)
    except BusinessHoursError as exc:
        return await _page(request, error=str(exc), status=422)
    await _audit(request, "hours.set_day", f"weekday:{day.name}", day.label() or "closed")
    raise web.HTTPFound("/admin/hours")


@routes.post("/admin/hours/holidays", role="admin")
async def holiday_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    hours = service(request.app)
    try:
        day = _day(form.get("date"))
        if form.get("op") == "delete":
            await hours.remove_holiday(day)
            await _audit(request, "hours.remove_holiday", f"date:{day}")
        else:
            await hours.add_holiday(day, str(form.get("name") or ""))
            await _audit(request, "hours.add_holiday", f"date:{day}")
    except BusinessHoursError as exc:
        return await _page(request, error=str(exc), status=422)
    raise web.HTTPFound("/admin/hours")


@routes.get("/api/hours", role="agent", summary="The weekly schedule and holidays",
            responses={200: '{"days": [...], "holidays": [...]}'})
async def api_get(request: web.Request) -> web.StreamResponse:
    hours = service(request.app)
    return json_response({"days": [day_json(d) for d in await hours.get_schedule()],
                          "holidays": [{"date": h.date.isoformat(), "name": h.name, "source": h.source}
                                       for h in await hours.list_holidays()]})


@routes.put(r"/api/hours/{weekday:(mon|tue|wed|thu|fri|sat|sun)}", role="admin",
            summary="Set one weekday's hours (close before open = overnight), closed, or reset to the config",
            params=(Param("weekday", "path", required=True),),
            body={"type": "object", "properties": {"open": {"type": "string", "pattern": r"^\d{2}:\d{2}$"},
                                                   "close": {"type": "string"}, "closed": {"type": "boolean"},
                                                   "reset": {"type": "boolean"}}},
            responses={200: '{"day": {...}}', 422: "bad time"})
async def api_set_day(request: web.Request) -> web.StreamResponse:
    try:
        data = await request.json()
        if not isinstance(data, dict):
            raise BusinessHoursError("body must be a JSON object")
        day = await _set_day(request, {**data, "weekday": request.match_info["weekday"]})
    except (BusinessHoursError, ValueError) as exc:
        return json_response({"error": str(exc), "code": "BusinessHoursError"}, 422)
    await _audit(request, "hours.set_day", f"weekday:{day.name}", day.label() or "closed")
    return json_response({"day": day_json(day)})


@routes.post("/api/hours/holidays", role="admin", summary="Add a holiday",
             body={"type": "object", "properties": {"date": {"type": "string", "format": "date"},
                                                    "name": {"type": "string"}}, "required": ["date"]},
             responses={201: '{"ok": true}', 422: "bad or duplicate date"})
async def api_add_holiday(request: web.Request) -> web.StreamResponse:
    try:
        data = await request.json()
        if not isinstance(data, dict):
            raise BusinessHoursError("body must be a JSON object")
        day = _day(data.get("date"))
        await service(request.app).add_holiday(day, str(data.get("name") or ""))
    except (BusinessHoursError, ValueError) as exc:
        return json_response({"error": str(exc), "code": "BusinessHoursError"}, 422)
    await _audit(request, "hours.add_holiday", f"date:{day}")
    return json_response({"ok": True}, 201)


@routes.delete(r"/api/hours/holidays/{date:[0-9-]+}", role="admin", summary="Remove a holiday",
               params=(Param("date", "path", required=True),),
               responses={200: '{"ok": true}', 404: "not a holiday", 422: "set in the configuration file"})
async def api_remove_holiday(request: web.Request) -> web.StreamResponse:
    try:
        day = _day(request.match_info["date"])
        removed = await service(request.app).remove_holiday(day)
    except BusinessHoursError as exc:
        return json_response({"error": str(exc), "code": "BusinessHoursError"}, 422)
    if not removed:
        return json_response({"error": f"{day} is not a holiday", "code": "NotFound"}, 404)
    await _audit(request, "hours.remove_holiday", f"date:{day}")
    return json_response({"ok": True})
