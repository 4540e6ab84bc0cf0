"""The SLURM GPU workers of docs/jobs/slurm.md: dask-jobqueue's SLURMCluster writes the batch script
that asks SLURM for a GPU and starts each worker with the GPU resource (no SLURM needed to check)."""
import pytest

jobqueue = pytest.importorskip("dask_jobqueue")


def test_slurm_cluster_job_script_requests_a_gpu_and_the_gpu_resource():
    cluster = jobqueue.SLURMCluster(queue="gpu", account="astro", cores=8, processes=1, memory="32GB",
                                    walltime="04:00:00", job_extra_directives=["--gpus-per-node=1"],
                                    worker_extra_args=["--resources", "GPU=1"],
                                    job_script_prologue=["module load cuda/12.4"],
                                    scheduler_options={"dashboard_address": None, "host": "127.0.0.1"})
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    lines = script.splitlines()
    assert "#SBATCH -p gpu" in lines and "#SBATCH -A astro" in lines
    assert "#SBATCH --gpus-per-node=1" in lines and "#SBATCH -t 04:00:00" in lines
    assert "module load cuda/12.4" in lines
    worker = next(line for line in lines if "distributed.cli.dask_worker" in line)
    assert "--resources GPU=1" in worker and "--nthreads 8" in worker
    assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")  # what --scheduler is given
