"""Hierarchical progress (API kept from 0.1.1).

``increment`` is arithmetic only. The root of a tree handed to a job's ``run``
is connected to the progress store by the runner, which writes a snapshot at
most once per ``PROGRESS_FLUSH_INTERVAL`` and reads the job's cancel flag on
the same round trip; a requested cancel surfaces as ``JobCancelled`` raised
from ``increment`` (or from :meth:`Progress.check`).

Example, three stages with unequal weights::

    progress.increment(10, state="Downloading...")       # 10 %
    stage = progress.create_child(represents=70, total=5)
    for var in variables:                                  # 70 % over 5 steps
        stage.increment(state=f"Processing {var}...")
    progress.increment(20, state="Archiving...")           # last 20 %
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic

_EPSILON = 1e-9


class Progress:
    __slots__ = (
        "_callbacks",
        "_contribution",
        "_deadline",
        "_direct",
        "_flush",
        "_interval",
        "_label",
        "_parent",
        "_progress",
        "_represents",
        "_start_offset",
        "total",
    )

    def __init__(
        self,
        total: float,
        *,
        parent: Progress | None = None,
        represents: float | None = None,
        start_offset: float = 0.0,
    ) -> None:
        if not total or total <= 0:
            raise ValueError(f"Progress total must be a positive number, got {total!r}.")
        if parent is not None and (represents is None or represents < 0):
            raise ValueError(f"A child Progress must represent a non-negative share of its parent, got {represents!r}.")
        self.total = total
        self._direct = 0.0  # from this object's own increment() calls
        self._progress = 0.0  # direct + children's contributions
        self._parent = parent
        self._represents = represents
        self._contribution = 0.0  # this child's current share of the parent's units
        self._start_offset = start_offset
        self._callbacks: list[Callable[[int, str], None]] = []
        self._label = ""
        self._flush: Callable[[], None] | None = None
        self._interval = 0.0
        self._deadline = 0.0

    # ── Public API ─────────────────────────────────────────────────────────────

    def increment(self, by: float = 1.0, state: str = "") -> None:
        """Advance by ``by`` steps. Clamped: never goes past this object's total."""
        remaining = self.total - self._progress
        if by > remaining:
            by = remaining
        self._direct += by
        self._progress += by
        if self._parent is not None:
            self._parent._child_advanced(self, state)
        else:
            self._root_changed(state)

    def create_child(self, represents: float, total: float) -> Progress:
        """A child with ``total`` steps that fills ``represents`` of this object's units.

        Several children may exist at once; each keeps its own contribution."""
        return Progress(total, parent=self, represents=represents, start_offset=self._progress)

    @property
    def percentage(self) -> int:
        """Completion as an integer 0–100."""
        value = int(self._progress / self.total * 100 + _EPSILON)
        return 100 if value > 100 else (0 if value < 0 else value)

    @property
    def label(self) -> str:
        """The last non-empty ``state`` given anywhere in this tree."""
        return self._root()._label

    def register_updated_event(self, fn: Callable[[int, str], None]) -> None:
        """Call ``fn(percentage, state)`` on every change (0.1.1 API; runs on every increment)."""
        self._callbacks.append(fn)

    def check(self) -> None:
        """Flush now if a flush is due; raises ``JobCancelled`` if a cancel was requested.

        For long stretches of work without increments."""
        root = self._root()
        if root._flush is not None and monotonic() >= root._deadline:
            root._flush()

    # ── Wiring used by the runner ──────────────────────────────────────────────

    def attach(self, flush: Callable[[], None], interval: float) -> None:
        """Call ``flush()`` at most once per ``interval`` seconds of increments (root only)."""
        if self._parent is not None:
            raise ValueError("Only a root Progress can be attached to a store.")
        self._flush = flush
        self._interval = interval
        self._deadline = monotonic() + interval

    def flushed(self) -> None:
        """Record that a flush just happened (the runner's flush calls this)."""
        self._deadline = monotonic() + self._interval

    def _restore(self, percentage: int, label: str) -> None:
        """Take over where another Progress got to (the runner, for a body that ran
        in an isolated process)."""
        self._progress = self._direct = self.total * max(0, min(100, percentage)) / 100
        if label:
            self._label = label

    # ── Internals ──────────────────────────────────────────────────────────────

    def _root(self) -> Progress:
        node = self
        while node._parent is not None:
            node = node._parent
        return node

    def _child_advanced(self, child: Progress, state: str) -> None:
        new = child._progress / child.total * child._represents  # type: ignore[operator]
        self._progress += new - child._contribution
        child._contribution = new
        if self._parent is not None:
            self._parent._child_advanced(self, state)
        else:
            self._root_changed(state)

    def _root_changed(self, state: str) -> None:
        if state:
            self._label = state
        if self._callbacks:
            pct = self.percentage
            for fn in self._callbacks:
                fn(pct, state)
        if self._flush is not None and monotonic() >= self._deadline:
            self._flush()

    def __repr__(self) -> str:
        return f"<Progress {self.percentage}% ({self._progress:g}/{self.total:g})>"
