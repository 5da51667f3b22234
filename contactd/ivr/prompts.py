"""Voice prompts: read the text manifest, render each prompt to a WAV Asterisk can play, install them.

Asterisk's `wav` format is 8 kHz mono 16-bit signed PCM; anything else is either refused or transcoded on
every playback. Text prompts are synthesised with espeak-ng (Korean voice) and converted with sox; a shop's
own recording (prompts/custom/ko/<id>.wav, any WAV sox can read) replaces the synthesised one. The manifest
keeps the text, so every prompt can be re-recorded later without touching the IVR.
"""

from __future__ import annotations

import array
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import wave
from dataclasses import dataclass
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"
LANGUAGE = "ko"
BUILD_DIR = PROMPTS_DIR / "build" / LANGUAGE
CUSTOM_DIR = PROMPTS_DIR / "custom" / LANGUAGE
SOUND_SUBDIR = "contactd"  # sounds/contactd/<id>.wav, played as "contactd/<id>"
# SAY DIGITS plays "digits/<d>" in the channel language (the IVR sets it to ko): sounds/ko/digits/<d>.wav.
# Asterisk ships no Korean digits, so our digit-<d> prompts are installed there as well.
DIGITS_SUBDIR = f"{LANGUAGE}/digits"
_DIGIT_PROMPT_RE = re.compile(r"^digit-([0-9])\.wav$")

# The ids the IVR and the shipped dialplan play; a manifest without one of them would fail mid-call.
REQUIRED_PROMPTS: tuple[str, ...] = (
    "greeting", "menu", "invalid", "connecting", "vip-connecting", "after-hours",
    "callback-ask", "callback-readback", "callback-confirm", "callback-saved", "callback-invalid",
    "blocked", "warning-abuse", "warning-sexual", "goodbye",
)

SAMPLE_RATE = 8000
ESPEAK_VOICE = "ko"
ESPEAK_SPEED = 150  # words per minute; espeak's default 175 is hard to follow over a phone line
TOOL_TIMEOUT = 60.0  # seconds per external command; they take well under one on a normal prompt

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_ALLOWED_KEYS = {"text", "note"}
# espeak-ng's Korean voice reads "/" as the English word "slash"; on the phone it is a pause.
_SPEECH_REPLACEMENTS = (("/", ", "),)
_DEBIAN_PACKAGES = {"espeak-ng": "espeak-ng", "sox": "sox"}


class PromptError(Exception):
    """A bad manifest, a missing tool (the message names the Debian package) or a failed conversion."""


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str


def sound_name(prompt_id: str) -> str:
    """What STREAM FILE / Playback take for a prompt: "contactd/greeting" (no extension)."""
    _check_id(prompt_id)
    return f"{SOUND_SUBDIR}/{prompt_id}"


