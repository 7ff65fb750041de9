"""SQLModel tables: the archive, the watch/subscriber state and the delivery outbox.

The tables are the schema of record (Alembic migrations are checked against them); the hot
ingest path writes through Core statements on these tables, not through the ORM's unit of
work. Live ORM objects never leave the store package: other stages get plain data types.

Design notes, briefly:
- A question is keyed by (source, source_id), the API's stable id; (house, uin, date_tabled)
  is indexed but not unique, because UINs restart each session and the API is the authority.
- Answers are versions: a holding answer, the substantive answer and each correction are
  separate rows, never overwritten.
- Events are unique per (question, kind, event_date) so a repeated poll cannot duplicate one.
- A delivery (outbox row) is unique per (subscriber, event): never sent twice, never lost.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timestamps stored as naive UTC, read back timezone-aware."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(nullable: bool = False, index: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_type=UTCDateTime(), nullable=True, index=index)
    return Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False, index=index)


class Member(SQLModel, table=True):
    """A member of either House, as expanded in the API's member objects."""

    __tablename__ = "member"
    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    # None until an expanded member object has been seen (list results without
    # expandMember carry only the id).
    name: str | None = None
    list_as: str | None = None
    party: str | None = None
    party_abbreviation: str | None = None
    # Constituency for MPs, kind of peerage ("Life peer") for Lords.
    member_from: str | None = None
    house: str | None = None
    thumbnail_url: str | None = None
    updated_at: datetime = _ts()


class AnsweringBody(SQLModel, table=True):
    """A government department (or other body) that answers questions."""

    __tablename__ = "answering_body"
    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    name: str
    updated_at: datetime = _ts()


class Question(SQLModel, table=True):
    __tablename__ = "question"
    __table_args__ = (
        sa.UniqueConstraint("source", "source_id", name="uq_question_source"),
        sa.Index("ix_question_uin", "house", "uin", "date_tabled"),
        sa.Index("ix_question_date_answered", "date_answered"),
        sa.Index("ix_question_date_tabled", "date_tabled"),
        sa.Index(
            "ix_question_detail_pending",
            "updated_at",
            sqlite_where=sa.text("detail_pending"),
            postgresql_where=sa.text("detail_pending"),
        ),
        # Also ix_question_newest on coalesce(date_answered, date_tabled), id: what search's
        # "newest first" sorts by; and ix_question_reference on upper(uin), what `pqwatch show
        # S5W-02060` looks a parliament's own reference up by. Expression indexes, made by
        # migrations 0007 and 0011 only: SQLAlchemy cannot reflect them, so a batch migration
        # of this table must create them again.
    )
    id: int | None = Field(default=None, primary_key=True)
    source: str
    source_id: str
    # westminster | scotland | wales | ni (pqwatch.types.PARLIAMENTS)
    parliament: str = Field(
        default="westminster", sa_column_kwargs={"server_default": "westminster"}
    )
    # question | statement
    kind: str = Field(default="question", sa_column_kwargs={"server_default": "question"})
    # The parliament's own reference: a UIN, S5W-02060, WQ91968, AQW 49327/22-27, HCWS123.
    uin: str | None = None
    house: str
    date_tabled: date
    date_for_answer: date | None = None
    is_named_day: bool = False
    heading: str | None = None
    asking_member_id: int | None = Field(default=None, foreign_key="member.id", index=True)
    member_has_interest: bool = False
    answering_body_id: int | None = Field(default=None, foreign_key="answering_body.id", index=True)
    question_text: str
    # True once the stored question_text is known to be complete (not cut at 255 chars).
    question_text_full: bool = False
    is_withdrawn: bool = False
    date_withdrawn: date | None = None
    # unanswered | holding | answered | corrected | withdrawn (derived from the latest answer);
    # made for a statement; an FOI request's state as WhatDoTheyKnow gives it.
    status: str = Field(default="unanswered", index=True)
    date_answered: date | None = None
    date_holding_answer: date | None = None
    date_answer_corrected: date | None = None
    answering_member_id: int | None = Field(default=None, foreign_key="member.id", index=True)
    attachments_json: str | None = None
    # Source-specific facts as JSON (FOI: law used, url_names, the request's event history).
    details_json: str | None = None
    # Stored without the full text it needs (its detail request failed, or --no-detail): a
    # listing never counts it as unchanged, and polls fetch it again until it is whole.
    detail_pending: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    # Hash of the API fields that matter, so an unchanged item writes nothing.
    content_hash: str
    first_seen_at: datetime = _ts()
    updated_at: datetime = _ts()


