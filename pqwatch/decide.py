"""Decide what a freshly fetched question means for the archive. Pure: no I/O, no session.

Given what is stored for a question (or nothing) and what the source reports now, say which
answer versions to add and which lifecycle events happened. The store then writes exactly
that, inside one short transaction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from pqwatch.text import (
    html_to_text,
    looks_like_html,
    plain_text_to_html,
    sanitize_html,
    strip_controls,
)
from pqwatch.types import QuestionData

TABLED, HOLDING, ANSWERED, CORRECTED, TRANSFERRED, WITHDRAWN = (
    "tabled", "holding", "answered", "corrected", "transferred", "withdrawn",
)  # fmt: skip
# An FOI request's state changed (WhatDoTheyKnow: successful, not_held, ...).
STATE = "state"
EVENT_KINDS = (TABLED, HOLDING, ANSWERED, CORRECTED, TRANSFERRED, WITHDRAWN, STATE)


@dataclass(frozen=True, slots=True)
class PreparedAnswer:
    """Answer text made safe and searchable, computed outside any transaction."""

    kind: str  # holding | answer | correction
    html: str
    text: str
    is_full: bool
    content_hash: str
    original_html: str | None = None
    original_text: str | None = None
    original_hash: str | None = None


@dataclass(frozen=True, slots=True)
class StoredQuestion:
    """What the store holds for a question, as far as deciding needs it."""

    id: int
    list_hash: str
    is_withdrawn: bool
    answering_body_id: int | None
    answering_body_name: str | None
    date_answer_corrected: date | None
    # (kind, content_hash) of every stored answer version, and of the partial (list-text) ones.
    answer_keys: frozenset[tuple[str, str]] = frozenset()
    partial_keys: frozenset[tuple[str, str]] = frozenset()
    status: str = ""

    @property
    def partial_kinds(self) -> frozenset[str]:
        return frozenset(k for k, _ in self.partial_keys)

    @property
    def full_kinds(self) -> frozenset[str]:
        """Kinds with a version stored in full."""
        return frozenset(k for k, _ in self.answer_keys - self.partial_keys)


@dataclass(frozen=True, slots=True)
class NewAnswer:
    kind: str
    html: str
    text: str
    is_full: bool
    content_hash: str
    original_html: str | None = None
    # Replaces a stored list-text version of the same kind by the full text of the same answer.
    completes_partial: bool = False


@dataclass(frozen=True, slots=True)
class NewEvent:
    kind: str
    event_date: date
    # Index into Decision.answers of the version this event is about, if any.
    answer_index: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    status: str
    answers: tuple[NewAnswer, ...]
    events: tuple[NewEvent, ...]


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def prepare_answer(item: QuestionData) -> PreparedAnswer | None:
    """Sanitise the answer HTML and derive its plain text. None for an unanswered question."""
    if not item.has_answer or item.answer_raw is None:
        return None
    kind = (
        "correction"
        if item.answer_is_correction
        else "holding"
        if item.answer_is_holding
        else "answer"
    )
    html = _safe_html(item.answer_raw)
    original_html = original_text = original_hash = None
    if item.original_answer_raw and item.original_answer_raw.strip():
        original_html = _safe_html(item.original_answer_raw)
        original_text = html_to_text(original_html)
        original_hash = _hash(original_text)
    text = html_to_text(html)
    return PreparedAnswer(
        kind=kind,
        html=html,
        text=text,
        is_full=item.answer_full,
        # Hash the plain text so that a list-text and a full-HTML copy of a short answer agree.
        content_hash=_hash(text),
        original_html=original_html,
        original_text=original_text,
        original_hash=original_hash,
    )


def _safe_html(raw: str) -> str:
    html = sanitize_html(raw) if looks_like_html(raw) else plain_text_to_html(raw)
    # A character reference (&#27;) is decoded by the sanitiser: clean what it gives back.
    return strip_controls(html)


def status_of(item: QuestionData) -> str:
    if item.state is not None:  # the source's own word (an FOI request's state)
        return item.state
    if item.kind == "statement":
        return "made"  # a statement awaits nothing: never "unanswered"
    if item.is_withdrawn:
        return "withdrawn"
    if not item.has_answer:
        return "unanswered"
    if item.answer_is_correction:
        return "corrected"
    if item.answer_is_holding:
        return "holding"
    return "answered"


def decide_foi(old: StoredQuestion | None, new: QuestionData, answer: PreparedAnswer | None,
               today: date) -> Decision:  # fmt: skip
    """An FOI request: sent (tabled), each new response (its answer text holds every response,
    so a changed text is a new response, never a correction), and each change of state."""
    answers: list[NewAnswer] = []
    events: list[NewEvent] = []
    status = status_of(new)
    if old is None:
        events.append(NewEvent(TABLED, new.date_tabled))
    keys = old.answer_keys if old else frozenset()
    if (
        answer is not None
        and new.date_answered is not None
        and ("answer", answer.content_hash) not in keys
    ):
        answers.append(NewAnswer("answer", answer.html, answer.text, True, answer.content_hash))
        events.append(NewEvent(ANSWERED, new.date_answered, 0))
    if old is not None and old.status != status:
        events.append(NewEvent(STATE, today, None, {"from": old.status, "to": status}))
    return Decision(status=status, answers=tuple(answers), events=tuple(events))


def decide(
    old: StoredQuestion | None, new: QuestionData, answer: PreparedAnswer | None, today: date
) -> Decision:
    if new.kind == "foi":
        return decide_foi(old, new, answer, today)
    answers: list[NewAnswer] = []
    events: list[NewEvent] = []
    keys = old.answer_keys if old else frozenset()
    kinds_stored = {k for k, _ in keys}

    def add_version(kind: str, html: str, text: str, h: str, full: bool, orig: str | None) -> int:
        completes = kind in (old.partial_kinds if old else ()) and full
        answers.append(NewAnswer(kind, html, text, full, h, orig, completes))
        return len(answers) - 1

    if old is None:
        events.append(NewEvent(TABLED, new.date_tabled))

    status = status_of(new)
    if (
        answer is not None
        and not new.source_flags_corrections
        and answer.kind == "answer"
        and kinds_stored & {"answer", "correction"}
        and ("answer", answer.content_hash) not in keys
        and ("correction", answer.content_hash) not in keys
    ):
        # A source that does not flag corrections changed a stored answer's text.
        answer = replace(answer, kind="correction")
        status = "corrected"
    elif answer is not None and not new.source_flags_corrections and "correction" in kinds_stored:
        status = "corrected"  # still the corrected text
        answer = replace(answer, kind="correction")

    if answer is not None and new.date_answered is not None:
        key = (answer.kind, answer.content_hash)
        is_new_version = key not in keys
        if not answer.is_full and old is not None and answer.kind in old.full_kinds:
            # A list copy (its detail request failed) of an answer stored in full tells us
            # nothing new: the question is fetched again in full later.
            is_new_version = False
        # The same text as a stored list-text version (a short answer), now known to be whole.
        completes = (
            not is_new_version and answer.is_full and old is not None
            and key in old.partial_keys
        )  # fmt: skip
        idx = (
            add_version(
                answer.kind,
                answer.html,
                answer.text,
                answer.content_hash,
                answer.is_full,
                answer.original_html,
            )
            if is_new_version or completes
            else None
        )
        if answer.kind == "holding":
            if is_new_version:
                events.append(NewEvent(HOLDING, new.date_answered, idx))
        elif answer.kind == "answer":
            if "answer" not in kinds_stored and "correction" not in kinds_stored:
                events.append(NewEvent(ANSWERED, new.date_answered, idx))
        else:  # correction
            if "answer" not in kinds_stored and "correction" not in kinds_stored:
                # First seen already corrected: keep the original answer when the API gives it.
                if answer.original_html is not None and answer.original_hash is not None:
                    oidx = add_version(
                        "answer",
                        answer.original_html,
                        answer.original_text or "",
                        answer.original_hash,
                        answer.is_full,
                        None,
                    )
                    events.append(NewEvent(ANSWERED, new.date_answered, oidx))
                else:
                    events.append(NewEvent(ANSWERED, new.date_answered, idx))
            corrected_on = new.date_answer_corrected or today
            if is_new_version or (old is not None and old.date_answer_corrected != corrected_on):
                events.append(NewEvent(CORRECTED, corrected_on, idx))

    if (
        old is not None
        and old.answering_body_id is not None
        and new.answering_body_id is not None
        and old.answering_body_id != new.answering_body_id
    ):
        detail = {
            "from_id": old.answering_body_id,
            "from": old.answering_body_name,
            "to_id": new.answering_body_id,
            "to": new.answering_body_name,
        }
        events.append(NewEvent(TRANSFERRED, today, None, detail))

    if new.is_withdrawn and not (old is not None and old.is_withdrawn):
        events.append(NewEvent(WITHDRAWN, today))

    return Decision(status=status, answers=tuple(answers), events=tuple(events))
