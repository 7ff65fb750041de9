"""Send a run's digests, one subscriber after another, rendering each while the one before it
is with the mail server.

The delivery rules (store/outbox.py):
- a digest is sent by the run that claims its subscriber. On SQLite one run at a time holds
  the send lock (pqwatch.locks.sender), which is its claim on every pending digest: a second
  run waits for the first, then sends only what is still owed. On PostgreSQL runs share the
  work: each claims one subscriber at a time, skips those another run holds, and one served
  meanwhile. Either way a digest a dead sender left pending is taken over, same Message-ID;
- a digest is opened (its Message-ID and rows fixed) before it is sent, and marked sent in a
  transaction of its own straight after the server's reply, with nothing in between: the
  next digest was opened before this one went to the server, and only rendering (reads)
  overlaps the send;
- a recipient the server defers (4xx) waits alone, retried with backoff; the others go on.
  A server that is down stops the run: the rest would fail the same way. A digest opened
  ahead but never offered to the server is given back, as if the run had stopped first.
"""

from __future__ import annotations

import re
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from pqwatch import locks
from pqwatch.config import DEFAULT_SENDER, Config, EmailConfig, ScheduleConfig
from pqwatch.errors import StorageError
from pqwatch.notify import render
from pqwatch.notify.compose import ArchiveCache, compose
from pqwatch.notify.confirm import manage_site, manage_url, public_site, self_service_on
from pqwatch.notify.due import is_due
from pqwatch.notify.mailer import (
    PermanentRefusal,
    RecipientDeferred,
    TransientFailure,
    Transport,
    make_transport,
)
from pqwatch.notify.outcome import DigestOutcome, DigestRun

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from email.message import EmailMessage

    from pqwatch.store.outbox import OpenDigest, Outbox, RunContext, SubscriberRow

# How long a run waits for another sender to finish before giving up (one line, exit 1).
SENDER_WAIT_SECONDS = 15 * 60
# Why a run did not send a subscriber's digest that another run (PostgreSQL) claimed.
_NOT_MINE = {
    "elsewhere": "being sent by another run",
    "already-sent": "sent by another run meanwhile",
    "deferred": "deferred by another run: tried again later",
}
# A deferred recipient is tried again after 10 minutes, then 20, 40... at most 6 hours apart.
RETRY_FIRST = timedelta(minutes=10)
RETRY_MAX = timedelta(hours=6)


def retry_delay(attempts: int) -> timedelta:
    """The wait after the `attempts`-th deferral (1, 2, ...)."""
    return min(RETRY_FIRST * (1 << min(max(attempts - 1, 0), 16)), RETRY_MAX)


def reply_address(email: EmailConfig) -> str | None:
    """Where a reader may write (unsubscribe by mail, Reply-To): the operator, else the sender
    when it is a real address; None when there is nobody to write to."""
    if email.operator:
        return email.operator
    sender = parseaddr(email.from_)[1]
    return None if not sender or sender == DEFAULT_SENDER else sender


@dataclass(frozen=True)
class Prepared:
    """A digest opened in the outbox and ready for the wire."""

    digest: OpenDigest
    mail: EmailMessage
    name: str  # the file name, when the transport writes files
    items: int


