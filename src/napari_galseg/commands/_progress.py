"""Progress for the command line: a bar on a terminal, a line every few percent in a log.

Segmenters report ``progress(done, total, message)``, and their totals are not always fixed: the
photutils pipeline learns how many object groups it will deblend only after detection, a dask
write restarts its task count for every row of chunks, and writing the labels comes after a
segmentation that already reported 100 %. Shown raw, that gives percentages that go
100 % → 50 % → 100 % and rates such as ``986895 it/s`` when the first report already says "5 done".
So the display works in one percentage that **never goes backwards**: when a new total says less
is done than shown, the new work is spread over what is left between the shown percentage and
100 % (held at 100 %, with the stage's own counts beside its message, when nothing is left).
It shows the counts only while the total has not changed, never shows a rate, and estimates the
time left from the mean speed since the start or the last change of total (only once there is
something to average: 5 % and 2 s). Off a terminal (CI, ``> log.txt``) a bar would write a
carriage-return line per update; there one plain line is printed every ``every`` percent.
"""
from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

from .._duration import format_duration

__all__ = ["ProgressDisplay"]


class ProgressDisplay:
    """A ``progress(done, total, message)`` callback drawing on ``stream`` (stderr by default)."""

    #: no time-left estimate before this much progress and time: early speeds mislead
    ETA_AFTER_PERCENT = 5.0
    ETA_AFTER_SECONDS = 2.0
    #: a terminal bar is redrawn at most this often (thousands of tiles report in a second)
    REDRAW_SECONDS = 0.1

    def __init__(self, description: str, unit: str | None = "it", stream: TextIO | None = None,
                 tty: bool | None = None, every: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.description = description
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = _isatty(self.stream) if tty is None else tty
        self.every = every
        self.clock = clock
        self.percent = 0.0
        self.message = ""
        self.counts: tuple[int, int] | None = None
        self._total: int | None = None
        self._total_changed = False
        self._map: tuple[float, float] | None = None  # (shown %, fraction) when the total changed below it
        self._fraction = 0.0  # of the current total
        self.stage: tuple[int, int] | None = None  # counts of a changed total, shown beside the message
        self._started = clock()  # the work starts with the display, not with its first report
        self._base = (self._started, 0.0)  # (time, percent) the speed for "time left" is measured from
        self._reported = False
        self._printed = -1.0  # last percent printed as a line
        self._drawn = 0.0
        self._bar = False  # a bar line is on screen (terminal only)

    # -- the callback --------------------------------------------------------------------------
    def __call__(self, done: int, total: int, message: str = "") -> None:
        now = self.clock()
        if total and total > 0:
            fraction = min(1.0, max(done, 0) / total)
            if not self._reported:  # work the first report already counts (a resumed run's) took no time here
                self._base = (now, 100.0 * fraction)
            if self._total is not None and total != self._total:
                # more (or less) work than announced: what is left of the shown percentage holds
                # the new total's remaining work, so the display never goes backwards
                self._total_changed = True
                self._map = None if 100.0 * fraction >= self.percent else (self.percent, fraction)
                self._base = (now, self.percent)  # time left is measured from here on
            self._fraction = fraction
            self.percent = max(self.percent, self._mapped(fraction))
            self._total = int(total)
            self.counts = None if self._total_changed or not self.unit else (int(done), int(total))
            self.stage = (int(done), int(total)) if self._total_changed else None
        self._reported = True
        if message:
            self.message = message
        if self.tty:
            self._draw(now)
        else:
            step = 100.0 if self.percent >= 100.0 else self.every * int(self.percent // self.every)
            if step > self._printed:  # the first report, then each `every` percent crossed
                self._printed = step
                self._line(self.status(now))

    def _mapped(self, fraction: float) -> float:
        if self._map is None:
            return 100.0 * fraction
        shown, start = self._map
        if start >= 1.0:
            return shown
        return shown + (100.0 - shown) * (fraction - start) / (1.0 - start)

    def write(self, line: str, stream: TextIO | None = None) -> None:
        """Print a line of its own (e.g. one per epoch) above the bar, to ``stream`` or ours."""
        if self._bar:
            self.stream.write("\r\033[K")
            self.stream.flush()
        print(line, file=stream or self.stream, flush=True)
        if self._bar:
            self._draw(self.clock(), force=True)

    def close(self) -> None:
        """Leave the bar on screen; off a terminal, say how it ended and how long it took."""
        if self._bar:
            self._draw(self.clock(), force=True)
            self.stream.write("\n")
            self.stream.flush()
            self._bar = False
        elif not self.tty and self._reported:
            elapsed = format_duration(self.clock() - self._started)
            finished = self.percent >= 100.0 and self._fraction >= 1.0
            end = f"done in {elapsed}" if finished else f"stopped at {self.percent:.0f}% after {elapsed}"
            self._line(f"{end}" + (f" ({self.message})" if self.message else ""))

    # -- text ------------------------------------------------------------------------------------
    def status(self, now: float | None = None) -> str:
        """``37% (12/32 tiles) · detect · 4 s, about 7 s left``: what both displays show."""
        now = self.clock() if now is None else now
        parts = [f"{self.percent:3.0f}%" + (f" ({self.counts[0]}/{self.counts[1]} {self.unit})" if self.counts else "")]
        if self.message or self.stage:
            stage = f"{self.stage[0]}/{self.stage[1]}" if self.stage and self.percent >= 100.0 and self._fraction < 1 else ""
            parts.append(" ".join(p for p in (self.message, stage) if p))
        parts.append(self._times(now))
        return " · ".join(parts)

    def _times(self, now: float) -> str:
        text = format_duration(now - self._started)
        since, gained = now - self._base[0], self.percent - self._base[1]
        if self.percent < 100.0 and gained >= self.ETA_AFTER_PERCENT and since >= self.ETA_AFTER_SECONDS:
            text += f", about {format_duration(since * (100.0 - self.percent) / gained)} left"
        return text

    def _line(self, text: str) -> None:
        print(f"{self.description}: {text}", file=self.stream, flush=True)

    def _draw(self, now: float, force: bool = False) -> None:
        if not force and self._bar and now - self._drawn < self.REDRAW_SECONDS and self.percent < 100.0:
            return
        self._drawn = now
        width = shutil.get_terminal_size((100, 20)).columns
        status = self.status(now)
        room = max(10, min(30, width - len(self.description) - len(status) - 6))
        filled = round(room * self.percent / 100.0)
        line = f"{self.description}: [{'#' * filled}{' ' * (room - filled)}] {status}"[: max(20, width - 1)]
        self.stream.write("\r\033[K" + line)  # back to the line start, clear it, draw
        self.stream.flush()
        self._bar = True


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
