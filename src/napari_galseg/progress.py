"""Progress and cancel: the one vocabulary every long computation shares.

A computation takes ``progress(done, total, message)`` (called from worker threads: must be cheap)
and ``cancel`` (a ``threading.Event``). :func:`reporter` joins the two: the callable it returns
forwards each step and raises :class:`Cancelled` once the event is set, so anything that reports
progress can be stopped between steps — in a widget, a job runner or a script.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

#: progress(done, total, message)
ProgressCallback = Callable[[int, int, str], None]


class Cancelled(Exception):
    """Raised at the next progress step after a cancel was requested."""


def is_cancelled(cancel) -> bool:
    """True when ``cancel`` (an Event, anything with ``is_set()``, a callable or a flag) says stop."""
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel() if callable(cancel) else cancel)


def reporter(progress: ProgressCallback | None = None, cancel: threading.Event | None = None) -> ProgressCallback:
    """A progress callback that raises :class:`Cancelled` once ``cancel`` is set."""

    def report(done: int, total: int, message: str = "") -> None:
        if is_cancelled(cancel):
            raise Cancelled("cancelled")
        if progress is not None:
            progress(done, total, message)

    return report


def dask_progress(progress: ProgressCallback, message: str = "writing"):
    """A dask callback (a context manager) reporting finished tasks to ``progress``."""
    from dask.callbacks import Callback

    class _Tasks(Callback):
        def _start_state(self, dsk, state):
            self._total = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished")) or 1
            self._done = 0

        def _posttask(self, key, result, dsk, state, worker_id):
            self._done += 1
            progress(self._done, self._total, message)

    return _Tasks()
