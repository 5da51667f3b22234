"""Product pages (seed 003 §5): list, add, edit, delete; an image under 300 KB per product, served by a handler.

Handlers call crm.orders.ProductService; they never build SQL.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..crm.orders import PRODUCT_IMAGE_MAX, OrderError
from ..store.models import Product
from . import keys
from .auth import client_ip
from .render import json_response
from .routing import PanelRoutes, Param

routes = PanelRoutes("products")
IMAGE_TYPES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG", "image/png"), (b"GIF87a", "image/gif"),
               (b"GIF89a", "image/gif"))


def image_type(data: bytes) -> str | None:
    return next((kind for magic, kind in IMAGE_TYPES if data.startswith(magic)), None)


def product_json(product: Product) -> dict[str, Any]:
    return {"id": product.id, "code": product.code, "name": product.name,
            "image_url": f"/products/{product.id}/image" if product.image_type else None}


async def _find(request: web.Request, product_id: int) -> Product | None:
    return await request.app[keys.PRODUCTS].get(product_id)


async def _page(request: web.Request, *, error: str = "", status: int = 200, values: dict[str, Any] | None = None,
                edit_id: int | None = None) -> web.Response:
    query = request.query.get("q", "")
    return request.app[keys.RENDERER].render(
        request, "products/list.html", status=status, products=await request.app[keys.PRODUCTS].list(query), q=query,
        error=error, values=values or {"code": "", "name": ""}, edit_id=edit_id, max_kb=PRODUCT_IMAGE_MAX // 1024)


@routes.get("/products", role="supervisor")
async def list_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


@routes.post("/products", role="supervisor")
async def save_submit(request: web.Request) -> web.StreamResponse:
    """Add (no id) or change (id) a product; an image chosen replaces the stored one."""
    form = await request.post()
    raw_id = str(form.get("id") or "")
    product_id = int(raw_id) if raw_id.isdigit() else None
    values = {"code": str(form.get("code") or "").strip(), "name": str(form.get("name") or "").strip()}
    upload = form.get("image")
    image = upload.file.read() if isinstance(upload, web.FileField) else b""
    try:
        product = await request.app[keys.PRODUCTS].save(values["code"], values["name"], image=image or None,
                                                         image_type=image_type(image) if image else None,
                                                         product_id=product_id)
    except OrderError as exc:
        return await _page(request, error=str(exc), status=422, values=values, edit_id=product_id)
    await request.app[keys.ACCOUNTS].audit(request[keys.USER].id, "product.save", f"product:{product.id}",
                                           product.code, ip=client_ip(request))
    raise web.HTTPFound("/products")


@routes.post(r"/products/{id:\d+}/delete", role="supervisor")
async def delete_submit(request: web.Request) -> web.StreamResponse:
    product_id = int(request.match_info["id"])
    await request.app[keys.PRODUCTS].delete(product_id)
    await request.app[keys.ACCOUNTS].audit(request[keys.USER].id, "product.delete", f"product:{product_id}",
                                           ip=client_ip(request))
    raise web.HTTPFound("/products")


@routes.get(r"/products/{id:\d+}/image", role="agent")
async def image(request: web.Request) -> web.StreamResponse:
    product = await _find(request, int(request.match_info["id"]))
    if product is None or not product.image:
        raise web.HTTPNotFound()
    kind = image_type(product.image) or "application/octet-stream"
    return web.Response(body=product.image, content_type=kind, headers={"Cache-Control": "private, max-age=300"})


@routes.get("/api/products", role="agent", summary="Products (code, name, image URL)",
            params=(Param("q", description="part of the name, or the exact code"),),
            responses={200: '{"products": [{"id", "code", "name", "image_url"}]}'})
async def api_list(request: web.Request) -> web.StreamResponse:
    found = await request.app[keys.PRODUCTS].list(request.query.get("q", ""))
    return json_response({"products": [product_json(p) for p in found]})
