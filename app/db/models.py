"""The data model: every table of the service as SQLAlchemy 2 typed models."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeEngine

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored naive in UTC, always handed back timezone-aware."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        # Microsecond precision so events and activity stamps order correctly on MariaDB.
        if dialect.name == "mysql":
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=False))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def exact_string(length: int) -> TypeEngine[str]:
    """A string compared byte for byte: case and trailing spaces count, on MariaDB too.

    MariaDB's default collation is case-insensitive and pads with spaces, so a lower-cased
    share token or a room code with a trailing space would match (DESIGN 2.3).
    """
    return String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_nopad_bin"), "mysql"
    )


Money = Numeric(15, 2)
Quantity = Numeric(15, 4)
Timestamp = UTCDateTime()


def _enum(cls: type[enum.Enum], length: int = 16) -> Enum:
    # Portable VARCHAR + CHECK rather than MySQL's native ENUM, so alembic compares cleanly.
    return Enum(
        cls, native_enum=False, length=length, validate_strings=True, create_constraint=False
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON}


class Role(enum.StrEnum):
    """Who a user is to the service (the token's `role` claim)."""

    ADMIN = "ADMIN"
    STAFF = "STAFF"
    CLIENT = "CLIENT"


class SessionStatus(enum.StrEnum):
    SCHEDULED = "SCHEDULED"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    ENDED = "ENDED"
    CONVERTED = "CONVERTED"
    CANCELLED = "CANCELLED"


class AddedByRole(enum.StrEnum):
    HOST = "HOST"
    CLIENT = "CLIENT"


class OrderStatus(enum.StrEnum):
    OPEN = "OPEN"
    FULFILLED = "FULFILLED"
    CANCELLED = "CANCELLED"


class PaymentStatus(enum.StrEnum):
    UNPAID = "UNPAID"
    PAID = "PAID"


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # None means no credit limit.
    credit_limit: Mapped[Decimal | None] = mapped_column(Money)
    price_adjustment_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal(0))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class User(Base):
    __tablename__ = "users"

    # The token's `sub`; rows appear on first sight of a valid token.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    role: Mapped[Role] = mapped_column(_enum(Role))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    category: Mapped[str | None] = mapped_column(String(100))
    list_price: Mapped[Decimal] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Batch(Base):
    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    on_hand_qty: Mapped[Decimal] = mapped_column(Quantity)
    # Committed to orders and not yet shipped.
    reserved_qty: Mapped[Decimal] = mapped_column(Quantity, default=Decimal(0))
    unit_cogs: Mapped[Decimal] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class LiveSession(Base):
    __tablename__ = "live_shopping_sessions"
    __table_args__ = (
        Index(None, "client_id", "status"),
        Index(None, "host_user_id", "status"),
        Index(None, "status", "last_activity_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    status: Mapped[SessionStatus] = mapped_column(_enum(SessionStatus))
    room_code: Mapped[str] = mapped_column(exact_string(64), unique=True)
    title: Mapped[str | None] = mapped_column(String(255))
    internal_notes: Mapped[str | None] = mapped_column(Text)
    session_config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    highlighted_batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"))
    scheduled_at: Mapped[datetime | None] = mapped_column(Timestamp)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    ended_at: Mapped[datetime | None] = mapped_column(Timestamp)
    checkout_requested_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # The host's answer to the latest checkout request (all null while it is pending).
    checkout_answered_at: Mapped[datetime | None] = mapped_column(Timestamp)
    checkout_accepted: Mapped[bool | None] = mapped_column(Boolean)
    checkout_message: Mapped[str | None] = mapped_column(String(500))
    # Holds last until then (last activity + the session's timeout, or later when extended);
    # the idle sweeper ends the session once it passes with nobody watching.
    holds_expire_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # The deadline HOLDS_EXPIRING was last sent for: a conditional UPDATE on it sends the
    # warning once per deadline across workers.
    holds_warned_for: Mapped[datetime | None] = mapped_column(Timestamp)
    # Who is watching, as last announced in a PRESENCE event (session_presence is the detail).
    host_present: Mapped[bool] = mapped_column(Boolean, default=False)
    client_present: Mapped[bool] = mapped_column(Boolean, default=False)
    last_activity_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # Next outbox sequence number; bumped under the session row lock.
    last_event_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class PresenceSide(enum.StrEnum):
    HOST = "HOST"
    CLIENT = "CLIENT"


class SessionPresence(Base):
    """One worker's open streams of one session and side, refreshed by a heartbeat.

    A row older than a few heartbeats belongs to a worker that died; it no longer counts.
    """

    __tablename__ = "session_presence"

    session_id: Mapped[int] = mapped_column(
        ForeignKey("live_shopping_sessions.id"), primary_key=True
    )
    side: Mapped[PresenceSide] = mapped_column(_enum(PresenceSide), primary_key=True)
    worker: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(Timestamp, index=True)


class SessionCartItem(Base):
    __tablename__ = "session_cart_items"
    # A line is (batch, sample or paid, the side that added it): paid units never merge into
    # a sample line, and neither side's adds grow the other's line (DESIGN 4).
    __table_args__ = (
        UniqueConstraint(
            "session_id",
            "batch_id",
            "is_sample",
            "added_by_role",
            name="uq_session_cart_items_line",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("live_shopping_sessions.id"))
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    unit_price: Mapped[Decimal] = mapped_column(Money)
    added_by_role: Mapped[AddedByRole] = mapped_column(_enum(AddedByRole))
    is_sample: Mapped[bool] = mapped_column(Boolean, default=False)
    is_highlighted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)


class SessionPriceOverride(Base):
    __tablename__ = "session_price_overrides"
    __table_args__ = (UniqueConstraint("session_id", "product_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("live_shopping_sessions.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    override_price: Mapped[Decimal] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class SessionEvent(Base):
    """The transactional outbox: one row per state change, in the change's transaction."""

    __tablename__ = "session_events"
    __table_args__ = (UniqueConstraint("session_id", "seq"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("live_shopping_sessions.id"))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, index=True)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (Index(None, "client_id", "payment_status", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    # At most one order per session: the database refuses a second conversion.
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("live_shopping_sessions.id"), unique=True
    )
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus), default=OrderStatus.OPEN)
    payment_status: Mapped[PaymentStatus] = mapped_column(
        _enum(PaymentStatus), default=PaymentStatus.UNPAID
    )
    payment_terms: Mapped[str | None] = mapped_column(String(64))
    total: Mapped[Decimal] = mapped_column(Money)
    created_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, index=True)

    lines: Mapped[list[OrderLine]] = relationship(
        order_by="OrderLine.id", cascade="all, delete-orphan", lazy="raise"
    )


class OrderLine(Base):
    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    unit_price: Mapped[Decimal] = mapped_column(Money)
    list_price: Mapped[Decimal] = mapped_column(Money)
    is_sample: Mapped[bool] = mapped_column(Boolean, default=False)
    line_total: Mapped[Decimal] = mapped_column(Money)


class SalesSheet(Base):
    __tablename__ = "sales_sheets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("live_shopping_sessions.id"), index=True)
    # Unguessable share token for the client-facing page.
    token: Mapped[str] = mapped_column(exact_string(64), unique=True)
    # The absolute link handed out when the sheet was made (the room view shows it later).
    share_url: Mapped[str | None] = mapped_column(String(600))
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
