"""The progress log of a job: JSON lines in the job folder, written by the job, read by anyone.

Whichever process runs a job (a thread in napari, a subprocess, a SLURM node, a dask worker)
appends one JSON object per line to ``JOB/log.jsonl``; each line is one ``write`` on a file opened
with ``O_APPEND``, so lines from a runner and from the job never interleave and a reader sees whole
lines (a torn last line, from a crash mid-write, is skipped). The widget, the CLI and a later napari
session follow a job by reading the file — never through the process that started it.

Records carry ``time`` (UNIX seconds) and ``kind``:

- ``status``: ``status`` is queued, running, finished, failed or cancelled (``error`` and
  ``traceback`` when failed; ``runner``, ``resume``, ``host``, ``pid`` when it starts);
- ``progress``: ``done``/``total`` steps, ``message``, ``epoch``/``n_epochs``, ``step``, ``loss``, ``eta``;
- ``epoch``: one per finished epoch: ``epoch``, ``n_epochs``, ``train_loss``, ``val_loss``, ``val_iou``...

Cancel is a file: ``JOB/cancel``, which the running job polls at each progress step.
"""
from __future__ import annotations

import json
import math
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOG_NAME = "log.jsonl"
CANCEL_NAME = "cancel"
CHECKPOINTS = "checkpoints"
#: a viewer's request: the window of the job's image to segment after each validation
PREVIEW_REQUEST_NAME = "preview-request.json"
#: the newest preview of a running job: {"file": labels .npy, "epoch": n, "window": [y0, y1, x0, x1]}
PREVIEW_NAME = "preview.json"
STATUSES = ("queued", "running", "finished", "failed", "cancelled")
#: statuses after which nothing more happens unless the job is resumed
FINAL = ("finished", "failed", "cancelled")


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become None, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, TypeError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def append(job_dir: str | os.PathLike, kind: str, **fields: Any) -> dict:
    """Append one record (one ``write`` of one line, ``O_APPEND``) and return it."""
    record = {"time": time.time(), "kind": kind, **_clean(fields)}
    line = (json.dumps(record, default=str) + "\n").encode()
    path = Path(job_dir) / LOG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return record


@dataclass
class JobState:
    """What the log of a job says now."""

    job_dir: Path
    records: list[dict] = field(default_factory=list)

    def _last(self, kind: str) -> dict | None:
        return next((r for r in reversed(self.records) if r.get("kind") == kind), None)

    @property
    def exists(self) -> bool:
        return bool(self.records)

    @property
    def status(self) -> str:
        last = self._last("status")
        return last["status"] if last else "unknown"

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def orphaned(self) -> bool:
        """True when the log says running but the process that ran it, on this host, is gone
        (napari closed with a thread job, a killed process): the job will never end on its own."""
        if self.status != "running":
            return False
        last = next(r for r in reversed(self.records) if r.get("kind") == "status")
        pid, host = last.get("pid"), last.get("host")
        if not pid or host != socket.gethostname():
            return False  # another machine's process: only its scheduler knows
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False

    @property
    def error(self) -> str | None:
        last = self._last("status")
        return last.get("error") if last and last.get("status") == "failed" else None

    @property
    def progress(self) -> dict | None:
        """The latest progress record since the job last started."""
        start = self.started
        last = self._last("progress")
        return last if last and (start is None or last["time"] >= start) else None

    @property
    def epochs(self) -> list[dict]:
        """One record per finished epoch (loss curves), the latest run's epochs replacing older ones."""
        by_epoch: dict[int, dict] = {}
        for r in self.records:
            if r.get("kind") == "epoch":
                by_epoch[int(r["epoch"])] = r
        return [by_epoch[k] for k in sorted(by_epoch)]

    @property
    def started(self) -> float | None:
        last = next((r for r in reversed(self.records) if r.get("kind") == "status" and r.get("status") == "running"), None)
        return last["time"] if last else None

    @property
    def updated(self) -> float | None:
        return self.records[-1]["time"] if self.records else None

    @property
    def info(self) -> dict:
        """The first record: what was submitted (method, runner, output)."""
        return self.records[0] if self.records else {}

    def summary(self) -> str:
        """One line: status, epoch, loss, ETA or error."""
        parts = [self.status + (" (its process is gone; resume it)" if self.orphaned else "")]
        progress = self.progress
        if self.status == "running" and progress:
            if progress.get("epoch"):
                parts.append(_epoch_text(progress))
            elif progress.get("total"):
                parts.append(f"{progress['done']}/{progress['total']}")
            if progress.get("loss") is not None:
                parts.append(f"loss {progress['loss']:.4f}")
            if progress.get("eta") is not None:
                parts.append(f"ETA {format_seconds(progress['eta'])}")
        epochs = self.epochs
        if epochs and self.status != "running":
            last = epochs[-1]
            parts.append(_epoch_text(last))
            if last.get("val_iou") is not None:
                parts.append(f"val IoU {last['val_iou']:.3f}")
        if self.error:
            parts.append(self.error)
        return ", ".join(parts)


