"""The simulator's FastAGI caller: plays Asterisk 22's side of one AGI call against a FastAGI server.

It connects, sends the agi_* block exactly as agi-session-inbound.txt shows it (same keys, same order, two
TCP segments), then answers every command the way res_agi does: unknown command → 510; command refused on a
dead channel → 511 (checked before the arguments, as traced); wrong arity → the multi-line 520 block; GET DATA
ends on `#` without "(timeout)"; after the caller hangs up the `HANGUP` notice follows the pending reply.
Prompts take no real time (an optional `reply_delay` knob exists); the simulated caller presses the keys from
`CallerBehaviour.keys` in order.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from contactd.telephony.agi import split_agi_args

MAX_COMMAND_LINE = 64 * 1024

# Endpos values from the traces, so a replay produces identical replies; other prompts get DEFAULT_ENDPOS.
TRACED_FILE_LENGTHS = {"hello-world": 11360, "beep": 3404}
DEFAULT_ENDPOS = 8000

DEAD = "511 Command Not Permitted on a dead channel or intercept routine"
INVALID = "510 Invalid or unknown command"
USAGE_HEAD = "520-Invalid command syntax.  Proper usage follows:"
USAGE_END = "520 End of proper usage."

# Dialplan applications the simulated PBX knows by default; anything else answers -2 like a missing module.
KNOWN_APPS = {
    "answer", "background", "dial", "goto", "gotoif", "hangup", "mixmonitor", "monitor", "musiconhold",
    "noop", "playback", "playtones", "queue", "read", "record", "saydigits", "saynumber", "senddtmf", "set",
    "stopmixmonitor", "verbose", "voicemail", "wait", "waitexten",
}


@dataclass(frozen=True)
class _Command:
    words: tuple[str, ...]
    min_args: int  # argc including the command words, as res_agi counts it
    max_args: int | None
    dead_ok: bool  # res_agi's per-command "dead" flag
    usage: str


# Only GET DATA's usage text is traced; the others follow the same shape.
_COMMANDS = [
    _Command(("ANSWER",), 1, None, False, "Answers channel if not already in answer state."),
    _Command(("HANGUP",), 1, 2, True, "Hangup a channel."),
    _Command(("GET", "VARIABLE"), 3, 3, True, "Gets a channel variable."),
    _Command(("GET", "FULL", "VARIABLE"), 4, 5, True, "Evaluates a channel expression."),
    _Command(("SET", "VARIABLE"), 4, 4, True, "Sets a channel variable."),
    _Command(("STREAM", "FILE"), 4, 5, False, "Sends audio file on channel."),
    _Command(("CONTROL", "STREAM", "FILE"), 5, 10, False, "Sends audio file on channel and allows the listener "
                                                        "to control the stream."),
    _Command(("GET", "DATA"), 3, 5, False, "Stream the given <replaceable>file</replaceable>, and receive DTMF "
                                           "data.\nReturns the digits received from the channel at the other end."),
    _Command(("GET", "OPTION"), 4, 5, False, "Stream file, prompt for DTMF, with timeout."),
    _Command(("WAIT", "FOR", "DIGIT"), 4, 4, False, "Waits for a digit to be pressed."),
    _Command(("SAY", "DIGITS"), 4, 4, False, "Says a given digit string."),
    _Command(("SAY", "NUMBER"), 4, 5, False, "Says a given number."),
    _Command(("SAY", "ALPHA"), 4, 4, False, "Says a given character string."),
    _Command(("EXEC",), 2, None, True, "Executes a given Application"),
    _Command(("RECORD", "FILE"), 6, None, False, "Records to a given file."),
    _Command(("NOOP",), 1, None, True, "Does nothing."),
    _Command(("VERBOSE",), 2, 3, True, "Logs a message to the asterisk verbose log."),
    _Command(("CHANNEL", "STATUS"), 2, 3, True, "Returns status of the connected channel."),
    _Command(("SET", "CALLERID"), 3, 3, False, "Sets callerid for the current channel."),
    _Command(("SET", "CONTEXT"), 3, 3, True, "Sets channel context."),
    _Command(("SET", "EXTENSION"), 3, 3, True, "Changes channel extension."),
    _Command(("SET", "PRIORITY"), 3, 3, True, "Set channel dialplan priority."),
    _Command(("SET", "MUSIC"), 3, 4, False, "Enable/Disable Music on hold generator"),
    _Command(("DATABASE", "GET"), 4, 4, True, "Gets database value"),
    _Command(("DATABASE", "PUT"), 5, 5, True, "Adds/updates database value"),
    _Command(("DATABASE", "DEL"), 4, 4, True, "Removes database key/value"),
]
_COMMANDS.sort(key=lambda c: -len(c.words))  # longest match first: GET FULL VARIABLE before GET ...

# A hangup "while this verb is playing" answers like this, then the HANGUP notice follows.
_HANGUP_REPLIES = {"STREAM FILE": "200 result=-1 endpos={endpos}", "CONTROL STREAM FILE": "200 result=-1 endpos={endpos}",
                   "RECORD FILE": "200 result=-1 (hangup) endpos={endpos}"}

_VAR_REF = re.compile(r"\$\{([^{}]*)\}")
_counter = itertools.count(1)


@dataclass
class CallerBehaviour:
    keys: list[str] = field(default_factory=list)
    hangup_after: int | None = None
    # Matched case-insensitively against the start of the command line: "STREAM FILE", "WAIT FOR DIGIT -1".
    hangup_during: str | None = None
    # True: the HANGUP notice is held back and sent just before the next command's reply (as in
    # agi-session-sip-caller.txt); False: sent right after the last reply (agi-session-inbound.txt).
    hangup_notice_first: bool = False
    missing_files: set[str] = field(default_factory=set)
    file_lengths: dict[str, int] = field(default_factory=dict)
    reply_delay: float = 0.0  # seconds before each reply; 0 keeps tests fast


@dataclass
class AGICallTranscript:
    commands: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)  # one per command; a 520 block joined with "\n"
    streamed: list[str] = field(default_factory=list)
    closed_by: str = ""
    hung_up: bool = False
    duration: float = 0.0
    # The channel's variables as the script left them (SET VARIABLE included): what the dialplan reads after AGI().
    variables: dict[str, str] = field(default_factory=dict)


ExecHandler = Callable[[str, str], Awaitable[str | None]]


class _SimChannel:
    """The simulated channel: variables, caller keys, alive/dead, and res_agi's answer to each command."""

    def __init__(self, behaviour: CallerBehaviour, variables: dict[str, str], exec_handler: ExecHandler | None,
                 transcript: AGICallTranscript) -> None:
        self.behaviour = behaviour
        self.keys = collections.deque(behaviour.keys)
        self.vars = variables
        self.db: dict[tuple[str, str], str] = {}
        self.exec_handler = exec_handler
        self.transcript = transcript
        self.dead = False
        self.notice_pending = False
        self.answered = 0

    def _endpos(self, name: str) -> int:
        lengths = {**TRACED_FILE_LENGTHS, **self.behaviour.file_lengths}
        return lengths.get(name, DEFAULT_ENDPOS)

    def _next_key(self) -> str:
        return self.keys.popleft() if self.keys else ""

    async def reply(self, line: str) -> tuple[list[str], bool]:
        """Lines to send for one command, and whether the caller hangs up right after them."""
        args = split_agi_args(line)
        upper = [a.upper() for a in args]
        cmd = next((c for c in _COMMANDS if tuple(upper[: len(c.words)]) == c.words), None)
        if cmd is None:
            return [INVALID], False
        if self.dead and not cmd.dead_ok:
            return [DEAD], False
        if len(args) < cmd.min_args or (cmd.max_args is not None and len(args) > cmd.max_args):
            return [USAGE_HEAD, *cmd.usage.split("\n"), USAGE_END], False
        during = self.behaviour.hangup_during
        if not self.dead and during and line.upper().startswith(during.upper()):
            return [self._hangup_reply(cmd, args)], True
        if not self.dead and cmd.words == ("WAIT", "FOR", "DIGIT") and args[3].startswith("-") and \
                not (self.keys and self.keys[0]):
            # An endless wait on a silent caller ends only when the caller gives up and hangs up (as traced).
            if self.keys:
                self.keys.popleft()
            return ["200 result=-1"], True
        own_hangup = cmd.words == ("HANGUP",) and not self.dead and \
            (len(args) == 1 or args[1] == self.vars.get("CHANNEL"))
        # After HANGUP of its own channel Asterisk replies 200 result=1, then the channel dies: HANGUP notice.
        return [await self._run(cmd, args)], own_hangup

    def _hangup_reply(self, cmd: _Command, args: list[str]) -> str:
        verb = " ".join(cmd.words)
        if verb in ("STREAM FILE", "CONTROL STREAM FILE"):
            self.transcript.streamed.append(args[len(cmd.words)])
            return _HANGUP_REPLIES[verb].format(endpos=self._endpos(args[len(cmd.words)]) // 2)
        if verb == "RECORD FILE":
            return _HANGUP_REPLIES[verb].format(endpos=800)
        if verb == "GET DATA":
            self.transcript.streamed.append(args[2])
        return "200 result=-1"

    async def _run(self, cmd: _Command, args: list[str]) -> str:
        verb = " ".join(cmd.words)
        rest = args[len(cmd.words):]
        if verb == "ANSWER":
            return "200 result=0"
        if verb == "HANGUP":
            return "200 result=1"
        if verb == "GET VARIABLE":
            value = self.vars.get(rest[0])
            return "200 result=0" if value is None else f"200 result=1 ({value})"
        if verb == "GET FULL VARIABLE":
            return f"200 result=1 ({_VAR_REF.sub(lambda m: self.vars.get(m.group(1), ''), rest[0])})"
        if verb == "SET VARIABLE":
            self.vars[rest[0]] = rest[1]
            return "200 result=1"
        if verb in ("STREAM FILE", "CONTROL STREAM FILE"):
            return self._stream(rest[0], rest[1])
        if verb == "GET DATA":
            return self._get_data(rest)
        if verb == "GET OPTION":
            return self._stream(rest[0], rest[1])
        if verb == "WAIT FOR DIGIT":
            key = self._next_key()
            return f"200 result={ord(key[0])}" if key else "200 result=0"
        if verb in ("SAY DIGITS", "SAY NUMBER", "SAY ALPHA"):
            key = self.keys[0] if self.keys else ""
            if len(key) == 1 and key in rest[1]:
                self.keys.popleft()
                return f"200 result={ord(key)}"
            return "200 result=0"
        if verb == "EXEC":
            return await self._exec(rest[0], rest[1] if len(rest) > 1 else "")
        if verb == "RECORD FILE":
            return "200 result=0 (timeout) endpos=0"
        if verb == "NOOP":
            return "200 result=0"
        if verb == "VERBOSE":
            return "200 result=1"
        if verb == "CHANNEL STATUS":
            return "200 result=6"  # AST_STATE_UP
        if verb == "DATABASE GET":
            value = self.db.get((rest[0], rest[1]))
            return "200 result=0" if value is None else f"200 result=1 ({value})"
        if verb == "DATABASE PUT":
            self.db[(rest[0], rest[1])] = rest[2]
            return "200 result=1"
        if verb == "DATABASE DEL":
            return "200 result=1" if self.db.pop((rest[0], rest[1]), None) is not None else "200 result=0"
        return "200 result=0"  # SET CALLERID/CONTEXT/EXTENSION/PRIORITY/MUSIC

    def _stream(self, name: str, escape: str) -> str:
        self.transcript.streamed.append(name)
        if name in self.behaviour.missing_files:
            return "200 result=-1 endpos=0"
        key = self.keys[0] if self.keys else ""
        if escape and len(key) == 1 and key in escape:
            # The caller pressed an escape digit a moment into the prompt.
            self.keys.popleft()
            return f"200 result={ord(key)} endpos={min(1600, self._endpos(name))}"
        return f"200 result=0 endpos={self._endpos(name)}"

    def _get_data(self, rest: list[str]) -> str:
        self.transcript.streamed.append(rest[0])
        max_digits = int(rest[2]) if len(rest) > 2 and rest[2].isdigit() and int(rest[2]) > 0 else 1024
        typed = self._next_key()
        if "#" in typed:
            return f"200 result={typed.split('#', 1)[0][:max_digits]}"
        if len(typed) >= max_digits:
            return f"200 result={typed[:max_digits]}"
        return f"200 result={typed} (timeout)"

    async def _exec(self, app: str, app_args: str) -> str:
        if self.dead:
            return "200 result=0" if app.lower() in KNOWN_APPS else "200 result=-2"
        if self.exec_handler is not None:
            custom = await self.exec_handler(app, app_args)
            if custom is not None:
                return custom
        if app.lower() not in KNOWN_APPS:
            return "200 result=-2"
        if app.lower() in ("playback", "background"):
            self.transcript.streamed.extend(f for f in app_args.split(",", 1)[0].split("&") if f)
        return "200 result=0"


def _header(script: str, host: str, port: int, channel: str, uniqueid: str, callerid: str, calleridname: str,
            extension: str, args: Sequence[str]) -> tuple[bytes, bytes]:
    """The agi_* block as Asterisk 22 sends it, in the same two segments as agi-session-inbound.txt."""
    first = [
        ("network", "yes"), ("network_script", script), ("request", f"agi://{host}:{port}/{script}"),
        ("channel", channel), ("language", "en"), ("type", channel.split("/", 1)[0]), ("uniqueid", uniqueid),
        ("version", "22.10.1"), ("callerid", callerid or "unknown"), ("calleridname", calleridname or "unknown"),
        ("callingpres", "0"), ("callingani2", "0"), ("callington", "0"), ("callingtns", "0"),
        ("dnid", "unknown"), ("rdnis", "unknown"), ("context", "from-pstn"),
    ]
    second = [
        ("extension", extension), ("priority", "3"), ("enhanced", "0.0"), ("accountcode", ""),
        ("threadid", str(139649189246656 + next(_counter))),
        *((f"arg_{i}", a) for i, a in enumerate(args, 1)),
    ]

    def encode(pairs: list[tuple[str, str]]) -> bytes:
        return "".join(f"agi_{k}: {v}\n" for k, v in pairs).encode("utf-8")

    return encode(first), encode(second) + b"\n"


async def place_agi_call(host: str, port: int, *, script: str = "inbound", callerid: str = "0212345678",
                         calleridname: str = "", uniqueid: str | None = None, channel: str | None = None,
                         extension: str = "100", args: Sequence[str] = (), behaviour: CallerBehaviour | None = None,
                         exec_handler: ExecHandler | None = None, variables: dict[str, str] | None = None,
                         timeout: float = 30.0) -> AGICallTranscript:
    """Connect to a FastAGI server as Asterisk would for one call and answer its commands until it closes.

    Like Asterisk, the caller never closes the socket on its own; it gives up only after `timeout` seconds
    (then `closed_by` is "caller").
    """
    behaviour = behaviour or CallerBehaviour()
    n = next(_counter)
    channel = channel or f"PJSIP/pstn-{n:08x}"
    uniqueid = uniqueid or f"{int(time.time())}.{n}"
    seeded = {"CALLERID(num)": callerid, "CALLERID(name)": calleridname, "CHANNEL": channel,
              "UNIQUEID": uniqueid, "EXTEN": extension, "CONTEXT": "from-pstn"}
    seeded.update(variables or {})
    transcript = AGICallTranscript(variables=seeded)
    sim = _SimChannel(behaviour, seeded, exec_handler, transcript)
    started = time.monotonic()
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, limit=MAX_COMMAND_LINE)
            first, second = _header(script, host, port, channel, uniqueid, callerid, calleridname, extension,
                                    args)
            writer.write(first)
            await writer.drain()
            writer.write(second)
            await writer.drain()
            if behaviour.hangup_after == 0:
                await _hang_up(sim, writer, transcript)
            await _serve(reader, writer, sim, transcript)
    except TimeoutError:
        transcript.closed_by = "caller"
    except (ConnectionError, asyncio.LimitOverrunError, ValueError):
        transcript.closed_by = transcript.closed_by or "server"
    finally:
        if writer is not None:
            writer.close()
        transcript.duration = time.monotonic() - started
    return transcript


