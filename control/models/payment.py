"""Payments and refunds reported by the payment provider's webhook, one row per transaction."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from control.models.base import Base, enum_column, utcnow


class PaymentKind(enum.StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Unique: a webhook delivered twice is recognised and applied once.
    transaction_id: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[PaymentKind] = mapped_column(enum_column(PaymentKind))
    enrollment_id: Mapped[int] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE"), index=True
    )
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
