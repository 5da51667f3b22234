"""Order, product pages and API: unified search, create/edit/delete, returns/exchanges with linked tickets,
linking an order or a line to a ticket, the customer "orders" tab, product images under 300 KB."""

from __future__ import annotations

import re
from datetime import date, timedelta

import aiohttp
from orders_helpers import order_rows, workbook_bytes

from contactd.crm.customers import CustomerService
from contactd.crm.order_import import import_orders
from contactd.crm.orders import OrderService, ProductService
from contactd.crm.tickets import TicketService
from contactd.store.models import utcnow

MAPPING = {"source": "A", "customer_name": "B", "phone": "C", "product": "D", "quantity": "E", "amount": "F",
           "order_no": "G", "order_date": "H", "status": "I", "invoice": "J"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 100


def today() -> date:
    from zoneinfo import ZoneInfo

    return utcnow().astimezone(ZoneInfo("Asia/Seoul")).date()


async def seed_orders(db) -> None:  # type: ignore[no-untyped-def]
    old = (today() - timedelta(days=40)).isoformat()
    rows = order_rows(3, day=today().isoformat()) + order_rows(1, day=old, prefix="OLD")
    await import_orders(db, workbook_bytes(rows), sheet="주문", header_row=1, mapping=MAPPING)


def order_nos(html: str) -> list[str]:
    return re.findall(r'<a href="/orders/\d+[^"]*">([^<]+)</a>', html)


async def test_unified_search_with_period_presets(make_panel, any_db) -> None:
    panel = await make_panel(any_db)
    await seed_orders(any_db)
    kim = await panel.login("kim")
    async with kim.http.get("/orders", params={"period": "today"}) as response:
        assert sorted(order_nos(await response.text())) == ["A0000", "A0001", "A0002"]
    async with kim.http.get("/orders", params={"period": "all", "name": "고객0"}) as response:
        assert sorted(order_nos(await response.text())) == ["A0000", "OLD0000"]
    async with kim.http.get("/orders", params={"period": "3months", "phone": "1234-0001"}) as response:
        assert order_nos(await response.text()) == ["A0001"]
    async with kim.http.get("/orders", params={"period": "month", "invoice": "INV00000"}) as response:
        assert order_nos(await response.text()) == ["A0000"]  # the old one is outside a month
    status, data = await kim.get_json("/api/orders", period="all", order_no="OLD0000")
    assert status == 200 and [o["order_no"] for o in data["orders"]] == ["OLD0000"]
    assert data["orders"][0]["lines"][0]["product_name"] == "상품0"
    status, data = await kim.get_json("/api/orders", phone="abc")
    assert status == 422 and "전화번호" in data["error"]


async def test_create_edit_delete_with_existing_sources_only(make_panel, any_db) -> None:
    panel = await make_panel(any_db)
    await seed_orders(any_db)
    kim = await panel.login("kim")
    boss = await panel.login("boss")
    async with kim.http.get("/orders/new") as response:
        page = await response.text()
    source_id = re.search(r'<option value="(\d+)">스마트스토어</option>', page).group(1)
    form = {"source_id": source_id, "order_no": "NEW-1", "order_date": "2026-03-05", "status": "order",
            "customer_name": "홍길동", "recipient_name": "홍길순", "phone": "010-5555-6666", "zip": "", "address": "서울",
            "invoice": "", "request": "문 앞", "line_product_id": ["", ""], "line_name": ["양말", ""],
            "line_quantity": ["2", "1"], "line_amount": ["12,000", ""]}
    response = await kim.form("/orders/new", form)
    assert response.status == 302
    order_id = int(response.headers["Location"].rsplit("/", 1)[1])
    view = await OrderService(any_db).view(order_id)
    assert view.source == "스마트스토어" and view.order.phone == "01055556666"
    assert [(line.product_name, line.quantity, line.amount) for line in view.lines] == [("양말", 2, 12000)]

    # A source that does not exist is refused (sources grow only by import); nothing is created.
    response = await kim.form("/orders/new", {**form, "source_id": "999", "order_no": "NEW-2"})
    assert response.status == 422
    assert len(await OrderService(any_db).search(period="all", order_no="NEW-2")) == 0
    response = await kim.form("/orders/new", {**form, "order_no": "NEW-3", "order_date": "어제"})
    assert response.status == 422

    response = await kim.form(f"/orders/{order_id}/edit", {**form, "status": "exchange", "line_name": ["양말", "모자"],
                                                          "line_quantity": ["2", "1"], "line_amount": ["12000", "5000"]})
    assert response.status == 302
    view = await OrderService(any_db).view(order_id)
    assert view.order.status == "exchange" and [line.product_name for line in view.lines] == ["양말", "모자"]

    assert (await kim.form(f"/orders/{order_id}/delete", {})).status == 403  # agents cannot delete
    assert (await boss.form(f"/orders/{order_id}/delete", {})).status == 302
    assert await OrderService(any_db).search(period="all", order_no="NEW-1") == []


async def test_return_and_exchanges_create_linked_tickets(make_panel, any_db) -> None:
    panel = await make_panel(any_db)
    await seed_orders(any_db)
    product = await ProductService(any_db).save("P-9", "새 모자")
    kim = await panel.login("kim")
    views = await OrderService(any_db).search(period="all", order_no="A0001")
    order = views[0].order
    line = views[0].lines[0]

    response = await kim.form(f"/orders/{order.id}/claim", {"kind": "return", "line": str(line.id),
                                                           "reason": "사이즈가 작아요"})
    assert response.status == 302
    ticket_id = int(re.search(r"created=(\d+)", response.headers["Location"]).group(1))
    async with kim.http.get(response.headers["Location"]) as page_response:
        page = await page_response.text()
    assert f'data-ticket="{ticket_id}" class="created"' in page and "반품 접수 A0001" in page
    ticket = await TicketService(any_db).get(ticket_id)
    assert ticket.order_id == order.id and ticket.order_line_id == line.id
    assert "사이즈가 작아요" in ticket.body and "INV00001" in ticket.body
    assert (await OrderService(any_db).view(order.id)).lines[0].status == "return"

    status, data = await kim.post_json(f"/api/orders/{order.id}/same", {"line_ids": [line.id]})
    assert status == 201 and data["ticket"]["title"].startswith("동일 상품 교환")
    status, data = await kim.post_json(f"/api/orders/{order.id}/other", {
        "line_ids": [line.id], "new_product_id": product.id, "new_amount": 19000, "new_quantity": 2})
    assert status == 201 and "새 모자 × 2 (19,000원)" in data["ticket"]["body"]
    status, data = await kim.post_json(f"/api/orders/{order.id}/other", {"line_ids": [line.id]})
    assert status == 422 and "교환할 상품" in data["error"]
    response = await kim.form(f"/orders/{order.id}/claim", {"kind": "return"})  # no line chosen
    assert response.status == 422
    status, data = await kim.get_json(f"/api/orders/{order.id}")
    assert len(data["order"]["tickets"]) == 3


async def test_link_order_or_line_to_the_ticket_in_the_url(make_panel, db) -> None:
    panel = await make_panel(db)
    await seed_orders(db)
    customer = await CustomerService(db).create(name="고객2", mobile="010-1234-0002")
    kim = await panel.login("kim")
    ticket = await TicketService(db).create(panel.users["kim"], title="배송 문의")
    views = await OrderService(db).search(period="all", order_no="A0002")
    order = views[0].order
    await OrderService(db).update(order.id, customer_id=customer.id)

    async with kim.http.get("/orders", params={"ticket": ticket.id, "period": "all"}) as response:
        page = await response.text()
    assert ticket.number in page and f'data-link-order="{order.id}"' in page
    response = await kim.form(f"/orders/{order.id}/link", {"ticket_id": str(ticket.id),
                                                          "line_id": str(views[0].lines[0].id)})
    assert response.status == 302 and "linked=1" in response.headers["Location"]
    fresh = await TicketService(db).get(ticket.id)
    assert (fresh.order_id, fresh.order_line_id, fresh.customer_id) == (order.id, views[0].lines[0].id, customer.id)
    async with kim.http.get(response.headers["Location"]) as page_response:
        page = await page_response.text()
    assert "접수에 연결했습니다" in page and f'data-ticket="{ticket.id}"' in page

    status, data = await kim.post_json(f"/api/orders/{order.id}/link", {"ticket_id": ticket.id, "line_id": 99999})
    assert status == 422
    status, data = await kim.post_json(f"/api/orders/{order.id}/link", {"ticket_id": 99999})
    assert status == 404

    # The customer's "orders" tab lists it.
    async with kim.http.get(f"/customers/{customer.id}", params={"tab": "orders"}) as response:
        assert "A0002" in await response.text()


async def test_products_image_limit_and_handler(make_panel, any_db) -> None:
    panel = await make_panel(any_db)
    boss = await panel.login("boss")
    kim = await panel.login("kim")

    async def save(user, code: str, image: bytes | None, product_id: int | None = None) -> aiohttp.ClientResponse:
        form = aiohttp.FormData()
        form.add_field("_csrf", user.csrf)
        form.add_field("code", code)
        form.add_field("name", f"{code} 상품")
        if product_id:
            form.add_field("id", str(product_id))
        if image is not None:
            form.add_field("image", image, filename="p.png", content_type="image/png")
        response = await user.http.post("/products", data=form, allow_redirects=False)
        response.text_body = await response.text()
        return response

    assert (await save(boss, "P-1", PNG)).status == 302
    big = await save(boss, "P-2", PNG + b"\0" * 300 * 1024)
    assert big.status == 422 and "300KB 미만" in big.text_body
    products = await ProductService(any_db).list()
    assert [p.code for p in products] == ["P-1"]
    async with kim.http.get(f"/products/{products[0].id}/image") as response:
        assert response.status == 200 and response.content_type == "image/png"
        assert await response.read() == PNG
    assert (await save(boss, "P-1b", None, products[0].id)).status == 302  # rename keeps the image
    status, data = await kim.get_json("/api/products")
    assert data["products"][0]["code"] == "P-1b" and data["products"][0]["image_url"]
    assert (await save(kim, "P-3", None)).status == 403
    assert (await boss.form(f"/products/{products[0].id}/delete", {})).status == 302
    async with kim.http.get(f"/products/{products[0].id}/image") as response:
        assert response.status == 404


async def test_order_lines_from_a_product_take_its_name(make_panel, db) -> None:
    panel = await make_panel(db)
    await seed_orders(db)
    product = await ProductService(db).save("SK-1", "양말 세트")
    kim = await panel.login("kim")
    status, data = await kim.post_json("/api/orders", {"order_no": "API-1", "order_date": "2026-03-01",
                                                       "lines": [{"product_id": product.id, "quantity": 3}]})
    assert status == 201, data
    assert data["order"]["lines"][0]["product_name"] == "양말 세트"
    status, data = await kim.post_json("/api/orders", {"order_no": "API-2", "lines": []})
    assert status == 422 and "하나 이상" in data["error"]
