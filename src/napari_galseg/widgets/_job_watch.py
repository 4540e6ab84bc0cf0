"""Following a job from its log on the GUI thread: a QTimer polls the log for what was appended.

Each poll is one small read (:class:`~napari_galseg.jobs.log.LogFollower`), so the viewer never
waits on the job, and a job that this napari did not start — another session's, the CLI's, one
on a cluster — is followed the same way as one it did.
"""
from __future__ import annotations

from qtpy.QtCore import QObject, QTimer, Signal

from ..jobs import log
from ..jobs.log import LogFollower

#: how often a followed job's log is read (ms)
POLL_MS = 250


class JobWatcher(QObject):
    """Emits ``records`` with each batch of new log records and ``ended`` with the final status."""

    records = Signal(list)
    ended = Signal(str)

    def __init__(self, parent=None, interval_ms: int = POLL_MS):
        super().__init__(parent)
        self.follower: LogFollower | None = None
        self.handle = None
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.poll)

    @property
    def state(self) -> log.JobState | None:
        return self.follower.state if self.follower is not None else None

    def follow(self, job_dir, handle=None) -> None:
        """Follow ``job_dir`` from the first record; ``handle`` (a runner's JobHandle, when this
        session started the job) also notices a runner that died without a final record."""
        self.stop()
        self.follower, self.handle = LogFollower(job_dir), handle
        self.timer.start()
        self.poll()

    def stop(self) -> None:
        self.timer.stop()
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def poll(self) -> None:
        if self.follower is None:
            return
        new = self.follower.poll()
        if not self.follower.state.final and self.handle is not None:
            reason = self.handle.died()
            if reason is not None:  # read once more: the job may have ended just now
                new += self.follower.poll()
                if not self.follower.state.final:
                    log.append(self.follower.job_dir, "status", status="failed", error=reason)
                    new += self.follower.poll()
        if new:
            self.records.emit(new)
        if self.follower.state.final and self.timer.isActive():
            self.stop()
            self.ended.emit(self.follower.state.status)
