"""What an agent's call buttons do (seed 003 §15 통화기능, §18 자리비움, §24 접속관리), as AMI actions.

Every method takes the agent's own extension and finds the agent's live call through the call tracker, so the
panel never handles channel names. Errors are `CallControlError` subclasses whose message is fit to show:
`NoLiveCall`, `UnknownExtension` (not 1-4 digits or not in the extensions table) and `PBXRefused` (Asterisk
said no; its own message is kept in `.asterisk_message`).

Hold: Asterisk has no AMI "hold" action (phones hold by re-INVITE). Redirecting only the other party, as a
first idea, does not work: ami-queue-and-actions.txt shows that a Redirect pulls the caller out of the bridge
and Asterisk then hangs up the agent's leg. So hold moves BOTH legs in one Redirect (Channel + ExtraChannel):
the customer to `contactd-hold,s,1` (MusicOnHold), the agent's leg to `contactd-hold,agent,1` (waits in
silence), and unhold puts them back together with the AMI `Bridge` action. The dialplan needs:

    [contactd-hold]
    exten => s,1,MusicOnHold()
     same => n,Hangup()
    exten => agent,1,Wait(3600)
     same => n,Hangup()
    [contactd-pickup]
    exten => _X.,1,Pickup(${EXTEN}@PICKUPMARK)   ; or Pickup(${EXTEN}) with the agents' pickup group
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ..store.models import Extension, User
from ..telephony.pbx import ChannelNotFound, PBXError, format_caller_id
from .phone import PhoneNumberError, normalize

log = logging.getLogger(__name__)

HOLD_CONTEXT = "contactd-hold"
HOLD_CUSTOMER_EXTEN = "s"
HOLD_AGENT_EXTEN = "agent"
PICKUP_CONTEXT = "contactd-pickup"
EXTENSION_RE = re.compile(r"^\d{1,4}$")
# Asterisk's answers that mean "already in the wanted state" for queue membership (ami-actions-misc.txt).
_ALREADY_MEMBER = "already there"
_NOT_MEMBER = "not there"


class CallControlError(Exception):
    """A call action that cannot be done; the message says why (shown to the agent)."""


class NoLiveCall(CallControlError):
    pass


class UnknownExtension(CallControlError):
    pass


class PBXRefused(CallControlError):
    """Asterisk answered `Response: Error`; `asterisk_message` is its own text, `action` the AMI action."""

    def __init__(self, message: str, asterisk_message: str = "", action: str = "") -> None:
        super().__init__(message)
        self.asterisk_message = asterisk_message
        self.action = action


@dataclass(frozen=True)
class ClickToCallResult:
    agent_extension: str
    number: str  # digits dialled
    action_id: str


@dataclass(frozen=True)
class CallActionResult:
    """What a call button did: `action` (blind_transfer, hold, ...) on the call `linkedid`."""

    action: str
    linkedid: str
    agent_extension: str
    channel: str = ""
    target: str = ""


@dataclass(frozen=True)
class AgentStateResult:
    agent_extension: str
    interface: str
    away: bool | None = None
    online: bool | None = None
    reason: str = ""
    queues: tuple[str, ...] = ()


@dataclass
class _Held:
    customer_channel: str
    agent_channel: str


def refused(exc: PBXError, what: str) -> PBXRefused:
    """Wrap Asterisk's refusal with a sentence saying what we tried."""
    return PBXRefused(f"{what}: Asterisk refused ({exc.message})", exc.message, exc.action)


def customer_channel(live: Any) -> str:
    """The customer's channel: the caller on inbound calls, the dialled far leg on click-to-call calls."""
    if getattr(live, "direction", "in") == "out":
        for leg in getattr(live, "legs", {}).values():
            if not leg.originator and not leg.extension:
                return str(leg.channel)
    return str(getattr(live, "caller_channel", "") or "")


def agent_channel(live: Any) -> str:
    """The agent's leg. The tracker fills `agent_channel` for calls an agent answered; on an outbound call the
    agent's own phone is the originating leg."""
    if getattr(live, "agent_channel", None):
        return str(live.agent_channel)
    ext = getattr(live, "agent_extension", None)
    for leg in getattr(live, "legs", {}).values():
        if ext and leg.extension == ext:
            return str(leg.channel)
    return ""


