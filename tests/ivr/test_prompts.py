"""Voice prompts: the shipped manifest renders to WAVs Asterisk plays as-is, recordings override, errors are clear."""

from __future__ import annotations

import array
import math
import os
import shutil
import sys
import wave
from pathlib import Path

import pytest

from contactd.ivr.prompts import (
    PROMPTS_DIR,
    REQUIRED_PROMPTS,
    Prompt,
    PromptError,
    build_prompts,
    install_prompts,
    load_manifest,
    sound_name,
)

MANIFEST = PROMPTS_DIR / "manifest.toml"
RMS_FLOOR = 500  # int16 units; espeak speech normalised to -3 dBFS is in the thousands, dither noise ~1


def _require_tools() -> None:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed (scripts/system-deps.sh installs them)"
        if os.environ.get("CONTACTD_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(f"required in CI: {reason}")
        pytest.skip(reason)


def _read(path: Path) -> tuple[wave._wave_params, array.array]:
    with wave.open(str(path), "rb") as wav:
        params = wav.getparams()
        samples = array.array("h", wav.readframes(params.nframes))
    if sys.byteorder == "big":
        samples.byteswap()
    return params, samples


def _rms(samples: array.array) -> float:
    return math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0


def _write_tone(path: Path, *, freq: float, seconds: float, rate: int = 44100, channels: int = 2) -> None:
    frames = array.array("h")
    for i in range(int(seconds * rate)):
        value = int(12000 * math.sin(2 * math.pi * freq * i / rate))
        frames.extend([value] * channels)
    if sys.byteorder == "big":
        frames.byteswap()
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(frames.tobytes())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    _require_tools()
    out = tmp_path_factory.mktemp("prompts") / "ko"
    paths = build_prompts(load_manifest(MANIFEST), out)
    return {p.stem: p for p in paths}


def test_every_manifest_prompt_is_an_asterisk_ready_audible_wav(built: dict[str, Path]) -> None:
    manifest = load_manifest(MANIFEST)
    assert set(built) == set(manifest)
    assert set(REQUIRED_PROMPTS) <= set(built)
    report = []
    for prompt_id, path in sorted(built.items()):
        params, samples = _read(path)
        duration = params.nframes / params.framerate
        report.append(f"{prompt_id}={duration:.2f}s")
        assert (params.framerate, params.nchannels, params.sampwidth) == (8000, 1, 2), prompt_id
        assert params.comptype == "NONE", prompt_id
        assert 0.5 <= duration <= 30.0, (prompt_id, duration)
        assert _rms(samples) > RMS_FLOOR, (prompt_id, _rms(samples))
    print("prompt durations:", " ".join(report))


def test_longer_text_gives_longer_prompt(built: dict[str, Path]) -> None:
    # A cheap check that the text really is spoken (not a fixed beep): the legal warning is a long paragraph.
    def seconds(pid: str) -> float:
        params, _ = _read(built[pid])
        return params.nframes / params.framerate

    assert seconds("warning-abuse") > 3 * seconds("callback-readback")
    assert seconds("menu") > seconds("invalid")


def test_slash_in_menu_text_is_not_read_out(tmp_path: Path) -> None:
    # espeak-ng's Korean voice says the English word "slash" for "/"; the builder turns it into a pause.
    _require_tools()
    with_slash = build_prompts({"a": Prompt("a", "주문/배송")}, tmp_path / "a")[0]
    with_comma = build_prompts({"a": Prompt("a", "주문, 배송")}, tmp_path / "b")[0]
    assert with_slash.read_bytes() == with_comma.read_bytes()


def test_custom_recording_replaces_the_synthesised_prompt(tmp_path: Path) -> None:
    _require_tools()
    custom = tmp_path / "custom" / "ko"
    custom.mkdir(parents=True)
    _write_tone(custom / "greeting.wav", freq=440.0, seconds=1.5)  # 44.1 kHz stereo, like a studio export
    manifest = {pid: Prompt(pid, text) for pid, text in (("greeting", "안녕하세요"), ("goodbye", "감사합니다"))}

    paths = {p.stem: p for p in build_prompts(manifest, tmp_path / "out", custom_dir=custom)}

    params, samples = _read(paths["greeting"])
    assert (params.framerate, params.nchannels, params.sampwidth) == (8000, 1, 2)
    assert abs(params.nframes / 8000 - 1.5) < 0.05  # the recording's length, not the speech's
    crossings = sum(1 for a, b in zip(samples, samples[1:], strict=False) if (a < 0) != (b < 0))
    assert abs(crossings / 2 / 1.5 - 440) < 10  # still the 440 Hz tone after resampling
    assert _rms(_read(paths["goodbye"])[1]) > RMS_FLOOR  # the other prompt is still synthesised


def test_recording_for_an_unknown_id_is_refused(tmp_path: Path) -> None:
    _require_tools()
    custom = tmp_path / "custom"
    custom.mkdir()
    _write_tone(custom / "greting.wav", freq=440.0, seconds=0.6)
    with pytest.raises(PromptError, match="greting"):
        build_prompts({"greeting": Prompt("greeting", "안녕하세요")}, tmp_path / "out", custom_dir=custom)


def test_a_broken_recording_fails_and_keeps_the_previous_prompt(tmp_path: Path) -> None:
    _require_tools()
    out = tmp_path / "out"
    manifest = {"greeting": Prompt("greeting", "안녕하세요")}
    first = build_prompts(manifest, out)[0]
    before = first.read_bytes()
    custom = tmp_path / "custom"
    custom.mkdir()
    (custom / "greeting.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(PromptError, match="greeting"):
        build_prompts(manifest, out, custom_dir=custom)
    assert first.read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["greeting.wav"]  # no half-written leftovers


def test_missing_tools_name_the_debian_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = {"greeting": Prompt("greeting", "안녕하세요")}
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    with pytest.raises(PromptError, match=r"apt-get install sox"):
        build_prompts(manifest, tmp_path / "out")

    sox = shutil.which("sox", path=os.defpath + ":/usr/local/bin")
    if sox is None:
        pytest.skip("sox not installed")
    (empty_bin / "sox").symlink_to(sox)
    with pytest.raises(PromptError, match=r"apt-get install espeak-ng"):
        build_prompts(manifest, tmp_path / "out")


def _write_manifest(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "manifest.toml"
    path.write_text(body, encoding="utf-8")
    return path


def _full_manifest(skip: str = "") -> str:
    return "".join(f'[prompts.{pid}]\ntext = "안내 {pid}"\n' for pid in REQUIRED_PROMPTS if pid != skip)


def test_manifest_loads_korean_text() -> None:
    manifest = load_manifest(MANIFEST)
    assert manifest["menu"].text.startswith("주문/배송 문의는 1번")
    assert "우물정자" in manifest["callback-ask"].text
    assert "산업안전보건법" in manifest["warning-abuse"].text and "폭언" in manifest["warning-abuse"].text
    assert "성희롱" in manifest["warning-sexual"].text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_full_manifest(skip="warning-sexual"), "missing prompt.*warning-sexual"),
        (_full_manifest() + '[prompts.extra]\ntext = ""\n', r"prompts\.extra.*non-empty"),
        (_full_manifest() + '[prompts.Bad_Id]\ntext = "x"\n', "lowercase"),
        (_full_manifest() + '[prompts.extra]\ntext = "x"\nvoice = "en"\n', "unknown key"),
        ('[prompts.greeting\ntext = "x"\n', "invalid TOML"),
        ("title = 'no prompts here'\n", r"no \[prompts"),
    ],
)
def test_bad_manifest_is_refused_with_a_clear_message(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(PromptError, match=message):
        load_manifest(_write_manifest(tmp_path, body))


def test_missing_manifest_file(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="not found"):
        load_manifest(tmp_path / "nope.toml")


def test_install_copies_to_the_sound_name_asterisk_plays(built: dict[str, Path], tmp_path: Path) -> None:
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    installed = install_prompts(built["greeting"].parent, sounds)
    assert len(installed) == len(built) + 10  # digit-0..9 also go to ko/digits/
    # Playback(contactd/greeting) looks for <sounds>/contactd/greeting.wav
    target = sounds / f"{sound_name('greeting')}.wav"
    assert target in installed
    assert target.read_bytes() == built["greeting"].read_bytes()
    assert target.stat().st_mode & 0o444 == 0o444
    assert not [p for p in (sounds / "contactd").iterdir() if p.name.startswith(".")]
    # Re-installing over existing files works (an upgrade).
    assert len(install_prompts(built["greeting"].parent, sounds)) == len(built) + 10


def test_install_puts_korean_digits_where_say_digits_looks(tmp_path: Path) -> None:
    # SAY DIGITS on a channel with language ko plays <sounds>/ko/digits/<d>; Asterisk ships no Korean digits.
    src = tmp_path / "build"
    src.mkdir()
    for name in ("greeting", *(f"digit-{d}" for d in range(10))):
        _write_tone(src / f"{name}.wav", freq=300 + len(name), seconds=0.2, rate=8000, channels=1)
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    installed = install_prompts(src, sounds)
    digits_dir = sounds / "ko" / "digits"
    assert sorted(p.name for p in digits_dir.iterdir()) == [f"{d}.wav" for d in range(10)]
    for d in range(10):
        assert (digits_dir / f"{d}.wav").read_bytes() == (src / f"digit-{d}.wav").read_bytes()
        assert (digits_dir / f"{d}.wav") in installed
        assert (sounds / "contactd" / f"digit-{d}.wav") in installed  # still playable as contactd/digit-<d>
    assert (sounds / "contactd" / "greeting.wav") in installed and len(installed) == 21
    assert (digits_dir / "7.wav").stat().st_mode & 0o444 == 0o444
    # Without digit prompts nothing is created under ko/.
    other = tmp_path / "other-sounds"
    other.mkdir()
    only_greeting = tmp_path / "only-greeting"
    only_greeting.mkdir()
    (only_greeting / "greeting.wav").write_bytes((src / "greeting.wav").read_bytes())
    assert install_prompts(only_greeting, other) == [other / "contactd" / "greeting.wav"]
    assert not (other / "ko").exists()


def test_install_errors(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="prompts build"):
        install_prompts(tmp_path / "nothing-built", tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    (src / "greeting.wav").write_bytes(b"x")
    with pytest.raises(PromptError, match="not a directory"):
        install_prompts(src, tmp_path / "no-such-sounds-dir")


def test_sound_name() -> None:
    assert sound_name("greeting") == "contactd/greeting"
    assert sound_name("warning-abuse") == "contactd/warning-abuse"
    with pytest.raises(PromptError):
        sound_name("../etc/passwd")
