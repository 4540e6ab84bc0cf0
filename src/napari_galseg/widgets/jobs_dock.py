"""The Jobs dock: every job folder under the jobs folder, running and finished, rebuilt from the logs.

Nothing is remembered between sessions but the folders: opening the dock after napari restarts
lists the same jobs, and a running one (a process, a SLURM task) keeps updating. A timer polls
each job's log for what was appended (running jobs every second, ended ones every ten, in case
one is resumed elsewhere). A job's log opens in a text window; a running job can be cancelled;
its curves can be followed; a finished job's model can be added to the models folder.
"""
from __future__ import annotations

import time
from pathlib import Path

from magicgui.widgets import Container, FileEdit, Label, PushButton
from qtpy.QtCore import Qt, QTimer, QUrl, Signal
from qtpy.QtGui import QDesktopServices
from qtpy.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QPlainTextEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..jobs import log
from ..jobs.log import LogFollower
from ..jobs.spec import SPEC_NAME, jobs_root
from ._curves import TrainingCurves
from ._fit import install_docking
from ._job_watch import JobWatcher
from ._models_list import models_changed

COLUMNS = ("job", "method", "runner", "updated", "status")
POLL_MS = 1000
#: the status column's least width (px); longer statuses wrap in their cell
STATUS_MIN_WIDTH = 160
#: ended jobs are read every this many polls (a resume elsewhere brings them back to life)
ENDED_EVERY = 10


def log_text(job_dir: Path, state: log.JobState) -> str:
    """A job's spec and log as plain text: one line per record, the traceback of a failure at the end."""
    lines = [f"job {job_dir.name} ({job_dir}): {state.summary()}", ""]
    spec = job_dir / SPEC_NAME
    if spec.exists():
        lines += ["# " + SPEC_NAME, spec.read_text().rstrip(), ""]
    lines.append("# " + log.LOG_NAME)
    tb = None
    for r in state.records:
        fields = {k: v for k, v in r.items() if k not in ("time", "kind", "traceback")}
        tb = r.get("traceback") or tb
        when = time.strftime("%H:%M:%S", time.localtime(r["time"]))
        lines.append(f"{when} {r['kind']:8s} " + " ".join(f"{k}={v}" for k, v in fields.items()))
    if tb:
        lines += ["", tb.rstrip()]
    return "\n".join(lines)


