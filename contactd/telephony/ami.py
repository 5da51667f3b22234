"""AMI (Asterisk Manager Interface): a sans-IO parser/encoder and an asyncio client that keeps one link alive.

Facts this module relies on (see /work/shared/asterisk-traces/ami-*.txt, Asterisk 22):

- on connect Asterisk sends the banner ``Asterisk Call Manager/11.0.0\\r\\n`` (the AMI protocol version, not
  the Asterisk version) with no blank line after it; then messages of ``Key: Value\\r\\n`` lines, each ended
  by an empty line; responses and events interleave on one socket;
- keys repeat (``Output`` for Command, ``ChanVariable``, ``Variable``): every value is kept, in order;
- responses echo ``ActionID`` only when the request had one; list actions answer ``EventList: start`` and
  end with an event carrying ``EventList: Complete`` (the case differs: compare case-insensitively);
- a failed Login is answered ~1 s later and then the socket is closed; ``Event: Shutdown`` precedes a
  clean stop/restart, a SIGKILL is a bare EOF; right after a restart a connect may be reset before the
  banner and then refused for a while.

UTF-8 is decoded per complete message, never per read, so a Hangul caller name split across two TCP reads
arrives whole.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import itertools
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

BANNER_PREFIX = "Asterisk Call Manager/"
DEFAULT_MAX_MESSAGE = 1 << 20


# --------------------------------------------------------------------------------------------------- errors


class AMIError(Exception):
    """Base class of every AMI failure."""


class AMIProtocolError(AMIError):
    """The peer sent something we refuse to buffer or understand (e.g. a message over the size limit)."""

    def __init__(self, message: str, messages: list[AMIMessage] | None = None) -> None:
        super().__init__(message)
        # Whole messages parsed from the same feed before the fault: the caller may still dispatch them.
        self.messages: list[AMIMessage] = messages or []


class AMIConnectionError(AMIError):
    """Not connected, or the link dropped while an action was waiting for its response."""


class AMITimeoutError(AMIError, TimeoutError):
    """No response (or connection) within the allowed time."""


class AMIAuthError(AMIError):
    """Login (or the MD5 challenge) was refused."""


class AMIActionError(AMIError):
    """Asterisk answered ``Response: Error``; `response` is the whole message."""

    def __init__(self, message: str, response: AMIMessage) -> None:
        super().__init__(message)
        self.response = response


# ------------------------------------------------------------------------------------------------- messages


class AMIMessage:
    """One AMI message (response or event): ordered header pairs, keys may repeat, lookups case-insensitive.

    Messages from the parser keep their raw UTF-8 bytes and decode/split them into headers only when someone
    asks: the stream is dominated by events nobody reads (CEL, VarSet, Newexten), routing needs just the first
    line, and a handler reads a few keys. `get` is a search in the ASCII-lower-cased bytes plus the decode of
    one value; decoding a value alone equals decoding the whole message, the separators being ASCII.
    """

    __slots__ = ("_headers", "_data", "_index", "_low")

    def __init__(self, headers: Iterable[tuple[str, str]]) -> None:
        self._headers: list[tuple[str, str]] | None = list(headers)
        self._data: bytes | None = None
        self._index: dict[str, str] | None = None
        self._low: bytes | None = None

    @classmethod
    def _from_bytes(cls, data: bytes) -> AMIMessage:
        # The parser's hot path: "Key: Value" lines joined by CRLF, no blank line, not decoded yet.
        msg = cls.__new__(cls)
        msg._data = data
        msg._headers = None
        msg._index = None
        msg._low = None
        return msg

    @property
    def headers(self) -> list[tuple[str, str]]:
        headers = self._headers
        if headers is None:
            data = self._data
            headers = self._headers = _parse_headers(data.decode("utf-8", "replace") if data else "")
        return headers

    @headers.setter
    def headers(self, value: list[tuple[str, str]]) -> None:
        self._headers = value
        self._data = None
        self._index = None
        self._low = None

    def _lookup(self) -> dict[str, str]:
        index = self._index
        if index is None:
            # Reversed, so that the first value of a repeated key is the one kept.
            index = self._index = {k.lower(): v for k, v in reversed(self.headers)}
        return index

    def get(self, key: str, default: str | None = None) -> str | None:
        low = self._low
        if low is None:
            data = self._data
            if data is None:
                return self._lookup().get(key.lower(), default)
            # b"\r\n" + the bytes with ASCII letters lower-cased, kept for the message's next lookups: a find of
            # b"\r\nkey" is then the first line starting with an ASCII key in any spelling (CEL says "UniqueID"),
            # the first line included, at the original's offset + 2. bytes.lower() is a fraction of str.lower()'s
            # cost on Hangul text and exact for ASCII keys, but for the one non-ASCII letter whose lower case is
            # ASCII (KELVIN SIGN, "k"): a message holding one gets b"", which means "split the headers".
            if data.isascii() or b"\xe2\x84\xaa" not in data:
                low = self._low = b"\r\n" + data.lower()
            else:
                low = self._low = b""
        if not low:
            return self._lookup().get(key.lower(), default)
        needles = _NEEDLES.get(key) or _needles(key)
        if needles is None:  # a key that is no plain ASCII name: compare it the Unicode way
            return self._lookup().get(key.lower(), default)
        found = low.find(needles[0])
        if found < 0:
            return default  # no line starts with the key, so no "Key: v", "Key:" or bare "Key" line either
        data = self._data
        assert data is not None
        start = found + needles[1]
        if not data.startswith(b": ", start):
            # The first line starting with the key's letters is a longer key, "Key:" or a bare "Key": let the
            # split decide (never met in Asterisk's own events for the keys contactd reads).
            return self._lookup().get(key.lower(), default)
        start += 2
        end = data.find(b"\r\n", start)
        return (data[start:] if end < 0 else data[start:end]).decode("utf-8", "replace")

    def getall(self, key: str) -> list[str]:
        lowered = key.lower()
        return [v for k, v in self.headers if k.lower() == lowered]

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    @property
    def event(self) -> str | None:
        data = self._data
        if data is not None and data.startswith(b"Event: "):
            end = data.find(b"\r\n")
            name = data[7:] if end < 0 else data[7:end]
            return _EVENT_NAMES.get(name) or _event_name(name)
        return self.get("Event")

    @property
    def response(self) -> str | None:
        return self.get("Response")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    def to_bytes(self) -> bytes:
        return "".join(f"{k}: {v}\r\n" for k, v in self.headers).encode() + b"\r\n"

    def as_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in self.headers:
            out.setdefault(key, value)
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AMIMessage) and other.headers == self.headers

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        # Never show a secret; an MD5 login Key is a hash of the secret, so hide it too.
        hide = {"secret", "key"} if "AuthType" in self else {"secret"}
        shown = [(k, "********" if k.lower() in hide else v) for k, v in self.headers]
        return f"AMIMessage({shown!r})"


# key as asked -> (b"\r\nkey", length of the key), or None for a key that
# `get` must compare the Unicode way: built once per spelling, so a lookup concatenates and lower-cases nothing.
# Bounded: keys come from code, but nothing stops a caller from asking for endless made-up ones.
_NEEDLES: dict[str, tuple[bytes, int] | None] = {}
_EVENT_NAMES: dict[bytes, str] = {}  # b"Newchannel" -> "Newchannel": one str per event name, not per event


def _needles(key: str) -> tuple[bytes, int] | None:
    # ":" or a line break in the key would match inside another line ("a: b" in "a: b: c", whose key is "a").
    if not key.isascii() or ":" in key or "\r" in key or "\n" in key:
        needles = None
    else:
        lowered = key.lower().encode("ascii")
        needles = (b"\r\n" + lowered, len(lowered))
    if len(_NEEDLES) >= 4096:
        _NEEDLES.clear()
    _NEEDLES[key] = needles
    return needles


def _event_name(name: bytes) -> str:
    text = name.decode("utf-8", "replace")
    if len(_EVENT_NAMES) >= 4096:
        _EVENT_NAMES.clear()
    _EVENT_NAMES[name] = text
    return text


def _parse_headers(text: str) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    append = headers.append
    for line in text.split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep:
            append((key, value))
        elif line:
            # "Key:" with nothing after the colon, or a line that is no header at all: keep it, never crash.
            append((line[:-1], "") if line.endswith(":") else (line, ""))
    return headers


# Matches an LF and then looks behind for its CR: the regex engine skips to each LF at C speed, which is about
# twice as fast as comparing count(b"\n") with count(b"\r\n") on a read that has none.
_BARE_LF = re.compile(rb"\n(?<!\r\n)")


class AMIParser:
    """Feed raw bytes, get whole messages. Handles the banner line, CRLF or bare LF, and a size limit.

    Internally every line ends in CRLF (bare LFs are rewritten, which the recorded Asterisk never needs), so
    framing is one bytes search for the blank line and one split per read, not per-line work; messages are
    decoded only when read.
    """

    def __init__(self, *, max_message_size: int = DEFAULT_MAX_MESSAGE, expect_banner: bool = True) -> None:
        self.max_message_size = max_message_size
        self.banner: str | None = None
        self.ami_version: str | None = None
        self._want_banner = expect_banner
        self._buf = b""  # bytes of the message still incomplete (CRLF line ends)
        self._cr_pending = False  # the last read ended in "\r": its "\n" may be in the next read

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete message (bounded by max_message_size)."""
        return len(self._buf) + self._cr_pending

    def feed(self, data: bytes) -> list[AMIMessage]:
        if self._cr_pending:
            data = b"\r" + data
            self._cr_pending = False
        if data.endswith(b"\r"):
            data = data[:-1]
            self._cr_pending = True
        if _BARE_LF.search(data) is not None:
            data = _BARE_LF.sub(b"\r\n", data)
        prev = self._buf
        buf = prev + data if prev else data
        if self._want_banner:
            newline = buf.find(b"\n")
            if newline < 0:
                self._buf = buf
                self._check_pending([])
                return []
            first = buf[: newline - 1]
            if b": " not in first:
                # Only a line that cannot be a header counts as the banner.
                self.banner = first.decode("utf-8", "replace")
                if self.banner.startswith(BANNER_PREFIX):
                    self.ami_version = self.banner[len(BANNER_PREFIX) :].strip()
                buf = buf[newline + 1 :]
                prev = b""
            self._want_banner = False
        # A message ends at a blank line; the terminator may straddle the old buffer and the new data.
        end = buf.rfind(b"\r\n\r\n", max(0, len(prev) - 3))
        if end < 0:
            self._buf = buf
            self._check_pending([])
            return []
        complete = buf[:end]
        self._buf = buf[end + 4 :]
        limit = self.max_message_size
        if len(complete) > limit and max(map(len, complete.split(b"\r\n\r\n"))) > limit:
            self._buf = b""
            self._cr_pending = False
            parts = complete.split(b"\r\n\r\n")
            before = list(itertools.takewhile(lambda p: len(p) <= limit, parts))
            raise AMIProtocolError(
                f"AMI message larger than {limit} bytes", self._messages(b"\r\n\r\n".join(before))
            )
        messages = self._messages(complete)
        self._check_pending(messages)
        return messages

    @staticmethod
    def _messages(complete: bytes) -> list[AMIMessage]:
        parts = complete.split(b"\r\n\r\n")
        make = AMIMessage._from_bytes
        if b"\r\n\r\n\r\n" not in complete and not complete.startswith(b"\r\n"):
            return [make(p) for p in parts if p]
        # Stray blank lines between messages: a part may start with CRLF or be nothing but CRLFs.
        out = []
        for part in parts:
            while part.startswith(b"\r\n"):
                part = part[2:]
            if part:
                out.append(make(part))
        return out

    def _check_pending(self, messages: list[AMIMessage]) -> None:
        if len(self._buf) > self.max_message_size:
            self._buf = b""
            self._cr_pending = False
            raise AMIProtocolError(f"AMI message larger than {self.max_message_size} bytes", messages)


