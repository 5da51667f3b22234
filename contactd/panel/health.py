"""GET /healthz: is the PBX link up, does the database answer, does the bus answer."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from . import keys
from .render import json_response
from .routing import PUBLIC, PanelRoutes

routes = PanelRoutes("health")
CHECK_TIMEOUT = 2.0


async def _check(coro: Any) -> bool:
    try:
        return bool(await asyncio.wait_for(coro, CHECK_TIMEOUT))
    except Exception:
        return False


@routes.get("/healthz", role=PUBLIC, api=True, summary="Liveness of AMI, database and bus",
            responses={200: "all parts up: status ok", 503: "a part is down: status degraded"})
async def healthz(request: web.Request) -> web.StreamResponse:
    services = request.app[keys.SERVICES]
    ami = services.ami
    connected = bool(getattr(ami, "connected", False)) if ami is not None else False
    version = getattr(ami, "asterisk_version", None) if ami is not None else None
    db_ok, bus_ok = await asyncio.gather(_check(services.db.ping()), _check(services.bus.ping()))
    ok = db_ok and bus_ok and connected
    body = {"ami": {"connected": connected, "asterisk_version": version or None}, "db": {"ok": db_ok},
            "bus": {"ok": bus_ok}, "status": "ok" if ok else "degraded"}
    return json_response(body, 200 if ok else 503)
