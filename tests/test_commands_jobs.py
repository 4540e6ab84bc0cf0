"""`galseg train --spec` and `galseg jobs list|show|submit|cancel|resume`: one-line errors, readable output."""
import pytest

pytest.importorskip("torch")

from jobs_helpers import unet_spec

from napari_galseg.cli import main
from napari_galseg.jobs import JobSpec, read_log
from napari_galseg.synth import write_field


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_field(tmp_path_factory.mktemp("field"), size=128, seed=7)


def test_train_spec_then_list_show_cancel_resume(files, tmp_path, capsys):
    runs = tmp_path / "runs"
    spec_file = unet_spec(files, runs, name="unet-1").save(tmp_path / "job.yaml")
    assert main(["train", "--spec", str(spec_file)]) == 0
    captured = capsys.readouterr()
    assert "epoch 1/2, train loss" in captured.out and "epoch 2/2" in captured.out
    assert "job unet-1: finished" in captured.err
    assert read_log(runs / "unet-1").status == "finished"

    forest = JobSpec(method="forest", image=str(files["image"]), truth=str(tmp_path / "missing.fits"),
                     output=str(runs / "forest-model"), job_dir=str(runs / "forest-1"), runner="thread",
                     settings={"n_estimators": 3})
    assert main(["jobs", "submit", str(forest.save(tmp_path / "forest.yaml"))]) == 1  # thread: waits
    assert "job forest-1: failed, truth file" in capsys.readouterr().err

    assert main(["jobs", "list", str(runs)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["job", "method", "runner", "updated", "status"]
    assert lines[1].split()[:3] == ["forest-1", "forest", "thread"] and "failed, truth file" in lines[1]
    assert lines[2].split()[:3] == ["unet-1", "unet", "thread"] and "finished, epoch 2/2" in lines[2]

    assert main(["jobs", "show", str(runs / "unet-1")]) == 0
    shown = capsys.readouterr().out
    assert "method   unet  runner thread" in shown and "  epoch 2/2, train loss" in shown and "val IoU" in shown
    assert main(["jobs", "show", str(runs / "forest-1"), "--traceback"]) == 1
    assert "Traceback" in capsys.readouterr().out

    assert main(["jobs", "cancel", str(runs / "unet-1")]) == 0
    assert "already finished; nothing to cancel" in capsys.readouterr().err
    assert main(["jobs", "resume", str(runs / "unet-1")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has finished" in err[0]


def test_one_line_errors(files, tmp_path, capsys):
    assert main(["jobs", "show", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (f"galseg jobs: error: {tmp_path} is not a job folder (no log.jsonl); "
                                               "`galseg jobs list DIR` shows the jobs under DIR")
    (tmp_path / "bad.yaml").write_text("method: unet\nimage: a.fits\n")
    assert main(["train", "--spec", str(tmp_path / "bad.yaml")]) == 2
    assert "missing 'truth', 'output', 'job_dir'" in capsys.readouterr().err
    assert main(["train", "unet", "--image", "a.fits"]) == 2
    assert "missing --truth, -o" in capsys.readouterr().err
    assert main(["jobs", "list", str(tmp_path)]) == 0
    assert "no jobs under" in capsys.readouterr().err