def load_manifest(path: Path = PROMPTS_DIR / "manifest.toml") -> dict[str, Prompt]:
    """Read `[prompts.<id>] text = "..."` entries; every id in REQUIRED_PROMPTS must be present."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise PromptError(f"{path}: manifest not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise PromptError(f"{path}: invalid TOML ({exc})") from None

    table = data.get("prompts")
    if not isinstance(table, dict) or not table:
        raise PromptError(f"{path}: no [prompts.<id>] entries")
    manifest: dict[str, Prompt] = {}
    for prompt_id, entry in table.items():
        where = f"{path}: [prompts.{prompt_id}]"
        if not _ID_RE.match(prompt_id):
            raise PromptError(f"{where}: id must be lowercase letters, digits and dashes")
        if not isinstance(entry, dict):
            raise PromptError(f"{where}: expected a table with text = \"...\"")
        unknown = set(entry) - _ALLOWED_KEYS
        if unknown:
            raise PromptError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        text = entry.get("text")
        if not isinstance(text, str) or not text.strip():
            raise PromptError(f"{where}: text must be a non-empty string")
        manifest[prompt_id] = Prompt(prompt_id, text.strip())
    missing = [pid for pid in REQUIRED_PROMPTS if pid not in manifest]
    if missing:
        raise PromptError(f"{path}: missing prompt(s) {', '.join(missing)}")
    return manifest


def build_prompts(manifest: dict[str, Prompt], out_dir: Path, *, custom_dir: Path | None = None) -> list[Path]:
    """Render every prompt to out_dir/<id>.wav (8 kHz mono 16-bit); custom_dir/<id>.wav recordings win."""
    out_dir = Path(out_dir)
    customs = _custom_recordings(manifest, custom_dir)
    sox = _tool("sox")
    espeak = _tool("espeak-ng") if len(customs) < len(manifest) else ""
    out_dir.mkdir(parents=True, exist_ok=True)
    built: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="contactd-prompts-") as tmp_name:
        tmp = Path(tmp_name)
        for prompt in manifest.values():
            source = customs.get(prompt.id)
            if source is None:
                source = tmp / f"{prompt.id}.tts.wav"
                text_file = tmp / f"{prompt.id}.txt"
                text_file.write_text(_speech_text(prompt.text), encoding="utf-8")
                # Text goes through a file, not argv: a prompt starting with "-" must not read as an option.
                _run([espeak, "-v", ESPEAK_VOICE, "-s", str(ESPEAK_SPEED), "-w", str(source), "-f", str(text_file)],
                     f"espeak-ng for prompt {prompt.id}")
            target = out_dir / f"{prompt.id}.wav"
            # Written next to the target and renamed over it: a reader (or Asterisk, if out_dir is its
            # sounds dir) never sees half a file, and a failed build leaves the previous prompt in place.
            partial = out_dir / f".{prompt.id}.part.wav"
            try:
                # gain -n -3: every prompt at the same loudness, peaks 3 dB under full scale (no clipping
                # after the resampler, and a quiet home recording is not drowned by the synthesised ones).
                # -R: the same dither noise every run, so a rebuild of unchanged text gives identical files.
                _run([sox, "-q", "-R", str(source), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16",
                      "-e", "signed-integer", str(partial), "gain", "-n", "-3"],
                     f"sox for prompt {prompt.id} ({source.name})")
                _check_audible(partial, prompt.id)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
            built.append(target)
    return built


def install_prompts(src_dir: Path, sounds_dir: Path) -> list[Path]:
    """Copy src_dir/*.wav to sounds_dir/contactd/ (e.g. /var/lib/asterisk/sounds/contactd/greeting.wav), and
    digit-<d>.wav also to sounds_dir/ko/digits/<d>.wav, where SAY DIGITS on a Korean channel looks."""
    src_dir, sounds_dir = Path(src_dir), Path(sounds_dir)
    sources = sorted(p for p in src_dir.glob("*.wav") if not p.name.startswith(".")) if src_dir.is_dir() else []
    if not sources:
        raise PromptError(f"{src_dir}: no built prompts; run `contactd prompts build` first")
    if not sounds_dir.is_dir():
        raise PromptError(f"{sounds_dir}: not a directory (Asterisk's sounds dir, e.g. /var/lib/asterisk/sounds)")
    dest_dir = sounds_dir / SOUND_SUBDIR
    dest_dir.mkdir(exist_ok=True)
    installed: list[Path] = []
    for source in sources:
        installed.append(_install_file(source, dest_dir / source.name))
    digits = [(m.group(1), source) for source in sources if (m := _DIGIT_PROMPT_RE.match(source.name))]
    if digits:
        digits_dir = sounds_dir / DIGITS_SUBDIR
        digits_dir.mkdir(parents=True, exist_ok=True)
        for digit, source in digits:
            installed.append(_install_file(source, digits_dir / f"{digit}.wav"))
    return installed


def _install_file(source: Path, target: Path) -> Path:
    # Copied next to the target and renamed over it: Asterisk never plays half a file.
    partial = target.with_name(f".{target.name}.part")
    shutil.copyfile(source, partial)
    os.chmod(partial, 0o644)  # Asterisk usually runs as its own user and must be able to read it
    os.replace(partial, target)
    return target


def _check_audible(path: Path, prompt_id: str) -> None:
    """Refuse a prompt that came out empty or silent: on a call it would sound like a dead line."""
    with wave.open(str(path), "rb") as wav:
        frames = wav.getnframes()
        samples = array.array("h", wav.readframes(frames))
    if sys.byteorder == "big":
        samples.byteswap()
    if frames < SAMPLE_RATE // 10 or max((abs(s) for s in samples), default=0) < 1000:
        raise PromptError(f"prompt {prompt_id}: the result is empty or silent (check the text, the recording, "
                          f"and that espeak-ng has the {ESPEAK_VOICE!r} voice: espeak-ng --voices={ESPEAK_VOICE})")


def _check_id(prompt_id: str) -> None:
    if not _ID_RE.match(prompt_id):
        raise PromptError(f"bad prompt id {prompt_id!r}: lowercase letters, digits and dashes only")


def _speech_text(text: str) -> str:
    for old, new in _SPEECH_REPLACEMENTS:
        text = text.replace(old, new)
    return text


def _custom_recordings(manifest: dict[str, Prompt], custom_dir: Path | None) -> dict[str, Path]:
    if custom_dir is None or not Path(custom_dir).is_dir():
        return {}
    found = {p.stem: p for p in sorted(Path(custom_dir).iterdir()) if p.suffix.lower() == ".wav" and p.is_file()}
    # A misspelt file name would otherwise be ignored silently and the shop would still hear the robot voice.
    strays = sorted(name for name in found if name not in manifest)
    if strays:
        raise PromptError(f"{custom_dir}: recording(s) for unknown prompt id(s) {', '.join(strays)} "
                          f"(known ids are in prompts/manifest.toml)")
    return found


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PromptError(f"{name} not found: install the Debian package {_DEBIAN_PACKAGES[name]} "
                          f"(sudo apt-get install {_DEBIAN_PACKAGES[name]})")
    return path


def _run(argv: list[str], what: str) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, timeout=TOOL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise PromptError(f"{what}: no result after {TOOL_TIMEOUT:.0f} s") from None
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace").strip() or f"exit status {result.returncode}"
        raise PromptError(f"{what} failed: {detail}")


__all__ = [
    "BUILD_DIR", "CUSTOM_DIR", "DIGITS_SUBDIR", "LANGUAGE", "PROMPTS_DIR", "REQUIRED_PROMPTS", "Prompt", "PromptError",
    "build_prompts", "install_prompts", "load_manifest", "sound_name",
]
