"""The agent's desk (/): call buttons, the live screen-pop area and a quick customer search."""

from __future__ import annotations

from aiohttp import web

from . import keys
from .routing import ROLE_RANK, PanelRoutes

routes = PanelRoutes("desk")


@routes.get("/", role="agent")
async def desk(request: web.Request) -> web.StreamResponse:
    user = request[keys.USER]
    accounts = request.app[keys.ACCOUNTS]
    colleagues = [u for u in await accounts.list_users(include_inactive=False) if u.extension and u.id != user.id]
    return request.app[keys.RENDERER].render(
        request, "desk.html", colleagues=colleagues,
        can_watch_all=ROLE_RANK.get(user.role, 0) >= ROLE_RANK["supervisor"],
        watch_all=request.query.get("all") == "1")
