"""Per-object steps (deblending, the full catalog) in forked worker processes."""
from __future__ import annotations

import itertools
import threading
import warnings
from typing import Any

import numpy as np

_FORK_STATE: dict[str, Any] = {}


def _quiet_worker() -> None:
    """Workers leave interruptions to the parent: Ctrl-C (sent to the whole process group) is
    ignored, SIGTERM/SIGHUP end them silently instead of raising where nobody catches it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)


def _call_in_fork(batch: range) -> list:
    import dask

    with dask.config.set(scheduler="synchronous"):  # the parent's thread pool does not survive fork
        return [_FORK_STATE["func"](i) for i in batch]


def map_groups(func, n: int, n_workers: int, report) -> list:
    """``[func(i) for i in range(n)]``, in forked worker processes when ``n_workers > 1``.

    The workers inherit the pipeline's state by fork (nothing large is pickled); only the small
    results come back. Contiguous batches keep each worker's tile-label cache warm.
    """
    import multiprocessing

    if n_workers <= 1 or n < 2 or "fork" not in multiprocessing.get_all_start_methods():
        results = []
        for i in range(n):
            results.append(func(i))
            report(i + 1)
        return results
    from concurrent.futures import ProcessPoolExecutor

    bounds = np.linspace(0, n, min(n, 4 * n_workers) + 1).astype(int)
    batches = [range(a, b) for a, b in itertools.pairwise(bounds) if b > a]
    _FORK_STATE["func"] = func
    threading.excepthook = _ignore_cancelled_broken_pool  # before the pool: its manager thread may die first
    results = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
            pool = ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("fork"),
                                       initializer=_quiet_worker)
            try:
                for part in pool.map(_call_in_fork, batches):
                    results.extend(part)
                    report(len(results))
            except BaseException:  # Ctrl-C, SIGTERM, Cancelled: stop now, not after every batch
                _stop(pool)
                raise
            pool.shutdown(wait=True)
    finally:
        _FORK_STATE.clear()
    return results



def _ignore_cancelled_broken_pool(args) -> None:
    """``threading.excepthook`` that drops one known race of CPython 3.11's ProcessPoolExecutor:
    when its workers die (a SIGTERM to the process group) after ``map`` cancelled the futures
    left, the executor's manager thread sets an exception on a cancelled future and dies with
    ``InvalidStateError`` — a traceback about nothing. Everything else goes to the previous hook."""
    from concurrent.futures import InvalidStateError

    if isinstance(args.exc_value, InvalidStateError) and type(args.thread).__name__ == "_ExecutorManagerThread":
        return
    _PREVIOUS_EXCEPTHOOK(args)


_PREVIOUS_EXCEPTHOOK = threading.excepthook  # the hook in place when this module was imported


def _stop(pool) -> None:
    """Cancel what has not started and end the workers (``shutdown`` alone waits for them)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=5)
