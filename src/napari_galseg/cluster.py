"""Segmentation on a dask ``distributed`` cluster: connect by address, send tiles out in order.

A segmenter whose ``RunOptions.scheduler`` holds an address (``tcp://host:8786``) runs its tiled
passes as tasks on that cluster and gets back exactly what the local threads would compute: the
work is cut the same way, only *where* each piece runs changes. :func:`use_scheduler` connects
(one clear line when the scheduler cannot be reached) and makes the client current for this thread
of control only — napari's own dask reads keep running locally. :func:`map_ordered` is
:func:`napari_galseg.tiling.map_ordered` that sends the items to the current client, if any.

The function sent out is scattered to the workers once (its closure carries what a tile needs:
the input's path, the background model, the network), and at most a few tasks per worker thread
are in flight, so memory stays bounded like the local thread pool's.
"""
from __future__ import annotations

import contextlib
import contextvars
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

#: how long to wait for a scheduler that does not answer (seconds)
CONNECT_TIMEOUT = 10.0

_CURRENT: contextvars.ContextVar[Any] = contextvars.ContextVar("galseg_dask_client", default=None)


class SchedulerError(ConnectionError):
    """The scheduler cannot be reached (or distributed is missing), said in one line."""


def connect(address: str, timeout: float | None = None):
    """A ``distributed.Client`` of the scheduler at ``address`` (not made dask's default client);
    ``timeout`` defaults to :data:`CONNECT_TIMEOUT`."""
    try:
        import distributed
    except ImportError:
        raise SchedulerError("a dask scheduler address needs dask distributed: pip install 'napari-galseg[jobs]'") from None
    try:
        return distributed.Client(address, timeout=timeout or CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SchedulerError(
            f"cannot reach the dask scheduler at {address!r} ({reason}); start one (`dask scheduler`, then "
            f"`dask worker {address}`) or correct the address, or leave the scheduler empty to run here") from None


def current_client():
    """The client :func:`use_scheduler` made current here, or None (run locally)."""
    return _CURRENT.get()


@contextlib.contextmanager
def use_scheduler(address: str | None, timeout: float | None = None) -> Iterator[Any]:
    """Within the block, :func:`current_client` is a client of ``address`` (closed at the end);
    an empty address changes nothing. Nested blocks for the same address share one client."""
    address = (address or "").strip()
    active = _CURRENT.get()
    if not address or (active is not None and getattr(active, "_galseg_address", None) == address):
        yield active if address else None
        return
    client = connect(address, timeout)
    client._galseg_address = address
    token = _CURRENT.set(client)
    try:
        yield client
    finally:
        _CURRENT.reset(token)
        client.close()


def n_worker_threads(client) -> int:
    """Threads of all workers of ``client`` (at least 1)."""
    return max(1, sum(int(n) for n in client.nthreads().values()))


def gpu_resources(client) -> dict[str, int] | None:
    """``{"GPU": 1}`` when some worker offers a ``GPU`` resource (``dask worker --resources GPU=1``):
    network tasks then take one each, so a GPU runs one of them at a time; else None."""
    workers = client.scheduler_info(n_workers=-1)["workers"] if _takes_n_workers(client) else client.scheduler_info()["workers"]
    return {"GPU": 1} if any((w.get("resources") or {}).get("GPU") for w in workers.values()) else None


def _takes_n_workers(client) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters


def _apply(func: Callable, item: Any) -> Any:
    return func(item)


def map_on_client(client, func: Callable, items: Iterable, max_ahead: int | None = None,
                  resources: dict | None = None) -> Iterator:
    """``map(func, items)`` as tasks on ``client``, yielded in order, at most ``max_ahead``
    (default 2 per worker thread) in flight. ``func`` is sent to the workers once; each task
    holds ``resources`` (e.g. ``{"GPU": 1}``) while it runs."""
    items = list(items)
    if not items:
        return
    [shared] = client.scatter([func], broadcast=True, hash=False)
    ahead = max(1, max_ahead or 2 * n_worker_threads(client))
    pending: deque = deque()
    it = iter(items)

    def submit(item):
        return client.submit(_apply, shared, item, pure=False, resources=resources)

    try:
        for item in itertools.islice(it, ahead):
            pending.append(submit(item))
        while pending:
            result = pending.popleft().result()
            for item in itertools.islice(it, 1):
                pending.append(submit(item))
            yield result
    finally:
        for future in pending:
            future.cancel()
        shared.release()


def map_ordered(func: Callable, items: Iterable, n_threads: int = 1, max_ahead: int | None = None) -> Iterator:
    """On the current cluster if there is one (see :func:`use_scheduler`), else in local threads."""
    client = current_client()
    if client is not None:
        return map_on_client(client, func, items, max_ahead)
    from .tiling import map_ordered as local_map_ordered

    return local_map_ordered(func, items, n_threads, max_ahead)


__all__ = ["CONNECT_TIMEOUT", "SchedulerError", "connect", "current_client", "gpu_resources", "map_on_client", "map_ordered",
           "n_worker_threads", "use_scheduler"]
