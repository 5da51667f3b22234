"""Health, OpenAPI document, i18n catalogues and the route registry's rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

from panel_helpers import Panel

from contactd.panel.app import FEATURE_MODULES, WEB_DIR
from contactd.panel.routing import ROLE_RANK

FOUNDATION = ("auth", "health", "openapi", "desk", "screenpop", "customers", "calls_api", "admin_users")


async def test_healthz_reports_each_part(panel: Panel) -> None:
    http = panel.anonymous()
    async with http.get("/healthz") as response:
        body = await response.json()
    # No AMI client in this app: degraded, but db and bus answer.
    assert response.status == 503
    assert body == {"ami": {"connected": False, "asterisk_version": None}, "db": {"ok": True}, "bus": {"ok": True},
                    "status": "degraded"}

    class Ami:
        connected = True
        asterisk_version = "22.5.2"

    panel.services.ami = Ami()
    async with http.get("/healthz") as response:
        body = await response.json()
    assert response.status == 200 and body["status"] == "ok" and body["ami"]["asterisk_version"] == "22.5.2"


async def test_openapi_lists_every_json_route(panel: Panel) -> None:
    async with panel.anonymous().get("/api/openapi.json") as response:
        doc = await response.json()
    assert doc["openapi"].startswith("3.1")
    api_routes = [info for module in FEATURE_MODULES for info in module.routes.routes if info.api]
    for info in api_routes:
        path = re.sub(r"\{(\w+)(?::[^}]*)?\}", r"{\1}", info.path)
        assert info.method.lower() in doc["paths"][path], path
    search = doc["paths"]["/api/customers"]["get"]
    assert {p["name"] for p in search["parameters"]} >= {"q", "field"}
    assert "401" in search["responses"] and search["x-required-role"] == "agent"
    assert doc["paths"]["/api/customers/{id}"]["delete"]["x-required-role"] == "supervisor"
    dial = doc["paths"]["/api/calls/dial"]["post"]
    assert dial["requestBody"]["content"]["application/json"]["schema"]["required"] == ["number"]
    assert {"409", "422"} <= set(dial["responses"])
    assert "/login" not in doc["paths"]  # pages are not API


def test_every_route_declares_a_role() -> None:
    for module in FEATURE_MODULES:
        for info in module.routes.routes:
            assert info.role in ROLE_RANK, info.path
            if info.method != "GET" and info.role != "public":
                assert info.csrf, info.path  # only the login form handles its own token


def test_catalogues_have_the_same_keys_and_templates_use_only_known_keys() -> None:
    ko = json.loads((WEB_DIR / "i18n" / "ko.json").read_text(encoding="utf-8"))
    en = json.loads((WEB_DIR / "i18n" / "en.json").read_text(encoding="utf-8"))
    assert set(ko) == set(en)
    used: set[str] = set()
    # The foundation's own templates and modules (feature pages of other engineers have their own tests).
    templates = [WEB_DIR / "templates" / name for name in ("base.html", "login.html", "error.html", "desk.html",
                                                            "_macros.html")]
    templates += list((WEB_DIR / "templates" / "customers").glob("*.html"))
    templates += list((WEB_DIR / "templates" / "admin").glob("*.html"))
    for path in templates:
        used |= set(re.findall(r"""\bt\(\s*["']([\w.\- ]+)["']""", path.read_text(encoding="utf-8")))
    sources = [Path(module.__file__) for module in FEATURE_MODULES if module.__name__.rsplit(".", 1)[1] in FOUNDATION]
    sources += [WEB_DIR.parent / "contactd" / "crm" / name for name in ("customers.py", "customer_import.py")]
    source = "\n".join(p.read_text(encoding="utf-8") for p in sources)
    used |= set(re.findall(r'(?:json_error\(request, \d+, |Error\(|RowProblem\(number, |\bt\()"([\w.]+)"', source))
    missing = sorted(k for k in used if k not in ko and not k.endswith("."))
    assert missing == []
    for choice in ("1", "2", "3", "0"):
        assert f"ivr.choice.{choice}" in ko
    assert ko["ivr.choice.1"] == "주문/배송" and ko["ivr.choice.0"] == "상담원"


async def test_security_headers_and_static_files(panel: Panel) -> None:
    async with panel.anonymous().get("/login") as response:
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    async with panel.anonymous().get("/static/app.js") as response:
        assert response.status == 200
