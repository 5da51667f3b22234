"""A TCP server that speaks AMI like Asterisk 22 does in /work/shared/asterisk-traces (for tests and demo mode).

It does the session part of Asterisk's manager: banner, Login (plain and Challenge/MD5; a wrong secret is
answered after a delay and the socket closed), Logoff, Ping, CoreSettings, Command ``core show version``,
"Permission denied" before login, the exact error texts and the ``RequestBadFormat`` security event for an
unknown action or a message without ``Action:``. Everything about calls is left to whoever registers
action handlers (the simulated PBX) and emits events with `emit`.

Replies are serialized exactly like the traces: ``Response`` first, then ``ActionID`` (only when the request
had one), then the rest; list replies answer ``EventList: start`` and end with ``<Name>Complete`` carrying
``EventList: Complete`` and ``ListItems: N``. Tests can make the link half-open (`pause_pings`,
`drop_responses`), crash the PBX (`kill`) or shut it down cleanly (`shutdown`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from contactd.telephony.ami import AMIMessage, AMIParser, AMIProtocolError

log = logging.getLogger(__name__)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
AMI_VERSION = "11.0.0"
MAX_WRITE_BUFFER = 16 << 20  # a client that stops reading is dropped, not buffered for forever

Headers = Iterable[tuple[str, object]] | Mapping[str, object]

# Privilege classes as Asterisk 22 labels the events in the traces; anything else is a call event.
_PRIVILEGE = {
    "agiexecstart": "agi,all",
    "agiexecend": "agi,all",
    "asyncagistart": "agi,all",
    "asyncagiexec": "agi,all",
    "asyncagiend": "agi,all",
    "cdr": "cdr,all",
    "dtmfbegin": "dtmf,all",
    "dtmfend": "dtmf,all",
    "newexten": "dialplan,all",
    "varset": "dialplan,all",
    "fullybooted": "system,all",
    "shutdown": "system,all",
    "reload": "system,all",
    "userevent": "user,all",
}
_AGENT_PREFIXES = ("queue", "agent")
_SECURITY = {
    "successfulauth",
    "invalidpassword",
    "invalidaccountid",
    "challengesent",
    "challengeresponsefailed",
    "requestbadformat",
    "requestnotallowed",
    "failedacl",
}


def privilege_for(event: str) -> str:
    """The ``Privilege:`` value Asterisk 22 puts on an event of that name."""
    name = event.lower()
    if name in _PRIVILEGE:
        return _PRIVILEGE[name]
    if name in _SECURITY:
        return "security,all"
    if name.startswith(_AGENT_PREFIXES):
        return "agent,all"
    return "call,all"


def _pairs(headers: Headers) -> list[tuple[str, str]]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(k), _text(v)) for k, v in items]


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _event_tv() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


@dataclass
class ActionReply:
    """What a handler answers: the response headers (``Response`` first; the server adds ``ActionID``).

    With `complete_event` set it is a list reply: the server adds ``EventList: start`` to the response,
    sends each of `events` with the ActionID, then ``<complete_event>`` with ``EventList: Complete``,
    ``ListItems: N`` and `complete_headers`. `close` drops the connection after the reply; `delay` waits
    before replying (Asterisk's ~1 s on a failed login). `events_after` are events sent on this connection
    right after the reply (like FullyBooted after Login).
    """

    headers: list[tuple[str, str]]
    events: list[list[tuple[str, str]]] = field(default_factory=list)
    complete_event: str | None = None
    complete_headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False
    delay: float = 0.0
    events_after: list[list[tuple[str, str]]] = field(default_factory=list)


def success(message: str | None = None, **headers: object) -> ActionReply:
    """``Response: Success`` [+ ``Message``] + headers, in that order."""
    pairs = [("Response", "Success")]
    if message is not None:
        pairs.append(("Message", message))
    pairs.extend(_pairs(headers))
    return ActionReply(pairs)


def error(message: str, **headers: object) -> ActionReply:
    return ActionReply([("Response", "Error"), ("Message", message), *_pairs(headers)])


def list_reply(
    complete_event_name: str,
    events: Iterable[Headers],
    *,
    message: str = "Events will follow",
    **complete_headers: object,
) -> ActionReply:
    """A list action's reply; keyword headers go on the closing event after ``ListItems`` (e.g. ``Items``)."""
    return ActionReply(
        [("Response", "Success"), ("EventList", "start"), ("Message", message)],
        events=[_pairs(e) for e in events],
        complete_event=complete_event_name,
        complete_headers=_pairs(complete_headers),
    )


@dataclass
class AMIAction:
    name: str
    message: AMIMessage
    action_id: str | None
    connection: SimConnection


ActionHandler = Callable[
    [AMIAction], "Awaitable[ActionReply | Headers | None] | ActionReply | Headers | None"
]
CommandHandler = Callable[[str], "Awaitable[list[str] | None] | list[str] | None"]


class SimConnection:
    """One AMI client connection to the simulated Asterisk."""

    def __init__(
        self, server: SimulatedAMIServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.logged_in = False
        self.username: str | None = None
        self.events_enabled = True
        self.challenge: str | None = None
        self.session_id = f"0x{random.getrandbits(44):x}"
        self.session_tv = _event_tv()
        sock = writer.get_extra_info("sockname") or ("127.0.0.1", 0)
        peer = writer.get_extra_info("peername") or ("127.0.0.1", 0)
        self.local_address = f"IPV4/TCP/{sock[0]}/{sock[1]}"
        self.remote_address = f"IPV4/TCP/{peer[0]}/{peer[1]}"

    @property
    def closed(self) -> bool:
        return self.writer.is_closing()

    def send(self, headers: Headers) -> None:
        """Send one message exactly as given (no headers added)."""
        if self.writer.is_closing():
            return
        transport = self.writer.transport
        if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            log.warning("simulated AMI: client %s stopped reading; dropping it", self.remote_address)
            transport.abort()
            return
        self.writer.write(AMIMessage(_pairs(headers)).to_bytes())

    def send_event(self, headers: Headers) -> None:
        """Send one event to this connection, adding ``Privilege`` after ``Event`` when missing."""
        self.send(_with_privilege(_pairs(headers)))

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()

    def abort(self) -> None:
        self.writer.transport.abort()

    def security_event(
        self, event: str, severity: str, *, version: int = 1, account_id: str | None = None, **tail: object
    ) -> list[tuple[str, str]]:
        """Headers of a security event about this session, in Asterisk 22's field order."""
        pairs = [
            ("Event", event),
            ("Privilege", "security,all"),
            ("EventTV", _event_tv()),
            ("Severity", severity),
            ("Service", "AMI"),
            ("EventVersion", str(version)),
        ]
        if account_id is not None:
            pairs.append(("AccountID", account_id))
        pairs += [
            ("SessionID", self.session_id),
            ("LocalAddress", self.local_address),
            ("RemoteAddress", self.remote_address),
        ]
        pairs += _pairs(tail)
        return pairs


def _with_privilege(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    if not pairs or any(k.lower() == "privilege" for k, _ in pairs):
        return pairs
    if pairs[0][0].lower() != "event":
        return pairs
    return [pairs[0], ("Privilege", privilege_for(pairs[0][1])), *pairs[1:]]


class SimulatedAMIServer:
    """Asterisk's AMI on 127.0.0.1 (port 0 = ephemeral), for tests and the demo mode."""

    def __init__(
        self,
        *,
        username: str = "contactd",
        secret: str = "secret",
        host: str = "127.0.0.1",
        port: int = 0,
        asterisk_version: str = "22.10.1",
    ) -> None:
        self.username = username
        self._secret = secret
        self.host = host
        self.port = port
        self.asterisk_version = asterisk_version
        self.received: list[AMIMessage] = []
        self.connections: list[SimConnection] = []
        self.pause_pings = False  # Ping gets no answer (half-open link as the client sees it)
        self.drop_responses = False  # no action gets any answer; events still flow
        self.auth_fail_delay = 1.0  # Asterisk answers a failed Login about 1 s later, then closes
        self.login_count = 0
        self._handlers: dict[str, ActionHandler] = {}
        self._commands: dict[str, CommandHandler] = {}
        self._server: asyncio.Server | None = None
        self._conn_tasks: set[asyncio.Task[None]] = set()
        self._started_at = time.monotonic()
        self._reloaded_at = time.monotonic()

    def __repr__(self) -> str:
        return f"<SimulatedAMIServer {self.host}:{self.port} user={self.username!r}>"

    # --------------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Listen (again, on the same port after kill/shutdown); `port` holds the bound port."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        self._started_at = self._reloaded_at = time.monotonic()

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        server = self._stop_listening()
        for conn in list(self.connections):
            conn.close()
        await self._wait_closed(server)

    async def kill(self) -> None:
        """Like SIGKILL of Asterisk: drop every connection (no event) and stop listening."""
        server = self._stop_listening()
        for conn in list(self.connections):
            conn.abort()
        await self._wait_closed(server)

    async def shutdown(self, restart: bool = True) -> None:
        """``Event: Shutdown`` to every logged-in client (as `core stop/restart now`), then close them."""
        server = self._stop_listening()
        self.emit([("Event", "Shutdown"), ("Shutdown", "Cleanly"), ("Restart", "True" if restart else "False")])
        for conn in list(self.connections):
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(conn.writer.drain(), 1.0)
            conn.close()
        await self._wait_closed(server)

    def _stop_listening(self) -> asyncio.Server | None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        return server

    async def _wait_closed(self, server: asyncio.Server | None) -> None:
        await self._wait_connections()
        if server is not None:
            # Newer Pythons' wait_closed() also waits for handler tasks: bound it anyway.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    async def _wait_connections(self) -> None:
        if self._conn_tasks:
            await asyncio.wait(list(self._conn_tasks), timeout=2.0)

    # ------------------------------------------------------------------------------------------ API

    def register_action(self, name: str, handler: ActionHandler) -> None:
        """Handle action `name` (case-insensitive) for logged-in clients; replaces a built-in one."""
        self._handlers[name.lower()] = handler

    def register_command(self, cli: str, handler: CommandHandler) -> None:
        """Answer the CLI command `cli` (Action: Command) with the output lines the handler returns."""
        self._commands[" ".join(cli.lower().split())] = handler

    def emit(self, headers: Headers) -> None:
        """Broadcast one event to every logged-in connection (adds ``Privilege`` like Asterisk)."""
        pairs = _with_privilege(_pairs(headers))
        for conn in self.connections:
            if conn.logged_in and conn.events_enabled:
                conn.send(pairs)

    @property
    def logged_in_connections(self) -> list[SimConnection]:
        return [c for c in self.connections if c.logged_in and not c.closed]

    async def wait_for_action(self, name: str, timeout: float = 5.0, start: int = 0) -> AMIMessage:
        """The first received action called `name` (from index `start` of `received`); for tests."""
        async with asyncio.timeout(timeout):
            while True:
                for msg in self.received[start:]:
                    if (msg.get("Action") or "").lower() == name.lower():
                        return msg
                await asyncio.sleep(0.01)

    # ------------------------------------------------------------------------------------ connection

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conn_tasks.add(task)
        conn = SimConnection(self, reader, writer)
        self.connections.append(conn)
        parser = AMIParser(expect_banner=False)
        try:
            writer.write(BANNER)
            while not writer.is_closing():
                data = await reader.read(65536)
                if not data:
                    break
                try:
                    messages = parser.feed(data)
                except AMIProtocolError as exc:
                    log.warning("simulated AMI: %s from %s; closing", exc, conn.remote_address)
                    break
                for message in messages:
                    try:
                        await self._handle(conn, message)
                    except Exception:
                        # A broken action handler must not take the connection (or the server) down.
                        log.exception("simulated AMI: handler for %s failed", message.get("Action"))
                        self._reply(conn, message, error("Internal error"))
                    if writer.is_closing():
                        break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.connections.remove(conn)
            conn.close()
            self._conn_tasks.discard(task)

    async def _handle(self, conn: SimConnection, message: AMIMessage) -> None:
        self.received.append(message)
        name = message.get("Action")
        if not name:
            self._reply(conn, message, error("Missing action in request"))
            self._bad_format(conn, "NONE")
            return
        key = name.lower()
        if key in ("login", "challenge", "logoff"):
            builtin = {"login": self._login, "challenge": self._challenge, "logoff": self._logoff}[key]
            reply = builtin(conn, message)
        elif not conn.logged_in:
            reply = error("Permission denied")
        elif key in self._handlers:
            action = AMIAction(name, message, message.get("ActionID"), conn)
            result = self._handlers[key](action)
            if inspect.isawaitable(result):
                result = await result
            if result is None:
                return
            reply = result if isinstance(result, ActionReply) else ActionReply(_pairs(result))
        elif key == "ping":
            if self.pause_pings:
                return
            reply = success(None, Ping="Pong", Timestamp=f"{time.time():.6f}")
        elif key == "coresettings":
            reply = self._core_settings()
        elif key == "command":
            reply = await self._command(message.get("Command") or "")
        else:
            self._reply(
                conn,
                message,
                error(
                    f"Invalid/unknown command: {name}. Use Action: ListCommands to show available commands."
                ),
            )
            self._bad_format(conn, name)
            return
        if reply.delay:
            await asyncio.sleep(reply.delay)
        self._reply(conn, message, reply)

    def _reply(self, conn: SimConnection, request: AMIMessage, reply: ActionReply) -> None:
        if self.drop_responses or conn.closed:
            return
        action_id = request.get("ActionID")
        headers = list(reply.headers)
        if reply.complete_event is not None and not any(k.lower() == "eventlist" for k, _ in headers):
            headers.insert(1, ("EventList", "start"))
        if action_id is not None:
            headers.insert(1, ("ActionID", action_id))
        conn.send(headers)
        if reply.complete_event is not None:
            for event in reply.events:
                conn.send(_with_action_id(event, action_id))
            closing = [("Event", reply.complete_event)]
            if action_id is not None:
                closing.append(("ActionID", action_id))
            closing += [
                ("EventList", "Complete"),
                ("ListItems", str(len(reply.events))),
                *reply.complete_headers,
            ]
            conn.send(closing)
        for event in reply.events_after:
            conn.send_event(event)
        if reply.close:
            conn.close()

    def _bad_format(self, conn: SimConnection, request_type: str) -> None:
        # Asterisk 22 lists AccountID last on this event (before SessionID on the auth events).
        event = conn.security_event(
            "RequestBadFormat",
            "Error",
            RequestType=f"Action: {request_type}",
            SessionTV=conn.session_tv,
            AccountID=conn.username or "",
        )
        if conn.logged_in:
            self.emit(event)
        else:
            conn.send(event)

    # ----------------------------------------------------------------------------------- built-ins

    def _uptime(self) -> tuple[str, str]:
        now = time.monotonic()
        return str(int(now - self._started_at)), str(int(now - self._reloaded_at))

    def _challenge(self, conn: SimConnection, message: AMIMessage) -> ActionReply:
        if (message.get("AuthType") or "").lower() != "md5":
            return error("Must specify AuthType")
        conn.challenge = str(random.randint(100_000_000, 999_999_999))
        return success(None, Challenge=conn.challenge)

    def _login(self, conn: SimConnection, message: AMIMessage) -> ActionReply:
        if conn.logged_in:
            return success("Already authenticated")
        user = message.get("Username") or ""
        if (message.get("AuthType") or "").lower() == "md5":
            expected = hashlib.md5(((conn.challenge or "") + self._secret).encode()).hexdigest()
            good = conn.challenge is not None and (message.get("Key") or "").lower() == expected
        else:
            good = message.get("Secret") == self._secret
        if user != self.username or not good:
            if user == self.username:
                failed = conn.security_event(
                    "InvalidPassword",
                    "Error",
                    version=2,
                    account_id=user,
                    SessionTV="1970-01-01T00:00:00.000+0000",
                )
                self.emit(failed)
            reply = error("Authentication failed")
            reply.delay = self.auth_fail_delay
            reply.close = True
            return reply
        conn.logged_in = True
        conn.username = user
        conn.events_enabled = (message.get("Events") or "on").lower() not in ("off", "no", "false")
        self.login_count += 1
        uptime, reload = self._uptime()
        reply = success("Authentication accepted")
        reply.events_after = [
            [
                ("Event", "FullyBooted"),
                ("Uptime", uptime),
                ("LastReload", reload),
                ("Status", "Fully Booted"),
            ],
        ]
        if conn.events_enabled:
            auth_event = conn.security_event(
                "SuccessfulAuth", "Informational", account_id=user, UsingPassword=0, SessionTV=conn.session_tv
            )
            reply.events_after.append(auth_event)
        else:
            reply.events_after = []
        return reply

    def _logoff(self, conn: SimConnection, message: AMIMessage) -> ActionReply:
        reply = ActionReply([("Response", "Goodbye"), ("Message", "Thanks for all the fish.")])
        reply.close = True
        return reply

    def _core_settings(self) -> ActionReply:
        return ActionReply(
            [
                ("Response", "Success"),
                ("AMIversion", AMI_VERSION),
                ("AsteriskVersion", self.asterisk_version),
                ("SystemName", ""),
                ("CoreMaxCalls", "0"),
                ("CoreMaxLoadAvg", "0.000000"),
                ("CoreRunUser", ""),
                ("CoreRunGroup", ""),
                ("CoreMaxFilehandles", "0"),
                ("CoreRealTimeEnabled", "No"),
                ("CoreCDRenabled", "Yes"),
                ("CoreHTTPenabled", "No"),
                ("SoundsSearchCustomDir", "No"),
            ]
        )

    async def _command(self, cli: str) -> ActionReply:
        key = " ".join(cli.lower().split())
        handler = self._commands.get(key)
        lines: list[str] | None
        if handler is not None:
            result = handler(cli)
            lines = await result if inspect.isawaitable(result) else result
        elif key == "core show version":
            built = datetime.fromtimestamp(time.time() - (time.monotonic() - self._started_at), UTC)
            lines = [
                f"Asterisk {self.asterisk_version} built by root @ vm on a x86_64 running Linux on "
                f"{built:%Y-%m-%d %H:%M:%S} UTC"
            ]
        else:
            lines = None
        if lines is None:
            return ActionReply(
                [
                    ("Response", "Error"),
                    ("Message", "Command output follows"),
                    (
                        "Output",
                        f"No such command '{cli}' (type 'core show help {cli}' for other possible commands)",
                    ),
                ]
            )
        return ActionReply(
            [
                ("Response", "Success"),
                ("Message", "Command output follows"),
                *(("Output", ln) for ln in lines),
            ]
        )


def _with_action_id(event: list[tuple[str, str]], action_id: str | None) -> list[tuple[str, str]]:
    # A handler may place an ("ActionID", "") placeholder where Asterisk puts it (DBGetResponse: last);
    # otherwise it goes right after Event, as in CoreShowChannel.
    out: list[tuple[str, str]] = []
    placed = False
    for key, value in event:
        if key.lower() == "actionid":
            if action_id is not None:
                out.append(("ActionID", action_id))
            placed = True
        else:
            out.append((key, value))
    if not placed and action_id is not None:
        out.insert(1 if out else 0, ("ActionID", action_id))
    return out
