"""Run one training job where this code runs: open the inputs, fit, save the model, log every step.

:func:`run_job` is what every runner starts (a thread, ``python -m napari_galseg.jobs``, a SLURM
task through submitit, a dask task). It never raises for a job that goes wrong: a crash ends as a
``failed`` record with the error in the log, a cancel (the ``cancel`` file) as ``cancelled`` with
the last checkpoint kept in ``JOB/checkpoints`` for :func:`run_job(..., resume=True)`.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import traceback
from pathlib import Path

import numpy as np

from .._atomic import atomic_path, atomic_write_text
from ..model_folder import file_provenance
from ..window import Window
from . import log
from .spec import SPEC_NAME, JobSpec

#: seconds between two progress records (epochs and status changes are always written)
PROGRESS_INTERVAL = 0.5
#: seconds between two previews of a running job (the requested window segmented by the model of the moment)
PREVIEW_INTERVAL = 10.0


#: the largest preview window side: a viewer zoomed out over a survey frame gets its central part
PREVIEW_MAX_SIDE = 2048


def _central_part(window: tuple[int, int, int, int], side: int) -> tuple[int, int, int, int]:
    """``window`` (y0, y1, x0, x1) cut to at most ``side`` pixels a side around its centre."""
    y0, y1, x0, x1 = window
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    if y1 - y0 > side:
        y0, y1 = cy - side // 2, cy - side // 2 + side
    if x1 - x0 > side:
        x0, x1 = cx - side // 2, cx - side // 2 + side
    return y0, y1, x0, x1


class JobInputError(ValueError):
    """An input file of a job that cannot be read."""


def _open_input(kind: str, path: str):
    from ..io import open_fits

    if not Path(path).exists():
        raise JobInputError(f"{kind} file {path} does not exist")
    try:
        # FitsImage.array slices straight from the memory map: cheaper than dask for random patches
        return open_fits(path).array
    except Exception as exc:  # astropy raises OSError/ValueError/TypeError for files that are not FITS images
        raise JobInputError(f"{kind} file {path} is not a readable FITS image ({exc})") from None


class _Reporter:
    """Turns progress calls and training reports into log records; polls the cancel file."""

    def __init__(self, job_dir: Path, cancel: threading.Event):
        self.job_dir, self.cancel = job_dir, cancel
        self.t0 = time.monotonic()
        self.last_write = -1.0
        self.first_done: int | None = None
        self.step: dict = {}
        self.done: tuple[int, int, str] | None = None
        self.reports = False  # True once the method sends training reports (epoch, step, loss)
        self.last_preview: float | None = None
        self.previews: list[str] = []
        self.inputs = None  # (image, rms) once opened: what a preview segments

    def poll_cancel(self) -> None:
        if not self.cancel.is_set() and log.cancel_requested(self.job_dir):
            self.cancel.set()

    def progress(self, done: int, total: int, message: str = "") -> None:
        self.poll_cancel()
        if self.first_done is None:
            self.first_done = done
        self.done = (done, total, message)
        if not self.reports:  # methods without training reports: every progress call may be a record
            self._write()

    def report(self, r) -> None:
        """A :class:`~napari_galseg.training.loop.TrainReport` (torch methods): sent after ``progress``."""
        self.poll_cancel()
        self.reports = True
        self.step = {"epoch": r.epoch, "n_epochs": r.n_epochs, "step": r.step, "n_steps": r.n_steps, "loss": r.train_loss,
                     "global_step": r.global_step}
        if r.kind == "epoch":
            if r.snapshot is not None:
                self._save_preview(r)
            log.append(self.job_dir, "epoch", epoch=r.epoch, n_epochs=r.n_epochs, train_loss=r.train_loss,
                       val_loss=r.val_loss, val_iou=r.val_iou, val_dice=r.val_dice, lr=r.lr,
                       elapsed=r.elapsed, best_epoch=r.best_epoch, global_step=r.global_step)
        else:
            self._write()

    def _save_preview(self, r) -> None:
        """When a viewer asked for one (:func:`log.request_preview`), segment its window with the model
        of this moment, at most every PREVIEW_INTERVAL seconds: ``preview-N.npy`` then ``preview.json``
        pointing at it (older files but the one before are removed). Here, in the job's process,
        not in napari: a prediction inside the viewer's process would stall its GUI."""
        window = log.preview_request(self.job_dir)
        now = time.monotonic()
        if window is None or self.inputs is None or (
                self.last_preview is not None and now - self.last_preview < PREVIEW_INTERVAL):
            return
        self.last_preview = now
        image, rms = self.inputs
        window = _central_part(window, PREVIEW_MAX_SIDE)
        name = f"preview-{r.epoch}.npy"
        try:
            labels = np.asarray(r.snapshot().predict(image, rms, region=Window(*window)).labels, np.int32)
            with atomic_path(self.job_dir / name, overwrite=True) as tmp, open(tmp, "wb") as f:
                np.save(f, labels)
        except Exception as exc:  # a preview is a courtesy: training goes on without it
            log.append(self.job_dir, "progress", message=f"preview of epoch {r.epoch} not made: {exc}")
            return
        atomic_write_text(self.job_dir / log.PREVIEW_NAME, json.dumps({"file": name, "epoch": r.epoch, "window": list(window)}))
        for old in self.job_dir.glob("preview-*.npy"):
            if old.name not in (name, *self.previews[-1:]):
                old.unlink(missing_ok=True)
        self.previews.append(name)

    def _write(self) -> None:
        """A progress record, at most one per PROGRESS_INTERVAL (and always the last step)."""
        if self.done is None:
            return
        done, total, message = self.done
        now = time.monotonic()
        if now - self.last_write < PROGRESS_INTERVAL and done < total:
            return
        self.last_write = now
        elapsed = now - self.t0
        eta = None
        if total and done > self.first_done and elapsed > 0:
            eta = elapsed * (total - done) / (done - self.first_done)
        log.append(self.job_dir, "progress", done=done, total=total, message=message, elapsed=elapsed, eta=eta, **self.step)


