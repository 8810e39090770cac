"""The status words of the service's records, as `StrEnum`s: stored as the same VARCHAR values
(no migration), compared and matched with type checking instead of string literals. Pure: the
models and the domain modules both use them."""

from __future__ import annotations

import enum


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"
    PROCESSED = "processed"
    FAILED = "failed"
    DEAD = "dead"
    """Its job used every attempt; replayable."""
    REJECTED = "rejected"
    """Refused at the door (401, 400, 413): listed, never processed."""


class ProblemStatus(enum.StrEnum):
    OPEN = "open"
    CLEARED = "cleared"


class ProblemSource(enum.StrEnum):
    ALERT = "alert"
    STATUS = "status"
    POLL = "poll"
    CONSOLE = "console"
    """Found by comparing a security console with the RMM (coverage), or read from the console."""


class Routing(enum.StrEnum):
    """Why a problem's ticket does or does not exist."""

    PENDING = "pending"
    TICKETED = "ticketed"
    UNMAPPED = "unmapped"
    NO_RULE = "no_rule"
    EXCLUDED = "excluded"
    """Switched off or excluded by the ticket rule: no ticket."""
    WAITING = "waiting"
    """A status finding younger than the rule's minimum age."""
    STORM = "storm"
    """Listed on the client's storm ticket instead of a ticket of its own."""
    MAINTENANCE = "maintenance"
    """Held by an open maintenance window: reconciled again when it ends."""


class EventState(enum.StrEnum):
    """The newest event recorded for an RMM connection × endpoint × problem kind."""

    ACTIVE = "active"
    CLEARED = "cleared"


class TicketState(enum.StrEnum):
    PENDING = "pending"
    """Recorded with its marker before the PSA create; repaired by finding the marker."""
    OPEN = "open"
    CLOSED = "closed"
    ACKNOWLEDGED = "acknowledged"
    """A technician closed the ticket while the problem lasts: the problem counts as acknowledged;
    no new ticket until it clears and comes back (or the rule's re-raise interval passes)."""
    LEFT_OPEN = "left_open"
    """The problem cleared but the ticket had a person's work on it (or the rule says `note_only`):
    the resolution note was added and the ticket left open for a technician to close."""
    HANDED_OVER = "handed_over"
    """Its PSA connection was removed: the ticket was left open in the PSA with a note saying so, for
    a technician to close; the connector no longer writes to it."""


class SyncStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class SyncTrigger(enum.StrEnum):
    SCHEDULE = "schedule"
    API = "api"
    CLI = "cli"
    DASHBOARD = "dashboard"


class ActionStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    """Marked before the RMM call: never sent again after an interruption."""
    ACCEPTED = "accepted"
    FAILED = "failed"


class Health(enum.StrEnum):
    PROTECTED = "protected"
    AT_RISK = "at_risk"
    UNPROTECTED = "unprotected"
    OFFLINE = "offline"
    UNKNOWN = "unknown"
    """The RMM reports no antivirus state for the endpoint."""


class LineAction(enum.StrEnum):
    """What a billing push did (or, in a dry run, would do) with one line."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    ERROR = "error"
    WOULD_CREATE = "would_create"
    WOULD_UPDATE = "would_update"


class PsaCheck(enum.StrEnum):
    """Whether the PSA ids of a mapping or rule were found in the PSA when it was last saved."""

    CHECKED = "checked"
    UNCHECKED = "unchecked"
    """Saved while the PSA could not be read (`allow_unchecked`): the ids may not exist."""
