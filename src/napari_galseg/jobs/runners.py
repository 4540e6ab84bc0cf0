"""Runners: where a job runs. Each one only starts :func:`run_job` somewhere; all write the same log.

- ``thread``: a thread of this process (KMeans/forest and tiny models; GPU memory stays with the process);
- ``process``: ``python -m napari_galseg.jobs JOB/spec.yaml`` as a local subprocess in its own session
  (it outlives napari, and ending it frees its GPU memory);
- ``slurm``: a SLURM task through submitit (``submitit.AutoExecutor``), requeued on preemption or
  time-out and resumed from the last checkpoint; ``cluster: local`` / ``debug`` runs it through
  submitit's local / in-process executors (tests, a workstation);
- ``dask``: a task on a ``distributed`` scheduler (``address``), with a ``GPU`` resource when asked.

:func:`start_job` prepares the job folder (spec, a ``queued`` record, no stale cancel flag) and
returns a :class:`JobHandle`: ``state()``, ``wait()`` and ``cancel()`` read and write the job folder,
so a handle is a convenience — the CLI and widget can follow any job from its folder alone.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from . import log
from .run import run_job
from .spec import SPEC_NAME, JobSpec, JobSpecError

#: the options each runner takes (``runner_options`` of a spec), with what they mean
OPTIONS: dict[str, dict[str, str]] = {
    "thread": {},
    "process": {"python": "the Python executable that runs the job (default: this one)"},
    "slurm": {
        "cluster": "slurm (default where sbatch exists), local or debug (submitit's executors)",
        "partition": "SLURM partition", "gpus": "GPUs per node", "cpus": "CPUs per task",
        "mem_gb": "memory in GiB", "time_min": "time limit in minutes", "account": "SLURM account",
        "qos": "SLURM quality of service", "constraint": "SLURM node constraint",
        "max_requeue": "how many times a preempted or timed-out job is requeued (default 3)",
        "setup": "shell lines run before the job (e.g. 'module load cuda')",
        "log_folder": "folder for submitit's scripts and logs (default JOB/slurm), on a shared path",
    },
    "dask": {"address": "scheduler address, e.g. tcp://host:8786", "gpu": "ask for a worker with a GPU resource"},
}


class JobHandle:
    """A started job: follow it through its folder; ``native`` is the runner's own handle."""

    def __init__(self, job_dir: Path, runner: str, native: Any = None):
        self.job_dir, self.runner, self.native = Path(job_dir), runner, native

    def state(self) -> log.JobState:
        return log.read_log(self.job_dir)

    def cancel(self) -> None:
        log.request_cancel(self.job_dir)

    def died(self) -> str | None:
        """Why the runner's own handle says the job ended (None while it runs or when unknown)."""
        return None

    def wait(self, timeout: float = 600.0, interval: float = 0.05) -> log.JobState:
        """Poll the log until the job ends; a runner that ended without a final record is logged as failed."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            if state.final:
                return state
            reason = self.died()
            if reason is not None:
                state = self.state()  # the job may have written its last record just before ending
                if not state.final:
                    log.append(self.job_dir, "status", status="failed", error=reason)
                    state = self.state()
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {self.job_dir.name} still {state.summary()} after {timeout:.0f} s")
            time.sleep(interval)

    def close(self) -> None:
        """Release what the handle holds (a dask client); the job itself goes on."""


class ThreadHandle(JobHandle):
    def died(self):
        return None if self.native.is_alive() else "the job thread ended without a final record"


class _ProcessHandle(JobHandle):
    def died(self):
        code = self.native.poll()
        return None if code is None else f"the job process ended with exit status {code} (see {self.job_dir / 'process.log'})"


class _SubmititHandle(JobHandle):
    def died(self):
        job = self.native
        if not job.done():
            return None
        try:
            job.result()
        except Exception as exc:  # submitit re-raises the task's failure here
            return f"the SLURM task failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        return "the SLURM task ended without a final record"


class _DaskHandle(JobHandle):
    def __init__(self, job_dir, runner, native, client):
        super().__init__(job_dir, runner, native)
        self.client = client

    def died(self):
        future = self.native
        if future.status == "error":
            exc = future.exception()
            return f"the dask task failed: {type(exc).__name__}: {exc}"
        if future.status in ("cancelled", "lost"):
            return f"the dask task was {future.status}"
        return None

    def close(self):
        self.client.close()


# -- the jobs that submitit and dask run -------------------------------------------------------------
class SubmititJob:
    """What submitit runs: the job, resumed from its checkpoint when SLURM requeues it."""

    def __init__(self, spec: dict, resume: bool = False):
        self.spec, self.resume = spec, resume

    def __call__(self) -> str:
        return run_job(self.spec, resume=self.resume)

    def checkpoint(self, *args, **kwargs):
        """Called by submitit on preemption or time-out: requeue the job as a resume."""
        from submitit.helpers import DelayedSubmission

        log.append(self.spec["job_dir"], "status", status="queued", requeued=True, resume=True)
        return DelayedSubmission(SubmititJob(self.spec, resume=True))


# -- starting ----------------------------------------------------------------------------------------
def prepare(spec: JobSpec, resume: bool = False) -> JobSpec:
    """Check the spec, refuse a busy or used job folder, write spec.yaml and a ``queued`` record;
    returns the spec with absolute paths (relative ones taken from here), as the job will read it."""
    spec = spec.resolved(Path.cwd()).check()
    unknown = sorted(set(spec.runner_options) - set(OPTIONS[spec.runner]))
    if unknown:
        valid = ", ".join(OPTIONS[spec.runner]) or "none"
        raise JobSpecError(f"job spec: unknown {spec.runner} runner option {unknown[0]!r}; valid: {valid}")
    job_dir = Path(spec.job_dir)
    state = log.read_log(job_dir)
    if state.exists and not resume:
        raise JobSpecError(f"job folder {job_dir} already holds a job ({state.status}); "
                           f"resume it with `galseg jobs resume {job_dir}` or choose another job_dir")
    if resume:
        if not state.exists:
            raise JobSpecError(f"{job_dir} holds no job to resume (no {log.LOG_NAME})")
        if state.status in ("queued", "running") and not state.orphaned:
            raise JobSpecError(f"job {job_dir.name} is still {state.status}; cancel it first (`galseg jobs cancel {job_dir}`)")
        if state.status == "finished":
            raise JobSpecError(f"job {job_dir.name} has finished; its model is in {spec.output}")
    job_dir.mkdir(parents=True, exist_ok=True)
    spec.save(job_dir / SPEC_NAME)
    log.clear_cancel(job_dir)
    log.append(job_dir, "status", status="queued", method=spec.method, runner=spec.runner, output=spec.output,
               resume=resume)
    return spec


def start_job(spec: JobSpec, *, resume: bool = False) -> JobHandle:
    """Start ``spec`` with its runner; returns at once (the log says what happens)."""
    spec = prepare(spec, resume)
    job_dir = Path(spec.job_dir)
    start = {"thread": _start_thread, "process": _start_process, "slurm": _start_slurm, "dask": _start_dask}[spec.runner]
    try:
        return start(spec, job_dir, resume)
    except Exception as exc:  # could not submit: the job will never run, say so in its log
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.append(job_dir, "status", status="failed", error=f"could not start the {spec.runner} job: {message}")
        raise


def _start_thread(spec: JobSpec, job_dir: Path, resume: bool) -> JobHandle:
    thread = threading.Thread(target=run_job, args=(spec,), kwargs={"resume": resume}, daemon=True,
                              name=f"galseg-job-{spec.job_id}")
    thread.start()
    return ThreadHandle(job_dir, "thread", thread)


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def _start_process(spec: JobSpec, job_dir: Path, resume: bool) -> JobHandle:
    python = spec.runner_options.get("python") or sys.executable
    command = [python, "-m", "napari_galseg.jobs", str(job_dir / SPEC_NAME)] + (["--resume"] if resume else [])
    env = dict(os.environ)  # the child imports this same package, even from a source checkout
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH")) if p)
    with open(job_dir / "process.log", "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, start_new_session=True)
    log.append(job_dir, "runner", runner="process", pid=process.pid, command=command)
    return _ProcessHandle(job_dir, "process", process)


def slurm_executor(spec: JobSpec, job_dir: Path):
    """A ``submitit.AutoExecutor`` with the spec's SLURM options."""
    try:
        import submitit
    except ImportError:
        raise JobSpecError("the slurm runner needs submitit: pip install 'napari-galseg[jobs]'") from None
    opts = spec.runner_options
    folder = Path(opts.get("log_folder") or job_dir / "slurm")
    cluster = opts.get("cluster")
    if cluster not in (None, "slurm", "local", "debug"):
        raise JobSpecError(f"job spec: slurm runner option cluster={cluster!r}; choose slurm, local or debug")
    requeue = int(opts.get("max_requeue", 3))
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster, slurm_max_num_timeout=requeue,
                                     local_max_num_timeout=requeue)
    params: dict[str, Any] = {"name": f"galseg-{spec.job_id}"}
    for key, target, kind in (("gpus", "gpus_per_node", int), ("cpus", "cpus_per_task", int), ("mem_gb", "mem_gb", float),
                              ("time_min", "timeout_min", int), ("partition", "slurm_partition", str),
                              ("account", "slurm_account", str), ("qos", "slurm_qos", str),
                              ("constraint", "slurm_constraint", str)):
        if opts.get(key) is not None:
            try:
                params[target] = kind(opts[key])
            except (TypeError, ValueError):
                raise JobSpecError(f"job spec: slurm runner option {key}={opts[key]!r} is not {kind.__name__}") from None
    if executor.cluster == "local" and "timeout_min" not in params:
        params["timeout_min"] = 7 * 24 * 60  # submitit's local default (2 min) would kill a training
    if opts.get("setup"):
        params["slurm_setup"] = list(opts["setup"]) if isinstance(opts["setup"], (list, tuple)) else [opts["setup"]]
    try:
        executor.update_parameters(**params)
    except (NameError, ValueError, AssertionError) as exc:  # submitit's own checks of the parameters
        raise JobSpecError(f"job spec: slurm runner options refused by submitit: {str(exc).splitlines()[0]}") from None
    return executor


