"""A tiny progress bar for stderr, drawn only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """``[#####-----] 512/1000  51%  830/s  ETA 1s`` redrawn in place at most 10 times a second.

    Disabled (a no-op) unless ``enabled`` is true; by default it is on when ``stream`` is a tty.
    """

    def __init__(
        self,
        total: int,
        label: str = "",
        stream: TextIO | None = None,
        enabled: bool | None = None,
        width: int = 30,
    ) -> None:
        self.total = max(int(total), 0)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _isatty(self.stream) if enabled is None else enabled
        self.width = width
        self.count = 0
        self._start = time.monotonic()
        self._last_draw = 0.0

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items done; redraw if due."""
        self.count += n
        now = time.monotonic()
        if self.enabled and (now - self._last_draw >= 0.1 or self.count >= self.total):
            self._last_draw = now
            self._draw(now)

    def render(self, now: float | None = None) -> str:
        """The bar's current text (without the carriage return)."""
        now = time.monotonic() if now is None else now
        fraction = min(self.count / self.total, 1.0) if self.total else 1.0
        filled = int(round(fraction * self.width))
        elapsed = max(now - self._start, 1e-9)
        rate = self.count / elapsed
        left = (self.total - self.count) / rate if rate > 0 and self.total > self.count else 0.0
        prefix = f"{self.label} " if self.label else ""
        return (
            f"{prefix}[{'#' * filled}{'-' * (self.width - filled)}] {self.count}/{self.total} "
            f"{fraction * 100:3.0f}%  {rate:,.0f}/s  ETA {left:,.0f}s"
        )

    def _draw(self, now: float) -> None:
        self.stream.write("\r" + self.render(now) + "\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line (only if enabled)."""
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
            self.enabled = False


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
