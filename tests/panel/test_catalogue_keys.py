"""Every UI string the templates and the menu ask for exists in both catalogues (a missing key shows as raw text)."""

from __future__ import annotations

import re
from pathlib import Path

from contactd.panel.i18n import Catalogues

ROOT = Path(__file__).resolve().parents[2]
# t("key") written literally; keys built at run time ("x." ~ name) are checked by their features' own tests.
LITERAL = re.compile(r"""(?<![A-Za-z_.])t\(["']([a-z0-9_.]+[a-z0-9_])["']\s*[,)]""")
NAV = re.compile(r'NavItem\("([a-z0-9_.]+)"|NavGroup\("[a-z_]+", "([a-z0-9_.]+)"')


def used_keys() -> set[str]:
    keys: set[str] = set()
    for path in [*(ROOT / "web" / "templates").rglob("*.html"), *(ROOT / "contactd" / "panel").glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        keys.update(LITERAL.findall(text))
        keys.update(key for pair in NAV.findall(text) for key in pair if key)
    return keys


def test_every_literal_key_is_in_both_catalogues() -> None:
    catalogues = Catalogues(ROOT / "web" / "i18n")
    keys = used_keys()
    assert len(keys) > 300  # the scan itself works
    for language in ("ko", "en"):
        messages = catalogues.get(language).messages
        assert sorted(k for k in keys if k not in messages) == [], language
