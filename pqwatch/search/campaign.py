"""An FOI campaign at a glance: one row per authority asked, from the archive's FOI items.

Charities send the same request to every council or NHS body; what they need is who has
answered, who refused and who is late. Rows come from a search (``type:foi`` and the
campaign's words, a requester with ``asker:``), newest request first, so when an authority
was asked more than once the row shows its newest request and counts the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from pqwatch.search.results import SearchHit
from pqwatch.types import FOI_WORKING_DAYS, add_working_days, foi_state_label


@dataclass(frozen=True)
class CampaignRow:
    authority: str
    state: str  # as WhatDoTheyKnow stores it (waiting_response, not_held, ...)
    state_label: str
    sent: date
    days_since_sent: int
    # "no", "overdue" or "long overdue": waiting for a response past 20 (40) working days.
    overdue: str
    last_response: date | None
    requests: int  # requests to this authority among the matches
    url_title: str | None
    url: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "authority": self.authority,
            "state": self.state,
            "state_label": self.state_label,
            "sent": self.sent.isoformat(),
            "days_since_sent": self.days_since_sent,
            "overdue": self.overdue,
            "last_response": self.last_response.isoformat() if self.last_response else None,
            "requests": self.requests,
            "url_title": self.url_title,
            "url": self.url,
        }


FIELDS = tuple(CampaignRow.__dataclass_fields__)


def _overdue(state: str, due: date | None, today: date) -> str:
    if state != "waiting_response" or due is None or today <= due:
        return "no"
    return "long overdue" if today > add_working_days(due, FOI_WORKING_DAYS) else "overdue"


def campaign_rows(hits: list[SearchHit], today: date) -> list[CampaignRow]:
    """Hits newest first -> one row per authority, in authority order."""
    rows: dict[str, CampaignRow] = {}
    for h in hits:
        authority = h.answering_body or "(authority not known)"
        seen = rows.get(authority.casefold())
        if seen is not None:
            rows[authority.casefold()] = CampaignRow(
                **{**seen.__dict__, "requests": seen.requests + 1}
            )
            continue
        rows[authority.casefold()] = CampaignRow(
            authority=authority,
            state=h.status,
            state_label=foi_state_label(h.status, None, today),
            sent=h.date_tabled,
            days_since_sent=(today - h.date_tabled).days,
            overdue=_overdue(h.status, h.date_for_answer, today),
            last_response=h.date_answered,
            requests=1,
            url_title=h.uin,
            url=h.url,
        )
    return sorted(rows.values(), key=lambda r: r.authority.casefold())