def _header_value(value: object) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    if "\r" in text or "\n" in text:
        # A line break would end the header early and let the rest be read as extra headers or a new action.
        raise ValueError("AMI header values cannot contain line breaks")
    return text


def encode_action(
    action: str,
    fields: Mapping[str, object] | Sequence[tuple[str, object]] | None,
    action_id: str,
) -> bytes:
    """Serialize one action. A list/tuple value in a mapping repeats the key (``Variable``); None skips it."""
    lines = [f"Action: {_header_value(action)}\r\n"]
    if action_id:
        lines.append(f"ActionID: {_header_value(action_id)}\r\n")
    if fields:
        items: Iterable[tuple[str, object]] = fields.items() if isinstance(fields, Mapping) else fields
        for key, value in items:
            if value is None or key.lower() in ("action", "actionid"):
                continue
            name = _header_value(key)
            if ":" in name or not name:
                raise ValueError(f"invalid AMI header name {key!r}")
            if isinstance(value, list | tuple):
                lines.extend(f"{name}: {_header_value(v)}\r\n" for v in value)
            else:
                lines.append(f"{name}: {_header_value(value)}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("utf-8")


# --------------------------------------------------------------------------------------------------- client


@dataclass
class ActionResult:
    """The response to one action, plus the item events of a list action (EventList start … Complete)."""

    response: AMIMessage
    events: list[AMIMessage] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.response.response or "").lower() in ("success", "goodbye", "follows")

    @property
    def message(self) -> str | None:
        return self.response.get("Message")

    @property
    def output(self) -> list[str]:
        return self.response.getall("Output")


