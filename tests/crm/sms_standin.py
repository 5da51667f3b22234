"""A stand-in SMS gateway on 127.0.0.1 that can fail, delay and report, and dedupes by Idempotency-Key like a
real gateway must."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class StandinGateway:
    token: str = "gw-token"
    fail_next: int = 0  # answer 500 to the next N requests (after accepting the message: the worst case)
    refuse_numbers: set[str] = field(default_factory=set)  # answer 400 for these
    delay: float = 0.0
    requests: int = 0
    delivered: dict[str, dict] = field(default_factory=dict)  # ref → message: what reached handsets
    server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if request.headers.get("Authorization") != self.token:
            return web.json_response({"error": "auth"}, status=401)
        body = await request.json()
        if self.delay:
            await asyncio.sleep(self.delay)
        if body["to"] in self.refuse_numbers:
            return web.json_response({"error": "invalid number"}, status=400)
        ref = request.headers["Idempotency-Key"]
        self.delivered.setdefault(ref, body)  # a retried request with the same key is not sent again
        if self.fail_next:
            self.fail_next -= 1
            return web.json_response({"error": "temporary"}, status=500)
        return web.json_response({"ok": True, "ref": ref})

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/send", self.handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return str(self.server.make_url("/send"))

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()
