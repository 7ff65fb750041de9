"""Send a run's digests, one subscriber after another, preparing each while the one before it
is with the mail server.

Preparing a digest (open it in the outbox, compose, render, encode) is our work; accepting it
is the server's. They overlap: a worker thread prepares the next digest while this thread
waits for the server's reply to the current one. The delivery rules do not change:
- digests are delivered in order, one at a time, each marked sent only after the server
  accepted it (outbox.py);
- at most one digest is prepared ahead. When the run stops early (the server is down), the
  one prepared ahead was never offered to the server: it is abandoned, its rows go back to
  waiting, and the outbox looks as if the run had stopped before opening it.
"""

from __future__ import annotations

import re
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, replace
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from pqwatch.errors import StorageError
from pqwatch.notify import render
from pqwatch.notify.compose import ArchiveCache, compose
from pqwatch.notify.due import is_due
from pqwatch.notify.mailer import (
    OutgoingMail,
    PermanentRefusal,
    TransientFailure,
    Transport,
    make_transport,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pqwatch.service import DigestOutcome, DigestRun, PQWatch
    from pqwatch.store.outbox import OpenDigest, Outbox, RunContext, SubscriberRow


@dataclass(frozen=True)
class Prepared:
    """A digest opened in the outbox and ready for the wire."""

    digest: OpenDigest
    mail: OutgoingMail
    name: str  # the file name, when the transport writes files
    items: int


class _Preparer:
    """Opens, composes and renders one subscriber's digest. Used by one thread at a time."""

    def __init__(self, svc: PQWatch, context: RunContext, *, dry_run: bool) -> None:
        self.svc = svc
        self.context = context
        self.dry_run = dry_run
        self.tz = ZoneInfo(svc.config.schedule.timezone)
        self.env = render.environment()
        self.cache = ArchiveCache()  # the questions of this run, read once
        self._held: ExitStack | None = None

    def close(self) -> None:
        """Close the connections this thread held (call it in that thread)."""
        if self._held is not None:
            self._held.close()
            self._held = None

    def __call__(self, sub: SubscriberRow) -> Prepared | DigestOutcome:
        from pqwatch.service import DigestOutcome

        svc, context = self.svc, self.context
        if self._held is None:
            self._held = ExitStack()
            self._held.enter_context(svc.outbox.holding_connections())
        od = svc.outbox.open_digest(sub, dry_run=self.dry_run)
        if od is None:
            return DigestOutcome(sub.email, "nothing", 0, "nothing new")
        with svc.outbox.reading() as conn:
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
        last_ok, failures = context.health(od.period_start)
        digest = replace(digest, last_poll_ok_at=last_ok, poll_failures=failures)
        email = svc.config.email
        operator = email.operator or parseaddr(email.from_)[1]
        site = svc.config.feeds.site_url
        token = context.tokens.get(sub.id)
        unsubscribe = f"{site}/unsubscribe/{token}" if site and token else None
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
        stamp = od.period_end.astimezone(self.tz).strftime("%Y%m%d-%H%M%S")
        name = f"{stamp}-{re.sub(r'[^A-Za-z0-9.@-]+', '_', sub.email)}-{od.id or 'dry-run'}"
        return Prepared(od, mail, name, len(digest.items))


def _deliver(
    outbox: Outbox, transport: Transport, prepared: Prepared, *, dry_run: bool
) -> DigestOutcome:
    from pqwatch.service import DigestOutcome

    od, n = prepared.digest, prepared.items
    email = od.subscriber.email
    try:
        reply = transport.send(prepared.mail, prepared.name)
    except PermanentRefusal as exc:
        outbox.mark_failed(od, str(exc))
        return DigestOutcome(email, "failed", n, str(exc))
    except TransientFailure as exc:
        outbox.note_attempt(od, str(exc))
        return DigestOutcome(email, "pending", n, str(exc))
    if dry_run:
        return DigestOutcome(email, "dry-run", n, reply)
    outbox.mark_sent(od, reply)
    return DigestOutcome(email, "sent", n, reply)


def _abandon(outbox: Outbox, ahead: Future[Prepared | DigestOutcome]) -> None:
    """The run stopped with a digest prepared ahead: give it back, unsent."""
    try:
        prepared = ahead.result()
    except Exception:  # noqa: BLE001 - its run stopped anyway; the next run meets it again
        return
    if isinstance(prepared, Prepared):
        try:
            outbox.abandon(prepared.digest)
        except StorageError:
            pass  # it stays pending and goes out next run, as after a crash right here


def send_digests(
    svc: PQWatch,
    subs: Sequence[SubscriberRow],
    *,
    dry_run: bool,
    out: Path | None,
    due_only: bool,
) -> DigestRun:
    """Deliver what each subscriber is owed (only where a slot has passed, with due_only);
    stop at the first outage: the rest would fail the same way."""
    from pqwatch.service import DigestOutcome, DigestRun

    sched = svc.config.schedule
    tz = ZoneInfo(sched.timezone)
    context = svc.outbox.run_context()
    due = [
        sub
        for sub in subs
        if not due_only
        or is_due(
            context.last_sent.get(sub.id),
            svc.now(),
            sub.frequency,
            sched.digest_weekday,
            sched.digest_time,
            tz,
        )
    ]
    run = DigestRun()
    prepare = _Preparer(svc, context, dry_run=dry_run)
    transport = make_transport(svc.config.email, out)
    # Each thread keeps its connections for the run. (That also keeps SQLite's WAL: it is
    # checkpointed and deleted whenever the last connection closes, which would otherwise
    # happen after every transaction here.)
    with (
        svc.outbox.holding_connections(),
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="pqwatch-digest") as worker,
    ):
        ahead = worker.submit(prepare, due[0]) if due else None
        try:
            for i in range(len(due)):
                assert ahead is not None
                prepared = ahead.result()
                ahead = worker.submit(prepare, due[i + 1]) if i + 1 < len(due) else None
                if isinstance(prepared, DigestOutcome):
                    outcome = prepared
                else:
                    outcome = _deliver(svc.outbox, transport, prepared, dry_run=dry_run)
                run.outcomes.append(outcome)
                if outcome.status == "pending":
                    run.error = f"{outcome.email}: {outcome.detail}"
                    break  # the server is down: the rest would fail the same way
        finally:
            try:
                if ahead is not None:
                    _abandon(svc.outbox, ahead)
            finally:
                transport.close()
                worker.submit(prepare.close).result()
    return run
