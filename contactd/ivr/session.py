"""The small call API IVR flows are written against: prompts by id, key input, queueing, call data.

Flows never build AGI command strings; this wraps telephony.agi.AGISession. A caller hanging up surfaces as
`CallerHungUp` from the next call into this API.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..crm.phone import normalize_or_none
from ..telephony.agi import AGIDeadChannel, AGISession
from ..telephony.agi import AGIHangup as CallerHungUp
from .prompts import sound_name

log = logging.getLogger(__name__)

_ANONYMOUS = {"", "unknown", "anonymous", "restricted", "private", "unavailable"}
_KEY_RE = re.compile(r"[A-Za-z0-9_]{1,40}")
_DIGITS_RE = re.compile(r"[0-9*#]{1,40}")
_LANGUAGE_RE = re.compile(r"[a-z]{2,3}(_[A-Za-z]{2,4})?")
IVR_DONE_KEY = "IVR_DONE"  # channel variable CONTACTD_IVR_DONE, read by the shipped dialplan after AGI()
QUEUE_NO_AGENT = frozenset({"TIMEOUT", "FULL", "JOINEMPTY", "LEAVEEMPTY", "JOINUNAVAIL", "LEAVEUNAVAIL"})


@dataclass(frozen=True)
class Entry:
    """What the caller typed at a prompt: `digits` as sent (may hold * or letters), `timed_out` when they
    stopped typing instead of ending with # or reaching the maximum."""

    digits: str
    timed_out: bool

    @property
    def empty_by_hash(self) -> bool:
        """Pressed # without typing anything."""
        return self.digits == "" and not self.timed_out


class CallSession:
    def __init__(self, agi: AGISession) -> None:
        self.agi = agi
        request = agi.request
        raw_number = (request.callerid or "").strip()
        self.caller_id_raw = "" if raw_number.lower() in _ANONYMOUS else raw_number
        self.caller_number = normalize_or_none(self.caller_id_raw) or ""
        name = (request.calleridname or "").strip()
        self.caller_name = "" if name.lower() in _ANONYMOUS else name
        self.uniqueid = request.uniqueid
        self.channel = request.channel

    @property
    def anonymous(self) -> bool:
        return not self.caller_number

    @property
    def hung_up(self) -> bool:
        return self.agi.hung_up

    @property
    def commands_sent(self) -> int:
        return self.agi.commands_sent

    def commands_while_alive(self, exc: CallerHungUp) -> int:
        """How many commands reached a live channel, given the hang-up that stopped the flow.

        A 511 reply means the channel was already gone when that command was sent; a command refused before
        sending (HANGUP notice already seen) or answered with a hang-up result still counts as the last live one.
        """
        return self.agi.commands_sent - (1 if isinstance(exc, AGIDeadChannel) else 0)

    def __repr__(self) -> str:
        return f"<CallSession {self.channel} uniqueid={self.uniqueid}>"

    async def answer(self) -> None:
        await self.agi.answer()

    async def play(self, prompt_id: str, escape_digits: str = "") -> str:
        """Play a prompt; returns the key that interrupted it ("" if none). A hang-up raises on the next call."""
        key = await self.agi.stream_file(sound_name(prompt_id), escape_digits)
        if self.agi.hung_up:
            raise CallerHungUp(f"caller hung up during {prompt_id}")
        return key

    async def collect(self, prompt_id: str, *, max_digits: int, timeout_s: float) -> Entry:
        digits, timed_out = await self.agi.get_data(sound_name(prompt_id), int(timeout_s * 1000), max_digits)
        return Entry(digits, timed_out)

    async def read(self, prompt_id: str, *, max_digits: int, timeout_s: float) -> str:
        """Play `prompt_id` and read up to `max_digits` keys (# ends early); "" on timeout with nothing typed."""
        return (await self.collect(prompt_id, max_digits=max_digits, timeout_s=timeout_s)).digits

    async def menu(self, prompt_id: str, choices: Iterable[str], *, attempts: int = 3, timeout_s: float = 5.0,
                   invalid_prompt: str | None = "invalid") -> str | None:
        """Offer a one-key menu; returns the chosen key, or None after `attempts` timeouts or wrong keys."""
        allowed = set(choices)
        for attempt in range(1, attempts + 1):
            key = await self.read(prompt_id, max_digits=1, timeout_s=timeout_s)
            if key in allowed:
                return key
            if key:
                log.debug("%r: key %r not in menu %s (attempt %d)", self, key, prompt_id, attempt)
                if invalid_prompt:
                    await self.play(invalid_prompt)
        return None

    async def say_digits(self, digits: str) -> None:
        if not _DIGITS_RE.fullmatch(digits):
            raise ValueError(f"SAY DIGITS takes digits only, got {digits!r}")
        await self.agi.say_digits(digits)

    async def queue(self, name: str, *, timeout_s: int | None = None) -> str | None:
        """Put the caller into an Asterisk queue; returns when they leave it: QUEUESTATUS (e.g. TIMEOUT,
        JOINEMPTY, CONTINUE) or None when Asterisk did not set it."""
        # Queue(queuename,options,URL,announceoverride,timeout)
        args = (name, "", "", "", str(int(timeout_s))) if timeout_s else (name,)
        await self.agi.exec("Queue", *args)
        return await self.agi.get_variable("QUEUESTATUS")

    async def set_call_data(self, key: str, value: str) -> None:
        """SET VARIABLE CONTACTD_<KEY>: the AMI side (call tracker, screen-pop) sees it in VarSet events."""
        if not _KEY_RE.fullmatch(key):
            raise ValueError(f"call data key must be letters, digits or _: {key!r}")
        await self.agi.set_variable(f"CONTACTD_{key.upper()}", str(value))

    async def set_language(self, language: str) -> None:
        """Set the channel language: SAY DIGITS and other built-in sounds come from <sounds>/<language>/."""
        if not _LANGUAGE_RE.fullmatch(language):
            raise ValueError(f"not a language code: {language!r}")
        await self.agi.set_variable("CHANNEL(language)", language)

    async def mark_done(self, done: bool = True) -> None:
        """Tell the dialplan whether the IVR has finished with the call (CONTACTD_IVR_DONE).

        Asterisk reports AGISTATUS=SUCCESS even when contactd's socket closes mid-script, so the dialplan cannot
        tell a finished IVR from a dead one by that; it queues every caller whose IVR did not set this flag.
        Set it right before queueing or deliberately ending the call; clear it when the IVR takes the call back.
        """
        await self.set_call_data(IVR_DONE_KEY, "1" if done else "0")

    async def hangup(self) -> None:
        """Hang up; no-op when the caller already did."""
        await self.agi.hangup()


__all__ = ["CallSession", "CallerHungUp", "Entry", "IVR_DONE_KEY", "QUEUE_NO_AGENT", "sound_name"]