def run_job(spec: JobSpec | dict | str | os.PathLike, *, resume: bool = False,
            cancel: threading.Event | None = None) -> str:
    """Run ``spec`` (a JobSpec, its dict or a spec file) here; returns the final status."""
    if isinstance(spec, dict):
        spec = JobSpec.from_dict(spec)
    elif not isinstance(spec, JobSpec):
        spec = JobSpec.load(spec)
    job_dir = Path(spec.job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    if not (job_dir / SPEC_NAME).exists():
        spec.save(job_dir / SPEC_NAME)
    cancel = cancel if cancel is not None else threading.Event()
    reporter = _Reporter(job_dir, cancel)
    log.append(job_dir, "status", status="running", resume=resume, method=spec.method, host=socket.gethostname(),
               pid=os.getpid(), output=spec.output)
    try:
        status, extra = _train(spec, job_dir, resume, cancel, reporter)
    except Exception as exc:  # any crash ends as 'failed' in the log, never silently
        from ..progress import Cancelled

        if isinstance(exc, Cancelled):
            status, extra = "cancelled", {}
        else:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if not isinstance(exc, (JobInputError, ValueError, FileNotFoundError, FileExistsError)):
                message = f"{type(exc).__name__}: {message}"
            status, extra = "failed", {"error": message, "traceback": traceback.format_exc()}
    if status == "cancelled":
        last = job_dir / log.CHECKPOINTS / "last.pt"
        extra["checkpoint"] = str(last) if last.exists() else None
    log.append(job_dir, "status", status=status, **extra)
    return status


def _train(spec: JobSpec, job_dir: Path, resume: bool, cancel: threading.Event, reporter: _Reporter):
    model = spec.build()
    cls = type(model)
    output = Path(spec.output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise FileExistsError(f"output {output} already exists and is not empty; choose another output folder")
    image = _open_input("image", spec.image)
    rms = _open_input("rms", spec.rms) if spec.rms else None
    reporter.inputs = (image, rms)
    if spec.recipe is not None:
        from ..preprocess import as_recipe

        model.recipe = as_recipe(spec.recipe).to_dict()
    if spec.like:  # simulated fields like the frame: no truth map (training/like_frame.py)
        from ..io import open_fits
        from ..training.like_frame import like_training_field

        frame = open_fits(spec.image)
        say = lambda line: log.append(job_dir, "progress", message=line, done=0, total=0)
        image, truth, rms = like_training_field(model, image, rms, header=frame.header, wcs=frame.wcs, say=say,
                                                size=spec.like_size,
                                                provenance={"frame": file_provenance(spec.image),
                                                            "rms": file_provenance(spec.rms)})
    else:
        truth = _open_input("truth", spec.truth)
    kwargs = {}
    if cls.capabilities.resumable:
        checkpoints = job_dir / log.CHECKPOINTS
        kwargs["checkpoint_dir"] = checkpoints
        kwargs["resume"] = bool(resume and (checkpoints / "last.pt").exists())
        if resume and not kwargs["resume"]:
            log.append(job_dir, "progress", message="no checkpoint to resume from: training starts over", done=0, total=0)
    if not spec.like:
        model.provenance["training"] = {"image": file_provenance(spec.image), "rms": file_provenance(spec.rms),
                                        "truth": file_provenance(spec.truth)}
    model.provenance["job"] = {"job_dir": str(job_dir.resolve()), "runner": spec.runner, "host": socket.gethostname(),
                               "resumed": bool(kwargs.get("resume"))}
    reporter.poll_cancel()
    model.fit(image, truth, rms=rms, progress=reporter.progress, cancel=cancel, callback=reporter.report, **kwargs)
    reporter.poll_cancel()
    if cancel.is_set():
        return "cancelled", {}
    model.save(output)
    metrics = getattr(model, "metrics", None) or {}
    extra = {"output": str(output), "metrics": metrics}
    training = model.provenance.get("training") or {}
    if training.get("stopped"):  # which limit ended the run, in words (the widget and `jobs show` print it)
        from ..training.loop import stop_reason

        extra["stopped"] = stop_reason(training["stopped"], int(training.get("epochs_run") or 0),
                                       float(training.get("elapsed_s") or 0),
                                       float(getattr(model.train_config, "max_minutes", 0) or 0))
    return "finished", extra