class CallControlService:
    def __init__(self, services: Any) -> None:
        self.services = services
        self.config = services.config.pbx
        self._held: dict[str, _Held] = {}  # linkedid -> both legs while on hold

    # ------------------------------------------------------------------------------------------- lookups

    async def check_extension(self, ext: str, *, what: str = "extension") -> str:
        """`ext` if it is 1-4 digits and in the extensions table, else UnknownExtension."""
        ext = (ext or "").strip()
        if not EXTENSION_RE.match(ext):
            raise UnknownExtension(f"{what} {ext!r}: must be 1 to 4 digits")
        async with self.services.db.session() as session:
            found = await session.scalar(select(Extension.id).where(Extension.number == ext))
        if found is None:
            raise UnknownExtension(f"{what} {ext} is not a registered extension")
        return ext

    def live_call(self, agent_ext: str) -> Any:
        tracker = self.services.tracker
        live = tracker.call_for_extension(agent_ext) if tracker is not None else None
        if live is None:
            raise NoLiveCall(f"extension {agent_ext} has no call in progress")
        return live

    def _agent_channel(self, live: Any, agent_ext: str) -> str:
        # A call merely ringing at this phone belongs to whoever answered it: never act on their leg.
        channel = agent_channel(live) if getattr(live, "agent_extension", None) == agent_ext else ""
        if not channel:
            raise NoLiveCall(f"extension {agent_ext} is not connected to call {live.linkedid} yet")
        return str(channel)

    def interface(self, ext: str) -> str:
        return f"Local/{ext}@{self.config.agent_context}"

    async def _agent_name(self, ext: str) -> str:
        async with self.services.db.session() as session:
            name = await session.scalar(select(User.display_name).where(User.extension == ext))
            if not name:
                name = await session.scalar(select(Extension.label).where(Extension.number == ext))
        return name or ext

    @property
    def _pbx(self) -> Any:
        if self.services.pbx is None:
            raise CallControlError("no PBX connection is configured")
        return self.services.pbx

    # ------------------------------------------------------------------------------------------- calls

    async def click_to_call(self, agent_ext: str, number: str) -> ClickToCallResult:
        """Ring the agent's phone; when it answers, the click-to-call context dials `number`."""
        agent_ext = await self.check_extension(agent_ext)
        try:
            digits = normalize(number)
        except PhoneNumberError as exc:
            raise CallControlError(str(exc)) from None
        shop = self.config.shop_caller_id
        # The agent's phone shows the customer's number; the context presents the shop's number outward.
        caller_id = format_caller_id(digits)
        variables = {"CONTACTD_AGENT": agent_ext}
        if shop:
            caller_id = format_caller_id(shop)
            variables["CONTACTD_DIAL"] = digits
        try:
            result = await self._pbx.originate(
                f"{self.config.channel_tech}/{agent_ext}", context=self.config.click_to_call_context, exten=digits,
                caller_id=caller_id, variables=variables)
        except PBXError as exc:
            raise refused(exc, f"call {digits} from {agent_ext}") from None
        log.info("click-to-call: extension %s -> %s", agent_ext, digits)
        return ClickToCallResult(agent_ext, digits, result.action_id)

    async def blind_transfer(self, agent_ext: str, target_ext: str) -> CallActionResult:
        live = self.live_call(agent_ext)
        target_ext = await self.check_extension(target_ext, what="transfer target")
        channel = self._agent_channel(live, agent_ext)
        try:
            await self._pbx.blind_transfer(channel, target_ext, self.config.agent_context)
        except ChannelNotFound as exc:
            raise NoLiveCall(f"the call at {agent_ext} has ended ({exc.message})") from None
        except PBXError as exc:
            raise refused(exc, f"transfer to {target_ext}") from None
        return CallActionResult("blind_transfer", live.linkedid, agent_ext, channel, target_ext)

    async def attended_transfer(self, agent_ext: str, target_ext: str) -> CallActionResult:
        """Consult `target_ext` first; the customer waits on hold (Atxfer, ami-blind-and-attended-transfer.txt)."""
        live = self.live_call(agent_ext)
        target_ext = await self.check_extension(target_ext, what="transfer target")
        channel = self._agent_channel(live, agent_ext)
        try:
            await self._pbx.attended_transfer(channel, target_ext, self.config.agent_context)
        except ChannelNotFound as exc:
            raise NoLiveCall(f"the call at {agent_ext} has ended ({exc.message})") from None
        except PBXError as exc:
            raise refused(exc, f"attended transfer to {target_ext}") from None
        return CallActionResult("attended_transfer", live.linkedid, agent_ext, channel, target_ext)

    async def complete_transfer(self, agent_ext: str) -> CallActionResult:
        """The transferer leaving completes an attended transfer (the trace's `AttendedTransfer` event)."""
        live = self.live_call(agent_ext)
        channel = self._agent_channel(live, agent_ext)
        await self._hangup(channel, agent_ext, "complete the transfer")
        return CallActionResult("complete_transfer", live.linkedid, agent_ext, channel)

    async def cancel_transfer(self, agent_ext: str) -> CallActionResult:
        live = self.live_call(agent_ext)
        channel = self._agent_channel(live, agent_ext)
        try:
            await self._pbx.cancel_attended_transfer(channel)
        except ChannelNotFound as exc:
            raise NoLiveCall(f"the call at {agent_ext} has ended ({exc.message})") from None
        except PBXError as exc:
            raise refused(exc, "cancel the transfer") from None
        return CallActionResult("cancel_transfer", live.linkedid, agent_ext, channel)

    async def hold(self, agent_ext: str) -> CallActionResult:
        live = self.live_call(agent_ext)
        self._forget_ended()
        if live.linkedid in self._held:
            raise CallControlError(f"the call at {agent_ext} is already on hold")
        agent_channel = self._agent_channel(live, agent_ext)
        other = customer_channel(live)
        if not other:
            raise NoLiveCall(f"the call at {agent_ext} has no other party")
        try:
            await self._pbx.redirect(other, HOLD_CONTEXT, HOLD_CUSTOMER_EXTEN, 1, extra_channel=agent_channel,
                                     extra_context=HOLD_CONTEXT, extra_exten=HOLD_AGENT_EXTEN, extra_priority=1)
        except ChannelNotFound as exc:
            raise NoLiveCall(f"the call at {agent_ext} has ended ({exc.message})") from None
        except PBXError as exc:
            raise refused(exc, "put the call on hold") from None
        self._held[live.linkedid] = _Held(other, agent_channel)
        return CallActionResult("hold", live.linkedid, agent_ext, other)

    async def unhold(self, agent_ext: str) -> CallActionResult:
        live = self.live_call(agent_ext)
        held = self._held.get(live.linkedid)
        if held is None:
            raise CallControlError(f"the call at {agent_ext} is not on hold")
        try:
            await self._bridge(held.agent_channel, held.customer_channel)
        except ChannelNotFound as exc:
            self._held.pop(live.linkedid, None)
            raise NoLiveCall(f"the call at {agent_ext} has ended ({exc.message})") from None
        except PBXError as exc:
            raise refused(exc, "take the call off hold") from None
        self._held.pop(live.linkedid, None)
        return CallActionResult("unhold", live.linkedid, agent_ext, held.customer_channel)

    async def _bridge(self, channel1: str, channel2: str) -> None:
        await self._pbx.bridge(channel1, channel2)

    def _forget_ended(self) -> None:
        """Hold state of calls that ended while held (hung up on hold music) must not outlive them."""
        tracker = self.services.tracker
        if tracker is None:
            return
        for linkedid in [k for k in self._held if tracker.get(k) is None]:
            del self._held[linkedid]

    def is_on_hold(self, agent_ext: str) -> bool:
        tracker = self.services.tracker
        live = tracker.call_for_extension(agent_ext) if tracker is not None else None
        return live is not None and live.linkedid in self._held

    def forget(self, linkedid: str) -> None:
        """Drop hold state of an ended call (app.py may call it on `call.ended`; unhold also cleans up)."""
        self._held.pop(linkedid, None)

    async def pickup(self, agent_ext: str, ringing_ext: str) -> ClickToCallResult:
        """Answer a call ringing at a colleague's phone (당겨 받기): ring our phone into the pickup context."""
        agent_ext = await self.check_extension(agent_ext)
        ringing_ext = await self.check_extension(ringing_ext, what="ringing extension")
        tracker = self.services.tracker
        live = tracker.call_for_extension(ringing_ext) if tracker is not None else None
        if live is None or getattr(live, "answered_at", None) is not None:
            raise NoLiveCall(f"no call is ringing at extension {ringing_ext}")
        caller = getattr(live, "caller_number", "") or ringing_ext
        try:
            result = await self._pbx.originate(
                f"{self.config.channel_tech}/{agent_ext}", context=PICKUP_CONTEXT, exten=ringing_ext,
                caller_id=format_caller_id(caller, getattr(live, "caller_name", "") or ""),
                variables={"CONTACTD_AGENT": agent_ext})
        except PBXError as exc:
            raise refused(exc, f"pick up the call at {ringing_ext}") from None
        return ClickToCallResult(agent_ext, ringing_ext, result.action_id)

    async def hangup(self, agent_ext: str) -> CallActionResult:
        live = self.live_call(agent_ext)
        if getattr(live, "agent_extension", None) == agent_ext:
            channel = agent_channel(live) or customer_channel(live)
        else:  # ringing here: reject it at this phone only (the queue goes on ringing the others)
            channel = next((leg.channel for leg in getattr(live, "legs", {}).values()
                            if leg.extension == agent_ext and not leg.originator), "")
        if not channel:
            raise NoLiveCall(f"extension {agent_ext} has no call in progress")
        await self._hangup(channel, agent_ext, "hang up")
        self._held.pop(live.linkedid, None)
        return CallActionResult("hangup", live.linkedid, agent_ext, channel)

    async def _hangup(self, channel: str, agent_ext: str, what: str) -> None:
        try:
            await self._pbx.hangup(channel)
        except ChannelNotFound as exc:
            raise NoLiveCall(f"the call at {agent_ext} has already ended ({exc.message})") from None
        except PBXError as exc:
            raise refused(exc, what) from None

    # ------------------------------------------------------------------------------------------- agent state

    async def set_away(self, agent_ext: str, away: bool, reason: str = "") -> AgentStateResult:
        """자리비움: paused in every queue the agent belongs to (QueuePause without Queue), with a reason."""
        agent_ext = await self.check_extension(agent_ext)
        interface = self.interface(agent_ext)
        reason = (reason or "").strip()[:80]
        try:
            await self._pbx.queue_pause(interface, away, reason=(reason or "away") if away else None)
        except PBXError as exc:
            raise refused(exc, f"set away {'on' if away else 'off'} for {agent_ext}") from None
        await self._publish("agent.away", {"extension": agent_ext, "away": away, "reason": reason})
        return AgentStateResult(agent_ext, interface, away=away, reason=reason)

    async def set_online(self, agent_ext: str, online: bool) -> AgentStateResult:
        """온라인/오프라인: join or leave the agents' queues (QueueAdd / QueueRemove)."""
        agent_ext = await self.check_extension(agent_ext)
        interface = self.interface(agent_ext)
        queues = tuple(q for q in dict.fromkeys((self.config.queue, self.config.vip_queue)) if q)
        name = await self._agent_name(agent_ext) if online else ""
        for queue in queues:
            try:
                if online:
                    await self._pbx.queue_add(queue, interface, member_name=name,
                                              state_interface=f"{self.config.channel_tech}/{agent_ext}")
                else:
                    await self._pbx.queue_remove(queue, interface)
            except PBXError as exc:
                # Already in the wanted state is success: pressing 온라인 twice must not show an error.
                if (_ALREADY_MEMBER if online else _NOT_MEMBER) in exc.message.lower():
                    continue
                raise refused(exc, f"{'join' if online else 'leave'} queue {queue} for {agent_ext}") from None
        await self._publish("agent.online", {"extension": agent_ext, "online": online})
        return AgentStateResult(agent_ext, interface, online=online, queues=queues)

    async def _publish(self, topic: str, payload: dict[str, Any]) -> None:
        bus = self.services.bus
        if bus is None:
            return
        try:
            await bus.publish(topic, payload)
        except Exception as exc:  # the PBX already changed: a bus hiccup must not turn it into an error
            log.warning("call control: publishing %s failed: %s", topic, exc)


__all__ = ["CallControlService", "CallControlError", "NoLiveCall", "UnknownExtension", "PBXRefused",
           "ClickToCallResult", "CallActionResult", "AgentStateResult", "HOLD_CONTEXT", "PICKUP_CONTEXT",
           "customer_channel", "agent_channel"]
