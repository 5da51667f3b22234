"""Wiring: the one place that builds every service from the config and starts them in order.

Order matters: database (migrated) → bus → simulator (when no PBX is configured) → AMI client, PBX actions and the
call tracker → feature services → FastAGI server → web panel → AMI link. Stopping runs it backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import secrets
from pathlib import Path

from aiohttp import web

from .bus import make_bus
from .config import Config
from .crm.blacklist import BlacklistService
from .crm.business_hours import BusinessHours
from .crm.call_control import CallControlService
from .crm.callbacks import CallbackService
from .crm.harassment import HarassmentService
from .crm.recordings import RecordingService
from .crm.sms import SmsService, SmsTemplateService
from .crm.sms_gateways import make_gateway
from .ivr.inbound import InboundFlow
from .panel.app import create_panel_app
from .services import Services
from .store.db import Database
from .telephony.agi import AGIServer
from .telephony.ami import AMIClient
from .telephony.calls import CallTracker
from .telephony.leadership import RedisLeadership, make_leadership
from .telephony.pbx import PBX

log = logging.getLogger(__name__)


class Daemon:
    def __init__(self, config: Config) -> None:
        # The simulator rewrites [ami] to point at itself; keep the caller's object untouched.
        self.config = copy.deepcopy(config)
        self.services: Services | None = None
        self.web_port = 0
        self.agi_port = 0
        self._runner: web.AppRunner | None = None
        self._sim_server = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self.leadership = None  # telephony.leadership.Leadership, set in start()

    async def start(self) -> None:
        config = self.config
        db = Database(config.db.url)
        await db.migrate()
        bus = make_bus(config.bus.redis_url, queue_size=config.bus.queue_size)
        await bus.start()
        services = Services(config=config, db=db, bus=bus)
        self.services = services
        await asyncio.to_thread(Path(config.recordings.dir).mkdir, parents=True, exist_ok=True)

        if config.uses_simulator:
            from .simulator.ami_server import SimulatedAMIServer

            secret = secrets.token_urlsafe(16)
            self._sim_server = SimulatedAMIServer(username=config.ami.username, secret=secret, port=0)
            await self._sim_server.start()
            config.ami.host, config.ami.port, config.ami.secret = "127.0.0.1", self._sim_server.port, secret

        ami = AMIClient(config.ami.host, config.ami.port, config.ami.username, config.ami.secret,
                        auth=config.ami.auth, ping_interval=config.ami.ping_interval,
                        action_timeout=config.ami.action_timeout,
                        reconnect_max_delay=config.ami.reconnect_max_delay)
        services.ami = ami
        services.pbx = PBX(ami, config.pbx)
        self.leadership = self._build_leadership(ami, bus.node_id)
        services.extra["leadership"] = self.leadership
        services.tracker = CallTracker(ami, bus, db, config.pbx, leadership=self.leadership,
                                       cdr_spool=config.db.cdr_spool)
        await services.tracker.start()
        await self.leadership.start()

        self._build_features(services)
        await self._start_features(services)

        agi = AGIServer(config.agi.host, config.agi.port, header_timeout=config.agi.header_timeout,
                        idle_timeout=config.agi.idle_timeout)
        agi.route("inbound", InboundFlow(services))
        await agi.start()
        services.agi = agi
        self.agi_port = agi.port

        if self._sim_server is not None:
            from .simulator.pbx import SimulatedPBX

            services.simulator = SimulatedPBX(self._sim_server, agi_host=config.agi.host, agi_port=agi.port,
                                              recordings_dir=Path(config.recordings.dir), config=config.pbx)

        self._runner = web.AppRunner(create_panel_app(services), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, config.web.host, config.web.port)
        await site.start()
        self.web_port = self._runner.addresses[0][1]

        await ami.start()
        if self._sim_server is not None:
            with contextlib.suppress(Exception):
                await ami.wait_connected(5)
            if config.simulator.call_interval > 0:
                from .simulator.demo import run_demo_calls

                self._spawn(run_demo_calls(services.simulator, interval=config.simulator.call_interval,
                                           stop=self._stop))

    def _build_leadership(self, ami, node_id: str):  # type: ignore[no-untyped-def]
        """Several nodes (Redis bus) elect one owner of this Asterisk's AMI stream; one node always owns it."""
        config = self.config
        leadership = make_leadership(config.bus.redis_url, config.ami.host, config.ami.port,
                                     ttl=config.bus.leader_ttl, node_id=node_id, eligible=lambda: ami.connected)
        if isinstance(leadership, RedisLeadership):
            # Only a node that sees the event stream may own it: re-check at once when the link comes or goes.
            async def nudge() -> None:
                leadership.nudge()

            ami.add_connect_listener(nudge)
            ami.add_disconnect_listener(leadership.nudge)
        return leadership

    def _build_features(self, services: Services) -> None:

        config = services.config
        services.blacklist = BlacklistService(services.db, services.pbx, config.pbx)
        # AstDB is Asterisk's copy of the blacklist: re-push it on every (re)connect so blocking works offline.
        # Only the node that owns the AMI stream does it (N nodes clearing and refilling it would leave gaps).
        leadership = self.leadership

        async def push_blacklist(*_: object) -> None:
            if leadership.is_leader:
                await services.blacklist.resync_astdb()

        services.ami.add_connect_listener(push_blacklist)
        leadership.on_change(lambda leader: push_blacklist() if leader else None)
        services.hours = BusinessHours(services.db, config.hours)
        services.callbacks = CallbackService(services.db, services.bus)
        services.recordings = RecordingService(services)
        services.harassment = HarassmentService(services)
        services.call_control = CallControlService(services)
        services.extra["sms"] = SmsService(services.db, make_gateway(config.sms), config.sms, bus=services.bus)
        services.extra["sms_templates"] = SmsTemplateService(services.db)

    async def _start_features(self, services: Services) -> None:
        await services.recordings.start()
        await _maybe_await(services.harassment.start)
        if services.config.recordings.retention_days > 0:
            self._spawn(self._retention_loop(services))
        # Messages are persisted first: this loop also sends those scheduled before a restart. With several
        # nodes only the leader sends (and a message is claimed atomically before it goes out).
        self._spawn(services.extra["sms"].run(self._stop, active=lambda: self.leadership.is_leader))

    async def _retention_loop(self, services: Services, every: float = 6 * 3600) -> None:
        while not self._stop.is_set():
            try:
                if not self.leadership.is_leader:
                    raise _NotLeading
                report = await services.recordings.apply_retention()
                log.info("recording retention: %s", report)
            except _NotLeading:
                pass  # another node runs retention
            except Exception:
                log.exception("recording retention failed; will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), every)

    def _spawn(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def stop(self) -> None:
        self._stop.set()
        services = self.services
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
        if services is None:
            return
        await _stop_quietly(services.agi)
        await _stop_quietly(services.simulator, "close")
        # The tracker first: it flushes the CDRs (and call.ended) it still owes, which recordings and harassment
        # then handle before they stop.
        for name in ("tracker", "recordings", "harassment"):
            await _stop_quietly(getattr(services, name))
        # After the tracker has flushed what it owes as leader, before the AMI link goes: hand the stream over.
        await _stop_quietly(self.leadership)
        if services.ami is not None:
            await _stop_quietly(services.ami, "close")
        if self._sim_server is not None:
            await _stop_quietly(self._sim_server)
        if "sms" in services.extra:
            await _stop_quietly(services.extra["sms"].gateway, "close")
        await services.bus.close()
        await services.db.close()


class _NotLeading(Exception):
    pass


async def _maybe_await(fn) -> None:  # type: ignore[no-untyped-def]
    if fn is None:
        return
    result = fn() if callable(fn) else fn
    if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
        await result


async def _stop_quietly(obj, method: str = "stop") -> None:  # type: ignore[no-untyped-def]
    """Stop one service; its failure is logged so the others still stop (a missing method is a wiring bug)."""
    if obj is None:
        return
    fn = getattr(obj, method)
    try:
        await _maybe_await(fn)
    except Exception:
        log.exception("error while stopping %s", type(obj).__name__)