class _Renderer:
    """Composes and renders one opened digest. Reads only; used by one thread at a time."""

    def __init__(self, outbox: Outbox, config: Config, context: RunContext) -> None:
        self.outbox, self.config = outbox, config
        self.context = context
        self.tz = ZoneInfo(config.schedule.timezone)
        self.env = render.environment()
        self.cache = ArchiveCache()  # the questions of this run, read once
        # The web app's address: the one-click unsubscribe and, when people may manage their
        # subscription there, a signed manage link (the signing key read once a run).
        self.site = public_site(config)
        self.manage_site = manage_site(config)
        self.manage_key: bytes | None = None
        if self.manage_site and self_service_on(config):
            from pqwatch.store.subscriptions import read_signing_key

            with outbox.reading() as conn:
                self.manage_key = read_signing_key(conn)

    def __call__(self, od: OpenDigest) -> Prepared:
        outbox, context, sub = self.outbox, self.context, od.subscriber
        with outbox.reading() as conn:
            digest = compose(
                conn,
                subscriber_id=sub.id,
                email=sub.email,
                name=sub.name,
                frequency=sub.frequency,
                delivery_ids=od.delivery_ids,
                period_start=od.period_start,
                period_end=od.period_end,
                cache=self.cache,
            )
        digest = replace(digest, polls=context.health(od.period_start))
        email = self.config.email
        operator = reply_address(email)
        site = self.site
        token = context.tokens.get(sub.id)
        unsubscribe = f"{site}/unsubscribe/{token}" if site and token else None
        # Signed at the digest's own time: a digest sent again after a crash is the same.
        manage = (
            manage_url(self.manage_site, self.manage_key, sub.id, token, od.period_end)
            if self.manage_site and token and self.manage_key
            else None
        )
        watches = context.subscriptions.get(sub.id, [])
        rendered = render.render(
            self.env,
            digest,
            tz=self.tz,
            subscribed_watches=[name for name, _ in watches],
            operator=operator,
            unsubscribe_url=unsubscribe,
            watch_unsubscribe=[(n, f"{unsubscribe}/{slug}") for n, slug in watches]
            if unsubscribe
            else [],
            manage_url=manage,
        )
        mail = render.build_message(
            rendered,
            sender=email.from_,
            to_name=sub.name,
            to_email=sub.email,
            message_id=od.message_id,
            operator=operator,
            unsubscribe_url=unsubscribe,
            when=od.period_end,
        )
        # Named by when the digest was first opened: sent again after a crash, it replaces
        # its own file instead of adding a second one.
        stamp = (od.created_at or od.period_end).astimezone(self.tz).strftime("%Y%m%d-%H%M%S")
        name = f"{stamp}-{re.sub(r'[^A-Za-z0-9.@-]+', '_', sub.email)}-{od.id or 'dry-run'}"
        return Prepared(od, mail, name, len(digest.items))


def _deliver(
    outbox: Outbox, transport: Transport, prepared: Prepared, now: datetime, *, dry_run: bool
) -> DigestOutcome:
    od, n = prepared.digest, prepared.items
    email = od.subscriber.email
    try:
        reply = transport.send(prepared.mail, prepared.name)
    except PermanentRefusal as exc:
        outbox.mark_failed(od, str(exc))
        return DigestOutcome(email, "failed", n, str(exc))
    except RecipientDeferred as exc:
        retry_at = now + retry_delay(od.attempts + 1)
        outbox.defer(od, str(exc), retry_at)
        when = retry_at.isoformat(timespec="minutes")
        return DigestOutcome(email, "deferred", n, f"{exc}; next try after {when}")
    except TransientFailure as exc:
        outbox.note_attempt(od, str(exc))
        return DigestOutcome(email, "pending", n, str(exc))
    if dry_run:
        return DigestOutcome(email, "dry-run", n, reply)
    # Straight after the server's reply, in a transaction of its own (the crash window).
    outbox.mark_sent(od, reply)
    return DigestOutcome(email, "sent", n, reply)


def _abandon(outbox: Outbox, ahead: OpenDigest | None) -> None:
    """The run stopped with a digest opened ahead: give it back, unsent."""
    if ahead is None:
        return
    try:
        outbox.abandon(ahead)
    except StorageError:
        pass  # it stays pending and goes out next run, as after a crash right here


@dataclass(frozen=True)
class _Planned:
    sub: SubscriberRow
    # An empty digest may go out: the subscriber wants them and a scheduled slot has passed.
    allow_empty: bool


