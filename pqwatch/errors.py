"""The one exception hierarchy of pqwatch.

PQWatchError                 anything pqwatch expects and reports as one line
├── ConfigError              bad or missing config.toml (exit 2)
├── UsageError               a bad argument or query (exit 2)
│   └── TooManyRequests      a self-service rate limit was reached (the web app: 429)
├── StorageError             the database cannot be opened or migrated (exit 1)
├── SourceError              an API that is down or misbehaving (exit 1)
└── DeliveryError            an SMTP server that refused or dropped us (exit 1)

Anything else is a bug: the CLI still prints one line, but says so.
"""

from __future__ import annotations


class PQWatchError(Exception):
    """An expected failure, reported to the user as one line."""

    exit_code = 1


class ConfigError(PQWatchError):
    exit_code = 2


class UsageError(PQWatchError):
    exit_code = 2


class TooManyRequests(UsageError):
    """Too many subscribe or confirm requests from one client, or mails to one address.
    The message is the same whatever the address's state, so it reveals nothing."""


class StorageError(PQWatchError):
    pass


class SourceError(PQWatchError):
    pass


class DeliveryError(PQWatchError):
    pass
