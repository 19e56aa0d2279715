"""Database tables. Every datetime is stored in UTC (see ``db.UTCDateTime``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Table,
    Unicode,
    column,
    text,
)
from sqlmodel import Field, SQLModel

from reminders.db import UTCDateTime, utcnow


class Scope(StrEnum):
    read = "read"
    write = "write"
    admin = "admin"
    # Above every account: manages accounts, reads every account's usage, and acts inside an
    # account (as its admin) when a request names one (the ``Reminders-Account`` header).
    provider = "provider"

    def allows(self, needed: Scope) -> bool:
        order = [Scope.read, Scope.write, Scope.admin, Scope.provider]
        return order.index(self) >= order.index(needed)


class AccountStatus(StrEnum):
    active = "active"
    # Its API answers 403 with the reason; its due notices wait, none is lost.
    suspended = "suspended"


class Role(StrEnum):
    """A person's role in an account; a provider administrator (no account) is above them."""

    admin = "admin"  # users, keys and the account's settings, and all an operator does
    operator = "operator"  # sends; edits contacts, groups, policies, sources, events, bills
    viewer = "viewer"  # reads


class NoticeStatus(StrEnum):
    scheduled = "scheduled"
    # Its time has come: waiting in the work queue for a sending process to claim it.
    due = "due"
    sending = "sending"
    sent = "sent"
    delivered = "delivered"
    undelivered = "undelivered"
    failed = "failed"
    cancelled = "cancelled"
    expired = "expired"
    suppressed = "suppressed"
    unknown = "unknown"


# Not gone out yet, and still to go: what cancelling, moving or re-planning may change.
PENDING: frozenset[str] = frozenset({NoticeStatus.scheduled, NoticeStatus.due})


class Priority(StrEnum):
    transactional = "transactional"
    bulk = "bulk"


class NoticeKind(StrEnum):
    message = "message"
    event_reminder = "event_reminder"
    bill_due = "bill_due"
    bill_overdue = "bill_overdue"
    payment_failed = "payment_failed"
    # The short answer to a recipient's reply (a policy's ``reply_ack``).
    reply_ack = "reply_ack"


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def _owner() -> Any:
    """The account a row belongs to (``reminders.accounts.scoping`` fills it in and filters
    every query of a request by it)."""
    return Field(foreign_key="accounts.id", nullable=False)


class Owned:
    """Marks a table whose rows belong to one account (``account_id``): the account scoping
    filters every subclass with one loader option (``accounts.scoping``), not one per table."""


class Account(SQLModel, table=True):
    """One organisation served by the deployment: a clinic, a utility, a bank."""

    __tablename__ = "accounts"

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=40, unique=True)
    name: str = Field(max_length=200)
    # The sender IDs it may send from (operators register them per company); empty: any.
    sender_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    default_sender_id: str | None = Field(default=None, max_length=16)
    rate_share: int = Field(default=1)  # its weight in the bulk lane
    monthly_segments: int | None = Field(default=None)  # a quota; None: none
    status: str = Field(default=AccountStatus.active, max_length=10)
    status_reason: str | None = Field(default=None, max_length=500)
    # The gateway numbers (or short codes) it owns: an SMS sent to one is this account's,
    # whoever last texted the phone (``accounts/numbers.py``).
    inbound_numbers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _created()
    updated_at: datetime = _created()


