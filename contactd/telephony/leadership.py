"""Which node owns an Asterisk's AMI event stream: exactly one at a time when several contactd nodes share it.

Every node keeps its AMI link (panel actions need it) and its call tracker folds every event (call control
needs live calls everywhere), but only the *leader* publishes ``call.*`` events and writes CDRs; otherwise
each node would pop every screen once per node and start one MixMonitor per node.

``SingleNode`` is always the leader (in-process bus: there is no one else). ``RedisLeadership`` holds a Redis
lease: ``SET key <node id> NX PX ttl`` to acquire, a compare-and-pexpire script every ttl/3 to renew, a
compare-and-delete to release. Anything unexpected while leading — the key gone or owned by someone else,
Redis unreachable, a renewal that did not answer in time — makes the node step down at once: better no
leader for a moment than two. A follower tries to acquire every ttl/3, so a dead leader's lease is taken over
within ttl + ttl/3.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

KEY_PREFIX = "contactd:ami-owner:"
DEFAULT_TTL = 10.0
CALLBACK_TIMEOUT = 30.0

# Extend the lease only while it is still ours: a plain PEXPIRE after our lease ran out would extend
# the new owner's lease on our say-so.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

ChangeCallback = Callable[[bool], Awaitable[None] | None]


def owner_key(ami_host: str, ami_port: int) -> str:
    """The lock key for one Asterisk: nodes pointed at different PBXs never compete."""
    return f"{KEY_PREFIX}{ami_host}:{ami_port}"


class Leadership:
    """The interface: `is_leader`, `start()`, `stop()` (releases), `on_change(callback)`.

    Callbacks get the new value and run in their own task (they may be coroutines), so a slow re-sync on
    promotion never delays the lease renewal that keeps this node the leader.
    """

    def __init__(self) -> None:
        self.is_leader = False
        self._callbacks: list[ChangeCallback] = []
        self._callback_tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        await self._drain_callbacks()

    def on_change(self, callback: ChangeCallback) -> None:
        self._callbacks.append(callback)

    def _set(self, leader: bool) -> None:
        if leader == self.is_leader:
            return
        self.is_leader = leader
        for callback in list(self._callbacks):
            task = asyncio.create_task(self._run_callback(callback, leader), name="leadership-callback")
            self._callback_tasks.add(task)
            task.add_done_callback(self._callback_tasks.discard)

    async def _run_callback(self, callback: ChangeCallback, leader: bool) -> None:
        try:
            result = callback(leader)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                await asyncio.wait_for(result, CALLBACK_TIMEOUT)
        except Exception:
            log.exception("leadership: change callback %r failed", callback)

    async def _drain_callbacks(self) -> None:
        tasks = list(self._callback_tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class SingleNode(Leadership):
    """One node with the in-process bus: always the leader; never changes, so callbacks never run."""

    def __init__(self) -> None:
        super().__init__()
        self.is_leader = True


class RedisLeadership(Leadership):
    """A Redis lease on `key`; see the module docstring.

    `eligible` (optional) is asked before acquiring and at every renewal: `app.py` passes "the AMI link is
    up", so a node that cannot see the event stream neither takes the lease nor keeps it.
    """

    def __init__(self, redis_url: str, key: str, *, ttl: float = DEFAULT_TTL, node_id: str | None = None,
                 eligible: Callable[[], bool] | None = None) -> None:
        super().__init__()
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.redis_url = redis_url
        self.key = key
        self.ttl = ttl
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self.eligible = eligible
        self.interval = ttl / 3
        self.acquisitions = 0  # times this node became the leader
        self._redis: Any = None
        self._loop_task: asyncio.Task[None] | None = None
        # Monotonic time our lease surely lasts until (measured from *before* the command was sent).
        self._lease_until = 0.0
        self._warned_unreachable = False
        self._wake = asyncio.Event()

    def __repr__(self) -> str:
        role = "leader" if self.is_leader else "follower"
        return f"<RedisLeadership {self.key} node={self.node_id} {role}>"

    async def start(self) -> None:
        import redis.asyncio as aioredis

        # Socket timeouts below the renew interval: a hung Redis is noticed before our lease could run out.
        self._redis = aioredis.from_url(self.redis_url, decode_responses=True, socket_timeout=self.interval,
                                        socket_connect_timeout=self.interval)
        await self._tick()  # the first node up leads at once instead of one interval later
        self._loop_task = asyncio.create_task(self._run(), name="leadership")

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._loop_task
            self._loop_task = None
        was_leader = self.is_leader
        self._step_down(None)  # first: nothing may act as leader while the lease is being handed back
        if self._redis is not None:
            # Compare-and-delete even when we think we are not leading: a SET NX cancelled mid-flight may
            # have made us the owner without our knowing; the comparison keeps anyone else's lease safe.
            try:
                deleted = await asyncio.wait_for(self._redis.eval(_RELEASE, 1, self.key, self.node_id),
                                                 self.interval)
                if deleted:
                    log.info("leadership: %s released %s", self.node_id, self.key)
            except Exception as exc:  # the lease then simply expires after ttl
                if was_leader:
                    log.warning("leadership: releasing %s failed (%s); it expires within %.0fs", self.key,
                                type(exc).__name__, self.ttl)
        await super().stop()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
            self._redis = None

    def nudge(self, *_: Any) -> None:
        """Re-check now instead of at the next interval (`app.py`: on AMI connect and disconnect)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._sleep_for())
            self._wake.clear()
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one odd failure end the loop: that would freeze us as leader
                log.exception("leadership: tick failed")
                self._step_down("unexpected error")

    def _sleep_for(self) -> float:
        if not self.is_leader:
            return self.interval
        # Renew on schedule but never later than a third of what is left of the lease.
        left = self._lease_until - time.monotonic()
        return max(0.0, min(self.interval, left / 3))

    async def _tick(self) -> None:
        if self.is_leader and time.monotonic() >= self._lease_until:
            self._step_down("lease ran out before it could be renewed")
        eligible = self.eligible() if self.eligible is not None else True
        if self.is_leader:
            if not eligible:
                await self._release("not eligible any more (AMI link down)")
                return
            await self._renew()
        elif eligible:
            await self._acquire()

    async def _acquire(self) -> None:
        sent_at = time.monotonic()
        try:
            got = await asyncio.wait_for(
                self._redis.set(self.key, self.node_id, nx=True, px=int(self.ttl * 1000)), self.interval)
        except Exception as exc:
            self._unreachable(exc)
            return
        self._warned_unreachable = False
        if got:
            self._lease_until = sent_at + self.ttl
            self.acquisitions += 1
            log.info("leadership: %s now owns %s (AMI events, CDRs)", self.node_id, self.key)
            self._set(True)

    async def _renew(self) -> None:
        sent_at = time.monotonic()
        try:
            ok = await asyncio.wait_for(
                self._redis.eval(_RENEW, 1, self.key, self.node_id, int(self.ttl * 1000)), self.interval)
        except Exception as exc:
            self._unreachable(exc)
            self._step_down("renewal failed")
            return
        if ok:
            self._lease_until = sent_at + self.ttl
        else:
            self._step_down("the lease is gone or owned by another node")

    async def _release(self, reason: str) -> None:
        self._step_down(reason)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._redis.eval(_RELEASE, 1, self.key, self.node_id), self.interval)

    def _step_down(self, reason: str | None) -> None:
        if self.is_leader and reason:
            log.warning("leadership: %s steps down from %s: %s", self.node_id, self.key, reason)
        self._lease_until = 0.0
        self._set(False)

    def _unreachable(self, exc: BaseException) -> None:
        # Logged once per outage; the exception text never carries the URL's password.
        if not self._warned_unreachable:
            log.warning("leadership: Redis unreachable for %s (%s)", self.key, type(exc).__name__)
            self._warned_unreachable = True


def make_leadership(redis_url: str, ami_host: str, ami_port: int, *, ttl: float = DEFAULT_TTL,
                    node_id: str | None = None, eligible: Callable[[], bool] | None = None) -> Leadership:
    """RedisLeadership when a Redis URL is configured (several nodes), SingleNode otherwise."""
    if not redis_url:
        return SingleNode()
    return RedisLeadership(redis_url, owner_key(ami_host, ami_port), ttl=ttl, node_id=node_id, eligible=eligible)


__all__ = ["Leadership", "SingleNode", "RedisLeadership", "make_leadership", "owner_key", "KEY_PREFIX",
           "DEFAULT_TTL"]
