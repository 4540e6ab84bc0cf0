"""``python -m napari_galseg.jobs JOB.yaml [--resume]``: run one job here (what the process runner starts).

Exit status: 0 finished, 1 failed, 3 cancelled (the log says why), 2 for a spec that cannot be read.
"""
from __future__ import annotations

import argparse
import sys

EXIT = {"finished": 0, "failed": 1, "cancelled": 3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m napari_galseg.jobs", description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="job spec file (YAML/JSON) or a job folder holding spec.yaml")
    parser.add_argument("--resume", action="store_true", help="continue from the job's last checkpoint")
    args = parser.parse_args(argv)
    from .run import run_job
    from .spec import JobSpec, JobSpecError

    try:
        spec = JobSpec.load(args.spec)
    except JobSpecError as exc:
        print(f"napari_galseg.jobs: error: {exc}", file=sys.stderr)
        return 2
    status = run_job(spec, resume=args.resume)
    print(f"job {spec.job_id}: {status}", file=sys.stderr)
    return EXIT.get(status, 1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
