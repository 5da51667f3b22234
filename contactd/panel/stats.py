"""Statistics pages (seed 003 §11-14), supervisor+: daily (hourly buckets, ← today →, click a bar for that hour's
calls), monthly (daily buckets, a bar opens that day), per agent and per consultation type over ≤ 1 year. Each
page shows an inline-SVG chart and a table, prints on one A4 landscape page, and exports the Excel workbook with a
native chart (export permission). The JSON routes return the same numbers the charts are drawn from.

Handlers call crm.stats / crm.excel_export; they never build SQL.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import date, timedelta
from typing import Any

from aiohttp import web

from ..crm.excel_export import agent_workbook, call_report_workbook, type_workbook
from ..crm.stats import AgentRow, Report, StatsError, StatsService, TypeRow
from ..store.models import utcnow
from . import keys
from .auth import client_ip
from .charts import Series, bar_chart
from .render import SEOUL, catalogue_for, json_response, local_time
from .routing import PanelRoutes, Param

routes = PanelRoutes("stats")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MEASURES = ("inbound", "answered", "missed", "abandoned", "outbound")
PERIOD_PARAMS = (Param("start", description="YYYY-MM-DD"), Param("end", description="YYYY-MM-DD, ≤ 1 year after start"))


def _today() -> date:
    return utcnow().astimezone(SEOUL).date()


def _day(raw: Any, default: date) -> date:
    text = str(raw or "").strip()
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise StatsError(f"날짜 형식이 올바르지 않습니다 (YYYY-MM-DD): {text}") from None


def _month(raw: Any) -> tuple[int, int]:
    text = str(raw or "").strip()
    if not text:
        today = _today()
        return today.year, today.month
    try:
        year, month = (int(part) for part in text.split("-")[:2])
        date(year, month, 1)
    except ValueError:
        raise StatsError(f"월 형식이 올바르지 않습니다 (YYYY-MM): {text}") from None
    return year, month


def _period(query: Any) -> tuple[date, date]:
    end = _day(query.get("end"), _today())
    return _day(query.get("start"), end - timedelta(days=29)), end


def _shift_month(year: int, month: int, delta: int) -> str:
    index = year * 12 + month - 1 + delta
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def report_json(report: Report) -> dict[str, Any]:
    return {"title": report.title, "start": report.start.isoformat(), "end": report.end.isoformat(),
            "buckets": [asdict(b) for b in report.buckets], "totals": asdict(report.totals)}


def _series(request: web.Request, report: Report) -> list[Series]:
    t = catalogue_for(request).t
    return [Series(t(f"stats.m.{name}"), [getattr(b, name) for b in report.buckets], f"s{i + 1}")
            for i, name in enumerate(MEASURES)]


def _xlsx(body: bytes, name: str) -> web.Response:
    return web.Response(body=body, content_type=XLSX, headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def _audit(request: web.Request, what: str) -> None:
    await request.app[keys.ACCOUNTS].audit(request[keys.USER].id, "stats.export", what, ip=client_ip(request))


def _render(request: web.Request, template: str, *, error: str = "", status: int = 200, **context: Any
            ) -> web.Response:
    return request.app[keys.RENDERER].render(request, template, status=422 if error else status, error=error,
                                             can_export=bool(request[keys.USER].can_export
                                                             or request[keys.USER].role == "admin"),
                                             query=request.query_string, **context)


async def _agent_names(request: web.Request) -> dict[str, str]:
    return {u.extension: u.display_name or u.username for u in await request.app[keys.ACCOUNTS].list_users()
            if u.extension}


# ---- pages ------------------------------------------------------------------------------------------------------------
@routes.get("/stats", role="supervisor")
async def index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/stats/daily")


@routes.get("/stats/daily", role="supervisor")
async def daily_page(request: web.Request) -> web.StreamResponse:
    stats: StatsService = request.app[keys.STATS]
    t = catalogue_for(request).t
    try:
        day = _day(request.query.get("day"), _today())
    except StatsError as exc:
        return _render(request, "stats/error.html", error=str(exc), tab="daily")
    report = await stats.daily(day)
    hour_raw = request.query.get("hour", "")
    hour = int(hour_raw) if hour_raw.isdigit() and int(hour_raw) < 24 else None
    calls = await stats.bucket_calls(day, hour) if hour is not None else []
    chart = bar_chart([str(b.key) for b in report.buckets], _series(request, report),
                      title=t("stats.daily.title", day=day.isoformat()),
                      link=lambda i: f"/stats/daily?day={day.isoformat()}&hour={i}#calls")
    return _render(request, "stats/report.html", tab="daily", report=report, chart=chart, day=day, hour=hour,
                   calls=calls, local_time=local_time, bucket_label=t("stats.hour"),
                   title=t("stats.daily.title", day=day.isoformat()),
                   prev=f"/stats/daily?day={day - timedelta(days=1)}", next=f"/stats/daily?day={day + timedelta(days=1)}",
                   current="/stats/daily", current_label=t("stats.today"),
                   export=f"/stats/daily.xlsx?day={day.isoformat()}", bucket_href=None)


@routes.get("/stats/monthly", role="supervisor")
async def monthly_page(request: web.Request) -> web.StreamResponse:
    t = catalogue_for(request).t
    try:
        year, month = _month(request.query.get("month"))
    except StatsError as exc:
        return _render(request, "stats/error.html", error=str(exc), tab="monthly")
    report = await request.app[keys.STATS].monthly(year, month)
    label = f"{year:04d}-{month:02d}"
    chart = bar_chart([str(b.key) for b in report.buckets], _series(request, report),
                      title=t("stats.monthly.title", month=label),
                      link=lambda i: f"/stats/daily?day={date(year, month, i + 1).isoformat()}")
    return _render(request, "stats/report.html", tab="monthly", report=report, chart=chart, day=None, hour=None,
                   calls=[], local_time=local_time, bucket_label=t("stats.day"),
                   title=t("stats.monthly.title", month=label),
                   prev=f"/stats/monthly?month={_shift_month(year, month, -1)}",
                   next=f"/stats/monthly?month={_shift_month(year, month, 1)}",
                   current="/stats/monthly", current_label=t("stats.this_month"),
                   export=f"/stats/monthly.xlsx?month={label}",
                   bucket_href=lambda key: f"/stats/daily?day={date(year, month, key).isoformat()}")


@routes.get("/stats/agents", role="supervisor")
async def agents_page(request: web.Request) -> web.StreamResponse:
    t = catalogue_for(request).t
    rows: list[AgentRow] = []
    start = end = _today()
    error = ""
    try:
        start, end = _period(request.query)
        rows = await request.app[keys.STATS].per_agent(start, end)
    except StatsError as exc:
        error = str(exc)
    names = await _agent_names(request)
    chart = bar_chart([f"{r.extension} {names.get(r.extension, '')}".strip() for r in rows],
                      [Series(t("stats.m.answered"), [r.answered for r in rows], "s2"),
                       Series(t("stats.m.outbound"), [r.outbound for r in rows], "s5")],
                      title=t("stats.agents.title"))
    return _render(request, "stats/agents.html", error=error, tab="agents", rows=rows, names=names, chart=chart,
                   start=start, end=end, title=t("stats.agents.title"),
                   export=f"/stats/agents.xlsx?start={start}&end={end}")


@routes.get("/stats/types", role="supervisor")
async def types_page(request: web.Request) -> web.StreamResponse:
    t = catalogue_for(request).t
    rows: list[TypeRow] = []
    start = end = _today()
    error = ""
    try:
        start, end = _period(request.query)
        rows = await request.app[keys.STATS].per_type(start, end)
    except StatsError as exc:
        error = str(exc)
    chart = bar_chart([" > ".join(p for p in (r.level1, r.level2, r.level3) if p) for r in rows],
                      [Series(t("stats.count"), [r.count for r in rows], "s1")], title=t("stats.types.title"))
    return _render(request, "stats/types.html", error=error, tab="types", rows=rows, chart=chart, start=start,
                   end=end, title=t("stats.types.title"), export=f"/stats/types.xlsx?start={start}&end={end}")


# ---- Excel (export permission) ----------------------------------------------------------------------------------------
def _xlsx_error(request: web.Request, exc: StatsError) -> web.Response:
    return request.app[keys.RENDERER].render(request, "error.html", status=422, message=str(exc))


@routes.get("/stats/daily.xlsx", role="supervisor", permission="export")
async def daily_xlsx(request: web.Request) -> web.StreamResponse:
    try:
        day = _day(request.query.get("day"), _today())
    except StatsError as exc:
        return _xlsx_error(request, exc)
    report = await request.app[keys.STATS].daily(day)
    body = await asyncio.to_thread(call_report_workbook, report, bucket_label="시간")
    await _audit(request, f"daily:{day}")
    return _xlsx(body, f"stats-daily-{day}.xlsx")


@routes.get("/stats/monthly.xlsx", role="supervisor", permission="export")
async def monthly_xlsx(request: web.Request) -> web.StreamResponse:
    try:
        year, month = _month(request.query.get("month"))
    except StatsError as exc:
        return _xlsx_error(request, exc)
    report = await request.app[keys.STATS].monthly(year, month)
    body = await asyncio.to_thread(call_report_workbook, report, bucket_label="일")
    await _audit(request, f"monthly:{year:04d}-{month:02d}")
    return _xlsx(body, f"stats-monthly-{year:04d}-{month:02d}.xlsx")


@routes.get("/stats/agents.xlsx", role="supervisor", permission="export")
async def agents_xlsx(request: web.Request) -> web.StreamResponse:
    try:
        start, end = _period(request.query)
        rows = await request.app[keys.STATS].per_agent(start, end)
    except StatsError as exc:
        return _xlsx_error(request, exc)
    body = await asyncio.to_thread(agent_workbook, rows, f"상담원 통계 {start} ~ {end}")
    await _audit(request, f"agents:{start}~{end}")
    return _xlsx(body, f"stats-agents-{start}-{end}.xlsx")


@routes.get("/stats/types.xlsx", role="supervisor", permission="export")
async def types_xlsx(request: web.Request) -> web.StreamResponse:
    try:
        start, end = _period(request.query)
        rows = await request.app[keys.STATS].per_type(start, end)
    except StatsError as exc:
        return _xlsx_error(request, exc)
    body = await asyncio.to_thread(type_workbook, rows, f"상담 유형별 통계 {start} ~ {end}")
    await _audit(request, f"types:{start}~{end}")
    return _xlsx(body, f"stats-types-{start}-{end}.xlsx")


# ---- JSON -------------------------------------------------------------------------------------------------------------
def _api_error(exc: StatsError) -> web.Response:
    return json_response({"error": str(exc), "code": "StatsError"}, 422)


@routes.get("/api/stats/daily", role="supervisor", summary="One day's calls in hourly buckets (Korea time)",
            params=(Param("day", description="YYYY-MM-DD, default today"),),
            responses={200: "title, start, end, buckets[key=hour, inbound, answered, missed, abandoned, outbound, "
                            "avg_wait, avg_talk], totals", 422: "bad date"})
async def api_daily(request: web.Request) -> web.StreamResponse:
    try:
        return json_response(report_json(await request.app[keys.STATS].daily(
            _day(request.query.get("day"), _today()))))
    except StatsError as exc:
        return _api_error(exc)


@routes.get("/api/stats/monthly", role="supervisor", summary="One month's calls in daily buckets",
            params=(Param("month", description="YYYY-MM, default this month"),),
            responses={200: "title, start, end, buckets[key=day ...], totals", 422: "bad month"})
async def api_monthly(request: web.Request) -> web.StreamResponse:
    try:
        year, month = _month(request.query.get("month"))
        return json_response(report_json(await request.app[keys.STATS].monthly(year, month)))
    except StatsError as exc:
        return _api_error(exc)


@routes.get("/api/stats/calls", role="supervisor", summary="The calls behind one hourly bucket",
            params=(Param("day", required=True), Param("hour", type="integer", required=True)),
            responses={200: '{"calls": [...]}', 422: "bad day or hour"})
async def api_bucket_calls(request: web.Request) -> web.StreamResponse:
    hour = request.query.get("hour", "")
    try:
        day = _day(request.query.get("day"), _today())
        if not hour.isdigit() or int(hour) > 23:
            raise StatsError(f"시간은 0~23입니다: {hour}")
        calls = await request.app[keys.STATS].bucket_calls(day, int(hour))
    except StatsError as exc:
        return _api_error(exc)
    return json_response({"calls": [{"id": c.id, "linkedid": c.linkedid, "direction": c.direction,
                                     "from_number": c.from_number, "to_number": c.to_number,
                                     "agent_extension": c.agent_extension, "started_at": c.started_at.isoformat(),
                                     "billsec": c.billsec, "wait_seconds": c.wait_seconds,
                                     "disposition": c.disposition, "abandoned": c.abandoned} for c in calls]})


@routes.get("/api/stats/agents", role="supervisor", summary="Answered / outbound / talk time per agent extension",
            params=PERIOD_PARAMS, responses={200: '{"rows": [...]}', 422: "period over a year or reversed"})
async def api_agents(request: web.Request) -> web.StreamResponse:
    try:
        rows = await request.app[keys.STATS].per_agent(*_period(request.query))
    except StatsError as exc:
        return _api_error(exc)
    return json_response({"rows": [asdict(r) for r in rows]})


@routes.get("/api/stats/types", role="supervisor", summary="Tickets per consultation type (three levels)",
            params=PERIOD_PARAMS, responses={200: '{"rows": [...]}', 422: "period over a year or reversed"})
async def api_types(request: web.Request) -> web.StreamResponse:
    try:
        rows = await request.app[keys.STATS].per_type(*_period(request.query))
    except StatsError as exc:
        return _api_error(exc)
    return json_response({"rows": [asdict(r) for r in rows]})


def setup(app: web.Application) -> None:
    app[keys.STATS] = StatsService(app[keys.SERVICES].db)
