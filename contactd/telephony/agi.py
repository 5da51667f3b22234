"""FastAGI server: Asterisk connects per call, sends its agi_* block, then our flow sends commands one at a time.

The wire format is parsed by a sans-IO `AGIStreamParser` (fed raw bytes, returns events), driven by an
asyncio Protocol per connection, so a session costs one handler task and no reader task. Facts this module
relies on (see /work/shared/asterisk-traces/agi-session-*.txt):

- lines end in bare ``\\n``; the agi_* block ends with an empty line and may span several TCP segments;
- each command gets exactly one reply; a ``520-`` line opens a usage block that ends only at the exact line
  ``520 End of proper usage.`` (its text may contain lines that look like replies);
- ``HANGUP`` is an unsolicited notice: it may arrive between commands or just before the pending command's
  reply, which still follows; Asterisk never closes the socket itself, so we close it as soon as the flow ends
  (a lingering socket keeps the dead channel around and delays its CDR);
- FastAGI has no request ids: a command whose reply we stop waiting for desynchronises the stream for good,
  so a timed-out or cancelled command closes the connection.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024  # a garbage peer must not make us buffer an endless line
MAX_HEADER_LINES = 512  # Asterisk sends ~22 agi_* lines plus agi_arg_N
MAX_USAGE_LINES = 256
USAGE_END = "520 End of proper usage."
DEFAULT_EXEC_TIMEOUT = 6 * 3600.0  # EXEC Queue/Dial stay in flight for the whole bridged conversation

_INT_RE = re.compile(r"-?\d{1,19}")
_ENDPOS_RE = re.compile(r"(?:^|\s)endpos=(-?\d{1,19})$")
_CODE_RE = re.compile(r"(\d{3})(?:[ -](.*))?", re.S)


class AGIError(Exception):
    """A FastAGI command failed (or the session cannot carry commands any more)."""


class AGIHangup(AGIError):
    """The channel hung up (or the session is closed): the flow should clean up and return."""


class AGIDeadChannel(AGIHangup):
    """511: Asterisk refused the command because the channel is already dead."""


class AGIInvalidCommand(AGIError):
    """510: Asterisk does not know the command."""


class AGIUsageError(AGIError):
    """520: wrong arguments; `usage` holds Asterisk's usage text for the command."""

    def __init__(self, message: str, usage: str = "") -> None:
        super().__init__(message)
        self.usage = usage


class AGIAppNotFound(AGIError):
    """EXEC answered -2: the dialplan application does not exist (module not loaded?)."""


class AGICommandTimeout(AGIError):
    """No reply in time; the connection has been closed because the stream can no longer be trusted."""


@dataclass(frozen=True)
class AGIRequest:
    script: str
    query: dict[str, str]
    args: list[str]
    channel: str
    uniqueid: str
    callerid: str
    calleridname: str
    context: str
    extension: str
    priority: str
    language: str
    dnid: str
    version: str
    raw: dict[str, str]


def build_request(env: dict[str, str]) -> AGIRequest:
    """Turn the agi_* block (keys without the `agi_` prefix) into an AGIRequest."""
    target = env.get("network_script")
    if target is None:
        # Without agi_network_script fall back to the URL path of agi_request (agi://host:port/path?query).
        parts = urlsplit(env.get("request", ""))
        target = parts.path + (f"?{parts.query}" if parts.query else "")
    path, _, query = target.partition("?")
    numbered: list[tuple[int, str]] = []
    for key, value in env.items():
        if key.startswith("arg_") and key[4:].isdigit():
            numbered.append((int(key[4:]), value))
    return AGIRequest(
        script=normalise_script(path),
        query=dict(parse_qsl(query, keep_blank_values=True)),
        args=[value for _, value in sorted(numbered)],
        channel=env.get("channel", ""),
        uniqueid=env.get("uniqueid", ""),
        callerid=env.get("callerid", ""),
        calleridname=env.get("calleridname", ""),
        context=env.get("context", ""),
        extension=env.get("extension", ""),
        priority=env.get("priority", ""),
        language=env.get("language", ""),
        dnid=env.get("dnid", ""),
        version=env.get("version", ""),
        raw=dict(env),
    )