class QuestionGroup(SQLModel, table=True):
    """One grouping link as the API gives it: by UIN and tabling date, resolved on read,
    so a link to a question not yet stored still works once it arrives."""

    __tablename__ = "question_group"
    __table_args__ = (sa.Index("ix_question_group_target", "grouped_uin", "grouped_date_tabled"),)
    question_id: int = Field(foreign_key="question.id", primary_key=True, ondelete="CASCADE")
    grouped_uin: str = Field(primary_key=True)
    grouped_date_tabled: date = Field(primary_key=True)


class Answer(SQLModel, table=True):
    """One version of an answer: holding, substantive or correction. Never overwritten."""

    __tablename__ = "answer"
    __table_args__ = (
        sa.UniqueConstraint("question_id", "version", name="uq_answer_version"),
        sa.UniqueConstraint("question_id", "kind", "content_hash", name="uq_answer_content"),
    )
    id: int | None = Field(default=None, primary_key=True)
    # No index of its own: uq_answer_version starts with question_id and serves its lookups.
    question_id: int = Field(foreign_key="question.id", ondelete="CASCADE")
    version: int
    # holding | answer | correction
    kind: str
    answer_html: str
    answer_text: str
    # The API's originalAnswerText, kept when it is given (pre-correction text).
    original_answer_html: str | None = None
    # False when only the list endpoint's cut text (255 chars + "...") was available.
    is_full_text: bool = True
    answering_member_id: int | None = Field(default=None, foreign_key="member.id")
    correcting_member_id: int | None = Field(default=None, foreign_key="member.id")
    date_answered: date | None = None
    date_corrected: date | None = None
    content_hash: str
    recorded_at: datetime = _ts()


class Event(SQLModel, table=True):
    """A lifecycle event: tabled, holding, answered, corrected, transferred, withdrawn."""

    __tablename__ = "event"
    __table_args__ = (
        sa.UniqueConstraint("question_id", "kind", "event_date", name="uq_event"),
        sa.Index("ix_event_created_at", "created_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    # No index of its own: uq_event starts with question_id and serves its lookups.
    question_id: int = Field(foreign_key="question.id", ondelete="CASCADE")
    kind: str
    event_date: date
    answer_id: int | None = Field(default=None, foreign_key="answer.id")
    # JSON with what changed (e.g. the departments of a transfer).
    detail_json: str | None = None
    # Loaded by backfill: searchable and in feeds, never mailed as "new".
    historical: bool = False
    created_at: datetime = _ts()


class Watch(SQLModel, table=True):
    __tablename__ = "watch"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    slug: str = Field(unique=True)
    query: str
    active: bool = True
    # config: the operator's, mirrored from config.toml; web: a personal watch made from a
    # search ("alert me for this search"), which config sync never touches.
    origin: str = Field(default="config", sa_column_kwargs={"server_default": "config"})
    # The subscriber whose search a personal (web) watch is. No foreign key: SQLite adds one
    # only by rebuilding the table, and dropping the old one would cascade to watch_match.
    owner_id: int | None = Field(default=None, index=True)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Subscriber(SQLModel, table=True):
    __tablename__ = "subscriber"
    __table_args__ = (sa.UniqueConstraint("token", name="uq_subscriber_token"),)
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True)
    name: str = ""
    frequency: str = "weekly"
    send_empty: bool = False
    active: bool = True
    # Secret part of the one-click unsubscribe link; no login needed, so it must be unguessable.
    token: str | None = None
    # Set when the subscriber unsubscribed themselves; wins over the config file.
    unsubscribed_at: datetime | None = _ts(nullable=True)
    # config: listed in config.toml (the operator's); web: subscribed on the web site
    # (pqwatch.store.subscriptions), which config sync never deactivates.
    origin: str = Field(default="config", sa_column_kwargs={"server_default": "config"})
    # A web subscriber is inactive, and owed nothing, until they confirm the mailed link.
    confirmed_at: datetime | None = _ts(nullable=True)
    # Set while the subscriber has paused their digests (inactive meanwhile); wins over the
    # config file, as unsubscribed_at does.
    paused_at: datetime | None = _ts(nullable=True)
    # Bound into the latest confirmation link: a newer request makes older links invalid.
    confirm_nonce: str | None = None
    # A new subscriber gets what was matched since they were added (a web subscriber: since
    # they confirmed), not the whole archive.
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Subscription(SQLModel, table=True):
    __tablename__ = "subscription"
    subscriber_id: int = Field(foreign_key="subscriber.id", primary_key=True, ondelete="CASCADE")
    watch_id: int = Field(foreign_key="watch.id", primary_key=True, ondelete="CASCADE")
    created_at: datetime = _ts()
    # Set when the subscriber unsubscribed from this one watch.
    unsubscribed_at: datetime | None = _ts(nullable=True)


class WatchMatch(SQLModel, table=True):
    """Which watch matched which event. The words that matched ("why did I get this?") are
    marked by FTS5's highlight() when a digest shows it."""

    __tablename__ = "watch_match"
    __table_args__ = (sa.UniqueConstraint("watch_id", "event_id", name="uq_watch_match"),)
    id: int | None = Field(default=None, primary_key=True)
    # No index of its own: uq_watch_match starts with watch_id and serves its lookups.
    watch_id: int = Field(foreign_key="watch.id", ondelete="CASCADE")
    event_id: int = Field(foreign_key="event.id", index=True, ondelete="CASCADE")
    created_at: datetime = _ts()


class Digest(SQLModel, table=True):
    """One digest message for one subscriber; its Message-ID is fixed before sending."""

    __tablename__ = "digest"
    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True, ondelete="CASCADE")
    message_id: str = Field(unique=True)
    period_start: datetime = _ts()
    period_end: datetime = _ts()
    # pending | sent | failed
    status: str = "pending"
    item_count: int = 0
    server_reply: str | None = None
    # Tries the server deferred (4xx for this recipient), and when to try again.
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": sa.text("0")})
    retry_at: datetime | None = _ts(nullable=True)
    created_at: datetime = _ts()
    sent_at: datetime | None = _ts(nullable=True)


