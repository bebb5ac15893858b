"""The first overlap between two sorted sequences of classes: the pure core of the
double-booking check (control.scheduling.double_booking gathers the teacher's bookings)."""

from __future__ import annotations

from collections.abc import Iterable

from control.scheduling.recurrence import Occurrence

__all__ = ["first_clash"]


def first_clash(
    a: Iterable[Occurrence], b: Iterable[Occurrence]
) -> tuple[Occurrence, Occurrence] | None:
    """The first overlapping (x from a, y from b), or None; both inputs sorted by start.

    Intervals are half-open: one ending at 10:00 and one starting at 10:00 do not clash,
    and an empty one clashes with nothing. The answer is the first x of `a` that overlaps
    anything in `b`, with the first y of `b` it overlaps. One merge sweep, O(n + m).
    """
    xs = (o for o in a if o.start < o.end)
    ys = (o for o in b if o.start < o.end)
    x = next(xs, None)
    y = next(ys, None)
    while x is not None and y is not None:
        if x.end <= y.start:
            # x is over before y begins, so before every later y too: it clashes with nothing.
            x = next(xs, None)
        elif y.end <= x.start:
            y = next(ys, None)
        else:
            return x, y
    return None
