"""What the self-service pages show of a subscription: plain, frozen types (the facade's
`manage`, `confirm`, `update_subscription` and `unsubscribe_all` return a SubscriptionView;
`subscribable_watches` a list of WatchChoice). The SQL that fills them is in
pqwatch.store.subscriptions."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WatchChoice:
    """A watch as a subscribe or manage form offers it."""

    slug: str
    name: str
    query: str
    subscribed: bool = False
    # Made from this subscriber's own search ("alert me for this search"), not the operator's.
    personal: bool = False


@dataclass(frozen=True)
class SubscriptionView:
    """One subscription, as /manage/<token> shows it."""

    email: str
    frequency: str  # weekly | daily
    paused: bool
    # Unsubscribed from everything: nothing is sent until they subscribe again (update it).
    unsubscribed: bool
    # Listed in config.toml: which of the operator's watches and how often are the operator's
    # to change; the subscriber may still pause, drop a watch, or unsubscribe.
    operator_managed: bool
    # The subscriber's own searches first, then the watches they may choose from, by name.
    watches: tuple[WatchChoice, ...]
    # A fresh signed link token for /manage/<token> (it expires: pqwatch.notify.confirm).
    manage_token: str

    @property
    def subscribed_slugs(self) -> tuple[str, ...]:
        return tuple(w.slug for w in self.watches if w.subscribed)
