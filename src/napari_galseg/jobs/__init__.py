"""Training jobs: a spec, one progress log, and runners (thread, process, SLURM via submitit, dask).

A job is a folder: ``spec.yaml`` (what to do), ``log.jsonl`` (what happened: status, epochs,
losses, errors), ``checkpoints/`` and, while someone asks it to stop, ``cancel``. Anybody who can
read the folder follows the job: the widget, ``galseg jobs``, a later napari session.
"""
from .log import JobState, LogFollower, list_jobs, read_log, request_cancel, wait_for
from .run import run_job
from .runners import JobHandle, start_job
from .spec import JobSpec, JobSpecError

__all__ = ["JobHandle", "JobSpec", "JobSpecError", "JobState", "LogFollower", "list_jobs", "read_log", "request_cancel",
           "run_job", "start_job", "wait_for"]