def _plan(
    sched: ScheduleConfig,
    subs: Sequence[SubscriberRow],
    context: RunContext,
    *,
    now: datetime,
    started: datetime,
    due_only: bool,
    dry_run: bool,
    run: DigestRun,
) -> list[_Planned]:
    """Who gets a digest in this run. A subscriber sent one (or refused for good) since this
    run began was served by another run while this one waited for the send lock."""
    tz = ZoneInfo(sched.timezone)
    plan = []
    for sub in subs:
        last = context.last_sent.get(sub.id)
        if not dry_run and last is not None and last > started:
            run.outcomes.append(
                DigestOutcome(sub.email, "already-sent", 0, "sent by another run meanwhile")
            )
            continue
        due = is_due(last, now, sub.frequency, sched.digest_weekday, sched.digest_time, tz)
        pending = sub.id in context.pending
        if due_only and not (due or pending):
            continue
        retry_at = context.pending.get(sub.id)
        if due_only and retry_at is not None and retry_at > now:
            when = retry_at.isoformat(timespec="minutes")
            run.outcomes.append(
                DigestOutcome(sub.email, "deferred", 0, f"waiting to try again after {when}")
            )
            continue
        empty_ok = sub.send_empty or (sub.welcome and last is None)
        plan.append(_Planned(sub, empty_ok and due))
    return plan


def send_digests(
    outbox: Outbox,
    config: Config,
    subs: Sequence[SubscriberRow],
    *,
    now: Callable[[], datetime],
    dry_run: bool,
    out: Path | None,
    due_only: bool,
    on_wait: Callable[[str], None] | None = None,
    transport: Transport | None = None,
) -> DigestRun:
    """Deliver what each subscriber is owed (only where a slot has passed, or a digest is
    pending, with due_only); stop at the first outage: the rest would fail the same way.
    The transport defaults to the config's: SMTP, or .eml files in `out` or the outbox."""
    from pqwatch.store.outbox import AllClaimed

    run = DigestRun()
    started = now()
    lock = (
        nullcontext(AllClaimed())
        if dry_run
        else locks.sender(outbox.db, wait_seconds=SENDER_WAIT_SECONDS, on_wait=on_wait)
    )
    with lock as claims:
        context = outbox.run_context()
        plan = _plan(
            config.schedule, subs, context,
            now=now(), started=started, due_only=due_only, dry_run=dry_run, run=run,
        )  # fmt: skip
        renderer = _Renderer(outbox, config, context)
        transport = transport or make_transport(config.email, out)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pqwatch-digest") as worker:

            def start(p: _Planned) -> tuple[OpenDigest, Future[Prepared]] | DigestOutcome:
                """Claim and open the digest (writes, in this thread), render it on the
                worker. The claim is held until the digest is marked or given back."""
                sub = p.sub
                why = claims.take(sub.id, context.last_sent.get(sub.id), now())
                if why != "mine":
                    return DigestOutcome(sub.email, why, 0, _NOT_MINE.get(why, why))
                try:
                    od = outbox.open_digest(sub, dry_run=dry_run, allow_empty=p.allow_empty)
                except BaseException:
                    claims.release(sub.id)
                    raise
                if od is None:
                    claims.release(sub.id)
                    return DigestOutcome(sub.email, "nothing", 0, "nothing new")
                return od, worker.submit(renderer, od)

            ahead = start(plan[0]) if plan else None
            try:
                for i in range(len(plan)):
                    current, ahead = ahead, None
                    assert current is not None
                    try:
                        # The next digest is opened before this one goes to the server, so
                        # that nothing of ours writes between the server's reply and marking
                        # it sent.
                        ahead = start(plan[i + 1]) if i + 1 < len(plan) else None
                        if isinstance(current, DigestOutcome):
                            run.outcomes.append(current)
                            continue
                        prepared = current[1].result()
                        outcome = _deliver(outbox, transport, prepared, now(), dry_run=dry_run)
                    finally:
                        if isinstance(current, tuple):
                            claims.release(current[0].subscriber.id)
                    run.outcomes.append(outcome)
                    if outcome.status == "pending":
                        run.error = f"{outcome.email}: {outcome.detail}"
                        break  # the server is down: the rest would fail the same way
            finally:
                try:
                    if isinstance(ahead, tuple):
                        try:
                            _abandon(outbox, ahead[0])
                        finally:
                            claims.release(ahead[0].subscriber.id)
                finally:
                    transport.close()
    return run
