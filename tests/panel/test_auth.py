"""Accounts in the panel: login, logout, throttling, CSRF, roles and permissions, deactivation."""

from __future__ import annotations

from panel_helpers import CSRF_FIELD, PASSWORD, Panel
from sqlalchemy import func, select
from yarl import URL

from contactd.store.models import Customer, User
from contactd.store.models.panel import AuditLog


async def test_logged_out_pages_redirect_to_login_and_api_answers_401(panel: Panel) -> None:
    http = panel.anonymous()
    async with http.get("/customers?q=x", allow_redirects=False) as response:
        assert response.status == 302
        location = URL(response.headers["Location"])
        assert location.path == "/login" and location.query["next"] == "/customers?q=x"
    async with http.get("/api/customers") as response:
        assert response.status == 401
        assert "로그인" in (await response.json())["error"]


async def test_login_sets_a_signed_httponly_lax_cookie_and_logout_ends_it(panel: Panel) -> None:
    http = panel.anonymous()
    async with http.get("/login") as response:
        page = await response.text()
        assert "아이디" in page and "비밀번호" in page  # Korean by default
        token = CSRF_FIELD.search(page).group(1)
    async with http.post("/login", data={"username": "kim", "password": PASSWORD, "_csrf": token, "next": "/customers"},
                         allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"] == "/customers"
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    async with http.get("/api/me") as response:
        me = await response.json()
        assert me["username"] == "kim" and me["extension"] == "1001"
    async with http.post("/logout", data={"_csrf": me["csrf_token"]}, allow_redirects=False) as response:
        assert response.status == 302
    async with http.get("/api/me") as response:
        assert response.status == 401


async def test_tampered_cookie_is_not_a_session(panel: Panel) -> None:
    kim = await panel.login("kim")
    jar = kim.http.cookie_jar
    value = next(c.value for c in jar if c.key == "contactd_session")
    body, sig = value.split(".")
    forged = body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + sig
    jar.update_cookies({"contactd_session": forged}, response_url=URL(panel.url("/")))
    assert (await kim.get_json("/api/me"))[0] == 401


async def test_wrong_password_then_throttle_429_in_korean(make_panel, db) -> None:
    panel = await make_panel(db, settings={"login_limit": 3})
    http = panel.anonymous()
    async with http.get("/login") as response:
        token = CSRF_FIELD.search(await response.text()).group(1)
    statuses = []
    for _ in range(3):
        async with http.post("/login", data={"username": "kim", "password": "nope-nope", "_csrf": token}) as response:
            statuses.append(response.status)
            assert "올바르지 않습니다" in await response.text()
    assert statuses == [401, 401, 401]
    # Even the right password is refused while throttled: guessing stops here.
    async with http.post("/login", data={"username": "kim", "password": PASSWORD, "_csrf": token},
                         allow_redirects=False) as response:
        assert response.status == 429
        assert "로그인 시도가 너무 많습니다" in await response.text()
    # Another user from the same address is not punished for kim's typos.
    await panel.login("lee")


async def test_login_form_without_its_token_is_refused(panel: Panel) -> None:
    http = panel.anonymous()
    async with http.post("/login", data={"username": "kim", "password": PASSWORD}, allow_redirects=False) as response:
        assert response.status == 403
    async with http.get("/api/me") as response:
        assert response.status == 401


async def test_post_without_csrf_token_is_403_and_changes_nothing(panel: Panel) -> None:
    kim = await panel.login("kim")
    status, body = await kim.post_json("/api/customers", {"name": "홍길동", "mobile": "010-1111-2222"}, csrf=False)
    assert status == 403 and "보안 토큰" in body["error"]
    async with kim.http.post("/api/customers", json={"name": "홍길동"}, headers={"X-CSRF-Token": "wrong"}) as r:
        assert r.status == 403
    response = await kim.form("/customers/new", {"name": "홍길동"}, csrf=False)
    assert response.status == 403
    async with panel.services.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 0
    # With the token it works.
    status, _ = await kim.post_json("/api/customers", {"name": "홍길동", "mobile": "010-1111-2222"})
    assert status == 201


async def test_agent_cannot_reach_admin_pages_and_forbidden_create_changes_nothing(panel: Panel) -> None:
    kim = await panel.login("kim")
    async with kim.http.get("/admin/users") as response:
        assert response.status == 403
        assert "권한이 없습니다" in await response.text()
    response = await kim.form("/admin/users", {"username": "mallory", "password": "x" * 10, "role": "admin",
                                               "language": "ko"})
    assert response.status == 403
    async with panel.services.db.session() as session:
        assert await session.scalar(select(User.id).where(User.username == "mallory")) is None


async def test_supervisor_is_not_admin(panel: Panel) -> None:
    boss = await panel.login("boss")
    response = await boss.form(f"/admin/users/{panel.users['kim'].id}/deactivate", {})
    assert response.status == 403
    assert (await panel.accounts.get(panel.users["kim"].id)).active


async def test_deactivated_user_is_out_at_once(panel: Panel) -> None:
    kim = await panel.login("kim")
    admin = await panel.login("admin")
    response = await admin.form(f"/admin/users/{panel.users['kim'].id}/deactivate", {})
    assert response.status == 302
    assert (await kim.get_json("/api/me"))[0] == 401  # the same, still-signed cookie no longer works
    async with panel.services.db.session() as session:
        actions = list(await session.scalars(select(AuditLog.action)))
    assert "user.deactivate" in actions


async def test_admin_creates_and_edits_users_with_validation(panel: Panel) -> None:
    admin = await panel.login("admin")
    response = await admin.form("/admin/users", {"username": "choi", "password": "password-1", "role": "agent",
                                                 "extension": "12345", "language": "ko"})
    assert response.status == 422
    assert "1~4자리" in await response.text()
    response = await admin.form("/admin/users", {"username": "choi", "password": "password-1", "role": "agent",
                                                 "extension": "1001", "language": "ko"})
    assert response.status == 422 and "이미 사용 중인 내선번호" in await response.text()
    response = await admin.form("/admin/users", {"username": "choi", "password": "password-1", "role": "agent",
                                                 "extension": "1004", "language": "en", "can_export": "1"})
    assert response.status == 302
    users = {u.username: u for u in await panel.accounts.list_users()}
    choi = users["choi"]
    assert (choi.extension, choi.language, choi.can_export, choi.can_edit_consultations) == ("1004", "en", True, False)
    response = await admin.form(f"/admin/users/{choi.id}", {"display_name": "Choi", "role": "supervisor",
                                                            "extension": "1005", "language": "en",
                                                            "can_edit_consultations": "1"})
    assert response.status == 302
    choi = await panel.accounts.get(choi.id)
    assert (choi.role, choi.extension, choi.can_edit_consultations, choi.can_export) == ("supervisor", "1005", True,
                                                                                       False)
    # English user sees English pages.
    session = await panel.login("choi", "password-1")
    async with session.http.get("/customers") as response:
        assert "Customers" in await response.text()


async def test_last_admin_cannot_lock_everyone_out(panel: Panel) -> None:
    admin = await panel.login("admin")
    response = await admin.form(f"/admin/users/{panel.users['admin'].id}",
                                {"role": "agent", "language": "ko", "extension": ""})
    assert response.status == 422
    assert (await panel.accounts.get(panel.users["admin"].id)).role == "admin"


async def test_extensions_are_at_most_four_digits(panel: Panel) -> None:
    admin = await panel.login("admin")
    assert (await admin.form("/admin/extensions", {"number": "12345", "label": "x"})).status == 422
    assert (await admin.form("/admin/extensions", {"number": "2001", "label": "회의실"})).status == 302
    assert "2001" in [e.number for e in await panel.accounts.list_extensions()]
    # An extension in use cannot be deleted.
    assert (await admin.form("/admin/extensions/1001/delete", {})).status == 422
    assert (await admin.form("/admin/extensions/2001/delete", {})).status == 302
    assert "2001" not in [e.number for e in await panel.accounts.list_extensions()]


async def test_export_needs_the_export_permission(panel: Panel) -> None:
    kim = await panel.login("kim")
    async with kim.http.get("/customers/export.xlsx") as response:
        assert response.status == 403
    park = await panel.login("park")  # agent with the export permission
    async with park.http.get("/customers/export.xlsx") as response:
        assert response.status == 200
        assert (await response.read())[:2] == b"PK"


async def test_language_setting_switches_the_catalogue(panel: Panel) -> None:
    kim = await panel.login("kim")
    async with kim.http.get("/") as response:
        assert "상담 화면" in await response.text()
    response = await kim.form("/settings/language", {"language": "en", "next": "/"})
    assert response.status == 302
    async with kim.http.get("/") as response:
        page = await response.text()
        assert "Agent desk" in page and "상담 화면" not in page
