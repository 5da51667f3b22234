"""Call buttons: JSON endpoints under /api/calls/ wired to services.call_control and services.harassment.

Every endpoint acts for the logged-in agent's own extension. Answers {"ok": true} or {"error": "<message>"}:
422 for bad input, 409 when the phone's state does not allow it (the service's CallControlError), 503 when call
control is not running.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from aiohttp import web

from ..crm.phone import PhoneNumberError, normalize
from . import keys
from .auth import client_ip
from .render import error_text, json_error, json_response
from .routing import PanelRoutes

log = logging.getLogger(__name__)
routes = PanelRoutes("calls")
EXTENSION_RE = re.compile(r"^\d{1,4}$")
HARASSMENT_KINDS = ("abuse", "sexual")

OK = {200: '{"ok": true}', 409: "the phone's state does not allow it", 422: "bad input",
      503: "call control not running"}


def _obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


class _BadInput(Exception):
    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key, self.params = key, params


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise _BadInput("api.err.bad_json") from None
    if not isinstance(data, dict):
        raise _BadInput("api.err.bad_json")
    return data


def _extension_arg(data: dict[str, Any], name: str) -> str:
    value = str(data.get(name) or "").strip()
    if not EXTENSION_RE.match(value):
        raise _BadInput("calls.err.bad_extension", value=value)
    return value


def _status_for(exc: Exception) -> int:
    declared = getattr(exc, "status", None)
    if isinstance(declared, int) and 400 <= declared < 600:
        return declared
    name = type(exc).__name__
    return 422 if "Invalid" in name or "Validation" in name else 409


def _is_service_error(exc: Exception) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"CallControlError", "HarassmentError", "PBXError"})


async def _run(request: web.Request, action: str, *args: Any, service: str = "call_control") -> web.Response:
    services = request.app[keys.SERVICES]
    target = getattr(services, service, None)
    if target is None or not hasattr(target, action):
        return json_error(request, 503, "calls.err.unavailable")
    try:
        await getattr(target, action)(*args)
    except Exception as exc:
        if any(cls.__name__ == "AMIError" for cls in type(exc).__mro__):
            log.warning("call action %s: PBX link unavailable (%s)", action, type(exc).__name__)
            return json_error(request, 503, "calls.err.pbx_down")
        if not _is_service_error(exc):
            log.exception("call action %s failed", action)
            return json_error(request, 500, "calls.err.failed")
        return json_response({"error": error_text(request, exc), "code": type(exc).__name__}, _status_for(exc))
    return json_response({"ok": True})


def _agent_extension(request: web.Request) -> str:
    extension = request[keys.USER].extension
    if not extension:
        raise _BadInput("calls.err.no_extension")
    return extension


async def _guard(request: web.Request, fn: Any) -> web.Response:
    try:
        return await fn()
    except _BadInput as exc:
        return json_error(request, 422, exc.key, **exc.params)


@routes.post("/api/calls/dial", role="agent", summary="Click-to-call: ring my phone, then dial the number",
             body=_obj({"number": {"type": "string"}}, ("number",)), responses=OK)
async def dial(request: web.Request) -> web.Response:
    async def go() -> web.Response:
        ext = _agent_extension(request)
        data = await _body(request)
        try:
            number = normalize(str(data.get("number") or ""))
        except PhoneNumberError:
            raise _BadInput("calls.err.bad_number", value=str(data.get("number") or "")) from None
        return await _run(request, "click_to_call", ext, number)
    return await _guard(request, go)


def _simple(action: str, path: str, summary: str) -> None:
    async def handler(request: web.Request) -> web.Response:
        async def go() -> web.Response:
            return await _run(request, action, _agent_extension(request))
        return await _guard(request, go)

    handler.__name__ = action
    routes.post(path, role="agent", summary=summary, responses=OK)(handler)


_simple("hangup", "/api/calls/hangup", "Hang up my current call")
_simple("hold", "/api/calls/hold", "Put my current call on hold")
_simple("unhold", "/api/calls/unhold", "Take my current call off hold")
_simple("complete_transfer", "/api/calls/transfer/complete", "Complete my attended transfer")
_simple("cancel_transfer", "/api/calls/transfer/cancel", "Cancel my attended transfer, back to the caller")


@routes.post("/api/calls/transfer", role="agent", summary="Transfer my call to another extension",
             body=_obj({"target": {"type": "string", "pattern": r"^\d{1,4}$"},
                        "kind": {"type": "string", "enum": ["blind", "attended"]}}, ("target",)), responses=OK)
async def transfer(request: web.Request) -> web.Response:
    async def go() -> web.Response:
        ext = _agent_extension(request)
        data = await _body(request)
        target = _extension_arg(data, "target")
        kind = str(data.get("kind") or "blind")
        if kind not in ("blind", "attended"):
            raise _BadInput("calls.err.bad_kind", value=kind)
        if target == ext:
            raise _BadInput("calls.err.self_transfer")
        return await _run(request, "blind_transfer" if kind == "blind" else "attended_transfer", ext, target)
    return await _guard(request, go)


@routes.post("/api/calls/pickup", role="agent", summary="Pick up a call ringing at another extension",
             body=_obj({"extension": {"type": "string", "pattern": r"^\d{1,4}$"}}, ("extension",)), responses=OK)
async def pickup(request: web.Request) -> web.Response:
    async def go() -> web.Response:
        ext = _agent_extension(request)
        return await _run(request, "pickup", ext, _extension_arg(await _body(request), "extension"))
    return await _guard(request, go)


@routes.post("/api/calls/away", role="agent", summary="Away (자리비움): no queue calls while away",
             body=_obj({"away": {"type": "boolean"}, "reason": {"type": "string"}}, ("away",)), responses=OK)
async def away(request: web.Request) -> web.Response:
    async def go() -> web.Response:
        ext = _agent_extension(request)
        data = await _body(request)
        if not isinstance(data.get("away"), bool):
            raise _BadInput("api.err.bad_field", field="away")
        return await _run(request, "set_away", ext, data["away"], str(data.get("reason") or "")[:80])
    return await _guard(request, go)


@routes.post("/api/calls/online", role="agent", summary="Online / offline (접속관리)",
             body=_obj({"online": {"type": "boolean"}}, ("online",)), responses=OK)
async def online(request: web.Request) -> web.Response:
    async def go() -> web.Response:
        ext = _agent_extension(request)
        data = await _body(request)
        if not isinstance(data.get("online"), bool):
            raise _BadInput("api.err.bad_field", field="online")
        return await _run(request, "set_online", ext, data["online"])
    return await _guard(request, go)


@routes.post("/api/calls/harassment", role="agent",
             summary="Harassment block (민원차단): play the warning to the caller and end the call",
             body=_obj({"kind": {"type": "string", "enum": list(HARASSMENT_KINDS)}}, ("kind",)), responses=OK)
async def harassment(request: web.Request) -> web.Response:
    async def go() -> web.Response:
        ext = _agent_extension(request)
        data = await _body(request)
        kind = str(data.get("kind") or "")
        if kind not in HARASSMENT_KINDS:
            raise _BadInput("calls.err.bad_kind", value=kind)
        services = request.app[keys.SERVICES]
        tracker = services.tracker
        call = tracker.call_for_extension(ext) if tracker is not None else None
        if call is None:
            return json_error(request, 409, "calls.err.no_call")
        user = request[keys.USER]
        response = await _run(request, "warn_and_hangup", call.linkedid, kind, user.id, ext, service="harassment")
        if response.status == 200:
            await request.app[keys.ACCOUNTS].audit(user.id, "call.harassment", f"call:{call.linkedid}", kind,
                                                   ip=client_ip(request))
        return response
    return await _guard(request, go)


@routes.get("/api/calls/current", role="agent", summary="My extension's live call, if any",
            responses={200: '{"call": {...} | null}'})
async def current(request: web.Request) -> web.Response:
    ext = request[keys.USER].extension
    tracker = request.app[keys.SERVICES].tracker
    call = tracker.call_for_extension(ext) if (tracker is not None and ext) else None
    if call is None:
        return json_response({"call": None})
    data = {name: getattr(call, name, None) for name in ("linkedid", "caller_number", "agent_extension",
                                                          "answered_at")}
    return json_response({"call": data})
