"""A real tiny training job through each out-of-process runner: a subprocess, SLURM through
submitit's local executor (preempted once and requeued), and a dask LocalCluster worker process."""
import os

import pytest

pytest.importorskip("torch")

from jobs_helpers import unet_spec

from napari_galseg.jobs import start_job, wait_for
from napari_galseg.synth import write_field


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_field(tmp_path_factory.mktemp("field"), size=128, seed=6)


def running_pids(state):
    return [r["pid"] for r in state.records if r["kind"] == "status" and r["status"] == "running"]


def assert_trained(spec, state):
    assert state.status == "finished", state.summary()
    assert [e["epoch"] for e in state.epochs] == list(range(1, spec.settings["epochs"] + 1))
    from napari_galseg.segmenters.unet import UNetSegmenter

    assert UNetSegmenter.load(spec.output).net is not None
    assert all(pid != os.getpid() for pid in running_pids(state))  # it ran elsewhere


def test_process_runner(files, tmp_path):
    spec = unet_spec(files, tmp_path, runner="process")
    handle = start_job(spec)
    state = handle.wait(timeout=180)
    assert_trained(spec, state)
    assert handle.native.wait(timeout=60) == 0
    assert running_pids(state) == [handle.native.pid]


def test_slurm_runner_through_submitit_requeues_a_preempted_job(files, tmp_path):
    pytest.importorskip("submitit")
    spec = unet_spec(files, tmp_path, runner="slurm", epochs=5,
                     runner_options={"cluster": "local", "partition": "gpu", "time_min": 30, "max_requeue": 2})
    handle = start_job(spec)
    state = wait_for(spec.job_dir, lambda s: len(s.epochs) >= 1 or s.final, timeout=180)
    from submitit.local.local import LocalJobEnvironment

    # preemption: SLURM signals the task (USR2); submitit checkpoints and requeues it
    os.kill(running_pids(state)[-1], LocalJobEnvironment._usr_sig())
    state = handle.wait(timeout=180)
    assert_trained(spec, state)
    statuses = [(r["status"], r.get("resume")) for r in state.records if r["kind"] == "status"]
    assert ("queued", True) in statuses and statuses[-2:] == [("running", True), ("finished", None)]
    first_resumed = [r for r in state.records if r["kind"] == "status" and r["status"] == "running"][-1]["time"]
    assert min(r["epoch"] for r in state.records if r["kind"] == "epoch" and r["time"] > first_resumed) > 1
    assert (tmp_path / "job" / "slurm").is_dir()


def test_dask_runner_on_a_local_cluster(files, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, resources={"GPU": 1},
                                  dashboard_address=None) as cluster:
        spec = unet_spec(files, tmp_path, runner="dask", runner_options={"address": cluster.scheduler_address, "gpu": True})
        handle = start_job(spec)
        try:
            state = handle.wait(timeout=180)
        finally:
            handle.close()
        assert_trained(spec, state)
        with distributed.Client(cluster) as client:
            assert running_pids(state) == list(client.run(os.getpid).values())  # the worker process ran it
