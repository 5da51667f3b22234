"""PBX actions by name with typed results: the AMI client correlates and parses, this module speaks Asterisk.

Field names and answers follow what Asterisk 22 actually sent (asterisk-traces/ami-actions-misc.txt,
ami-queue-and-actions.txt, ami-blind-and-attended-transfer.txt, ami-command-multiline.txt):

- errors are ``Response: Error`` + ``Message``; we raise `PBXError` carrying Asterisk's own message, and
  `ChannelNotFound` when it says the channel is gone (``No such channel``, ``Channel does not exist: X``);
- ``Originate`` with ``Async: true`` answers ``Originate successfully queued`` at once; the outcome comes
  later as an ``OriginateResponse`` event carrying our ActionID (``Reason: 4`` = answered);
- ``DBGet`` is a list action in 22 (``DBGetResponse`` with ``Val``); a missing key is a plain error;
- ``MixMonitor`` answers a bare ``Response: Success``; ``StopMixMonitor`` with nothing running fails with
  ``Could not stop monitoring channel``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from contactd.config import PBXConfig
from contactd.telephony.ami import AMIActionError, AMIMessage

log = logging.getLogger(__name__)

# OriginateResponse Reason codes (Asterisk's AST_CONTROL_* values as reported by the originate code).
ORIGINATE_REASONS = {
    0: "failed",
    1: "hung up",
    3: "no answer",
    4: "answered",
    5: "busy",
    8: "congestion",
}

# "No such channel" (Hangup, Getvar, Status), "Channel does not exist: X" (Redirect), and Bridge's
# "Channel1 does not exists: X" (sic, features.c).
_CHANNEL_GONE = re.compile(r"no such channel|channel[12]? does not exists?", re.IGNORECASE)


class AMILike(Protocol):
    """What pbx.py needs from contactd.telephony.ami.AMIClient."""

    async def action(self, name: str, fields: Any = None, **kwargs: Any) -> Any: ...

    def subscribe(self, handler: Any, *event_names: str) -> Any: ...


class PBXError(Exception):
    """Asterisk refused an action; `str(exc)` is Asterisk's own message, `action` the action name."""

    def __init__(self, message: str, action: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.action = action


class ChannelNotFound(PBXError):
    """The channel named in the action does not exist (any more)."""


@dataclass(frozen=True)
class OriginateResult:
    action_id: str
    # Filled in only when originate(wait=True) saw the OriginateResponse event.
    response: str | None = None  # "Success" | "Failure"
    reason: int | None = None
    channel: str = ""
    uniqueid: str = ""

    @property
    def answered(self) -> bool:
        return self.response == "Success" and self.reason == 4

    @property
    def reason_text(self) -> str:
        return ORIGINATE_REASONS.get(self.reason, "unknown") if self.reason is not None else ""


@dataclass(frozen=True)
class LiveChannel:
    """One `CoreShowChannel` item."""

    channel: str
    uniqueid: str
    linkedid: str
    state: int
    state_desc: str
    caller_number: str
    caller_name: str
    connected_number: str
    connected_name: str
    context: str
    exten: str
    priority: int
    application: str
    application_data: str
    duration: str  # HH:MM:SS as Asterisk prints it
    bridge_id: str

    @property
    def duration_seconds(self) -> int:
        try:
            h, m, s = (int(p) for p in self.duration.split(":"))
        except ValueError:
            return 0
        return h * 3600 + m * 60 + s


@dataclass(frozen=True)
class ChannelStatus:
    """One `Status` item."""

    channel: str
    uniqueid: str
    linkedid: str
    state: int
    state_desc: str
    caller_number: str
    caller_name: str
    context: str
    exten: str
    priority: int
    application: str
    data: str
    seconds: int
    bridge_id: str
    variables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CoreSettings:
    ami_version: str
    asterisk_version: str
    system_name: str
    max_calls: int
    cdr_enabled: bool
    raw: dict[str, str] = field(default_factory=dict)


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


def _live_channel(msg: AMIMessage) -> LiveChannel:
    g = msg.get
    return LiveChannel(
        channel=g("Channel") or "", uniqueid=g("Uniqueid") or "", linkedid=g("Linkedid") or "",
        state=_int(g("ChannelState")), state_desc=g("ChannelStateDesc") or "",
        caller_number=g("CallerIDNum") or "", caller_name=g("CallerIDName") or "",
        connected_number=g("ConnectedLineNum") or "", connected_name=g("ConnectedLineName") or "",
        context=g("Context") or "", exten=g("Exten") or "", priority=_int(g("Priority")),
        application=g("Application") or "", application_data=g("ApplicationData") or "",
        duration=g("Duration") or "", bridge_id=g("BridgeId") or "",
    )


def _channel_status(msg: AMIMessage) -> ChannelStatus:
    g = msg.get
    variables: dict[str, str] = {}
    for item in msg.getall("Variable") + msg.getall("ChanVariable"):
        name, sep, value = item.partition("=")
        if sep:
            variables[name] = value
    return ChannelStatus(
        channel=g("Channel") or "", uniqueid=g("Uniqueid") or "", linkedid=g("Linkedid") or "",
        state=_int(g("ChannelState")), state_desc=g("ChannelStateDesc") or "",
        caller_number=g("CallerIDNum") or "", caller_name=g("CallerIDName") or "",
        context=g("Context") or "", exten=g("Exten") or "", priority=_int(g("Priority")),
        application=g("Application") or "", data=g("Data") or "", seconds=_int(g("Seconds")),
        bridge_id=g("BridgeID") or g("BridgeId") or "", variables=variables,
    )


def format_caller_id(number: str, name: str = "") -> str:
    """`"name" <number>` as Originate's CallerID wants it (quotes keep Hangul and spaces intact)."""
    name = name.replace('"', "")
    return f'"{name}" <{number}>' if name else f"<{number}>"


class PBX:
    """Asterisk actions by name. Every method raises PBXError / ChannelNotFound on `Response: Error` and lets
    the AMI client's AMIConnectionError / AMITimeoutError through (the caller decides whether to retry —
    never automatically: a resent Originate dials twice)."""

    def __init__(self, ami: AMILike, pbx_config: PBXConfig | None = None, *,
                 originate_wait_timeout: float = 60.0) -> None:
        self.ami = ami
        self.config = pbx_config or PBXConfig()
        self.originate_wait_timeout = originate_wait_timeout
        # ActionID -> future waiting for OriginateResponse; early responses parked (bounded) in case the event
        # is dispatched before the action's reply has reached us.
        self._originate_waiters: dict[str, asyncio.Future[AMIMessage]] = {}
        self._early_originate: OrderedDict[str, AMIMessage] = OrderedDict()
        self._unsubscribe: Any = None

    # ------------------------------------------------------------------------------------------- plumbing

    async def _action(self, name: str, fields: Mapping[str, object] | None = None) -> Any:
        try:
            return await self.ami.action(name, dict(fields or {}))
        except AMIActionError as exc:
            message = (exc.response.get("Message") if exc.response is not None else None) or str(exc)
            if _CHANNEL_GONE.search(message):
                raise ChannelNotFound(message, name) from None
            raise PBXError(message, name) from None

    def _on_originate_response(self, msg: AMIMessage) -> None:
        action_id = msg.action_id
        if not action_id:
            return
        waiter = self._originate_waiters.pop(action_id, None)
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(msg)
            return
        self._early_originate[action_id] = msg
        while len(self._early_originate) > 256:
            self._early_originate.popitem(last=False)

    def _ensure_originate_listener(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self.ami.subscribe(self._on_originate_response, "OriginateResponse")

    def close(self) -> None:
        if self._unsubscribe is not None:
            with contextlib.suppress(Exception):
                self._unsubscribe()
            self._unsubscribe = None
        for waiter in self._originate_waiters.values():
            waiter.cancel()
        self._originate_waiters.clear()

    # ------------------------------------------------------------------------------------------- calls

    async def originate(
        self,
        channel: str,
        *,
        context: str | None = None,
        exten: str | None = None,
        priority: int = 1,
        application: str | None = None,
        data: str | None = None,
        caller_id: str | None = None,
        timeout_ms: int = 30000,
        variables: Mapping[str, str] | None = None,
        account: str | None = None,
        wait: bool = False,
        wait_timeout: float | None = None,
    ) -> OriginateResult:
        """Originate asynchronously. With wait=True also wait for the OriginateResponse (the far end answering
        or failing); a timeout there raises asyncio.TimeoutError but the call may still be in progress."""
        if (application is None) == (exten is None):
            raise ValueError("originate needs either exten (+context) or application")
        fields: dict[str, object] = {"Channel": channel}
        if application is not None:
            fields["Application"] = application
            fields["Data"] = data
        else:
            fields.update(Context=context, Exten=exten, Priority=priority)
        fields["CallerID"] = caller_id
        fields["Timeout"] = timeout_ms
        if variables:
            fields["Variable"] = [f"{k}={v}" for k, v in variables.items()]
        fields["Account"] = account
        fields["Async"] = "true"
        if wait:
            self._ensure_originate_listener()
        result = await self._action("Originate", fields)
        action_id = _action_id(result)
        if not wait:
            return OriginateResult(action_id=action_id)
        msg = self._early_originate.pop(action_id, None)
        if msg is None:
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[AMIMessage] = loop.create_future()
            self._originate_waiters[action_id] = waiter
            try:
                msg = await asyncio.wait_for(waiter, wait_timeout or self.originate_wait_timeout)
            finally:
                self._originate_waiters.pop(action_id, None)
        return OriginateResult(
            action_id=action_id, response=msg.get("Response"), reason=_int(msg.get("Reason"), -1),
            channel=msg.get("Channel") or "", uniqueid=msg.get("Uniqueid") or "",
        )

    async def click_to_call(self, extension: str, number: str, *, caller_id: str | None = None,
                            variables: Mapping[str, str] | None = None, timeout_ms: int = 30000,
                            wait: bool = False) -> OriginateResult:
        """Ring the agent's phone first; when answered, the click-to-call context dials `number`."""
        digits = "".join(ch for ch in number if ch.isdigit() or ch == "+")
        if not digits:
            raise ValueError(f"no digits in {number!r}")
        return await self.originate(
            f"{self.config.channel_tech}/{extension}", context=self.config.click_to_call_context, exten=digits,
            caller_id=caller_id or format_caller_id(digits), variables=variables, timeout_ms=timeout_ms, wait=wait,
        )

    async def redirect(self, channel: str, context: str, exten: str, priority: int = 1,
                       extra_channel: str | None = None, extra_context: str | None = None,
                       extra_exten: str | None = None, extra_priority: int | None = None) -> None:
        fields: dict[str, object] = {"Channel": channel, "Context": context, "Exten": exten, "Priority": priority}
        if extra_channel:
            fields.update(ExtraChannel=extra_channel, ExtraContext=extra_context or context,
                          ExtraExten=extra_exten or exten,
                          ExtraPriority=extra_priority if extra_priority is not None else priority)
        await self._action("Redirect", fields)

    async def hangup(self, channel: str, cause: int | None = None) -> None:
        await self._action("Hangup", {"Channel": channel, "Cause": cause})

    async def bridge(self, channel1: str, channel2: str, *, tone: bool = False) -> None:
        """Bridge two channels already in the PBX (AMI `Bridge`: Channel1, Channel2, Tone)."""
        await self._action("Bridge", {"Channel1": channel1, "Channel2": channel2, "Tone": "yes" if tone else "no"})

    async def blind_transfer(self, channel: str, exten: str, context: str | None = None) -> None:
        """`channel` is the transferer: its bridge peer goes to exten@context (answer: `Transfer succeeded`)."""
        await self._action("BlindTransfer", {"Channel": channel, "Exten": exten,
                                             "Context": context or self.config.agent_context})

    async def attended_transfer(self, channel: str, exten: str, context: str | None = None) -> None:
        """Consult exten@context; the transferer hanging up completes it (needs `atxfer` in features.conf and a
        transfer-enabled bridge)."""
        await self._action("Atxfer", {"Channel": channel, "Exten": exten,
                                      "Context": context or self.config.agent_context})

    async def cancel_attended_transfer(self, channel: str) -> None:
        await self._action("CancelAtxfer", {"Channel": channel})

    # ------------------------------------------------------------------------------------------- queues

    async def queue_add(self, queue: str, interface: str, *, member_name: str | None = None,
                        state_interface: str | None = None, paused: bool = False,
                        penalty: int | None = None) -> None:
        await self._action("QueueAdd", {"Queue": queue, "Interface": interface, "MemberName": member_name,
                                        "StateInterface": state_interface, "Paused": paused,
                                        "Penalty": penalty})

    async def queue_remove(self, queue: str, interface: str) -> None:
        await self._action("QueueRemove", {"Queue": queue, "Interface": interface})

    async def queue_pause(self, interface: str, paused: bool, *, queue: str | None = None,
                          reason: str | None = None) -> None:
        """Pause in one queue, or in every queue the interface belongs to when `queue` is None."""
        await self._action("QueuePause", {"Interface": interface, "Paused": paused, "Queue": queue,
                                          "Reason": reason if paused else None})

    # ------------------------------------------------------------------------------------------- recording

    async def mixmonitor_start(self, channel: str, path: str, options: str = "") -> None:
        """Record `channel` (both directions mixed) to exactly `path` (absolute path as Asterisk sees it)."""
        await self._action("MixMonitor", {"Channel": channel, "File": path, "Options": options})

    async def mixmonitor_stop(self, channel: str) -> None:
        await self._action("StopMixMonitor", {"Channel": channel})

    # ------------------------------------------------------------------------------------------- AstDB

    async def db_put(self, family: str, key: str, value: str) -> None:
        await self._action("DBPut", {"Family": family, "Key": key, "Val": value})

    async def db_get(self, family: str, key: str) -> str | None:
        """The value, or None when the key does not exist (Asterisk: `Database entry not found`)."""
        try:
            result = await self._action("DBGet", {"Family": family, "Key": key})
        except PBXError as exc:
            if "not found" in exc.message.lower():
                return None
            raise
        for event in _events(result):
            if (event.event or "").lower() == "dbgetresponse":
                return event.get("Val") or ""
        return None

    async def db_del(self, family: str, key: str) -> bool:
        """True when deleted, False when there was no such key."""
        try:
            await self._action("DBDel", {"Family": family, "Key": key})
        except PBXError as exc:
            if "not found" in exc.message.lower() or "failed" in exc.message.lower():
                return False
            raise
        return True

    async def db_gettree(self, family: str) -> dict[str, str]:
        """Every key of an AstDB family (DBGetTree, a list action): key without the family prefix -> value."""
        try:
            result = await self._action("DBGetTree", {"Family": family})
        except PBXError as exc:
            if "not found" in exc.message.lower():
                return {}
            raise
        prefix = f"/{family}/"
        return {(event.get("Key") or "").removeprefix(prefix): event.get("Val") or ""
                for event in _events(result) if (event.event or "").lower() == "dbgettreeresponse"}

    async def db_deltree(self, family: str, key: str | None = None) -> bool:
        try:
            await self._action("DBDelTree", {"Family": family, "Key": key})
        except PBXError as exc:
            if "not found" in exc.message.lower() or "failed" in exc.message.lower():
                return False
            raise
        return True

    # ------------------------------------------------------------------------------------------- variables

    async def getvar(self, variable: str, channel: str | None = None) -> str:
        """The value ("" when unset; Asterisk does not tell unset from empty)."""
        result = await self._action("Getvar", {"Channel": channel, "Variable": variable})
        return _response(result).get("Value") or ""

    async def setvar(self, variable: str, value: str, channel: str | None = None) -> None:
        await self._action("Setvar", {"Channel": channel, "Variable": variable, "Value": value})

    # ------------------------------------------------------------------------------------------- state

    async def channels(self) -> list[LiveChannel]:
        result = await self._action("CoreShowChannels")
        return [_live_channel(e) for e in _events(result) if (e.event or "") == "CoreShowChannel"]

    async def status(self, channel: str | None = None) -> list[ChannelStatus]:
        result = await self._action("Status", {"Channel": channel})
        return [_channel_status(e) for e in _events(result) if (e.event or "") == "Status"]

    async def core_settings(self) -> CoreSettings:
        msg = _response(await self._action("CoreSettings"))
        raw = msg.as_dict()
        return CoreSettings(
            ami_version=raw.get("AMIversion", ""), asterisk_version=raw.get("AsteriskVersion", ""),
            system_name=raw.get("SystemName", ""), max_calls=_int(raw.get("CoreMaxCalls")),
            cdr_enabled=raw.get("CoreCDRenabled", "").lower() == "yes", raw=raw,
        )


def _response(result: Any) -> AMIMessage:
    return result.response if hasattr(result, "response") else result


def _events(result: Any) -> list[AMIMessage]:
    return list(getattr(result, "events", None) or [])


def _action_id(result: Any) -> str:
    return _response(result).action_id or ""


__all__ = ["PBX", "PBXError", "ChannelNotFound", "OriginateResult", "LiveChannel", "ChannelStatus",
           "CoreSettings", "format_caller_id", "ORIGINATE_REASONS"]
