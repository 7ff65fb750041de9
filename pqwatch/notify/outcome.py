"""What a digest run did, per subscriber: plain result types for the CLI and the daemon."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DigestOutcome:
    email: str
    # sent | failed (refused for good) | deferred (this recipient: tried again later) |
    # pending (the server is unavailable: the run stopped) | nothing | dry-run |
    # already-sent (by another run while this one waited)
    status: str
    items: int
    detail: str


@dataclass
class DigestRun:
    outcomes: list[DigestOutcome] = field(default_factory=list)
    error: str | None = None

    @property
    def refused(self) -> str | None:
        """One line for the digests the server refused for good (marked failed, not retried),
        so that the run that met them ends non-zero; None when there were none."""
        failed = [o for o in self.outcomes if o.status == "failed"]
        if not failed:
            return None
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        return (
            f"the mail server refused {len(failed)} digest(s) for good: {failed[0].detail}"
            f"{more}; marked failed, not retried (see pqwatch status)"
        )
