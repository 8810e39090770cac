"""What the PSA's own copy of a billed line says about connector's record of it. Pure: no I/O.

Before a push writes, and after it has written, every line is read back from the PSA. Comparing that
read with what connector last wrote tells the cases a push must not paper over: someone changed the
quantity in the PSA (an engineer, another integration, a sales rep), removed the line, or the
agreement already carries a line of the product that connector neither created nor was linked to.
Each holds the line for review, with the reason; an approval then writes it (and, for a line
someone else made, links connector to it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple


class Finding(StrEnum):
    EDITED_OUTSIDE = "edited_outside"
    """The PSA's quantity differs from the one connector last wrote."""
    REMOVED_OUTSIDE = "removed_outside"
    """The line connector wrote is no longer on the agreement."""
    UNLINKED = "unlinked"
    """The agreement has a line of the product that connector did not create and is not linked to."""
    UNREADABLE = "unreadable"
    """The latest read-back failed: what the PSA holds is not known."""


class PsaView(NamedTuple):
    """A line as the PSA held it when last read (`line_id` None: the agreement has no such line)."""

    line_id: str | None
    quantity: Decimal | None
    marked: bool | None
    error: str | None = None


class Written(NamedTuple):
    """What connector last wrote for a rule × company."""

    line_id: str | None
    quantity: Decimal
    """Exactly as written (a prorated line's is not whole seats)."""


@dataclass(frozen=True)
class Judged:
    finding: Finding
    reason: str
    psa_quantity: int | None
    """What the PSA holds now, in whole seats (rounded up, like a line's quantity; None when unknown
    or there is no line)."""
    link_line_id: str | None = None
    """The line an approval writes into (a line someone else made, adopted by the approval)."""


def judge(written: Written | None, view: PsaView | None) -> Judged | None:
    """None when the PSA agrees with connector's record (or was never read, or holds no line that
    connector has not written yet); else what differs and why the line waits for a person."""
    if view is None:
        return None
    if view.error is not None:
        return Judged(Finding.UNREADABLE, f"the PSA line could not be read back: {view.error}", None)
    if written is None or written.line_id is None:
        if view.line_id is None or view.marked is not False:
            return None  # no line yet, connector's own (written, not yet recorded), or one per product
        return Judged(
            Finding.UNLINKED,
            f"the agreement already has a line of this product that connector did not create "
            f"(line {view.line_id}, quantity {_shown(view.quantity)}); approving links connector to it",
            _seats(view.quantity),
            view.line_id,
        )
    if view.line_id is None:
        return Judged(
            Finding.REMOVED_OUTSIDE,
            f"line {written.line_id} that connector wrote is no longer on the agreement; approving "
            "writes it again",
            None,
        )
    if view.quantity != written.quantity:
        return Judged(
            Finding.EDITED_OUTSIDE,
            f"changed in the PSA outside connector: connector wrote {_shown(written.quantity)}, the PSA "
            f"has {_shown(view.quantity)}",
            _seats(view.quantity),
            view.line_id,
        )
    return None


def _seats(quantity: Decimal | None) -> int | None:
    return None if quantity is None else math.ceil(quantity)


def _shown(quantity: Decimal | None) -> str:
    """`12`, or `4.84` for a prorated line."""
    if quantity is None:
        return "none"
    return str(
        quantity.quantize(Decimal(1)) if quantity == quantity.to_integral_value() else quantity.normalize()
    )
