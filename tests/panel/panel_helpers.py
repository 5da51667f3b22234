"""Panel test helpers: the real aiohttp app on a loopback port and one browser-like HTTP session per user."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from contactd.bus import Bus
from contactd.config import Config
from contactd.crm.accounts import AccountService
from contactd.panel.app import create_panel_app
from contactd.services import Services
from contactd.store.db import Database

PASSWORD = "correct-horse-9"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')
CSRF_FIELD = re.compile(r'name="_csrf" value="([^"]*)"')


@dataclass
class Panel:
    server: TestServer
    services: Services
    app: Any
    accounts: AccountService
    users: dict[str, Any] = field(default_factory=dict)
    sessions: list[aiohttp.ClientSession] = field(default_factory=list)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def anonymous(self) -> aiohttp.ClientSession:
        session = aiohttp.ClientSession(base_url=self.server.make_url("/"), cookie_jar=aiohttp.CookieJar(unsafe=True),
                                        timeout=aiohttp.ClientTimeout(total=20))
        self.sessions.append(session)
        return session

    async def login(self, username: str, password: str = PASSWORD) -> UserSession:
        http = self.anonymous()
        async with http.get("/login") as response:
            token = CSRF_FIELD.search(await response.text()).group(1)
        async with http.post("/login", data={"username": username, "password": password, "_csrf": token},
                             allow_redirects=False) as response:
            assert response.status == 302, await response.text()
        async with http.get("/api/me") as response:
            me = await response.json()
        return UserSession(http, me["csrf_token"], me)


@dataclass
class UserSession:
    http: aiohttp.ClientSession
    csrf: str
    me: dict[str, Any]

    def headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf}

    async def post_json(self, path: str, body: Any = None, *, csrf: bool = True) -> tuple[int, Any]:
        async with self.http.post(path, json=body if body is not None else {},
                                  headers=self.headers() if csrf else {}) as response:
            return response.status, await response.json()

    async def request_json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(method, path, json=body, headers=self.headers()) as response:
            return response.status, await response.json()

    async def get_json(self, path: str, **params: Any) -> tuple[int, Any]:
        async with self.http.get(path, params=params) as response:
            return response.status, await response.json()

    async def form(self, path: str, data: dict[str, Any], *, csrf: bool = True) -> aiohttp.ClientResponse:
        payload = dict(data)
        if csrf:
            payload["_csrf"] = self.csrf
        response = await self.http.post(path, data=payload, allow_redirects=False)
        await response.read()
        return response


PanelFactory = Callable[..., Awaitable[Panel]]


async def start_panel(db: Database, bus: Bus, *, settings: dict[str, Any] | None = None,
                       services_extra: dict[str, Any] | None = None) -> Panel:
    config = Config()
    config.web.session_key = "test-session-key"
    services = Services(config=config, db=db, bus=bus)
    for name, value in (services_extra or {}).items():
        setattr(services, name, value)
    app = create_panel_app(services, settings={"heartbeat": 0.5, **(settings or {})})
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    accounts = AccountService(db)
    panel = Panel(server, services, app, accounts)
    for username, role, extension, extra in (("admin", "admin", None, {}), ("boss", "supervisor", "1009", {}),
                                             ("kim", "agent", "1001", {}), ("lee", "agent", "1002", {}),
                                             ("park", "agent", "1003", {"can_export": True})):
        panel.users[username] = await accounts.create_user(username, PASSWORD, role, extension=extension,
                                                           display_name=username.title(), **extra)
    return panel




class EventStream:
    """Reads a text/event-stream response event by event (heartbeat comments are skipped)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, timeout: float) -> tuple[str, dict[str, Any]]:
        import asyncio
        import json

        async def read() -> tuple[str, dict[str, Any]]:
            name, data = "message", ""
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    raise EOFError("stream closed")
                line = raw.decode().rstrip("\n")
                if line == "":
                    if data:
                        return name, json.loads(data)
                    name, data = "message", ""
                elif line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data += line[6:]

        return await asyncio.wait_for(read(), timeout)

    async def nothing_for(self, seconds: float) -> None:

        try:
            event = await self.next(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected event {event}")


async def open_stream(user: UserSession, query: str = "") -> EventStream:
    import asyncio

    response = await user.http.get("/api/events" + query, timeout=aiohttp.ClientTimeout(total=None, sock_read=30))
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    await asyncio.wait_for(response.content.readline(), 5)  # "retry:" line: the hub has registered the client
    return EventStream(response)
