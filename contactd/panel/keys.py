"""Typed keys for what the panel keeps on its aiohttp Application and Request (no module globals)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from ..crm.accounts import AccountService
    from ..crm.customers import CustomerService
    from ..services import Services
    from .i18n import Catalogues
    from .render import Renderer
    from .routing import RouteInfo
    from .screenpop import ScreenPop
    from .sessions import SessionCodec
    from .tabs import CustomerTabs

SERVICES: web.AppKey[Services] = web.AppKey("services")
ACCOUNTS: web.AppKey[AccountService] = web.AppKey("accounts")
CUSTOMERS: web.AppKey[CustomerService] = web.AppKey("customers")
CATALOGUES: web.AppKey[Catalogues] = web.AppKey("catalogues")
RENDERER: web.AppKey[Renderer] = web.AppKey("renderer")
SESSIONS: web.AppKey[SessionCodec] = web.AppKey("sessions")
SCREENPOP: web.AppKey[ScreenPop] = web.AppKey("screenpop")
CUSTOMER_TABS: web.AppKey[CustomerTabs] = web.AppKey("customer_tabs")
ROUTES: web.AppKey[list[RouteInfo]] = web.AppKey("routes")
SETTINGS: web.AppKey[dict[str, Any]] = web.AppKey("settings")
# Tickets, inbox, call history and admin lists (panel/tickets.py, inbox.py, call_history.py, phonebook.py).
TICKETS: web.AppKey[Any] = web.AppKey("tickets")  # crm.tickets.TicketService
CONSULTATION_TYPES: web.AppKey[Any] = web.AppKey("consultation_types")  # crm.consultation_types.ConsultationTypeService
CALL_HISTORY: web.AppKey[Any] = web.AppKey("call_history")  # crm.call_history.CallHistoryService
PHONEBOOK: web.AppKey[Any] = web.AppKey("phonebook")  # crm.phonebook.PhonebookService
INBOX_HUB: web.AppKey[Any] = web.AppKey("inbox_hub")  # panel.inbox.InboxHub
# Orders, products, order import, consultation history, statistics (panel/orders.py, products.py,
# order_import.py, consultations.py, stats.py).
ORDERS: web.AppKey[Any] = web.AppKey("orders")  # crm.orders.OrderService
PRODUCTS: web.AppKey[Any] = web.AppKey("products")  # crm.orders.ProductService
ORDER_UPLOADS: web.AppKey[Any] = web.AppKey("order_uploads")  # panel.uploads.UploadStore
CONSULTATION_HISTORY: web.AppKey[Any] = web.AppKey("consultation_history")  # ConsultationHistoryService
STATS: web.AppKey[Any] = web.AppKey("stats")  # crm.stats.StatsService
# SMS (panel/sms.py): the daemon's dispatcher-owning service from services.extra, and the templates.
SMS: web.AppKey[Any] = web.AppKey("sms")  # crm.sms.SmsService
SMS_TEMPLATES: web.AppKey[Any] = web.AppKey("sms_templates")  # crm.sms.SmsTemplateService

# Per-request values set by the auth middleware.
USER: web.RequestKey[Any] = web.RequestKey("user", object)  # store.models.User | None
SESSION: web.RequestKey[Any] = web.RequestKey("session", object)  # sessions.Session | None
