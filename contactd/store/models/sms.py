"""SMS/LMS/MMS messages with per-recipient status, and the template folders (seed 003 §22, 000 ch. 5)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow

SMS_KINDS = ("SMS", "LMS", "MMS")
# scheduled → sending → sent | partial | failed; scheduled → cancelled
MESSAGE_STATUSES = ("scheduled", "sending", "sent", "partial", "failed", "cancelled")
RECIPIENT_STATUSES = ("waiting", "sent", "delivered", "failed", "cancelled")


class SmsMessage(Base):
    __tablename__ = "sms_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(3))
    sender: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str] = mapped_column(String(120), default="")
    body: Mapped[str] = mapped_column(Text)  # the template text; each recipient row keeps its filled-in text
    image_path: Mapped[str | None] = mapped_column(String(512), nullable=True)
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)  # automatic messages wait out quiet hours
    status: Mapped[str] = mapped_column(String(16), default="scheduled", index=True)
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # send time (now for "send now")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    excluded_opt_out: Mapped[int] = mapped_column(Integer, default=0)


class SmsRecipient(Base):
    __tablename__ = "sms_recipients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("sms_messages.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(20), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    customer_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="waiting", index=True)
    # The id we hand the gateway: it deduplicates retries, so a retried request never sends twice.
    gateway_ref: Mapped[str] = mapped_column(String(64), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(String(300), default="")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SmsTemplateFolder(Base):
    __tablename__ = "sms_template_folders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("sms_template_folders.id", ondelete="SET NULL"),
                                                  nullable=True)


class SmsTemplate(Base):
    __tablename__ = "sms_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    folder_id: Mapped[int | None] = mapped_column(ForeignKey("sms_template_folders.id", ondelete="SET NULL"),
                                                  nullable=True, index=True)
    title: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(120), default="")
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