class User(SQLModel, Owned, table=True):
    """A person who signs in to the control panel; ``account_id`` None: a provider admin."""

    __tablename__ = "users"
    __table_args__ = (Index("ix_users_account_id", "account_id"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int | None = Field(default=None, foreign_key="accounts.id")
    # Stored casefolded: one person, however they type their address.
    email: str = Field(max_length=320, unique=True)
    password_hash: str = Field(max_length=200)
    role: str = Field(max_length=10)
    disabled: bool = Field(default=False)
    created_at: datetime = _created()
    updated_at: datetime = _created()
    last_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The control panel's language they chose (bg, en); None: their browser's.
    language: str | None = Field(default=None, max_length=5)


class ApiKey(SQLModel, Owned, table=True):
    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    # None for a provider key, which no account owns.
    account_id: int | None = Field(default=None, foreign_key="accounts.id", index=True)
    name: str = Field(max_length=100)
    scope: str = Field(max_length=10)
    # Only a SHA-256 digest is kept: keys are 256-bit random strings, so a slow hash adds nothing.
    key_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)
    created_at: datetime = _created()
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Contact(SQLModel, Owned, table=True):
    __tablename__ = "contacts"
    __table_args__ = (
        Index("ix_contacts_phone", "account_id", "phone"),
        Index("ix_contacts_name_folded", "account_id", "name_folded"),
        # Two clinics may each have a contact with external_id 42.
        Index("ux_contacts_external_id", "account_id", "external_id", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _owner()
    name: str = Field(max_length=200)
    # SQLite folds case for ASCII only, so "иван" would miss "Иван": search a casefolded copy.
    name_folded: str = Field(max_length=200)
    phone: str = Field(max_length=20)
    email: str | None = Field(default=None, max_length=320)
    timezone: str | None = Field(default=None, max_length=64)
    language: str = Field(default="bg", max_length=2)
    external_id: str | None = Field(default=None, max_length=200)
    opted_out: bool = Field(default=False)
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _created()
    updated_at: datetime = _created()


class Group(SQLModel, Owned, table=True):
    __tablename__ = "groups"
    __table_args__ = (Index("ux_groups_name", "account_id", "name", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _owner()
    name: str = Field(max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class GroupMember(SQLModel, table=True):
    __tablename__ = "group_members"
    __table_args__ = (Index("ix_group_members_contact_id", "contact_id"),)

    group_id: int = Field(
        sa_column=Column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    )
    contact_id: int = Field(
        sa_column=Column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    )
    added_at: datetime = _created()


class Message(SQLModel, Owned, table=True):
    """A message pushed through the API; it fans out into one notice per recipient."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_account_id", "account_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _owner()
    text: str
    sender_id: str | None = Field(default=None, max_length=16)
    send_at: datetime = Field(sa_type=UTCDateTime)
    priority: str = Field(default="bulk", max_length=13)
    created_at: datetime = _created()


class Policy(SQLModel, Owned, table=True):
    """A named list of reminder steps; ``steps`` holds ``{offset, at, template, kind}`` dicts."""

    __tablename__ = "policies"
    __table_args__ = (Index("ux_policies_name", "account_id", "name", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _owner()
    name: str = Field(max_length=64)
    description: str | None = Field(default=None, max_length=2000)
    steps: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    transliterate: bool | None = Field(default=None)  # None: REMINDERS_TRANSLITERATE decides
    # The lane of its notices: "transactional" ones skip quiet hours and the bulk queue.
    priority: str = Field(default="bulk", max_length=13)
    sender_id: str | None = Field(default=None, max_length=16)  # None: REMINDERS_SENDER_ID
    # Words a recipient may answer with, ``{"confirm": [...], "cancel": [...]}``; None: its
    # reminders ask for no answer. ``reply_ack``: a template per answer, sent back at once.
    replies: dict[str, list[str]] | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True)
    )
    reply_ack: dict[str, str] | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True)
    )
    created_at: datetime = _created()
    updated_at: datetime = _created()


class Source(SQLModel, Owned, table=True):
    """An iCalendar feed kept in sync, with what the last syncs found."""

    __tablename__ = "sources"
    __table_args__ = (Index("ix_sources_account_id", "account_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _owner()
    name: str = Field(max_length=200)
    # The URL often carries a secret token (Google's private addresses do): never log it whole.
    url: str = Field(max_length=2000)
    refresh: str = Field(default="PT15M", max_length=40)
    # The feed's own REFRESH-INTERVAL / X-PUBLISHED-TTL, in seconds: never fetched more often.
    refresh_hint_seconds: int | None = Field(default=None)
    timezone: str = Field(max_length=64)
    policy: str = Field(default="appointment", max_length=64)
    use_alarms: bool = Field(default=False)
    recipients: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    etag: str | None = Field(default=None, max_length=500)
    last_modified: str | None = Field(default=None, max_length=100)
    content_hash: str | None = Field(default=None, max_length=64)
    expanded_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_sync_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_success_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=1000)
    error_count: int = Field(default=0)
    next_sync_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    event_count: int = Field(default=0)
    warnings: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # What the feed's series (``FeedSeries``) were read under: the calendar's own properties,
    # the source's recipients and the window. None: the next sync reads the whole feed.
    series_basis: str | None = Field(default=None, max_length=64)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class FeedSeries(SQLModel, table=True):
    """What the last sync read of one series of a feed (the VEVENTs of one UID), so that the
    next sync parses only the series whose text changed (``reminders/sources/resync.py``)."""

    __tablename__ = "feed_series"

    source_id: int = Field(
        sa_column=Column(ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True)
    )
    uid: str = Field(sa_column=Column(Unicode, primary_key=True))
    digest: str = Field(max_length=64)  # its text but DTSTAMP, and the VTIMEZONEs it names
    volatile: bool = Field(default=False)  # read again at every sync
    # Its occurrences in the window: their starts (Unix seconds) and keys, one a line; the
    # phones and emails written in them, one a line, and whom they were found to be.
    # Plain text rather than JSON lists: thousands of rows are read at every sync.
    starts: str = Field(sa_column=Column(Unicode, nullable=False))
    keys: str = Field(sa_column=Column(Unicode, nullable=False))
    phones: str = Field(sa_column=Column(Unicode, nullable=False))
    emails: str = Field(sa_column=Column(Unicode, nullable=False))
    who: str = Field(sa_column=Column(Unicode, nullable=False))
    notes: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class AnchorKind(StrEnum):
    event = "event"
    bill = "bill"


# The key of an event or a bill the API was given an ``external_id`` for: prefix and that id.
EVENT_KEY_PREFIX = "event:ext:"
BILL_KEY_PREFIX = "bill:ext:"


class Anchor(SQLModel, Owned, table=True):
    """What reminders are about: an event's start or a bill's due date, with its recipients.

    Sources (iCal feeds, the events and bills API) own anchors and call ``plan_for`` and
    ``cancel_for`` when they change; ``key`` is the source's own identity for it.
    """

    __tablename__ = "anchors"
    __table_args__ = (Index("ux_anchors_key", "account_id", "key", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _owner()
    key: str = Field(max_length=255)
    kind: str = Field(max_length=10)
    title: str = Field(max_length=500)
    at: datetime = Field(sa_type=UTCDateTime)
    # All-day events and bills are due on a date, not at an instant: ``at`` is then local
    # midnight in ``timezone`` and steps land on wall-clock days in that zone.
    all_day: bool = Field(default=False)
    timezone: str | None = Field(default=None, max_length=64)
    policy: str = Field(max_length=64)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    cancelled: bool = Field(default=False)
    source_id: int | None = Field(
        default=None,
        sa_column=Column(ForeignKey("sources.id", ondelete="SET NULL"), nullable=True, index=True),
    )
    created_at: datetime = _created()
    updated_at: datetime = _created()


class AnchorRecipient(SQLModel, table=True):
    __tablename__ = "anchor_recipients"

    anchor_id: int = Field(
        sa_column=Column(ForeignKey("anchors.id", ondelete="CASCADE"), primary_key=True)
    )
    phone: str = Field(max_length=20, primary_key=True)
    contact_id: int | None = Field(
        default=None,
        sa_column=Column(ForeignKey("contacts.id", ondelete="SET NULL"), nullable=True),
    )
    # The recipient's answer by SMS (``replies.py``): confirmed or cancelled, and when.
    answer: str | None = Field(default=None, max_length=10)
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Notice(SQLModel, Owned, table=True):
    """One SMS to one recipient at one time: the unit the scheduler fires and the sender sends."""

    __tablename__ = "notices"
    __table_args__ = (
        Index("ix_notices_status_send_at", "status", "send_at"),
        Index("ux_notices_key", "account_id", "key", unique=True),
        Index("ix_notices_account_send_at", "account_id", "send_at"),
        # Each parent, then its account: a scoped look-up by parent matches both columns here
        # (SQLite's planner, without statistics, otherwise takes an index on the account alone
        # and reads the whole account's notices), and the foreign key's checks use the first.
        Index("ix_notices_message_id", "message_id", "account_id"),
        Index("ix_notices_contact_id", "contact_id", "account_id"),
        Index("ix_notices_anchor_id", "anchor_id", "account_id"),
        # An SMS from a phone finds what was last sent to it (its account; what it answers).
        Index("ix_notices_phone_sent_at", "phone", "sent_at"),
        # The work queue: only ``due`` rows, so they stay small however many are scheduled.
        # A lane claims by (lane, send time); the bulk lane by (lane, account, send time) too,
        # the accounts taking turns (``scheduler/claims.py``).
        Index(
            "ix_notices_due_lane",
            "priority",
            "send_at",
            "id",
            postgresql_where=text("status = 'due'"),
            sqlite_where=text("status = 'due'"),
        ),
        Index(
            "ix_notices_due_account",
            "priority",
            "account_id",
            "send_at",
            "id",
            postgresql_where=text("status = 'due'"),
            sqlite_where=text("status = 'due'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _owner()
    # The natural key (what it is about, which step, which recipient): the database refuses a
    # second notice for the same thing, so planning twice can never send twice.
    key: str = Field(max_length=255)
    kind: str = Field(max_length=20)
    status: str = Field(max_length=12, default=NoticeStatus.scheduled)
    status_reason: str | None = Field(default=None, max_length=500)
    message_id: int | None = Field(
        default=None,
        sa_column=Column(ForeignKey("messages.id", ondelete="SET NULL"), nullable=True),
    )
    contact_id: int | None = Field(
        default=None,
        sa_column=Column(ForeignKey("contacts.id", ondelete="SET NULL"), nullable=True),
    )
    anchor_id: int | None = Field(
        default=None,
        sa_column=Column(ForeignKey("anchors.id", ondelete="SET NULL"), nullable=True),
    )
    step: int | None = Field(default=None)
    phone: str = Field(max_length=20)
    # ``text`` is final for messages; for policy steps it is the Jinja2 template, rendered when
    # the notice fires so that a contact's new name or an event's new room is used.
    text: str
    is_template: bool = Field(default=False)
    # What was last handed to the gateway (rendered, transliterated, look-alikes replaced); each
    # attempt keeps its own copy, this one saves the notice lists a join.
    sent_text: str | None = Field(default=None)
    # "transactional" (alerts that must go at once, quiet hours or not) or "bulk".
    priority: str = Field(default="bulk", max_length=13)
    # Written in Latin letters (Bulgarian's official system): 160 characters a segment, not 70.
    transliterate: bool = Field(default=False)
    sender_id: str | None = Field(default=None, max_length=16)
    send_at: datetime = Field(sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The process that claimed it for sending: a new leader settles as "unknown" only the
    # notices whose claimant is no longer alive.
    claimed_by: str | None = Field(default=None, max_length=80)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class Attempt(SQLModel, Owned, table=True):
    """One hand-over of a notice to a sender, with the gateway's own words about it."""

    __tablename__ = "attempts"
    __table_args__ = (
        Index("ix_attempts_notice_id", "notice_id"),
        Index("ix_attempts_provider_message_id", "provider", "provider_message_id"),
        # An account's segments in a month (its quota, its usage) are read from here alone.
        Index("ix_attempts_account_submitted_at", "account_id", "submitted_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # Its notice's: kept here too so that counting an account's month reads no notices.
    account_id: int = _owner()
    notice_id: int = Field(
        sa_column=Column(ForeignKey("notices.id", ondelete="CASCADE"), nullable=False)
    )
    provider: str = Field(max_length=40)
    provider_message_id: str | None = Field(default=None, max_length=200)
    status: str = Field(max_length=12)
    error_code: str | None = Field(default=None, max_length=100)
    error: str | None = Field(default=None, max_length=2000)
    segments: int | None = Field(default=None)
    encoding: str | None = Field(default=None, max_length=5)
    # The text handed to the gateway, as composed: a template renders anew at each attempt.
    text: str | None = Field(default=None)
    # The id the gateway or the operator's network gave the message once it had it, when a
    # report says so (Kannel: the SMSC's id, else Kannel's own); what an operator asks for.
    gateway_reference: str | None = Field(default=None, max_length=200)
    # The gateway link that carried it (``REMINDERS_LINKS``); null with a single sender.
    link: str | None = Field(default=None, max_length=40)
    submitted_at: datetime = _created()
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class InboundMessage(SQLModel, Owned, table=True):
    """An SMS a recipient sent us: kept, counted, and read for opt-out keywords."""

    __tablename__ = "inbound_messages"
    # A gateway that got no answer sends the same message again: its id is stored once.
    __table_args__ = (
        Index(
            "ux_inbound_messages_provider_message_id",
            "provider",
            "provider_message_id",
            unique=True,
        ),
        Index("ix_inbound_messages_account_id", "account_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _owner()
    provider: str = Field(max_length=40)
    provider_message_id: str | None = Field(default=None, max_length=200)
    from_phone: str = Field(max_length=40, index=True)
    to: str | None = Field(default=None, max_length=40)
    text: str
    action: str | None = Field(default=None, max_length=10)  # opt_out, opt_in
    contact_id: int | None = Field(
        default=None,
        sa_column=Column(ForeignKey("contacts.id", ondelete="SET NULL"), nullable=True),
    )
    received_at: datetime = _created()


class ReplyState(StrEnum):
    confirmed = "confirmed"
    cancelled = "cancelled"
    unclear = "unclear"


class Reply(SQLModel, Owned, table=True):
    """An inbound message read as the answer to a reminder that asked for one."""

    __tablename__ = "replies"
    __table_args__ = (
        # One message answers once, whichever way it came in twice.
        Index("ux_replies_inbound_id", "inbound_id", unique=True),
        Index("ix_replies_account_state", "account_id", "state", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _owner()
    inbound_id: int = Field(
        sa_column=Column(ForeignKey("inbound_messages.id", ondelete="CASCADE"), nullable=False)
    )
    # The reminder it answers, and what that reminder was about.
    notice_id: int | None = Field(
        default=None,
        sa_column=Column(ForeignKey("notices.id", ondelete="SET NULL"), nullable=True),
    )
    anchor_id: int | None = Field(
        default=None,
        sa_column=Column(ForeignKey("anchors.id", ondelete="SET NULL"), nullable=True),
    )
    phone: str = Field(max_length=40)
    text: str
    state: str = Field(max_length=10)
    # A person read it (an unclear answer needs one); confirmed and cancelled ones need none.
    handled: bool = Field(default=False)
    handled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = _created()


class ServiceSecret(SQLModel, table=True):
    """A random secret the service made for itself and shares between its processes (the
    control panel's session key, when ``REMINDERS_SECRET_KEY`` does not give one)."""

    __tablename__ = "service_secrets"

    name: str = Field(primary_key=True, max_length=40)
    value: str = Field(max_length=200)
    created_at: datetime = _created()


class OutboxMessage(SQLModel, table=True):
    """What the ``outbox`` sender "sent": kept in the database for people and tests to read."""

    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    notice_id: int | None = Field(default=None, index=True)
    to: str = Field(max_length=20)
    text: str
    sender_id: str | None = Field(default=None, max_length=16)
    created_at: datetime = _created()


class WebhookEndpoint(SQLModel, Owned, table=True):
    """A URL of the account's own that we POST its events to, signed (``reminders/webhooks``)."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_account_id", "account_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _owner()
    url: str = Field(max_length=2000)
    description: str | None = Field(default=None, max_length=500)
    # The event types it gets; ["*"]: every type, those added later included.
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    enabled: bool = Field(default=True)
    # Why it was disabled by us (it failed for days), shown until someone enables it again.
    disabled_reason: str | None = Field(default=None, max_length=500)
    # The signing key (``whsec_`` and base64). Kept as it is, not hashed: every delivery is
    # signed with it. Never logged, shown once (at creation or rotation).
    secret: str = Field(max_length=100)
    # Since when every delivery to it has failed; None while the last one succeeded.
    failing_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class WebhookDeliveryStatus(StrEnum):
    pending = "pending"  # waiting for its (next) attempt, or being attempted under a lease
    delivered = "delivered"
    failed = "failed"  # refused for good (a 4xx), or still failing when its retries ran out


class WebhookDelivery(SQLModel, Owned, table=True):
    """The outbox: one event for one endpoint, written in the transaction that caused the event
    and delivered by the workers, again and again until it is taken or its retries run out."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
        # What the retention forgets, oldest first (``webhooks/retention.py``).
        Index("ix_webhook_deliveries_created_at", "created_at"),
        # The workers' queue: only the pending rows, so it stays small whatever the history.
        Index(
            "ix_webhook_deliveries_pending",
            "next_attempt_at",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _owner()
    endpoint_id: int = Field(
        sa_column=Column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False)
    )
    # Standard Webhooks' ``webhook-id``: the same at every attempt and redelivery, so that a
    # receiver that got it twice (we cannot always know it did) can tell.
    message_id: str = Field(max_length=40, unique=True)
    event_type: str = Field(max_length=40)
    # The exact JSON sent, kept as text: every attempt signs and sends the same bytes.
    body: str = Field(sa_column=Column(Unicode, nullable=False))
    status: str = Field(default=WebhookDeliveryStatus.pending, max_length=10)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(sa_type=UTCDateTime)
    # Retries stop after this (3 days after the event, or after a redelivery was asked for).
    give_up_at: datetime = Field(sa_type=UTCDateTime)
    # The worker attempting it, until when: a worker killed mid-attempt leaves a lease that
    # runs out, and another worker attempts it again (same ``message_id``).
    claimed_by: str | None = Field(default=None, max_length=80)
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = _created()
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebhookAttempt(SQLModel, Owned, table=True):
    """One POST of a delivery: the endpoint's delivery log."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery_id", "delivery_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _owner()
    delivery_id: int = Field(
        sa_column=Column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False)
    )
    attempt: int
    status_code: int | None = Field(default=None)  # None: no answer (a network error, a timeout)
    latency_ms: int
    response: str | None = Field(default=None, max_length=1024)  # the answer's first 1 KB
    error: str | None = Field(default=None, max_length=500)
    attempted_at: datetime = _created()


# The tables whose rows belong to one account (``account_id``); the others belong through
# their parent (members through groups, series through sources).
OWNED: tuple[type[SQLModel], ...] = (
    ApiKey,
    User,
    Contact,
    Group,
    Message,
    Policy,
    Source,
    Anchor,
    Notice,
    Attempt,
    InboundMessage,
    Reply,
    WebhookEndpoint,
    WebhookDelivery,
    WebhookAttempt,
)
# SQLAlchemy builds the scoping option's criterion once against ``Owned`` itself, to learn its
# shape; each table's own ``account_id`` takes its place when a statement is compiled. Set only
# now, after the tables' classes exist, so that it never shadows their fields.
Owned.account_id = column("account_id", Integer)  # type: ignore[attr-defined]


# APScheduler's SQLAlchemyJobStore creates this table itself; it is mirrored here so that the
# migrations create it too and the schema test can prove both agree.
JOBS_TABLE = "apscheduler_jobs"
apscheduler_jobs = Table(
    JOBS_TABLE,
    SQLModel.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)
from reminders.accounts import scoping as _scoping  # noqa: E402,F401  (its listeners, once the tables exist)
