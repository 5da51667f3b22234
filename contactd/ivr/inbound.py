"""The inbound call, top to bottom: who is calling, blocked?, open?, menu and queue — or leave a callback number.

app.py routes it: `agi.route("inbound", InboundFlow(services))`. A caller may hang up anywhere; the flow then
logs where (the `stage`) and stops. Nothing is half-saved: a callback row is written in one go, only after the
caller confirmed the number. Lookups that fail (database trouble) never strand a caller: an unknown blacklist
or business-hours state sends the call to the agents, as the dialplan's own fail-safe would.

Hand-off to the dialplan: CONTACTD_IVR_DONE=1 is set right before the call is queued or deliberately ended
(blocked, callback saved, goodbye); the shipped dialplan queues every caller whose AGI() returned without it, so a
contactd crash mid-IVR never drops a caller. The channel language is set to ko first so SAY DIGITS speaks Korean.

Prompt ids used (see ivr/prompts.py): blocked, greeting, menu, invalid, connecting, vip-connecting, after-hours,
no-agents, callback-ask, callback-invalid, callback-readback, callback-confirm, callback-saved, goodbye.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..crm.blacklist import BlacklistService
from ..crm.business_hours import BusinessHours
from ..crm.callbacks import CallbackService
from ..crm.customers import CustomerService
from ..crm.phone import normalize_or_none
from ..services import Services
from ..telephony.agi import AGISession
from .prompts import LANGUAGE
from .session import QUEUE_NO_AGENT, CallerHungUp, CallSession, Entry

log = logging.getLogger(__name__)

MENU_CHOICES = ("1", "2", "3", "0")  # 1 orders/delivery, 2 returns/exchanges, 3 other, 0 agent
CALLBACK_MAX_KEYS = 12  # one more than the longest valid number, so "too long" can be told apart
CALLBACK_MIN_DIGITS = 9  # 02-123-4567
CALLBACK_MAX_DIGITS = 11  # 010-1234-5678
CALLBACK_TRIES = 3


class _Call:
    """Per-call bookkeeping: where we are (for the hang-up log) and what we found out."""

    def __init__(self, session: CallSession) -> None:
        self.session = session
        self._stages: list[tuple[str, int]] = [("start", 0)]
        self.customer: Any = None
        self.choice: str | None = None
        self.outcome = "unfinished"

    @property
    def stage(self) -> str:
        return self._stages[-1][0]

    @stage.setter
    def stage(self, name: str) -> None:
        # Remember how many commands had gone out when the stage began, to place a hang-up afterwards.
        self._stages.append((name, self.session.commands_sent))
        del self._stages[:-16]

    def stage_of_hangup(self, exc: CallerHungUp) -> str:
        """The stage whose command was the last one the live channel got: a hang-up is often noticed only by
        the next stage's first command."""
        alive = self.session.commands_while_alive(exc)
        for name, started_after in reversed(self._stages):
            if started_after < alive:
                return name
        return self._stages[0][0]


