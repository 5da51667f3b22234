"""Property tests for the FastAGI wire parser: arbitrary bytes and chunkings never crash it, its memory stays
bounded, and how the bytes are split into reads never changes what it parses."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contactd.telephony.agi import (
    AGIReply,
    AGIStreamParser,
    HangupNotice,
    HeaderComplete,
    ProtocolViolation,
    ReplyReceived,
    parse_reply_line,
    quote_arg,
    split_agi_args,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL_LINE = 256


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


def feed_all(parser: AGIStreamParser, chunks: list[bytes]) -> list[object]:
    events: list[object] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
        # Whatever arrives, at most one unfinished line (bounded) is kept.
        assert parser.buffered <= parser.max_line
    return events


# Bytes that look a lot like AGI, so the fuzzer reaches the interesting states (usage blocks, HANGUP, ...).
_atoms = st.sampled_from([
    b"agi_network_script: inbound?x=1\n", b"agi_calleridname: \xed\x99\x8d\xea\xb8\xb8\xeb\x8f\x99\n", b"\n",
    b"\r\n", b"200 result=0\n", b"200 result=1 (x) endpos=5\n", b"200 result= (timeout)\n", b"HANGUP\n",
    b"510 Invalid or unknown command\n", b"511 Command Not Permitted\n", b"520-Invalid command syntax.\n",
    b"520 End of proper usage.\n", b"200 result=", b"\xff\xfe", b"\xed\x99", b"\x00", b"garbage line\n",
    b"200 result=" + b"9" * 300 + b"\n",
])
agi_ish = st.lists(st.one_of(_atoms, st.binary(max_size=40)), max_size=60).map(b"".join)


@FUZZ
@given(data=st.one_of(st.binary(max_size=3000), agi_ish), cuts=st.lists(st.integers(0, 4000), max_size=30),
       max_line=st.sampled_from([SMALL_LINE, 65536]))
def test_any_bytes_any_chunking_never_crash_and_stay_bounded(data: bytes, cuts: list[int], max_line: int) -> None:
    parser = AGIStreamParser(max_line=max_line)
    events = feed_all(parser, chunked(data, cuts))
    for event in events:
        assert isinstance(event, HeaderComplete | ReplyReceived | HangupNotice | ProtocolViolation)
    if parser.broken:
        assert isinstance(events[-1], ProtocolViolation)
        assert parser.feed(data) == [] and parser.buffered == 0


@FUZZ
@given(data=agi_ish, cuts=st.lists(st.integers(0, 4000), max_size=30))
def test_chunking_never_changes_the_events(data: bytes, cuts: list[int]) -> None:
    whole = AGIStreamParser(max_line=SMALL_LINE).feed(data)
    pieces = feed_all(AGIStreamParser(max_line=SMALL_LINE), chunked(data, cuts))
    if any(isinstance(e, ProtocolViolation) for e in whole):
        # An overlong line may be caught at a different point, but it is always caught.
        assert any(isinstance(e, ProtocolViolation) for e in pieces)
    else:
        assert pieces == whole


_value = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=30)
_reply = st.one_of(
    st.builds(lambda r, d: f"200 result={r}" + (f" ({d})" if d is not None else ""),
              st.integers(-2, 10**6), st.none() | _value),
    st.builds(lambda r, e: f"200 result={r} endpos={e}", st.integers(-1, 255), st.integers(0, 10**9)),
    st.just("510 Invalid or unknown command"),
    st.just("511 Command Not Permitted on a dead channel or intercept routine"),
)


@FUZZ
@given(header=st.dictionaries(st.from_regex(r"[a-z_0-9]{1,12}", fullmatch=True), _value, max_size=10),
       items=st.lists(st.one_of(_reply, st.just("HANGUP"),
                                st.lists(_value.filter(lambda v: v != "520 End of proper usage."), max_size=4)),
                      max_size=15),
       cuts=st.lists(st.integers(0, 5000), max_size=40))
def test_well_formed_sessions_parse_back_exactly(header: dict[str, str], items: list[object],
                                                 cuts: list[int]) -> None:
    wire = "".join(f"agi_{k}: {v}\n" for k, v in header.items()) + "\n"
    expected: list[object] = []
    for item in items:
        if item == "HANGUP":
            wire += "HANGUP\n"
            expected.append("HANGUP")
        elif isinstance(item, list):  # a 520 usage block whose text may look like replies
            wire += "520-Invalid command syntax.  Proper usage follows:\n" + "".join(f"{v}\n" for v in item)
            wire += "520 End of proper usage.\n"
            expected.append(("usage", "\n".join(item)))
        else:
            wire += f"{item}\n"
            expected.append(item)
    events = feed_all(AGIStreamParser(), chunked(wire.encode("utf-8"), cuts))
    assert isinstance(events[0], HeaderComplete) and events[0].env == header
    got: list[object] = []
    for event in events[1:]:
        if isinstance(event, HangupNotice):
            got.append("HANGUP")
        elif isinstance(event, ReplyReceived) and event.reply.code == 520:
            got.append(("usage", event.reply.data))
        else:
            assert isinstance(event, ReplyReceived)
            got.append(event.reply.raw)
    # Blank usage lines and blank data survive; stray blank reply lines are not in this grammar.
    assert got == expected


@FUZZ
@given(text=st.text(max_size=200))
def test_reply_line_parser_returns_a_reply_or_value_error(text: str) -> None:
    try:
        reply = parse_reply_line(text)
    except ValueError:
        return
    assert isinstance(reply, AGIReply) and 0 <= reply.code <= 999 and reply.raw == text


def test_endless_line_is_cut_off_with_bounded_memory() -> None:
    parser = AGIStreamParser(max_line=65536)
    events: list[object] = []
    for _ in range(64):  # 4 MiB without a newline
        events.extend(parser.feed(b"x" * 65536))
        assert parser.buffered <= 65536
    assert events and isinstance(events[0], ProtocolViolation)
    assert parser.buffered == 0


def test_endless_header_and_endless_usage_block_are_cut_off() -> None:
    parser = AGIStreamParser()
    events = parser.feed(b"agi_x: y\n" * 10_000)
    assert isinstance(events[-1], ProtocolViolation) and not any(isinstance(e, HeaderComplete) for e in events)
    parser = AGIStreamParser()
    events = parser.feed(b"\n520-Invalid\n" + b"200 result=0\n" * 10_000)
    assert isinstance(events[-1], ProtocolViolation)
    assert not any(isinstance(e, ReplyReceived) for e in events)


@FUZZ
@given(args=st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"),
                             max_size=20), min_size=1, max_size=5))
def test_quoted_arguments_survive_asterisks_argument_splitting(args: list[str]) -> None:
    line = "SET VARIABLE " + " ".join(quote_arg(a) for a in args)
    assert split_agi_args(line) == ["SET", "VARIABLE", *args]