async def _hang_up(sim: _SimChannel, writer: asyncio.StreamWriter, transcript: AGICallTranscript,
                   *, notice_now: bool = True) -> None:
    sim.dead = True
    transcript.hung_up = True
    if notice_now:
        writer.write(b"HANGUP\n")
        await writer.drain()
    else:
        sim.notice_pending = True


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sim: _SimChannel,
                 transcript: AGICallTranscript) -> None:
    behaviour = sim.behaviour
    while True:
        raw = await reader.readline()
        if not raw:
            transcript.closed_by = "server"
            return
        if not raw.endswith(b"\n"):
            transcript.closed_by = "server"  # EOF in the middle of a line
            return
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        transcript.commands.append(line)
        lines, hang_up_now = await sim.reply(line)
        if behaviour.reply_delay:
            await asyncio.sleep(behaviour.reply_delay)
        out = "".join(f"{item}\n" for item in lines)
        if sim.notice_pending:
            out = "HANGUP\n" + out
            sim.notice_pending = False
        transcript.replies.append("\n".join(lines))
        writer.write(out.encode("utf-8"))
        await writer.drain()
        sim.answered += 1
        if hang_up_now:
            await _hang_up(sim, writer, transcript)
        elif not sim.dead and behaviour.hangup_after is not None and sim.answered >= behaviour.hangup_after:
            await _hang_up(sim, writer, transcript, notice_now=not behaviour.hangup_notice_first)
