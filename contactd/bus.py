"""The event bus: domain events (`call.ringing`, `call.ended`, ...) from producers to any number of consumers.

One interface, two transports: in-process (default) and Redis pub/sub (several nodes). Every subscriber
has its own bounded queue, so a consumer that stops reading (a browser tab gone to sleep) loses its own
oldest events — counted and logged — and never blocks the publisher or the other subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "contactd:"


@dataclass(frozen=True)
class BusEvent:
    topic: str
    payload: dict[str, Any]
    origin: str = ""  # id of the node that published it


@dataclass(eq=False)
class Subscription:
    """A bounded queue of events whose topic matches one of `patterns` (fnmatch, e.g. `call.*`)."""

    patterns: tuple[str, ...]
    maxsize: int
    name: str = ""
    dropped: int = 0
    _queue: asyncio.Queue[BusEvent | None] = field(init=False)
    _bus: Bus | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.maxsize)

    def matches(self, topic: str) -> bool:
        return any(fnmatch.fnmatchcase(topic, pattern) for pattern in self.patterns)

    def offer(self, event: BusEvent) -> None:
        """Enqueue without ever waiting; on overflow drop the oldest event and count it."""
        if self._queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning("bus subscriber %s is not keeping up: %d events dropped", self.name or self.patterns,
                            self.dropped)
        self._queue.put_nowait(event)

    async def get(self, timeout: float | None = None) -> BusEvent:
        event = await asyncio.wait_for(self._queue.get(), timeout)
        if event is None:
            raise StopAsyncIteration
        return event

    def get_nowait(self) -> BusEvent | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def __aiter__(self) -> AsyncIterator[BusEvent]:
        return self

    async def __anext__(self) -> BusEvent:
        return await self.get()

    def close(self) -> None:
        if self._bus is not None:
            self._bus.unsubscribe(self)
            self._bus = None
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Bus:
    """In-process bus; `RedisBus` extends it to several nodes."""

    def __init__(self, *, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self.node_id = uuid.uuid4().hex[:12]
        self._subscriptions: list[Subscription] = []

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        for sub in list(self._subscriptions):
            sub.close()

    async def ping(self) -> bool:
        return True

    def subscribe(self, *patterns: str, maxsize: int | None = None, name: str = "") -> Subscription:
        sub = Subscription(patterns or ("*",), maxsize or self.queue_size, name)
        sub._bus = self
        self._subscriptions.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        self._deliver(BusEvent(topic, payload, self.node_id))

    def _deliver(self, event: BusEvent) -> None:
        for sub in list(self._subscriptions):
            if sub.matches(event.topic):
                sub.offer(event)


class RedisBus(Bus):
    """Publishes on Redis pub/sub; every node (this one included) delivers what it reads back from Redis."""

    def __init__(self, url: str, *, queue_size: int = 1000) -> None:
        super().__init__(queue_size=queue_size)
        self.url = url
        self._redis: Any = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(self.url, decode_responses=False, health_check_interval=15)
        await self._redis.ping()
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=False)
        await self._pubsub.psubscribe(CHANNEL_PREFIX + "*")
        self._reader = asyncio.create_task(self._read_loop(), name="redis-bus-reader")
        await asyncio.wait_for(self._ready.wait(), 5)

    async def _read_loop(self) -> None:
        backoff = 0.1
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection dropped: redis-py reconnects on the next call
                log.warning("redis bus read failed: %s; retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if message is None:
                continue
            if message["type"] == "psubscribe":
                self._ready.set()
                continue
            if message["type"] != "pmessage":
                continue
            try:
                body = json.loads(message["data"])
                event = BusEvent(body["topic"], body["payload"], body.get("origin", ""))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("redis bus: ignoring malformed message: %s", exc)
                continue
            self._deliver(event)

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        body = json.dumps({"topic": topic, "payload": payload, "origin": self.node_id}, ensure_ascii=False,
                          default=str)
        await self._redis.publish(CHANNEL_PREFIX + topic, body)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except Exception:
            return False

    async def close(self) -> None:
        await super().close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()


class BusConsumer:
    """Feeds every event matching `patterns` to `handle`, in its own task over its own bounded subscription.

    A handler that raises loses only that event (logged); the others keep coming. Features that react to the bus
    (recordings, harassment, the panel's screen-pop and inbox hubs) each own one of these.
    """

    def __init__(self, bus: Bus, *patterns: str, handle: Callable[[BusEvent], Awaitable[None]], name: str,
                 maxsize: int | None = None) -> None:
        self.bus = bus
        self.patterns = patterns
        self.handle = handle
        self.name = name
        self.maxsize = maxsize
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sub = self.bus.subscribe(*self.patterns, maxsize=self.maxsize, name=self.name)
        self._task = asyncio.create_task(self._run(self._sub), name=f"bus-consumer-{self.name}")

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Handle what is already queued (a call that ended during shutdown still gets its recording measured),
        then end; a handler stuck past `drain_timeout` is cancelled."""
        if self._sub is not None:
            self._sub.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, drain_timeout)
        self._sub = self._task = None

    async def _run(self, sub: Subscription) -> None:
        async for event in sub:
            try:
                await self.handle(event)
            except Exception:
                log.exception("%s: handling %s failed", self.name, event.topic)


def make_bus(redis_url: str = "", *, queue_size: int = 1000) -> Bus:
    return RedisBus(redis_url, queue_size=queue_size) if redis_url else Bus(queue_size=queue_size)