def normalise_script(path: str) -> str:
    return path.strip("/")


@dataclass(frozen=True)
class AGIReply:
    code: int
    result: int | None
    data: str | None
    endpos: int | None
    raw: str
    # The result exactly as sent: GET DATA digits keep leading zeros ("0101234567") and may hold * or "".
    result_text: str = ""

    @property
    def digit(self) -> str:
        """The key for an ASCII result code (53 → "5"); "" for 0, negative or non-printable codes."""
        if self.result is not None and 32 < self.result < 127:
            return chr(self.result)
        return ""


def parse_reply_line(text: str) -> AGIReply:
    """Parse one reply line: `200 result=N [(data)] [endpos=N]`, `510 ...`, `511 ...`, `520 ...`.

    Raises ValueError for a line that is not a reply at all.
    """
    match = _CODE_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"not an AGI reply: {text[:80]!r}")
    code = int(match.group(1))
    rest = match.group(2) or ""
    if code != 200 or not rest.startswith("result="):
        return AGIReply(code=code, result=None, data=rest or None, endpos=None, raw=text)
    token, _, tail = rest[7:].partition(" ")
    # Bounded digit count: int() of a 64 KiB digit string raises (and costs) in CPython.
    result = int(token) if _INT_RE.fullmatch(token) else None
    tail = tail.strip()
    endpos = None
    endpos_match = _ENDPOS_RE.search(tail)
    if endpos_match is not None:
        endpos = int(endpos_match.group(1))
        tail = tail[: endpos_match.start()].strip()
    if len(tail) >= 2 and tail[0] == "(" and tail[-1] == ")":
        data: str | None = tail[1:-1]
    else:
        data = tail or None
    return AGIReply(code=code, result=result, data=data, endpos=endpos, raw=text, result_text=token)


# Parser events -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeaderComplete:
    env: dict[str, str]


@dataclass(frozen=True, slots=True)
class ReplyReceived:
    reply: AGIReply


@dataclass(frozen=True, slots=True)
class HangupNotice:
    pass


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    reason: str


ParserEvent = HeaderComplete | ReplyReceived | HangupNotice | ProtocolViolation


class AGIStreamParser:
    """Bytes from Asterisk in, events out. Never raises on input; memory stays below a few `max_line`s.

    After a ProtocolViolation the parser is `broken` and ignores further input: the caller closes the link.
    """

    def __init__(self, *, max_line: int = MAX_LINE, max_header_lines: int = MAX_HEADER_LINES,
                 max_usage_lines: int = MAX_USAGE_LINES) -> None:
        self.max_line = max_line
        self.max_header_lines = max_header_lines
        self.max_usage_lines = max_usage_lines
        self.broken = False
        self.in_header = True
        self._buf = bytearray()
        self._env: dict[str, str] = {}
        self._header_lines = 0
        self._usage: list[str] | None = None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[ParserEvent]:
        if self.broken:
            return []
        events: list[ParserEvent] = []
        buf = self._buf
        buf += data
        start = 0
        while not self.broken:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            if end - start > self.max_line:
                self._violate(events, f"line longer than {self.max_line} bytes")
                break
            line = bytes(buf[start:end])
            start = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            # Decode whole lines only (a UTF-8 Hangul name may straddle two reads); bad bytes become U+FFFD.
            self._line(line.decode("utf-8", "replace"), events)
        if self.broken:
            buf.clear()
            return events
        del buf[:start]
        if len(buf) > self.max_line:
            self._violate(events, f"line longer than {self.max_line} bytes")
            buf.clear()
        return events

    def _violate(self, events: list[ParserEvent], reason: str) -> None:
        self.broken = True
        self._usage = None
        events.append(ProtocolViolation(reason))

    def _line(self, text: str, events: list[ParserEvent]) -> None:
        if self.in_header:
            if text == "":
                self.in_header = False
                env, self._env = self._env, {}
                events.append(HeaderComplete(env))
                return
            self._header_lines += 1
            if self._header_lines > self.max_header_lines:
                self._violate(events, "agi_* block too long")
                return
            key, sep, value = text.partition(":")
            if sep and key.startswith("agi_"):
                self._env[key[4:]] = value[1:] if value.startswith(" ") else value
            return
        if self._usage is not None:
            if text == USAGE_END:
                usage, self._usage = self._usage, None
                raw = "\n".join(["520-" + usage[0], *usage[1:], USAGE_END])
                events.append(ReplyReceived(AGIReply(code=520, result=None, data="\n".join(usage[1:]),
                                                     endpos=None, raw=raw, result_text="")))
            elif len(self._usage) >= self.max_usage_lines:
                self._violate(events, "520 usage block too long")
            else:
                self._usage.append(text)
            return
        if text.startswith("520-"):
            self._usage = [text[4:]]
        elif text == "HANGUP":
            events.append(HangupNotice())
        elif text == "":
            return  # stray blank line: harmless, carries nothing
        else:
            try:
                events.append(ReplyReceived(parse_reply_line(text)))
            except ValueError:
                self._violate(events, f"unparseable reply line {text[:80]!r}")