#: an epochs cap this high is no cap (`galseg train --minutes` without --epochs): not shown as "3/100000"
NO_CAP = 100_000


def _epoch_text(record: dict) -> str:
    n = record.get("n_epochs")
    return f"epoch {record['epoch']}" + ("" if isinstance(n, int) and n >= NO_CAP else f"/{n if n else '?'}")


def _records(data: bytes) -> list[dict]:
    """The whole, valid records of complete log lines."""
    records = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue  # a torn line of a crashed writer
        if isinstance(record, dict) and "kind" in record and "time" in record:
            records.append(record)
    return records


def read_log(job_dir: str | os.PathLike) -> JobState:
    """All whole records of a job's log (none when it has no log yet) and the state they describe."""
    path = Path(job_dir) / LOG_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return JobState(Path(job_dir), [])
    return JobState(Path(job_dir), _records(data))


class LogFollower:
    """Follows a job's log as it grows: each :meth:`poll` reads only the bytes appended since the
    last one (one ``open``/``seek``/``read``), so a viewer can poll every few hundred ms however
    long the log is. A line still being written waits for its newline; a log that shrank
    (replaced) is read again from the start."""

    def __init__(self, job_dir: str | os.PathLike):
        self.job_dir = Path(job_dir)
        self.path = self.job_dir / LOG_NAME
        self.offset = 0
        self.state = JobState(self.job_dir, [])

    def poll(self) -> list[dict]:
        """The records appended since the last poll (also added to :attr:`state`)."""
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < self.offset:  # a new log in its place: start over
                    self.offset, self.state = 0, JobState(self.job_dir, [])
                if size == self.offset:
                    return []
                f.seek(self.offset)
                data = f.read(size - self.offset)
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # keep a partial last line for the next poll
        if end == 0:
            return []
        self.offset += end
        new = _records(data[:end])
        self.state.records.extend(new)
        return new


def list_jobs(root: str | os.PathLike) -> list[JobState]:
    """The jobs in ``root`` (``root`` itself when it is a job folder, else its sub-folders with a
    log), by folder name: what `galseg jobs list` and a Jobs panel show."""
    root = Path(root)
    if (root / LOG_NAME).exists():
        return [read_log(root)]
    if not root.is_dir():
        return []
    return [read_log(p) for p in sorted(root.iterdir()) if (p / LOG_NAME).exists()]


def wait_for(job_dir: str | os.PathLike, condition=None, timeout: float = 60.0, interval: float = 0.05) -> JobState:
    """Poll the log until ``condition(state)`` (default: a final status) holds; TimeoutError after ``timeout`` s."""
    condition = condition or (lambda state: state.final)
    deadline = time.monotonic() + timeout
    while True:
        state = read_log(job_dir)
        if condition(state):
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {Path(job_dir).name} did not get there within {timeout:.0f} s (now: {state.summary()})")
        time.sleep(interval)


# -- cancel ------------------------------------------------------------------------------------------
def request_preview(job_dir: str | os.PathLike, window: tuple[int, int, int, int]) -> None:
    """Ask a running job to segment ``window`` (y0, y1, x0, x1 of its image) after its validations."""
    from .._atomic import atomic_write_text

    atomic_write_text(Path(job_dir) / PREVIEW_REQUEST_NAME, json.dumps({"window": [int(v) for v in window]}))


def preview_request(job_dir: str | os.PathLike) -> tuple[int, int, int, int] | None:
    """The window a viewer asked the job to preview, or None (nobody is watching)."""
    try:
        y0, y1, x0, x1 = (int(v) for v in json.loads((Path(job_dir) / PREVIEW_REQUEST_NAME).read_text())["window"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return y0, y1, x0, x1


def read_preview(job_dir: str | os.PathLike) -> dict | None:
    """The newest preview: ``{"epoch", "window", "labels" (int32 array of the window)}``, or None."""
    import numpy as np

    try:
        record = json.loads((Path(job_dir) / PREVIEW_NAME).read_text())
        labels = np.load(Path(job_dir) / str(record["file"]), allow_pickle=False)
        return {"epoch": int(record["epoch"]), "window": [int(v) for v in record["window"]], "labels": labels}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def request_cancel(job_dir: str | os.PathLike) -> Path:
    """Ask a running job to stop at its next progress step (it keeps its last checkpoint)."""
    path = Path(job_dir) / CANCEL_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{time.time()}\n")
    return path


def cancel_requested(job_dir: str | os.PathLike) -> bool:
    return (Path(job_dir) / CANCEL_NAME).exists()


def clear_cancel(job_dir: str | os.PathLike) -> None:
    (Path(job_dir) / CANCEL_NAME).unlink(missing_ok=True)


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"
