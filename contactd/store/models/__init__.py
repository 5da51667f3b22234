"""All tables. Each feature owns one module; importing this package registers them all on `Base.metadata`."""

from .accounts import ROLES, Extension, User
from .base import Base, UTCDateTime, utcnow
from .blacklist import BlacklistEntry, BlockedAttempt
from .callbacks import Callback
from .calls import DIRECTIONS, DISPOSITIONS, Call
from .customers import Customer
from .hours import BusinessDay, Holiday
from .incidents import INCIDENT_KINDS, Incident
from .orders import ORDER_STATUSES, Order, OrderLine, OrderSource, Product
from .panel import AuditLog, LoginAttempt
from .phonebook import PhonebookEntry
from .sms import SmsMessage, SmsRecipient, SmsTemplate, SmsTemplateFolder
from .tickets import ConsultationType, Ticket, TicketEntry, TicketHistory

__all__ = [
    "Base", "UTCDateTime", "utcnow", "ROLES", "Extension", "User", "Call", "DIRECTIONS", "DISPOSITIONS",
    "Customer", "ConsultationType", "Ticket", "TicketEntry", "TicketHistory",
    "SmsMessage", "SmsRecipient", "SmsTemplate", "SmsTemplateFolder",
    "ORDER_STATUSES", "Order", "OrderLine", "OrderSource", "Product", "PhonebookEntry",
    "BlacklistEntry", "BlockedAttempt", "Callback", "BusinessDay", "Holiday", "INCIDENT_KINDS", "Incident",
    "AuditLog", "LoginAttempt",
]
