"""UI text catalogues: one JSON file per language under web/i18n; Korean is the default and the fallback."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_LANGUAGE = "ko"
LANGUAGES = ("ko", "en")


class _Keep(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"  # a missing parameter shows as itself instead of crashing the page


class Catalogue:
    def __init__(self, language: str, messages: dict[str, str], fallback: Catalogue | None = None) -> None:
        self.language = language
        self.messages = messages
        self.fallback = fallback

    def has(self, key: str) -> bool:
        return key in self.messages or (self.fallback is not None and self.fallback.has(key))

    def t(self, key: str, **params: Any) -> str:
        text = self.messages.get(key)
        if text is None and self.fallback is not None:
            text = self.fallback.messages.get(key)
        if text is None:
            log.warning("i18n: missing key %r (%s)", key, self.language)
            return key
        return text.format_map(_Keep(params)) if params else text

    __call__ = t


class Catalogues:
    def __init__(self, directory: Path, default: str = DEFAULT_LANGUAGE) -> None:
        base = _load_language(directory, DEFAULT_LANGUAGE)
        ko = Catalogue(DEFAULT_LANGUAGE, base)
        self._by_lang: dict[str, Catalogue] = {DEFAULT_LANGUAGE: ko}
        for lang in LANGUAGES:
            if lang != DEFAULT_LANGUAGE:
                self._by_lang[lang] = Catalogue(lang, _load_language(directory, lang), fallback=ko)
        self.default = default if default in self._by_lang else DEFAULT_LANGUAGE

    def get(self, language: str | None) -> Catalogue:
        return self._by_lang.get(language or self.default) or self._by_lang[self.default]

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self._by_lang)


def _load_language(directory: Path, lang: str) -> dict[str, str]:
    """`<lang>.json` plus the feature fragments `<lang>/*.json` (each feature keeps its strings in its own file,
    so features never edit one another's); together they are that language's one catalogue."""
    messages = _load(directory / f"{lang}.json")
    for fragment in sorted((directory / lang).glob("*.json")):
        extra = _load(fragment)
        clash = set(extra) & set(messages)
        if clash:
            raise ValueError(f"{fragment}: keys already defined elsewhere: {', '.join(sorted(clash))}")
        messages.update(extra)
    return messages


def _load(path: Path) -> dict[str, str]:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{path}: expected an object of strings")
    return data
