"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 19:59:01.005166
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "answering_body",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "member",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("list_as", sa.String(), nullable=True),
        sa.Column("party", sa.String(), nullable=True),
        sa.Column("party_abbreviation", sa.String(), nullable=True),
        sa.Column("member_from", sa.String(), nullable=True),
        sa.Column("house", sa.String(), nullable=True),
        sa.Column("thumbnail_url", sa.String(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "poll_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("window_start", sa.Date(), nullable=False),
        sa.Column("window_end", sa.Date(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("new_questions", sa.Integer(), nullable=False),
        sa.Column("new_answers", sa.Integer(), nullable=False),
        sa.Column("holding_answers", sa.Integer(), nullable=False),
        sa.Column("corrections", sa.Integer(), nullable=False),
        sa.Column("transfers", sa.Integer(), nullable=False),
        sa.Column("withdrawals", sa.Integer(), nullable=False),
        sa.Column("items_seen", sa.Integer(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("poll_run", schema=None) as batch_op:
        batch_op.create_index("ix_poll_run_source", ["source", "kind", "started_at"], unique=False)

    op.create_table(
        "source_state",
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("cursor_date", sa.Date(), nullable=True),
        sa.Column("last_success_at", sa.DateTime(), nullable=True),
        sa.Column("last_failure_at", sa.DateTime(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("alert_sent", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source"),
    )
    op.create_table(
        "subscriber",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("frequency", sa.String(), nullable=False),
        sa.Column("send_empty", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    op.create_table(
        "watch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("slug", sa.String(), nullable=False),
        sa.Column("query", sa.String(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("slug"),
    )
    op.create_table(
        "digest",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("period_start", sa.DateTime(), nullable=False),
        sa.Column("period_end", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("server_reply", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
    )
    with op.batch_alter_table("digest", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_digest_subscriber_id"), ["subscriber_id"], unique=False
        )

    op.create_table(
        "question",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("uin", sa.String(), nullable=True),
        sa.Column("house", sa.String(), nullable=False),
        sa.Column("date_tabled", sa.Date(), nullable=False),
        sa.Column("date_for_answer", sa.Date(), nullable=True),
        sa.Column("is_named_day", sa.Boolean(), nullable=False),
        sa.Column("heading", sa.String(), nullable=True),
        sa.Column("asking_member_id", sa.Integer(), nullable=True),
        sa.Column("member_has_interest", sa.Boolean(), nullable=False),
        sa.Column("answering_body_id", sa.Integer(), nullable=True),
        sa.Column("question_text", sa.String(), nullable=False),
        sa.Column("question_text_full", sa.Boolean(), nullable=False),
        sa.Column("is_withdrawn", sa.Boolean(), nullable=False),
        sa.Column("date_withdrawn", sa.Date(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("date_answered", sa.Date(), nullable=True),
        sa.Column("date_holding_answer", sa.Date(), nullable=True),
        sa.Column("date_answer_corrected", sa.Date(), nullable=True),
        sa.Column("answering_member_id", sa.Integer(), nullable=True),
        sa.Column("attachments_json", sa.String(), nullable=True),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["answering_body_id"],
            ["answering_body.id"],
        ),
        sa.ForeignKeyConstraint(
            ["answering_member_id"],
            ["member.id"],
        ),
        sa.ForeignKeyConstraint(
            ["asking_member_id"],
            ["member.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "source_id", name="uq_question_source"),
    )
    with op.batch_alter_table("question", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_question_answering_body_id"), ["answering_body_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_question_answering_member_id"), ["answering_member_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_question_asking_member_id"), ["asking_member_id"], unique=False
        )
        batch_op.create_index("ix_question_date_answered", ["date_answered"], unique=False)
        batch_op.create_index("ix_question_date_tabled", ["date_tabled"], unique=False)
        batch_op.create_index(batch_op.f("ix_question_status"), ["status"], unique=False)
        batch_op.create_index("ix_question_uin", ["house", "uin", "date_tabled"], unique=False)

    op.create_table(
        "subscription",
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("watch_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["watch_id"], ["watch.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("subscriber_id", "watch_id"),
    )
    op.create_table(
        "answer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("answer_html", sa.String(), nullable=False),
        sa.Column("answer_text", sa.String(), nullable=False),
        sa.Column("original_answer_html", sa.String(), nullable=True),
        sa.Column("is_full_text", sa.Boolean(), nullable=False),
        sa.Column("answering_member_id", sa.Integer(), nullable=True),
        sa.Column("correcting_member_id", sa.Integer(), nullable=True),
        sa.Column("date_answered", sa.Date(), nullable=True),
        sa.Column("date_corrected", sa.Date(), nullable=True),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["answering_member_id"],
            ["member.id"],
        ),
        sa.ForeignKeyConstraint(
            ["correcting_member_id"],
            ["member.id"],
        ),
        sa.ForeignKeyConstraint(["question_id"], ["question.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("question_id", "kind", "content_hash", name="uq_answer_content"),
        sa.UniqueConstraint("question_id", "version", name="uq_answer_version"),
    )
    with op.batch_alter_table("answer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_answer_question_id"), ["question_id"], unique=False)

    op.create_table(
        "question_group",
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("grouped_uin", sa.String(), nullable=False),
        sa.Column("grouped_date_tabled", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(["question_id"], ["question.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("question_id", "grouped_uin", "grouped_date_tabled"),
    )
    with op.batch_alter_table("question_group", schema=None) as batch_op:
        batch_op.create_index(
            "ix_question_group_target", ["grouped_uin", "grouped_date_tabled"], unique=False
        )

    op.create_table(
        "event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("event_date", sa.Date(), nullable=False),
        sa.Column("answer_id", sa.Integer(), nullable=True),
        sa.Column("detail_json", sa.String(), nullable=True),
        sa.Column("historical", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["answer_id"],
            ["answer.id"],
        ),
        sa.ForeignKeyConstraint(["question_id"], ["question.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("question_id", "kind", "event_date", name="uq_event"),
    )
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index("ix_event_created_at", ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_event_question_id"), ["question_id"], unique=False)

    op.create_table(
        "delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("digest_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("server_reply", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["digest_id"],
            ["digest.id"],
        ),
        sa.ForeignKeyConstraint(["event_id"], ["event.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscriber_id", "event_id", name="uq_delivery"),
    )
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delivery_digest_id"), ["digest_id"], unique=False)
        batch_op.create_index("ix_delivery_status", ["status", "subscriber_id"], unique=False)

    op.create_table(
        "watch_match",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("watch_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("matched_terms_json", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["event.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["watch_id"], ["watch.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("watch_id", "event_id", name="uq_watch_match"),
    )
    with op.batch_alter_table("watch_match", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_watch_match_event_id"), ["event_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_watch_match_watch_id"), ["watch_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("watch_match", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_watch_match_watch_id"))
        batch_op.drop_index(batch_op.f("ix_watch_match_event_id"))

    op.drop_table("watch_match")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_status")
        batch_op.drop_index(batch_op.f("ix_delivery_digest_id"))

    op.drop_table("delivery")
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_question_id"))
        batch_op.drop_index("ix_event_created_at")

    op.drop_table("event")
    with op.batch_alter_table("question_group", schema=None) as batch_op:
        batch_op.drop_index("ix_question_group_target")

    op.drop_table("question_group")
    with op.batch_alter_table("answer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_answer_question_id"))

    op.drop_table("answer")
    op.drop_table("subscription")
    with op.batch_alter_table("question", schema=None) as batch_op:
        batch_op.drop_index("ix_question_uin")
        batch_op.drop_index(batch_op.f("ix_question_status"))
        batch_op.drop_index("ix_question_date_tabled")
        batch_op.drop_index("ix_question_date_answered")
        batch_op.drop_index(batch_op.f("ix_question_asking_member_id"))
        batch_op.drop_index(batch_op.f("ix_question_answering_member_id"))
        batch_op.drop_index(batch_op.f("ix_question_answering_body_id"))

    op.drop_table("question")
    with op.batch_alter_table("digest", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_digest_subscriber_id"))

    op.drop_table("digest")
    op.drop_table("watch")
    op.drop_table("subscriber")
    op.drop_table("source_state")
    with op.batch_alter_table("poll_run", schema=None) as batch_op:
        batch_op.drop_index("ix_poll_run_source")

    op.drop_table("poll_run")
    op.drop_table("member")
    op.drop_table("answering_body")