class Delivery(SQLModel, table=True):
    """The outbox: one row per (subscriber, event), written with the match that caused it."""

    __tablename__ = "delivery"
    __table_args__ = (
        sa.UniqueConstraint("subscriber_id", "event_id", name="uq_delivery"),
        sa.Index("ix_delivery_status", "status", "subscriber_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", ondelete="CASCADE")
    event_id: int = Field(foreign_key="event.id", ondelete="CASCADE")
    digest_id: int | None = Field(default=None, foreign_key="digest.id", index=True)
    # pending | sent | failed (refused for good) | cancelled (unsubscribed before sending)
    status: str = "pending"
    attempts: int = 0
    server_reply: str | None = None
    created_at: datetime = _ts()
    sent_at: datetime | None = _ts(nullable=True)


class PollRun(SQLModel, table=True):
    """One attempt to sync one source over one date window (a poll or a backfill chunk)."""

    __tablename__ = "poll_run"
    __table_args__ = (sa.Index("ix_poll_run_source", "source", "kind", "started_at"),)
    id: int | None = Field(default=None, primary_key=True)
    source: str
    # poll | backfill
    kind: str = "poll"
    window_start: date
    window_end: date
    # running | ok | failed
    status: str = "running"
    error: str | None = None
    new_questions: int = 0
    new_answers: int = 0
    holding_answers: int = 0
    corrections: int = 0
    transfers: int = 0
    withdrawals: int = 0
    items_seen: int = 0
    requests: int = 0
    duration_seconds: float = 0.0
    started_at: datetime = _ts()
    finished_at: datetime | None = _ts(nullable=True)


class SourceState(SQLModel, table=True):
    """Per-source cursor and health. The cursor moves only after a whole window is stored."""

    __tablename__ = "source_state"
    source: str = Field(primary_key=True)
    # Last day of the last window stored completely; the next poll starts a day before it.
    cursor_date: date | None = None
    last_success_at: datetime | None = _ts(nullable=True)
    last_failure_at: datetime | None = _ts(nullable=True)
    consecutive_failures: int = 0
    last_error: str | None = None
    # Whether the operator has been told that this source is failing (one alert, not a flood).
    alert_sent: bool = False
    # What a source keeps between polls besides its cursor (a year's ETag and when it was
    # fetched); written with the cursor, so it too moves only after a poll stored everything.
    state_json: str | None = None
    updated_at: datetime = _ts()


class RateEvent(SQLModel, table=True):
    """One counted request of the self-service pages (a subscribe attempt, a confirmation
    mail sent), so that every process serving the site shares the same limits. The key is a
    keyed hash of the address or client, never the address itself; rows older than the
    longest window are deleted as new ones come."""

    __tablename__ = "rate_event"
    __table_args__ = (sa.Index("ix_rate_event_key", "kind", "key", "created_at"),)
    id: int | None = Field(default=None, primary_key=True)
    kind: str
    key: str
    created_at: datetime = _ts()


class Secret(SQLModel, table=True):
    """Server-side secrets, generated once (migration 0014): "signing" keys the signed
    confirmation and manage links and the rate-limit keys."""

    __tablename__ = "secret"
    name: str = Field(primary_key=True)
    value: str
    created_at: datetime = _ts()


class JobLease(SQLModel, table=True):
    """When each scheduled job of `pqwatch run` last started and finished, and in which
    process (issue 19: daemons sharing a PostgreSQL database; migration 0015). Written by
    store/postgresql/leases.py; SQLite, with one daemon per database, never writes it."""

    __tablename__ = "job_lease"

    name: str = Field(primary_key=True)
    holder: str | None = None
    started_at: datetime | None = _ts(nullable=True)
    finished_at: datetime | None = _ts(nullable=True)
