"""`galseg jobs list|show|submit|cancel|resume` — follow and steer training jobs from their folders.

A job folder (``spec.yaml``, ``log.jsonl``, ``checkpoints/``) is all these commands read, so they
follow a job whoever started it: the widget, another shell, a SLURM node or a dask worker.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

DESCRIPTION = """\
Follow and steer training jobs. A job is a folder holding spec.yaml (what to train), log.jsonl
(status, epochs, losses, errors), checkpoints/ and, while a stop is asked, a 'cancel' file. Any
runner writes the same log: thread, process, slurm (submitit) or dask (a distributed scheduler).

examples:
  galseg jobs submit job.yaml --wait      # start the job with the runner its spec names
  galseg jobs list runs/                  # every job folder under runs/, one line each
  galseg jobs show runs/unet-1            # its spec, epochs (loss, val IoU) and error
  galseg jobs cancel runs/unet-1          # stop at the next step, keeping the last checkpoint
  galseg jobs resume runs/unet-1 --wait   # continue from that checkpoint
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("jobs", help="list, show, submit, cancel and resume training jobs",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    jobs = p.add_subparsers(dest="jobs_command", metavar="ACTION")
    jobs.required = True
    ls = jobs.add_parser("list", help="one line per job folder under DIR")
    ls.add_argument("dir", nargs="?", default=".", metavar="DIR", help="folder holding job folders (default: here)")
    show = jobs.add_parser("show", help="a job's spec, epochs and error")
    show.add_argument("job", metavar="JOB", help="job folder")
    show.add_argument("--traceback", action="store_true", help="print the full traceback of a failed job")
    submit = jobs.add_parser("submit", help="start a job spec with the runner it names")
    submit.add_argument("spec", metavar="SPEC", help="job spec file (YAML or JSON)")
    submit.add_argument("--wait", action="store_true", help="follow the job until it ends (implied for the thread runner)")
    cancel = jobs.add_parser("cancel", help="ask a running job to stop (it keeps its last checkpoint)")
    cancel.add_argument("job", metavar="JOB", help="job folder")
    resume = jobs.add_parser("resume", help="continue a cancelled or failed job from its last checkpoint")
    resume.add_argument("job", metavar="JOB", help="job folder")
    resume.add_argument("--runner", choices=("thread", "process", "slurm", "dask"), default=None,
                        help="run it elsewhere than its spec says (that runner's options are then empty)")
    resume.add_argument("--wait", action="store_true", help="follow the job until it ends (implied for the thread runner)")
    p.set_defaults(func=run)


def _when(t: float | None) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def _job_dir(path: str) -> Path:
    from ..jobs.log import LOG_NAME

    job = Path(path)
    if not (job / LOG_NAME).exists():
        raise FileNotFoundError(f"{job} is not a job folder (no {LOG_NAME}); `galseg jobs list DIR` shows the jobs under DIR")
    return job


def epoch_line(record: dict) -> str:
    parts = [f"epoch {record['epoch']}/{record.get('n_epochs', '?')}", f"train loss {record['train_loss']:.4f}"]
    for key, name in (("val_loss", "val loss"), ("val_iou", "val IoU")):
        if record.get(key) is not None:
            parts.append(f"{name} {record[key]:.4f}" if key == "val_loss" else f"{name} {record[key]:.3f}")
    return ", ".join(parts)


def follow(handle, out=None, timeout: float = 7 * 24 * 3600) -> str:
    """Show a started job until it ends: its progress as the CLI's bar, one line per epoch on
    stdout; returns its final status."""
    from ..jobs.log import read_log
    from . import progress_bar

    seen = 0
    deadline = time.monotonic() + timeout
    with progress_bar(f"job {handle.job_dir.name}", unit=None) as display:
        while True:
            state = read_log(handle.job_dir)
            for record in state.records[seen:]:
                if record.get("kind") == "epoch":
                    display.write(epoch_line(record), stream=out or sys.stdout)
                elif record.get("kind") == "progress" and record.get("total"):
                    display(int(record["done"]), int(record["total"]), record.get("message", ""))
            seen = len(state.records)
            if state.final:
                return state.status
            if handle.died() is not None or time.monotonic() > deadline:
                return handle.wait(timeout=1).status
            time.sleep(0.2)


def _finish(handle, wait: bool) -> int:
    from ..jobs.log import read_log

    if not wait and handle.runner != "thread":
        print(f"job {handle.job_dir.name} started ({handle.runner}); follow it with `galseg jobs show {handle.job_dir}`",
              file=sys.stderr)
        return 0
    try:
        status = follow(handle)
    except KeyboardInterrupt:  # Ctrl-C asks the job to stop, as `galseg jobs cancel` would
        handle.cancel()
        status = handle.wait().status
    state = read_log(handle.job_dir)
    print(f"job {handle.job_dir.name}: {state.summary()}", file=sys.stderr)
    handle.close()
    return {"finished": 0, "cancelled": 3}.get(status, 1)


def run(args: argparse.Namespace) -> int:
    return {"list": _list, "show": _show, "submit": _submit, "cancel": _cancel, "resume": _resume}[args.jobs_command](args)


def _list(args) -> int:
    from ..jobs.log import list_jobs

    root = Path(args.dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    states = list_jobs(root)
    if not states:
        print(f"no jobs under {root}", file=sys.stderr)
        return 0
    rows = [(state.job_dir.name, state.info.get("method", "?"), state.info.get("runner", "?"), _when(state.updated),
             state.summary()) for state in states]
    widths = [max(len(r[i]) for r in rows + [("job", "method", "runner", "updated", "")]) for i in range(4)]
    print("  ".join(h.ljust(w) for h, w in zip(("job", "method", "runner", "updated"), widths)) + "  status")
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[4])
    return 0


def _show(args) -> int:
    from ..jobs.log import read_log
    from ..jobs.spec import SPEC_NAME, JobSpec

    job = _job_dir(args.job)
    state = read_log(job)
    print(f"job      {job.name}  ({job.resolve()})")
    if (job / SPEC_NAME).exists():
        spec = JobSpec.load(job / SPEC_NAME)
        print(f"method   {spec.method}  runner {spec.runner} {spec.runner_options or ''}".rstrip())
        print(f"inputs   image {spec.image}" + (f", rms {spec.rms}" if spec.rms else "") + f", truth {spec.truth}")
        if spec.settings:
            print("settings " + ", ".join(f"{k}={v}" for k, v in spec.settings.items()))
        print(f"output   {spec.output}")
    print(f"status   {state.summary()}")
    print(f"started  {_when(state.started)}   updated {_when(state.updated)}")
    for record in state.epochs:
        print("  " + epoch_line(record))
    last = next((r for r in reversed(state.records) if r.get("kind") == "status"), {})
    if last.get("status") == "cancelled" and last.get("checkpoint"):
        print(f"checkpoint {last['checkpoint']} (continue with `galseg jobs resume {job}`)")
    if state.error and args.traceback and last.get("traceback"):
        print(last["traceback"].rstrip())
    return 0 if state.status != "failed" else 1


def _submit(args) -> int:
    from ..jobs.runners import start_job
    from ..jobs.spec import JobSpec

    return _finish(start_job(JobSpec.load(args.spec)), args.wait)


def _cancel(args) -> int:
    from ..jobs.log import read_log, request_cancel

    job = _job_dir(args.job)
    state = read_log(job)
    if state.final:
        print(f"job {job.name} is already {state.status}; nothing to cancel", file=sys.stderr)
        return 0
    request_cancel(job)
    print(f"asked job {job.name} to stop at its next step (it keeps its last checkpoint)", file=sys.stderr)
    return 0


def _resume(args) -> int:
    from ..jobs.runners import resume_job

    return _finish(resume_job(_job_dir(args.job), runner=args.runner), args.wait)


def run_spec(spec_path: str, resume: bool = False) -> int:
    """`galseg train --spec job.yaml`: run the job in this process (in a thread, so Ctrl-C cancels it
    cleanly), printing each epoch."""
    import threading

    from ..jobs.run import run_job
    from ..jobs.runners import ThreadHandle, prepare
    from ..jobs.spec import JobSpec

    spec = prepare(JobSpec.load(spec_path), resume=resume)
    job_dir = Path(spec.job_dir)
    thread = threading.Thread(target=run_job, args=(spec,), kwargs={"resume": resume}, daemon=True)
    thread.start()
    return _finish(ThreadHandle(job_dir, "thread", thread), wait=True)
