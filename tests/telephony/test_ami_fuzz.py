"""Property tests for AMIParser: any bytes in any chunking never crash it nor grow its buffer past the limit."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trace_reader import server_bytes

from contactd.telephony.ami import AMIMessage, AMIParser, AMIProtocolError

LIMIT = 512
RECORDED = server_bytes("ami-originate-inbound-call.txt")[:6000]

# Bytes that matter to the framing, mixed with arbitrary ones.
_pieces = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(
        [b"\r\n", b"\n", b"\r", b": ", b"\r\n\r\n", b"\n\n", "홍길동".encode(), b"\xed\x99", b"Event: X"]
    ),
)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in points:
        out.append(data[prev:p])
        prev = p
    out.append(data[prev:])
    return out


def _feed_all(parser: AMIParser, chunks: list[bytes]) -> list[AMIMessage]:
    messages: list[AMIMessage] = []
    for chunk in chunks:
        try:
            messages.extend(parser.feed(chunk))
        except AMIProtocolError as exc:
            messages.extend(exc.messages)
        assert parser.buffered <= LIMIT + 1  # +1: a trailing "\r" held back until its "\n" arrives
    return messages


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_pieces, max_size=60), st.lists(st.integers(min_value=0), max_size=12), st.booleans())
def test_arbitrary_bytes_never_crash_and_memory_stays_bounded(
    pieces: list[bytes], cuts: list[int], banner: bool
) -> None:
    data = b"".join(pieces)
    parser = AMIParser(max_message_size=LIMIT, expect_banner=banner)
    for message in _feed_all(parser, _chunks(data, cuts)):
        assert message.headers
        for key, value in message.headers:
            assert isinstance(key, str) and isinstance(value, str)
        message.to_bytes()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0), min_size=1, max_size=30))
def test_chunking_never_changes_what_recorded_bytes_parse_to(cuts: list[int]) -> None:
    expected = AMIParser(max_message_size=1 << 20).feed(RECORDED)
    parser = AMIParser(max_message_size=1 << 20)
    got: list[AMIMessage] = []
    for chunk in _chunks(RECORDED, cuts):
        got.extend(parser.feed(chunk))
    assert got == expected


_key = st.one_of(
    st.sampled_from(["Event", "event", "EVENT", "Uniqueid", "UniqueID", "Output", "output"]),
    st.text(alphabet=st.characters(blacklist_characters="\r\n:", blacklist_categories=("Cs",)), min_size=1),
)
_value = st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.lists(st.tuples(_key, _value), min_size=1, max_size=6), max_size=6), st.lists(st.integers(0))
)
def test_serialized_messages_round_trip(messages: list[list[tuple[str, str]]], cuts: list[int]) -> None:
    # Keys with a leading/trailing space or ending in ":" are not representable in AMI: normalise them.
    originals = [AMIMessage([(k.strip() or "K", v) for k, v in m]) for m in messages]
    originals = [AMIMessage([(k.rstrip(":") or "K", v) for k, v in m.headers]) for m in originals]
    data = b"".join(m.to_bytes() for m in originals)
    parser = AMIParser(expect_banner=False)
    got: list[AMIMessage] = []
    for chunk in _chunks(data, cuts):
        got.extend(parser.feed(chunk))
    assert got == originals
    # Lookups on a message whose headers were never split agree with the split headers, in any key case.
    for original in originals:
        for key, _ in original.headers:
            first = next(v for k, v in original.headers if k.lower() == key.lower())
            fresh = AMIParser(expect_banner=False).feed(original.to_bytes())[0]
            assert fresh.get(key) == first
            if key.isascii():  # AMI keys are ASCII; Unicode case folding ("ß" → "SS") is out of scope
                assert fresh.get(key.swapcase()) == first


# Keys that are prefixes of each other, in several spellings, plus KELVIN SIGN and a Hangul key.
_near_key = st.sampled_from(["Key", "key", "KEY", "Ke", "Keys", "\u212aey", "Uniqueid", "UniqueID", "키"])
_line = st.one_of(
    st.builds(lambda k, v: f"{k}: {v}", _near_key, _value),  # "Key: value"
    st.builds(lambda k: f"{k}:", _near_key),  # "Key:" (an empty value)
    _near_key,  # a bare "Key" (an empty value too)
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_line, min_size=1, max_size=8))
def test_lookups_on_unsplit_bytes_agree_with_split_headers_for_odd_lines(lines: list[str]) -> None:
    data = "\r\n".join(lines).encode() + b"\r\n\r\n"
    split = AMIParser(expect_banner=False).feed(data)[0].headers
    for key in ["Key", "key", "KEY", "Ke", "Keys", "\u212aEY", "uniqueid", "UNIQUEID", "키", "Nope"]:
        expected = next((v for k, v in split if k.lower() == key.lower()), None)
        assert AMIParser(expect_banner=False).feed(data)[0].get(key) == expected, key