def _start_slurm(spec: JobSpec, job_dir: Path, resume: bool) -> JobHandle:
    executor = slurm_executor(spec, job_dir)
    job = executor.submit(SubmititJob(spec.to_dict(), resume=resume))
    log.append(job_dir, "runner", runner="slurm", cluster=executor.cluster, slurm_job_id=str(job.job_id),
               log_folder=str(executor.folder))
    return _SubmititHandle(job_dir, "slurm", job)


def _start_dask(spec: JobSpec, job_dir: Path, resume: bool) -> JobHandle:
    try:
        from distributed import Client, fire_and_forget
    except ImportError:
        raise JobSpecError("the dask runner needs distributed: pip install 'napari-galseg[jobs]'") from None
    address = spec.runner_options.get("address")
    if not address:
        raise JobSpecError("job spec: the dask runner needs runner_options.address (the scheduler, e.g. tcp://host:8786)")
    client = Client(address, timeout="30s")
    resources = {"GPU": 1} if spec.runner_options.get("gpu") else None
    key = f"galseg-job-{spec.job_id}-{uuid.uuid4().hex[:8]}"
    future = client.submit(run_job, spec.to_dict(), resume=resume, key=key, pure=False, resources=resources)
    fire_and_forget(future)  # the job runs on even when this client goes away (napari closed)
    log.append(job_dir, "runner", runner="dask", address=str(address), key=key, gpu=bool(resources))
    return _DaskHandle(job_dir, "dask", future, client)


def resume_job(job_dir: str | os.PathLike, runner: str | None = None) -> JobHandle:
    """Continue a cancelled or failed job from its last checkpoint (with its own runner or ``runner``)."""
    import dataclasses

    spec = JobSpec.load(Path(job_dir) / SPEC_NAME)
    if runner is not None and runner != spec.runner:  # the old runner's options mean nothing to the new one
        spec = dataclasses.replace(spec, runner=runner, runner_options={})
    return start_job(spec, resume=True)