class InboundFlow:
    def __init__(self, services: Services, *, clock: Callable[[], datetime] | None = None,
                 menu_timeout_s: float = 5.0, entry_timeout_s: float = 8.0, queue_timeout_s: int | None = None
                 ) -> None:
        self.services = services
        self.clock = clock or (lambda: datetime.now(UTC))
        self.menu_timeout_s = menu_timeout_s
        self.entry_timeout_s = entry_timeout_s
        self.queue_timeout_s = queue_timeout_s
        self.customers = CustomerService(services.db)
        # Used only when app.py did not provide the shared services (tests, a minimal wiring).
        self._own_hours: BusinessHours | None = None
        self._own_blacklist: BlacklistService | None = None
        self._own_callbacks: CallbackService | None = None

    # Services are read at call time: app.py may fill them after building the flow.
    @property
    def hours(self) -> BusinessHours:
        if self.services.hours is not None:
            return self.services.hours
        if self._own_hours is None:
            self._own_hours = BusinessHours(self.services.db, self.services.config.hours)
        return self._own_hours

    @property
    def blacklist(self) -> BlacklistService:
        if self.services.blacklist is not None:
            return self.services.blacklist
        if self._own_blacklist is None:
            self._own_blacklist = BlacklistService(self.services.db, self.services.pbx, self.services.config.pbx)
        return self._own_blacklist

    @property
    def callbacks(self) -> CallbackService:
        if self.services.callbacks is not None:
            return self.services.callbacks
        if self._own_callbacks is None:
            self._own_callbacks = CallbackService(self.services.db, self.services.bus)
        return self._own_callbacks

    # ----------------------------------------------------------------------------------------- the call

    async def __call__(self, agi_session: AGISession) -> None:
        session = CallSession(agi_session)
        call = _Call(session)
        try:
            await self._run(call)
        except CallerHungUp as exc:
            stage = call.stage_of_hangup(exc)
            call.outcome = f"hangup during {stage}"
            # In the queue a hang-up is the normal end of a conversation; anywhere else it is worth knowing.
            level = logging.DEBUG if stage == "queue" else logging.INFO
            log.log(level, "inbound %s from %s: caller hung up during %s", session.uniqueid,
                    session.caller_number or "anonymous", stage)
            return
        log.info("inbound %s from %s: %s", session.uniqueid, session.caller_number or "anonymous", call.outcome)

    async def _run(self, call: _Call) -> None:
        session = call.session
        call.stage = "answer"
        await session.answer()
        # Korean digits for SAY DIGITS (installed as <sounds>/ko/digits/); our own prompts play in any language.
        await session.set_language(LANGUAGE)
        call.stage = "lookup"
        call.customer = await self._find_customer(session.caller_number)
        if await self._is_blocked(session):
            await self._reject(call)
            return
        if await self._is_open():
            await self._open_hours(call)
        else:
            call.stage = "after-hours"
            await session.play("after-hours")
            await self._capture_callback(call)

    async def _reject(self, call: _Call) -> None:
        session = call.session
        call.stage = "blocked"
        # Before the prompt: if contactd died during it, the dialplan must not queue a blacklisted caller.
        await session.mark_done()
        try:
            await self.blacklist.log_attempt(session.caller_number, session.uniqueid, at=self.clock())
        except Exception:
            log.exception("inbound %s: could not log the blocked attempt", session.uniqueid)
        await session.play("blocked")
        await session.hangup()
        call.outcome = "blocked"

    async def _open_hours(self, call: _Call) -> None:
        session = call.session
        call.stage = "greeting"
        await session.play("greeting")
        call.stage = "menu"
        call.choice = await session.menu("menu", MENU_CHOICES, attempts=3, timeout_s=self.menu_timeout_s)
        if call.choice is not None:
            await session.set_call_data("IVR_CHOICE", call.choice)
            await self._tell_tracker(session.uniqueid, call.choice)
        call.stage = "connecting"
        config = self.services.config.pbx
        vip = call.customer is not None and call.customer.vip
        await session.play("vip-connecting" if vip else "connecting")
        call.stage = "queue"
        await session.mark_done()
        status = await session.queue(config.vip_queue if vip else config.queue, timeout_s=self.queue_timeout_s)
        if status in QUEUE_NO_AGENT:
            # Nobody could take the call: rather than dropping it, offer to leave a number as after hours.
            log.info("inbound %s: queue ended with %s; offering a callback", session.uniqueid, status)
            call.stage = "no-agents"
            await session.mark_done(False)  # the IVR has the caller again: a crash from here on re-queues
            await session.play("no-agents")
            await self._capture_callback(call)
            return
        call.outcome = f"queued ({status or 'left queue'})"
        await session.hangup()

    # ----------------------------------------------------------------------------------------- callback

    async def _capture_callback(self, call: _Call) -> None:
        session = call.session
        invalid = reentries = 0
        while invalid < CALLBACK_TRIES and reentries < CALLBACK_TRIES:
            call.stage = "callback-entry"
            entry = await session.collect("callback-ask", max_digits=CALLBACK_MAX_KEYS,
                                          timeout_s=self.entry_timeout_s)
            number = self.callback_number(entry, session.caller_number)
            if number is None:
                invalid += 1
                await session.play("callback-invalid")
                continue
            call.stage = "callback-readback"
            await session.play("callback-readback")
            await session.say_digits(number)
            answer = await session.menu("callback-confirm", ("1", "2"), attempts=3, timeout_s=self.menu_timeout_s)
            if answer == "2":
                reentries += 1
                continue
            if answer is None:
                break  # never confirmed: saving a number they did not approve would call a stranger
            call.stage = "callback-save"
            await self._save_callback(call, number)
            call.stage = "callback-saved"
            await session.mark_done()
            await session.play("callback-saved")
            await session.play("goodbye")
            await session.hangup()
            return
        call.stage = "goodbye"
        call.outcome = "no callback left"
        await session.mark_done()
        await session.play("goodbye")
        await session.hangup()

    @staticmethod
    def callback_number(entry: Entry, caller_number: str) -> str | None:
        """The number to call back, or None when the entry is not acceptable.

        `#` alone means "this number" (unless the caller is anonymous); a silent timeout is not consent to use
        the calling number. Typed digits count even when the caller forgot the closing #.
        """
        if entry.empty_by_hash:
            digits = caller_number
        elif entry.digits.isdigit() and entry.digits.isascii():
            digits = entry.digits
        else:
            return None  # nothing typed, * or letters (A-D keys)
        if not CALLBACK_MIN_DIGITS <= len(digits) <= CALLBACK_MAX_DIGITS:
            return None
        return digits

    async def _save_callback(self, call: _Call, number: str) -> None:
        session = call.session
        customer = call.customer
        if customer is None and number != session.caller_number:
            customer = await self._find_customer(number)
        cb = await self.callbacks.capture(number, session.caller_number, session.uniqueid,
                                          customer.id if customer is not None else None, at=self.clock())
        call.outcome = f"callback #{cb.id} saved"

    # ----------------------------------------------------------------------------------------- lookups

    async def _find_customer(self, number: str) -> Any:
        if not normalize_or_none(number):
            return None
        try:
            found = await self.customers.find_by_number(number)
        except Exception:
            log.exception("inbound: customer lookup for %s failed", number)
            return None
        return found[0] if found else None

    async def _is_blocked(self, session: CallSession) -> bool:
        if session.anonymous:
            return False
        try:
            return await self.blacklist.is_blocked(session.caller_number)
        except Exception:
            # The dialplan checks AstDB before us; letting the caller through beats dropping everyone.
            log.exception("inbound %s: blacklist check failed; letting the call through", session.uniqueid)
            return False

    async def _is_open(self) -> bool:
        try:
            return await self.hours.is_open(self.clock())
        except Exception:
            log.exception("inbound: business hours check failed; treating as open")
            return True

    async def _tell_tracker(self, uniqueid: str, choice: str) -> None:
        tracker = self.services.tracker
        if tracker is None:
            return
        try:
            result = tracker.set_ivr_choice(uniqueid, choice)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("inbound %s: could not hand the IVR choice to the call tracker", uniqueid)


__all__ = ["InboundFlow", "MENU_CHOICES"]
