"""The harassment block (민원차단, seed 003 §15-⑦ and §16): warn an abusive caller and end the call.

The agent picks 폭언 (`abuse`) or 성희롱 (`sexual`). We Redirect the customer's channel to
`[pbx] warning_context`, exten = kind, priority 1: the dialplan there plays the protective warning and hangs
up (ami-queue-and-actions.txt: `Redirect` of the caller to `warning,abuse,1`). That Redirect pulls the caller
out of the bridge and Asterisk clears the agent's leg itself (same trace); if the agent's leg is still up
after `agent_release_timeout` we hang it up, so the agent is free either way.

Each warning is an `Incident` row; the call's CDR row gets `harassment_kind`. The tracker writes that row
only when the call ends — a moment after the warning — so we update it at once if it exists and again on
`call.ended` otherwise. With `[incidents] auto_blacklist_after = N` (0 = off) the N-th incident of a number
puts it on the blacklist.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from ..bus import BusConsumer, BusEvent
from ..store.models import Call
from ..store.models.base import utcnow
from ..store.models.incidents import INCIDENT_KINDS, Incident
from ..telephony.pbx import ChannelNotFound, PBXError
from .call_control import CallControlError, NoLiveCall, agent_channel, customer_channel, refused
from .phone import normalize_or_none

log = logging.getLogger(__name__)

KIND_LABELS = {"abuse": "폭언", "sexual": "성희롱"}
AGENT_RELEASE_TIMEOUT = 2.0


@dataclass(frozen=True)
class HarassmentResult:
    incident_id: int
    linkedid: str
    kind: str
    caller_number: str
    incident_count: int  # incidents of this number so far, this one included
    blacklisted: bool  # this warning put the number on the blacklist
    agent_hung_up: bool  # we had to hang up the agent's leg ourselves


class HarassmentService:
    def __init__(self, services: Any, *, agent_release_timeout: float = AGENT_RELEASE_TIMEOUT) -> None:
        self.services = services
        self.agent_release_timeout = agent_release_timeout
        # linkedid -> kind for calls whose CDR row was not written yet when the agent pressed the button.
        self._pending: OrderedDict[str, str] = OrderedDict()
        self._consumer = BusConsumer(services.bus, "call.ended", handle=self._on_call_ended, name="harassment")

    # ------------------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def _on_call_ended(self, event: BusEvent) -> None:
        linkedid = str(event.payload.get("linkedid") or "")
        kind = self._pending.get(linkedid)
        if kind is not None and await self._mark_call(linkedid, kind):
            self._pending.pop(linkedid, None)

    # ------------------------------------------------------------------------------------------- the button

    async def warn_and_hangup(self, linkedid: str, kind: str, agent_user_id: int | None,
                              agent_extension: str | None) -> HarassmentResult:
        if kind not in INCIDENT_KINDS:
            raise CallControlError(f"unknown harassment kind {kind!r} (use one of: {', '.join(INCIDENT_KINDS)})")
        tracker = self.services.tracker
        live = tracker.get(linkedid) if tracker is not None else None
        if live is None:
            raise NoLiveCall(f"call {linkedid} is not in progress")
        linkedid = live.linkedid  # the caller may have passed a leg's uniqueid
        if agent_extension and live.agent_extension and live.agent_extension != agent_extension:
            raise CallControlError(f"call {linkedid} is connected to extension {live.agent_extension}, "
                                   f"not {agent_extension}")
        target = customer_channel(live)
        if not target:
            raise NoLiveCall(f"call {linkedid} has no caller channel to warn")
        agent_leg = agent_channel(live)
        pbx = self.services.pbx
        released = asyncio.Event()
        unsubscribe = self._watch_hangup(agent_leg, released)
        try:
            try:
                await pbx.redirect(target, self.services.config.pbx.warning_context, kind, 1)
            except ChannelNotFound as exc:
                raise NoLiveCall(f"call {linkedid} has already ended ({exc.message})") from None
            except PBXError as exc:
                raise refused(exc, "play the harassment warning") from None
            agent_hung_up = await self._release_agent(agent_leg, released)
        finally:
            if unsubscribe is not None:
                with contextlib.suppress(Exception):
                    unsubscribe()

        number = normalize_or_none(getattr(live, "caller_number", "")) or ""
        self._pending[linkedid] = kind
        while len(self._pending) > 1000:
            self._pending.popitem(last=False)
        incident = Incident(kind=kind, call_linkedid=linkedid, caller_number=number,
                            caller_name=(getattr(live, "caller_name", "") or "")[:100],
                            agent_user_id=agent_user_id, agent_extension=agent_extension or live.agent_extension,
                            created_at=utcnow())
        async with self.services.db.transaction() as session:
            session.add(incident)
            await session.flush()
            count = await self._count(session, number) if number else 1
        if await self._mark_call(linkedid, kind):
            self._pending.pop(linkedid, None)

        blacklisted = await self._maybe_blacklist(incident, number, count, live, agent_user_id)
        result = HarassmentResult(incident.id, linkedid, kind, number, count, blacklisted, agent_hung_up)
        log.info("harassment: %s warning on call %s by extension %s (incident %d, %d for this number)",
                 kind, linkedid, incident.agent_extension, incident.id, count)
        with contextlib.suppress(Exception):  # the call is already cut; a bus hiccup must not hide that
            await self.services.bus.publish("call.harassment", {
                "linkedid": linkedid, "kind": kind, "incident_id": incident.id, "caller_number": number,
                "agent_extension": incident.agent_extension, "agent_user_id": agent_user_id,
                "incident_count": count, "blacklisted": blacklisted})
        return result

    def _watch_hangup(self, channel: str, released: asyncio.Event) -> Any:
        ami = self.services.ami
        if not channel or ami is None:
            return None

        def on_hangup(msg: Any) -> None:  # inline in the AMI reader: no I/O, just a flag
            if msg.get("Channel") == channel:
                released.set()

        return ami.subscribe(on_hangup, "Hangup")

    async def _release_agent(self, channel: str, released: asyncio.Event) -> bool:
        """True when we had to hang up the agent's leg ourselves."""
        if not channel:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(released.wait(), self.agent_release_timeout)
            return False
        try:
            await self.services.pbx.hangup(channel)
        except ChannelNotFound:
            return False  # gone meanwhile (its Hangup event may still be on its way)
        except PBXError as exc:
            log.warning("harassment: could not hang up agent leg %s: %s", channel, exc)
            return False
        return True

    async def _mark_call(self, linkedid: str, kind: str) -> bool:
        """Set harassment_kind on the call row; False when the row is not written yet."""
        async with self.services.db.transaction() as session:
            result = await session.execute(update(Call).where(Call.linkedid == linkedid)
                                           .values(harassment_kind=kind))
        return bool(result.rowcount)

    @staticmethod
    async def _count(session: Any, number: str) -> int:
        return int(await session.scalar(select(func.count(Incident.id)).where(Incident.caller_number == number))
                   or 0)

    async def _maybe_blacklist(self, incident: Incident, number: str, count: int, live: Any,
                               agent_user_id: int | None) -> bool:
        limit = self.services.config.incidents.auto_blacklist_after
        blacklist = self.services.blacklist
        if limit <= 0 or not number or count < limit or blacklist is None:
            return False
        try:
            if await blacklist.is_blocked(number):
                return False
            labels = ", ".join(sorted({KIND_LABELS.get(k, k) for k in await self.kinds_for(number)}))
            await blacklist.add(number, getattr(live, "caller_name", "") or "",
                                f"민원차단 {count}회 자동 등록 ({labels})", agent_user_id)
        except Exception as exc:
            log.warning("harassment: auto-blacklist of %s failed: %s", number, exc)
            return False
        async with self.services.db.transaction() as session:
            await session.execute(update(Incident).where(Incident.id == incident.id).values(blacklisted=True))
        incident.blacklisted = True
        return True

    # ------------------------------------------------------------------------------------------- reading

    async def incident_count(self, number: str) -> int:
        digits = normalize_or_none(number)
        if not digits:
            return 0
        async with self.services.db.session() as session:
            return await self._count(session, digits)

    async def kinds_for(self, number: str) -> list[str]:
        digits = normalize_or_none(number)
        if not digits:
            return []
        async with self.services.db.session() as session:
            return list(await session.scalars(select(Incident.kind).where(Incident.caller_number == digits)))

    async def incidents(self, number: str | None = None, *, limit: int = 500) -> list[Incident]:
        """Newest first, optionally for one number."""
        stmt = select(Incident)
        if number:
            stmt = stmt.where(Incident.caller_number == (normalize_or_none(number) or number))
        stmt = stmt.order_by(Incident.created_at.desc(), Incident.id.desc()).limit(max(1, min(limit, 5000)))
        async with self.services.db.session() as session:
            return list(await session.scalars(stmt))


__all__ = ["HarassmentService", "HarassmentResult", "KIND_LABELS"]