class JobsDock(QWidget):
    """A table of jobs (status, epoch, loss) with Log, Folder, Cancel, Curves and Add-model buttons."""

    #: emitted after each poll that changed a row (tests and other panels can wait on it)
    refreshed = Signal()

    def __init__(self, napari_viewer=None):
        super().__init__()
        self.viewer = napari_viewer
        install_docking(napari_viewer)
        self.root = FileEdit(mode="d", label="jobs folder", value=str(jobs_root()))
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        # short columns to their contents; the status (the long one) takes the rest and wraps: no
        # sideways scrolling, no status cut to "finishe 1/8, va"
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COLUMNS.index("status"), QHeaderView.ResizeMode.Stretch)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setWordWrap(True)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.buttons = {name: PushButton(text=name) for name in ("Log", "Folder", "Cancel", "Curves", "Add model")}
        self.message = Label(value="")
        row = QHBoxLayout()
        for button in self.buttons.values():
            row.addWidget(button.native)
        layout = QVBoxLayout(self)
        layout.addWidget(Container(widgets=[self.root], labels=True).native)  # the field with its label
        layout.addWidget(self.table, 1)
        layout.addLayout(row)
        layout.addWidget(self.message.native)
        self.buttons["Log"].changed.connect(self.show_log)
        self.buttons["Folder"].changed.connect(self.open_folder)
        self.buttons["Cancel"].changed.connect(self.cancel)
        self.buttons["Curves"].changed.connect(self.show_curves)
        self.buttons["Add model"].changed.connect(self.add_model)
        self.root.changed.connect(self._reset)

        self.followers: dict[Path, LogFollower] = {}
        self.rows: list[Path] = []
        self.ticks = 0
        self.curves: TrainingCurves | None = None
        self.watcher: JobWatcher | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)
        self.timer.start()
        self.poll()

    # -- the list -----------------------------------------------------------------------------------
    def _reset(self, *_):
        self.followers.clear()
        self.rows.clear()
        self.table.setRowCount(0)
        self.poll()

    def poll(self) -> None:
        """Find new job folders; read what running jobs (and, now and then, ended ones) appended."""
        root = Path(str(self.root.value))
        self.ticks += 1
        changed = False
        if root.is_dir():
            for path in sorted(root.iterdir()):
                if path not in self.followers and (path / log.LOG_NAME).exists():
                    self.followers[path] = LogFollower(path)
        for path, follower in self.followers.items():
            if follower.state.final and self.ticks % ENDED_EVERY:
                continue
            if follower.poll() or path not in self.rows:
                self._show_row(path, follower.state)
                changed = True
        if changed:
            self.refreshed.emit()

    def _show_row(self, path: Path, state: log.JobState) -> None:
        if path not in self.rows:
            self.rows.append(path)
            self.table.insertRow(len(self.rows) - 1)
        row = self.rows.index(path)
        updated = time.strftime("%m-%d %H:%M", time.localtime(state.updated)) if state.updated else "-"
        for col, text in enumerate((path.name, state.info.get("method", "?"), state.info.get("runner", "?"), updated,
                                    state.summary())):
            item = QTableWidgetItem(str(text))
            item.setToolTip(str(text))
            self.table.setItem(row, col, item)
        self._fit_width()

    def _fit_width(self) -> None:
        """As wide as the short columns plus a readable status column (the dock never hides it)."""
        header = self.table.horizontalHeader()
        short = sum(header.sectionSize(c) for c in range(len(COLUMNS)) if COLUMNS[c] != "status")
        self.table.setMinimumWidth(short + STATUS_MIN_WIDTH + 2 * self.table.frameWidth())

    def status_of(self, name: str) -> str:
        """The status column of job ``name`` (what the table shows)."""
        row = [p.name for p in self.rows].index(name)
        return self.table.item(row, COLUMNS.index("status")).text()

    def select(self, name: str) -> None:
        self.table.selectRow([p.name for p in self.rows].index(name))

    def selected(self) -> Path | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            self.message.value = "select a job first"
            return None
        return self.rows[rows[0].row()]

    # -- actions --------------------------------------------------------------------------------------
    def show_log(self) -> QDialog | None:
        job = self.selected()
        if job is None:
            return None
        dialog = QDialog(self)
        dialog.setWindowTitle(f"job {job.name}")
        text = QPlainTextEdit(log_text(job, log.read_log(job)))
        text.setReadOnly(True)
        text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        QVBoxLayout(dialog).addWidget(text)
        dialog.resize(900, 500)
        dialog.show()
        self.log_dialog = dialog
        return dialog

    def open_folder(self) -> None:
        job = self.selected()
        if job is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(job)))

    def cancel(self) -> None:
        job = self.selected()
        if job is None:
            return
        if self.followers[job].state.final:
            self.message.value = f"{job.name} is {self.followers[job].state.status}: nothing to cancel"
            return
        log.request_cancel(job)
        self.message.value = f"asked {job.name} to stop at its next step (it keeps its last checkpoint)"

    def show_curves(self) -> None:
        """Dock loss and IoU curves that follow the selected job."""
        job = self.selected()
        if job is None:
            return
        if self.curves is None:
            self.curves, self.watcher = TrainingCurves(), JobWatcher(self)
            self.watcher.records.connect(self.curves.add)
            if self.viewer is not None:
                self.viewer.window.add_dock_widget(self.curves, name="Job curves", area="bottom")
        self.curves.clear(title=f"job {job.name}")
        self.watcher.follow(job)

    def add_model(self) -> None:
        """Copy a finished job's model into the models folder (jobs run from the CLI, say)."""
        from ..model_registry import register_job

        job = self.selected()
        if job is None:
            return
        try:
            model = register_job(job)
        except (ValueError, OSError) as exc:
            self.message.value = f"error: {exc}"
            return
        models_changed()
        self.message.value = f"model {model.name!r} is in the models folder"