EventHandler = Callable[[AMIMessage], object]
DisconnectListener = Callable[[str], "Awaitable[None] | None"]


class _Pending:
    __slots__ = ("name", "future", "response", "events")

    def __init__(self, name: str, future: asyncio.Future[ActionResult]) -> None:
        self.name = name
        self.future = future
        self.response: AMIMessage | None = None  # set when a list action's "EventList: start" arrived
        self.events: list[AMIMessage] = []


class _Subscription:
    """One subscriber. Async handlers get a bounded queue and a worker task so they never stall the reader."""

    __slots__ = ("handler", "names", "is_async", "queue", "worker", "dropped", "name")

    def __init__(self, handler: EventHandler, names: tuple[str, ...], maxsize: int) -> None:
        self.handler = handler
        self.names = names
        self.is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)  # noqa: B004 - async callable objects count too
        )
        self.queue: asyncio.Queue[AMIMessage] | None = asyncio.Queue(maxsize) if self.is_async else None
        self.worker: asyncio.Task[None] | None = None
        self.dropped = 0
        self.name = getattr(handler, "__qualname__", repr(handler))


class _Link(asyncio.Protocol):
    """One TCP connection: feeds the parser from data_received, so dispatch costs no extra task or await."""

    def __init__(self, client: AMIClient, parser: AMIParser) -> None:
        loop = asyncio.get_running_loop()
        self.client = client
        self.parser = parser
        self.transport: asyncio.Transport | None = None
        self.banner: asyncio.Future[str] = loop.create_future()
        self.lost: asyncio.Future[str] = loop.create_future()
        self.reason = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.client._on_data(self, data)

    def eof_received(self) -> bool | None:
        self.reason = self.reason or "closed by Asterisk (EOF)"
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        reason = self.reason or (f"connection lost: {exc}" if exc else "closed by Asterisk (EOF)")
        self.reason = reason
        if not self.banner.done():
            self.banner.set_exception(AMIConnectionError(f"{reason} before the AMI banner"))
        if not self.lost.done():
            self.lost.set_result(reason)

    def abort(self, reason: str) -> None:
        self.reason = self.reason or reason
        if self.transport is not None:
            self.transport.abort()


