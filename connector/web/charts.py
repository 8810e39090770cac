"""The protected-share and ticket trends as inline SVG geometry, computed on the server so the
dashboard needs no JavaScript or chart library; the template draws it and repeats the numbers in a table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from connector.fleet.stats import TrendPoint
from connector.web.insights import TicketDay

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 60, 12, 12, 30


@dataclass(frozen=True)
class ChartPoint:
    x: float
    y: float
    day: str
    share: float
    protected: int
    total: int


@dataclass(frozen=True)
class TrendChart:
    width: int
    height: int
    points: list[ChartPoint]
    line: str
    """`points` attribute of the SVG polyline."""
    area: str
    """`points` attribute of the filled polygon under the line."""
    grid: list[tuple[float, str]]
    """(y, label) of the horizontal grid lines."""
    x_labels: list[tuple[float, str, str]]
    """(x, label, text-anchor) under the axis."""
    left: int
    right: int
    top: int
    bottom: int
    first_day: str
    last_day: str
    latest: float | None
    lowest: float | None
    highest: float | None


def trend_chart(points: list[TrendPoint], days: int, today: date) -> TrendChart:
    """Days without history (no sync that day) are left out, not drawn as zero."""
    start = today - timedelta(days=days - 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    span = max(days - 1, 1)
    drawn: list[ChartPoint] = []
    for point in points:
        offset = (date.fromisoformat(point.day) - start).days
        if not 0 <= offset < days or not point.total:
            continue
        drawn.append(
            ChartPoint(
                x=round(LEFT + plot_w * offset / span, 1),
                y=round(TOP + plot_h * (1 - point.share), 1),
                day=point.day,
                share=point.share,
                protected=point.protected,
                total=point.total,
            )
        )
    line = " ".join(f"{p.x},{p.y}" for p in drawn)
    base = TOP + plot_h
    area = f"{drawn[0].x},{base} {line} {drawn[-1].x},{base}" if drawn else ""
    grid = [(round(TOP + plot_h * (1 - share), 1), f"{round(share * 100)}%") for share in (1.0, 0.5, 0.0)]
    shares = [p.share for p in drawn]
    return TrendChart(
        width=WIDTH,
        height=HEIGHT,
        points=drawn,
        line=line,
        area=area,
        grid=grid,
        x_labels=[
            (LEFT, start.strftime("%d %b"), "start"),
            (WIDTH - RIGHT, today.strftime("%d %b"), "end"),
        ],
        left=LEFT,
        right=WIDTH - RIGHT,
        top=TOP,
        bottom=base,
        first_day=start.isoformat(),
        last_day=today.isoformat(),
        latest=shares[-1] if shares else None,
        lowest=min(shares) if shares else None,
        highest=max(shares) if shares else None,
    )


@dataclass(frozen=True)
class TicketChart:
    """Tickets opened and closed per day, every day of the window drawn (0 included)."""

    width: int
    height: int
    days: list[TicketDay]
    opened: str
    """`points` of the opened polyline."""
    closed: str
    grid: list[tuple[float, str]]
    x_labels: list[tuple[float, str, str]]
    left: int
    right: int
    top: int
    bottom: int
    first_day: str
    last_day: str
    total_opened: int
    total_closed: int
    peak: int


def ticket_chart(days: list[TicketDay]) -> TicketChart:
    """The y axis runs from 0 to the busiest day (at least 1, so a quiet month is a flat line)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    span = max(len(days) - 1, 1)
    peak = max([1, *(d.opened for d in days), *(d.closed for d in days)])

    def line(values: list[int]) -> str:
        return " ".join(
            f"{round(LEFT + plot_w * i / span, 1)},{round(TOP + plot_h * (1 - v / peak), 1)}"
            for i, v in enumerate(values)
        )

    half = peak / 2
    grid = [(float(TOP), str(peak)), (round(TOP + plot_h / 2, 1), f"{half:g}"), (float(TOP + plot_h), "0")]
    first = date.fromisoformat(days[0].day) if days else None
    last = date.fromisoformat(days[-1].day) if days else None
    return TicketChart(
        width=WIDTH,
        height=HEIGHT,
        days=days,
        opened=line([d.opened for d in days]),
        closed=line([d.closed for d in days]),
        grid=grid,
        x_labels=[
            (LEFT, first.strftime("%d %b") if first else "", "start"),
            (WIDTH - RIGHT, last.strftime("%d %b") if last else "", "end"),
        ],
        left=LEFT,
        right=WIDTH - RIGHT,
        top=TOP,
        bottom=TOP + plot_h,
        first_day=days[0].day if days else "",
        last_day=days[-1].day if days else "",
        total_opened=sum(d.opened for d in days),
        total_closed=sum(d.closed for d in days),
        peak=peak,
    )