# Session -------------------------------------------------------------------------------------------------


_ARG_NEEDS_QUOTES = re.compile(r'[\s"\\]')


def quote_arg(value: str) -> str:
    """Quote one AGI argument the way res_agi's parser unquotes it (backslash escapes inside quotes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_agi_args(line: str) -> list[str]:
    """Split a command line the way res_agi does: spaces separate, double quotes group, backslash escapes.

    `SAY DIGITS 123 ""` → ["SAY", "DIGITS", "123", ""] (an empty quoted argument still counts).
    """
    args: list[str] = []
    current: list[str] = []
    started = in_quotes = escaped = False
    for ch in line:
        if escaped:
            current.append(ch)
            escaped = False
            started = True
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            in_quotes = not in_quotes
            started = True
        elif ch in " \t" and not in_quotes:
            if started:
                args.append("".join(current))
                current = []
                started = False
        else:
            current.append(ch)
            started = True
    if started:
        args.append("".join(current))
    return args


def _maybe_quote(value: str) -> str:
    return quote_arg(value) if value == "" or _ARG_NEEDS_QUOTES.search(value) else value


class AGISession:
    """One call's FastAGI conversation. Commands are strictly sequential (the protocol has no ids)."""

    def __init__(self, request: AGIRequest, transport: asyncio.Transport, server: AGIServer) -> None:
        self.request = request
        self.hung_up = False
        self.commands_sent = 0
        self.stray_replies = 0
        self._transport = transport
        self._server = server
        self._pending: asyncio.Future[AGIReply] | None = None
        self._sent_at = 0.0
        self._closed = False
        self.last_activity = time.monotonic()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def busy(self) -> bool:
        return self._pending is not None

    def __repr__(self) -> str:
        return f"<AGISession {self.request.script} {self.request.channel} uniqueid={self.request.uniqueid}>"

    async def command(self, line: str, *, timeout: float | None = None, allow_dead: bool = False) -> AGIReply:
        """Send one raw command line and return its reply (telephony-internal; flows use the helpers).

        510/511/520 raise AGIInvalidCommand/AGIDeadChannel/AGIUsageError. Once Asterisk said HANGUP every
        further command raises AGIHangup without being sent, unless `allow_dead` (GET VARIABLE, NOOP and
        VERBOSE still work on a dead channel).
        """
        if "\n" in line or "\r" in line:
            # A newline inside an argument would smuggle a second command onto the wire.
            raise ValueError("AGI command must be a single line")
        if self._closed:
            raise AGIHangup("AGI session closed")
        if self.hung_up and not allow_dead:
            raise AGIHangup("channel hung up")
        if self._pending is not None:
            raise AGIError("another AGI command is still in flight on this session")
        wire = line.encode("utf-8") + b"\n"  # before any state changes: a lone surrogate raises here
        fut: asyncio.Future[AGIReply] = asyncio.get_running_loop().create_future()
        self._pending = fut
        self.commands_sent += 1
        self._sent_at = time.perf_counter()
        self._transport.write(wire)
        try:
            async with asyncio.timeout(self._server.command_timeout if timeout is None else timeout):
                reply = await fut
        except TimeoutError:
            log.warning("%r: no reply to %r in time; closing the connection", self, _verb(line))
            self._close(abort=True)
            raise AGICommandTimeout(f"no reply to {_verb(line)}") from None
        except asyncio.CancelledError:
            if not fut.done() or fut.cancelled():
                # The reply would arrive later and be taken for the next command's: drop the link instead.
                self._close(abort=True)
            raise
        finally:
            self._pending = None
            self.last_activity = time.monotonic()
        if reply.code == 200:
            return reply
        if reply.code == 511:
            self.hung_up = True
            raise AGIDeadChannel(reply.data or "command not permitted on a dead channel")
        if reply.code == 510:
            raise AGIInvalidCommand(f"{_verb(line)}: {reply.data or 'invalid or unknown command'}")
        if reply.code == 520:
            raise AGIUsageError(f"{_verb(line)}: invalid command syntax", reply.data or "")
        raise AGIError(f"{_verb(line)}: unexpected reply {reply.raw[:200]!r}")

    # Helpers the IVR flows use ------------------------------------------------------------------------

    async def answer(self) -> None:
        reply = await self.command("ANSWER")
        if reply.result == -1:
            raise AGIHangup("ANSWER failed")

    async def hangup(self) -> None:
        """Hang the channel up; a no-op when it is already gone (handy in a flow's `finally`)."""
        if self.hung_up or self._closed:
            return
        try:
            await self.command("HANGUP")
        except AGIHangup:
            pass
        self.hung_up = True

    async def get_variable(self, name: str) -> str | None:
        reply = await self.command(f"GET VARIABLE {name}")
        if reply.result == 1:
            return reply.data if reply.data is not None else ""
        return None

    async def set_variable(self, name: str, value: str) -> None:
        await self.command(f"SET VARIABLE {name} {quote_arg(value)}")

    async def stream_file(self, name: str, escape_digits: str = "") -> str:
        """Play a prompt; returns the escape digit that interrupted it, or ""."""
        reply = await self.command(f"STREAM FILE {name} {quote_arg(escape_digits)}")
        if reply.result == -1:
            # Either the file is missing (endpos=0) or the caller hung up mid-prompt; in the latter case the
            # HANGUP notice follows and the next command raises, so here we only log.
            log.warning("%r: STREAM FILE %s failed (missing prompt or hangup), endpos=%s", self, name,
                        reply.endpos)
            return ""
        return reply.digit

    async def get_data(self, file: str, timeout_ms: int, max_digits: int) -> tuple[str, bool]:
        """Play `file` and collect up to `max_digits` keys; returns (digits, timed_out). # ends input early."""
        reply = await self.command(f"GET DATA {file} {int(timeout_ms)} {int(max_digits)}",
                                   timeout=self._input_timeout(timeout_ms))
        if reply.result == -1 and reply.result_text == "-1":
            self.hung_up = True
            raise AGIHangup("caller hung up during GET DATA")
        return reply.result_text, reply.data == "timeout"

    async def wait_for_digit(self, timeout_ms: int) -> str:
        """Wait for one key; "" on timeout. -1 means wait forever."""
        reply = await self.command(f"WAIT FOR DIGIT {int(timeout_ms)}", timeout=self._input_timeout(timeout_ms))
        if reply.result is not None and reply.result < 0:
            self.hung_up = True
            raise AGIHangup("caller hung up during WAIT FOR DIGIT")
        return reply.digit

    async def say_digits(self, digits: str, escape_digits: str = "") -> str:
        reply = await self.command(f"SAY DIGITS {digits} {quote_arg(escape_digits)}")
        if reply.result is not None and reply.result < 0:
            self.hung_up = True
            raise AGIHangup("caller hung up during SAY DIGITS")
        return reply.digit

    async def exec(self, app: str, *args: str, timeout: float | None = None) -> AGIReply:
        """Run a dialplan application: `exec("Queue", "support", "", "", "", "300")` → EXEC Queue support,,,,300."""
        line = f"EXEC {app}"
        joined = ",".join(args)
        if joined:
            line += " " + _maybe_quote(joined)
        reply = await self.command(line, timeout=self._server.exec_timeout if timeout is None else timeout)
        if reply.result == -2:
            raise AGIAppNotFound(f"dialplan application {app!r} not found")
        return reply

    async def verbose(self, message: str, level: int = 1) -> None:
        await self.command(f"VERBOSE {quote_arg(message)} {int(level)}", allow_dead=True)

    async def close(self) -> None:
        """Close the connection (flushes a last command first); the server also does this after the flow."""
        self._close()

    # Internals -----------------------------------------------------------------------------------------

    def _input_timeout(self, timeout_ms: int) -> float:
        if timeout_ms < 0:
            return max(self._server.command_timeout, self._server.idle_timeout)
        return max(self._server.command_timeout, timeout_ms / 1000 + 10.0)

    def _close(self, *, abort: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        _shut(self._transport, abort=abort)
        self._fail_pending(AGIHangup("AGI session closed"))

    def _fail_pending(self, exc: BaseException) -> None:
        if self._pending is not None and not self._pending.done():
            self._pending.set_exception(exc)

    def _on_reply(self, reply: AGIReply) -> None:
        fut = self._pending
        if fut is None or fut.done():
            self.stray_replies += 1
            if self.stray_replies == 1:  # once per session: a babbling peer must not flood the log
                log.warning("%r: reply with no command in flight, ignored: %r", self, reply.raw[:200])
            return
        self._server._record_latency(time.perf_counter() - self._sent_at)
        fut.set_result(reply)

    def _on_hangup_notice(self) -> None:
        if not self.hung_up:
            log.debug("%r: HANGUP notice", self)
        self.hung_up = True

    def _on_connection_lost(self) -> None:
        self.hung_up = True
        self._closed = True
        self._fail_pending(AGIHangup("Asterisk closed the AGI connection"))


def _shut(transport: asyncio.BaseTransport, *, abort: bool = False) -> None:
    """close() sends FIN after flushing; abort() only when unsent bytes would keep a dead peer's socket alive."""
    if abort and isinstance(transport, asyncio.WriteTransport) and transport.get_write_buffer_size():
        transport.abort()
    else:
        transport.close()


def _verb(line: str) -> str:
    words = line.split(" ", 3)
    return " ".join(w for w in words[:2] if w.isupper()) or words[0][:40]


# Connection and server -----------------------------------------------------------------------------------


Handler = Callable[[AGISession], Awaitable[None]]


class _AGIConnection(asyncio.Protocol):
    """Feeds bytes to the parser and routes its events to the session (or ends the connection)."""

    def __init__(self, server: AGIServer) -> None:
        self._server = server
        self._parser = AGIStreamParser(max_line=server.max_line)
        self.transport: asyncio.Transport | None = None
        self.session: AGISession | None = None
        self._header_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._server._connections.add(self)
        loop = asyncio.get_running_loop()
        self._header_timer = loop.call_later(self._server.header_timeout, self._on_header_timeout)

    def data_received(self, data: bytes) -> None:
        for event in self._parser.feed(data):
            try:
                self._dispatch(event)
            except Exception:  # one bad event must not kill the connection's read path
                log.exception("AGI: error handling %r", event)

    def _dispatch(self, event: ParserEvent) -> None:
        if isinstance(event, ReplyReceived):
            if self.session is not None:
                self.session._on_reply(event.reply)
        elif isinstance(event, HangupNotice):
            if self.session is not None:
                self.session._on_hangup_notice()
        elif isinstance(event, HeaderComplete):
            self._start_session(event.env)
        else:
            log.warning("AGI protocol violation from %s: %s; closing", self._peer(), event.reason)
            if self.session is not None:
                self.session._close(abort=True)
            elif self.transport is not None:
                _shut(self.transport, abort=True)

    def _start_session(self, env: dict[str, str]) -> None:
        assert self.transport is not None
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        request = build_request(env)
        session = AGISession(request, self.transport, self._server)
        self.session = session
        handler = self._server._handler_for(request.script)
        self.task = asyncio.get_running_loop().create_task(self._server._run_session(session, handler, self))
        self._server._tasks.add(self.task)
        self.task.add_done_callback(self._server._tasks.discard)
        self._arm_idle(self._server.idle_timeout)

    def _arm_idle(self, delay: float) -> None:
        self._idle_timer = asyncio.get_running_loop().call_later(delay, self._on_idle_check)

    def _on_idle_check(self) -> None:
        # Re-armed lazily instead of per command: commands only bump session.last_activity.
        session = self.session
        if session is None or session.closed:
            return
        idle_for = time.monotonic() - session.last_activity
        if session.busy or idle_for < self._server.idle_timeout:
            self._arm_idle(max(0.05, self._server.idle_timeout - (0.0 if session.busy else idle_for)))
            return
        log.warning("%r: no AGI command for %.0f s; closing the session", session, idle_for)
        self._server.sessions_idle_closed += 1
        session._close(abort=True)
        if self.task is not None:
            self.task.cancel()

    def _on_header_timeout(self) -> None:
        self._header_timer = None
        if self.session is None and self.transport is not None:
            log.warning("AGI: no complete agi_* block from %s within %.1f s; closing", self._peer(),
                        self._server.header_timeout)
            _shut(self.transport, abort=True)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._connections.discard(self)
        for timer in (self._header_timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._idle_timer = None
        if self.session is not None:
            self.session._on_connection_lost()
        else:
            # A bare connect-and-close (health check, port scan), header timeout or junk: nothing ran.
            self._server.connections_dropped += 1

    def _peer(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"


class AGIServer:
    """Accepts Asterisk's FastAGI connections and runs the handler routed by agi_network_script's path."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4573, *, header_timeout: float = 5.0,
                 idle_timeout: float = 600.0, command_timeout: float = 120.0,
                 exec_timeout: float = DEFAULT_EXEC_TIMEOUT, backlog: int = 4096, max_line: int = MAX_LINE,
                 latency_samples: int = 4096) -> None:
        self.host = host
        self.port = port
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.command_timeout = command_timeout
        self.exec_timeout = exec_timeout
        self.backlog = backlog
        self.max_line = max_line
        self.active_sessions = 0
        self.sessions_completed = 0
        self.sessions_failed = 0
        self.sessions_idle_closed = 0
        self.connections_dropped = 0  # closed before a complete agi_* block (connect-and-close, timeout, junk)
        # Seconds from a command written to its reply parsed; the newest `latency_samples` only.
        self.command_latencies: collections.deque[float] = collections.deque(maxlen=latency_samples)
        self._routes: dict[str, Handler] = {}
        self._default: Handler | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[_AGIConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def route(self, script: str, handler: Handler) -> None:
        self._routes[normalise_script(script)] = handler

    def set_default(self, handler: Handler | None) -> None:
        self._default = handler

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _AGIConnection(self), self.host, self.port,
                                                backlog=self.backlog, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("FastAGI server listening on %s:%d", self.host, self.port)

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop listening, close every session (their flows see AGIHangup or are cancelled), wait for them."""
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            if conn.session is not None:
                conn.session._close(abort=True)
            elif conn.transport is not None:
                _shut(conn.transport, abort=True)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=timeout)
            if pending:
                log.warning("FastAGI stop: %d session tasks did not finish in %.1f s", len(pending), timeout)
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), timeout)
            except TimeoutError:
                log.warning("FastAGI stop: listener did not close in %.1f s", timeout)
            self._server = None

    def _handler_for(self, script: str) -> Handler | None:
        return self._routes.get(script, self._default)

    def _record_latency(self, seconds: float) -> None:
        self.command_latencies.append(seconds)

    async def _run_session(self, session: AGISession, handler: Handler | None, conn: _AGIConnection) -> None:
        self.active_sessions += 1
        request = session.request
        try:
            if handler is None:
                log.warning("AGI: no handler for script %r (channel %s); closing", request.script, request.channel)
                try:
                    await session.verbose(f"contactd: no handler for AGI script {request.script}", 1)
                except AGIError:
                    pass
                self.sessions_failed += 1
                return
            await handler(session)
        except AGIHangup as exc:
            # The flow let the hangup propagate: an ordinary end of call, not a failure.
            log.debug("%r ended by hangup: %s", session, exc)
            self.sessions_completed += 1
        except asyncio.CancelledError:
            self.sessions_failed += 1
            raise
        except Exception:
            log.exception("AGI handler for %r failed", session)
            self.sessions_failed += 1
        else:
            self.sessions_completed += 1
        finally:
            self.active_sessions -= 1
            # Asterisk keeps the channel (and its CDR) until we close: close as soon as the flow is done.
            session._close()