class AMIClient:
    """One AMI link kept alive: login (plain or MD5), keep-alive Ping, reconnect with capped backoff.

    Actions are correlated by ActionID and never resent: when the link drops, every pending action fails at
    once with AMIConnectionError (a resent Originate would dial twice).
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        auth: str = "plain",
        ping_interval: float = 10.0,
        action_timeout: float = 10.0,
        reconnect_min_delay: float = 0.1,
        reconnect_max_delay: float = 30.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE,
    ) -> None:
        if auth not in ("plain", "md5"):
            raise ValueError("auth must be 'plain' or 'md5'")
        self.host = host
        self.port = port
        self.username = username
        self._secret = secret
        self.auth = auth
        self.ping_interval = ping_interval
        self.action_timeout = action_timeout
        self.reconnect_min_delay = reconnect_min_delay
        self.reconnect_max_delay = max(reconnect_max_delay, reconnect_min_delay)
        self.max_message_size = max_message_size

        self.connected = False
        self.ami_version: str | None = None
        self.asterisk_version: str | None = None
        self.last_error: str | None = None
        self.events_received = 0
        self.events_dropped = 0
        self.handler_errors = 0
        self.reconnects = 0
        self.logins = 0

        self._link: _Link | None = None
        self._pending: dict[str, _Pending] = {}
        self._list_pending = 0  # how many pending actions are collecting list events (skip lookups when 0)
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(4).hex()
        self._subs: list[_Subscription] = []
        self._all_subs: tuple[_Subscription, ...] = ()
        self._named_subs: dict[str, tuple[_Subscription, ...]] = {}
        # Event name as sent -> (is it Shutdown, its subscribers): one dict hit per event instead of a lower()
        # and a tuple concatenation. Emptied whenever the subscriptions change; bounded like any peer input.
        self._routes: dict[str, tuple[bool, tuple[_Subscription, ...]]] = {}
        self._connect_listeners: list[Callable[[], Awaitable[None]]] = []
        self._disconnect_listeners: list[DisconnectListener] = []
        self._tasks: set[asyncio.Task[Any]] = set()  # strong references: the loop keeps only weak ones
        self._runner: asyncio.Task[None] | None = None
        self._connected_event: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._closing = False

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<AMIClient {self.username}@{self.host}:{self.port} {state}>"

    # ------------------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the connect loop in the background and return at once."""
        if self._runner is not None:
            return
        self._closing = False
        self._connected_event = asyncio.Event()
        self._wake = asyncio.Event()
        for sub in self._subs:
            self._start_worker(sub)
        self._runner = asyncio.create_task(self._run(), name=f"ami-{self.host}:{self.port}")

    async def wait_connected(self, timeout: float) -> None:
        """Wait until logged in; AMITimeoutError if that takes longer than `timeout` seconds."""
        if self.connected:
            return
        if self._connected_event is None:
            raise AMIConnectionError("AMIClient.start() was not called")
        try:
            async with asyncio.timeout(timeout):
                while not self.connected:
                    await self._connected_event.wait()
                    if not self.connected:
                        await asyncio.sleep(0)
        except TimeoutError:
            detail = f" (last error: {self.last_error})" if self.last_error else ""
            raise AMITimeoutError(f"AMI not connected within {timeout}s{detail}") from None

    async def close(self) -> None:
        """Log off (briefly), drop the link, stop every task we started."""
        self._closing = True
        link = self._link
        if link is not None and self.connected and link.transport is not None:
            try:
                await self._send(link, "Logoff", None, timeout=min(1.0, self.action_timeout))
            except (AMIError, OSError):
                pass
            link.abort("closed by contactd")
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            await asyncio.wait([runner], timeout=5)
        self._fail_pending("AMI client closed")
        self.connected = False
        tasks = list(self._tasks) + [s.worker for s in self._subs if s.worker is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        for sub in self._subs:
            sub.worker = None

    # ------------------------------------------------------------------------------------------- actions

    async def action(
        self,
        name: str,
        fields: Mapping[str, object] | Sequence[tuple[str, object]] | None = None,
        *,
        timeout: float | None = None,
        raise_on_error: bool = True,
    ) -> ActionResult:
        """Send one action and wait for its response (and, for list actions, every item event)."""
        link = self._link
        if not self.connected or link is None:
            raise AMIConnectionError(f"AMI not connected: cannot send {name}")
        return await self._send(link, name, fields, timeout=timeout, raise_on_error=raise_on_error)

    async def command(self, cli: str, *, timeout: float | None = None) -> list[str]:
        """Run a CLI command; its output lines. A failing command raises AMIActionError."""
        result = await self.action("Command", {"Command": cli}, timeout=timeout)
        return result.output

    async def _send(
        self,
        link: _Link,
        name: str,
        fields: Mapping[str, object] | Sequence[tuple[str, object]] | None,
        *,
        timeout: float | None = None,
        raise_on_error: bool = True,
    ) -> ActionResult:
        action_id = f"{self._id_prefix}-{next(self._ids)}"
        data = encode_action(name, fields, action_id)
        transport = link.transport
        if transport is None or transport.is_closing():
            raise AMIConnectionError(f"AMI link is closing: cannot send {name}")
        future: asyncio.Future[ActionResult] = asyncio.get_running_loop().create_future()
        pending = _Pending(name, future)
        self._pending[action_id] = pending
        wait = self.action_timeout if timeout is None else timeout
        try:
            transport.write(data)
            async with asyncio.timeout(wait):
                result = await future
        except TimeoutError:
            raise AMITimeoutError(f"AMI {name} not answered within {wait}s") from None
        finally:
            if self._pending.pop(action_id, None) is not None and pending.response is not None:
                self._list_pending -= 1
        if raise_on_error and (result.response.response or "").lower() == "error":
            raise AMIActionError(result.message or f"{name} failed", result.response)
        return result

    def _fail_pending(self, reason: str) -> None:
        pending, self._pending = self._pending, {}
        self._list_pending = 0
        for item in pending.values():
            if not item.future.done():
                item.future.set_exception(AMIConnectionError(f"{reason} while waiting for {item.name}"))

    # ------------------------------------------------------------------------------------------- events

    def subscribe(self, handler: EventHandler, *event_names: str, maxsize: int = 10000) -> Callable[[], None]:
        """Call `handler` for every event named in `event_names` (none = all). Returns an unsubscribe function.

        Sync handlers run inline in the reader (their exceptions are caught, counted and logged); async ones
        get a bounded queue and their own worker task (overflow is dropped, counted and logged).
        """
        sub = _Subscription(handler, tuple(n.lower() for n in event_names), maxsize)
        self._subs.append(sub)
        self._rebuild_routes()
        if self._runner is not None:
            self._start_worker(sub)

        def unsubscribe() -> None:
            if sub in self._subs:
                self._subs.remove(sub)
                self._rebuild_routes()
            if sub.worker is not None:
                sub.worker.cancel()
                sub.worker = None

        return unsubscribe

    def add_connect_listener(self, cb: Callable[[], Awaitable[None]]) -> None:
        """Run `cb()` as a task after every successful (re)login (re-sync state lost while disconnected)."""
        self._connect_listeners.append(cb)

    def add_disconnect_listener(self, cb: DisconnectListener) -> None:
        """Call `cb(reason)` whenever a logged-in link is lost."""
        self._disconnect_listeners.append(cb)

    def _rebuild_routes(self) -> None:
        self._all_subs = tuple(s for s in self._subs if not s.names)
        named: dict[str, list[_Subscription]] = {}
        for sub in self._subs:
            for name in sub.names:
                named.setdefault(name, []).append(sub)
        self._named_subs = {k: tuple(v) for k, v in named.items()}
        self._routes = {}

    def _route(self, name: str) -> tuple[bool, tuple[_Subscription, ...]]:
        lowered = name.lower()
        named = self._named_subs.get(lowered)
        route = (lowered == "shutdown", self._all_subs + named if named else self._all_subs)
        if len(self._routes) >= 1024:
            self._routes = {}
        self._routes[name] = route
        return route

    def _start_worker(self, sub: _Subscription) -> None:
        if sub.is_async and sub.worker is None:
            sub.worker = asyncio.create_task(self._worker(sub), name=f"ami-sub-{sub.name}")

    async def _worker(self, sub: _Subscription) -> None:
        queue = sub.queue
        assert queue is not None
        while True:
            message = await queue.get()
            try:
                await sub.handler(message)  # type: ignore[misc]
            except asyncio.CancelledError:
                raise
            except Exception:
                self.handler_errors += 1
                log.exception("AMI event handler %s failed on %s", sub.name, message.event)

    def _on_data(self, link: _Link, data: bytes) -> None:
        if link is not self._link:
            return
        try:
            messages = link.parser.feed(data)
        except AMIProtocolError as exc:
            messages = exc.messages
            log.error("AMI protocol error from %s:%s: %s; dropping the link", self.host, self.port, exc)
            self.last_error = str(exc)
            link.abort(f"protocol error: {exc}")
        if not link.banner.done() and (link.parser.banner is not None or messages):
            link.banner.set_result(link.parser.banner or "")
        on_event = self._on_event
        for message in messages:
            try:
                name = message.event
                if name is None:
                    self._on_response(message)
                elif not (self._list_pending and self._collect(message)):
                    on_event(link, message, name)
            except Exception:
                # Nothing in one message may stop the rest of this read from being dispatched.
                log.exception("AMI dispatch failed for %r", message.event)

    def _collect(self, message: AMIMessage) -> bool:
        """Take an item (or the closing) event of a pending list action; False if it belongs to none."""
        action_id = message.get("ActionID")
        pending = self._pending.get(action_id) if action_id else None
        if pending is None or pending.response is None:
            return False
        if (message.get("EventList") or "").lower() in ("complete", "cancelled"):
            if not pending.future.done():
                pending.future.set_result(ActionResult(pending.response, pending.events))
        else:
            pending.events.append(message)
        return True

    def _on_response(self, message: AMIMessage) -> None:
        if message.response is None:
            log.debug("AMI message that is neither event nor response: %r", message)
            return
        action_id = message.get("ActionID")
        pending = self._pending.get(action_id) if action_id else None
        if pending is None:
            log.debug("AMI response for no pending action (ActionID %r)", action_id)
            return
        if pending.response is None and (message.get("EventList") or "").lower() == "start":
            pending.response = message
            self._list_pending += 1
            return
        if not pending.future.done():
            pending.future.set_result(ActionResult(message))

    def _on_event(self, link: _Link, message: AMIMessage, name: str) -> None:
        self.events_received += 1
        shutdown, subs = self._routes.get(name) or self._route(name)
        if shutdown:
            log.warning(
                "Asterisk is shutting down (%s, restart %s)", message.get("Shutdown"), message.get("Restart")
            )
            self.connected = False
            if self._connected_event is not None:
                self._connected_event.clear()
            link.reason = "Asterisk shut down"
            # Asterisk closes the socket itself right after; closing our side too makes sure we reconnect.
            asyncio.get_running_loop().call_soon(link.abort, "Asterisk shut down")
        for sub in subs:
            queue = sub.queue
            if queue is None:
                try:
                    sub.handler(message)
                except Exception:
                    self.handler_errors += 1
                    log.exception("AMI event handler %s failed on %s", sub.name, name)
                continue
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                sub.dropped += 1
                self.events_dropped += 1
                if sub.dropped == 1 or sub.dropped % 1000 == 0:
                    log.warning("AMI subscriber %s is too slow: %d events dropped", sub.name, sub.dropped)

    # ------------------------------------------------------------------------------------- connect loop

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("AMI listener task %s failed", task.get_name(), exc_info=task.exception())

    async def _run(self) -> None:
        delay = self.reconnect_min_delay
        while not self._closing:
            logged_in = False
            try:
                logged_in = await self._session()
            except asyncio.CancelledError:
                raise
            except AMIAuthError as exc:
                self.last_error = str(exc)
                log.error("AMI login to %s:%s as %r refused: %s", self.host, self.port, self.username, exc)
                # Asterisk delays a failed login by ~1 s anyway; never retry a wrong secret faster than that.
                delay = max(delay, 1.0)
            except (OSError, AMIError, TimeoutError) as exc:
                self.last_error = str(exc) or type(exc).__name__
                log.warning("AMI connection to %s:%s failed: %s", self.host, self.port, self.last_error)
            except Exception:
                self.last_error = "unexpected error"
                log.exception("AMI connect loop error")
            if self._closing:
                break
            if logged_in:
                delay = self.reconnect_min_delay
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max_delay)

    async def _session(self) -> bool:
        """Connect, log in, serve until the link drops. Returns True when the login had succeeded."""
        loop = asyncio.get_running_loop()
        parser = AMIParser(max_message_size=self.max_message_size)
        link = _Link(self, parser)
        self._link = link
        logged_in = False
        try:
            async with asyncio.timeout(self.action_timeout):
                await loop.create_connection(lambda: link, self.host, self.port)
                await link.banner
            self.ami_version = parser.ami_version
            await self._login(link)
            logged_in = True
            await self._probe_version(link)
            self._mark_connected(link)
            pinger = asyncio.create_task(self._pinger(link), name="ami-ping")
            self._tasks.add(pinger)
            pinger.add_done_callback(self._tasks.discard)
            try:
                reason = await link.lost
            finally:
                pinger.cancel()
            if not self._closing:
                log.warning("AMI link to %s:%s lost: %s", self.host, self.port, reason)
                self.last_error = reason
            return True
        except TimeoutError:
            raise AMITimeoutError(
                f"no {'login answer' if link.banner.done() else 'AMI banner'} within {self.action_timeout}s"
            ) from None
        finally:
            was_connected = self.connected
            self.connected = False
            if self._connected_event is not None:
                self._connected_event.clear()
            link.abort("session ended")
            self._fail_pending("AMI link lost")
            if was_connected or (logged_in and not self._closing):
                self._notify_disconnect(link.reason or "link lost")

    async def _login(self, link: _Link) -> None:
        if self.auth == "md5":
            challenge = await self._send(link, "Challenge", {"AuthType": "MD5"}, raise_on_error=False)
            if not challenge.ok or not challenge.response.get("Challenge"):
                raise AMIAuthError(challenge.message or "MD5 challenge refused")
            key = hashlib.md5((challenge.response["Challenge"] + self._secret).encode()).hexdigest()
            fields: dict[str, object] = {"AuthType": "MD5", "Username": self.username, "Key": key}
        else:
            fields = {"Username": self.username, "Secret": self._secret}
        try:
            result = await self._send(link, "Login", fields, raise_on_error=False)
        except AMIConnectionError as exc:
            raise AMIAuthError(f"link closed during login ({exc})") from None
        if not result.ok:
            raise AMIAuthError(result.message or "login refused")

    async def _probe_version(self, link: _Link) -> None:
        timeout = min(self.action_timeout, 5.0)
        try:
            settings = await self._send(link, "CoreSettings", None, timeout=timeout, raise_on_error=False)
            version = settings.response.get("AsteriskVersion") if settings.ok else None
            if not version:
                out = await self._send(link, "Command", {"Command": "core show version"}, timeout=timeout)
                # "Asterisk 22.10.1 built by root @ vm on a x86_64 running Linux ..."
                words = " ".join(out.output).split()
                version = words[1] if len(words) > 1 and words[0] == "Asterisk" else None
            self.asterisk_version = version
        except (AMIActionError, AMITimeoutError) as exc:
            log.info("could not read the Asterisk version: %s", exc)

    def _mark_connected(self, link: _Link) -> None:
        self.connected = True
        self.last_error = None
        self.logins += 1
        if self.logins > 1:
            self.reconnects += 1
        log.info(
            "AMI connected to %s:%s as %r (AMI %s, Asterisk %s)",
            self.host,
            self.port,
            self.username,
            self.ami_version,
            self.asterisk_version,
        )
        if self._connected_event is not None:
            self._connected_event.set()
        for cb in self._connect_listeners:
            self._spawn(cb(), f"ami-on-connect-{getattr(cb, '__qualname__', 'listener')}")

    def _notify_disconnect(self, reason: str) -> None:
        for cb in self._disconnect_listeners:
            try:
                result = cb(reason)
            except Exception:
                log.exception("AMI disconnect listener failed")
                continue
            if inspect.isawaitable(result):
                self._spawn(result, "ami-on-disconnect")

    async def _pinger(self, link: _Link) -> None:
        while not link.lost.done():
            await asyncio.sleep(self.ping_interval)
            try:
                await self._send(link, "Ping", None, timeout=self.action_timeout, raise_on_error=False)
            except AMITimeoutError:
                log.warning(
                    "AMI Ping to %s:%s not answered within %ss: half-open link, reconnecting",
                    self.host,
                    self.port,
                    self.action_timeout,
                )
                link.abort("keep-alive Ping not answered")
                return
            except AMIConnectionError:
                return
