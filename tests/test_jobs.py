"""Jobs run in a thread: the spec round trip, the log, a finished job, cancel + resume, failures."""
import json
import os
import threading

import numpy as np
import pytest

pytest.importorskip("torch")

from jobs_helpers import unet_spec

from napari_galseg.jobs import JobSpec, JobSpecError, log, read_log, start_job, wait_for
from napari_galseg.jobs.runners import resume_job
from napari_galseg.synth import write_field


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_field(tmp_path_factory.mktemp("field"), size=128, seed=5)


def test_spec_round_trips_through_yaml_and_json(files, tmp_path):
    spec = unet_spec(files, tmp_path, recipe="image-only", runner="slurm",
                     runner_options={"partition": "gpu", "gpus": 1, "time_min": 60})
    for name in ("job.yaml", "job.json"):
        assert JobSpec.load(spec.save(tmp_path / name)) == spec
    # relative paths are relative to the spec file
    (tmp_path / "sub").mkdir()
    rel = JobSpec.from_dict({**spec.to_dict(), "image": "img.fits", "job_dir": "runs/a"})
    loaded = JobSpec.load(rel.save(tmp_path / "sub" / "rel.yaml"))
    assert loaded.image == str(tmp_path / "sub" / "img.fits") and loaded.job_dir == str(tmp_path / "sub" / "runs" / "a")


def test_a_job_folder_keeps_absolute_paths(files, tmp_path, monkeypatch):
    from napari_galseg.jobs.runners import prepare

    monkeypatch.chdir(files["image"].parent)
    spec = JobSpec(method="forest", image="img.fits", truth="true.fits", output="out/model", job_dir="runs/j")
    prepared = prepare(spec)
    saved = JobSpec.load(files["image"].parent / "runs" / "j")  # a job folder stands for its spec.yaml
    assert saved == prepared and saved.image == str(files["image"]) and saved.output == str(files["image"].parent / "out" / "model")


@pytest.mark.parametrize("change, message", [
    ({"settings": {"epochs": "many"}}, "epochs=many is not valid: epochs takes a whole number"),
    ({"settings": {"depht": 2}}, "unknown setting 'depht' for unet"),
    ({"method": "photutils"}, "'photutils' does not learn from data"),
    ({"method": "nosuch"}, "unknown segmenter 'nosuch'"),
    ({"runner": "ssh"}, "unknown runner 'ssh'"),
    ({"colour": "red"}, "unknown field 'colour'"),
])
def test_bad_specs_are_refused_in_one_line(files, tmp_path, change, message):
    data = {**unet_spec(files, tmp_path).to_dict(), **change}
    with pytest.raises(JobSpecError) as info:
        JobSpec.from_dict(data)
    assert message in str(info.value) and "\n" not in str(info.value)
    (tmp_path / "bad.yaml").write_text("method: [unet\n")
    with pytest.raises(JobSpecError, match="not a readable job spec"):
        JobSpec.load(tmp_path / "bad.yaml")
    with pytest.raises(JobSpecError, match="unknown thread runner option 'gpus'"):
        start_job(unet_spec(files, tmp_path, runner_options={"gpus": 1}))


def test_log_lines_stay_whole_under_concurrent_writers(tmp_path):
    def write(n):
        for i in range(200):
            log.append(tmp_path, "progress", writer=n, i=i, message="x" * 500)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(tmp_path / log.LOG_NAME, "ab") as f:  # a writer that died mid-line
        f.write(b'{"time": 1, "kind": "prog')
    state = read_log(tmp_path)
    assert len(state.records) == 800 and state.status == "unknown"
    assert sorted(r["i"] for r in state.records if r["writer"] == 2) == list(range(200))


def test_a_thread_job_trains_logs_epochs_and_saves_the_model(files, tmp_path):
    spec = unet_spec(files, tmp_path)
    handle = start_job(spec)
    state = handle.wait(timeout=120)
    assert state.status == "finished", state.summary()
    assert [r["status"] for r in state.records if r["kind"] == "status"] == ["queued", "running", "finished"]
    assert [e["epoch"] for e in state.epochs] == [1, 2]
    assert all(e["train_loss"] > 0 and e["val_loss"] > 0 and e["val_iou"] is not None for e in state.epochs)
    assert any(r["kind"] == "progress" and r.get("loss") is not None for r in state.records)
    from napari_galseg.segmenters.unet import UNetSegmenter

    model = UNetSegmenter.load(spec.output)
    config = json.loads((tmp_path / "job-model" / "config.json").read_text())
    assert config["provenance"]["job"]["runner"] == "thread" and config["metrics"]["validation"]
    assert model.params.depth == 2 and config["provenance"]["training"]["image"]["path"] == spec.image
    # the folder now holds a job: starting another one there is refused, not mixed in
    with pytest.raises(JobSpecError, match="already holds a job"):
        start_job(spec)
    # nobody asked for a preview: the job made none
    assert log.read_preview(spec.job_dir) is None


def test_a_job_segments_the_window_a_viewer_asks_for(files, tmp_path):
    spec = unet_spec(files, tmp_path, epochs=2)
    os.makedirs(spec.job_dir)
    log.request_preview(spec.job_dir, (10, 74, 20, 100))  # a viewer asks (here before the first validation)
    state = start_job(spec).wait(timeout=120)
    assert state.status == "finished", state.summary()
    preview = log.read_preview(spec.job_dir)
    assert preview["epoch"] == 1 and preview["window"] == [10, 74, 20, 100]  # the first validation's (10 s apart)
    assert preview["labels"].shape == (64, 80) and preview["labels"].dtype == np.int32


def test_a_preview_of_a_zoomed_out_survey_frame_is_its_central_part():
    from napari_galseg.jobs.run import _central_part

    assert _central_part((0, 25000, 100, 900), 2048) == (11476, 13524, 100, 900)
    assert _central_part((10, 74, 20, 100), 2048) == (10, 74, 20, 100)


def test_cancel_keeps_the_checkpoint_and_resume_continues_the_epochs(files, tmp_path):
    spec = unet_spec(files, tmp_path, epochs=6)
    handle = start_job(spec)
    wait_for(spec.job_dir, lambda s: len(s.epochs) >= 1 or s.final, timeout=120)
    handle.cancel()
    state = handle.wait(timeout=60)
    assert state.status == "cancelled", state.summary()
    done = len(state.epochs)
    assert 1 <= done < 6
    from napari_galseg.training.checkpoints import load_checkpoint

    checkpoint = load_checkpoint(tmp_path / "job" / "checkpoints" / "last.pt")
    assert checkpoint["epoch"] == done and "model" in checkpoint
    assert not (tmp_path / "job-model").exists()  # an unfinished model is not published
    losses = [e["train_loss"] for e in state.epochs]

    state = resume_job(spec.job_dir).wait(timeout=120)
    assert state.status == "finished", state.summary()
    assert [e["epoch"] for e in state.epochs] == list(range(1, 7))
    resumed = [r for r in state.records if r["kind"] == "epoch"][done:]
    assert resumed[0]["epoch"] == done + 1  # the resumed run starts after the checkpoint, not at 1
    history = json.loads((tmp_path / "job-model" / "config.json").read_text())["history"]
    assert [h["epoch"] for h in history] == list(range(1, 7))
    assert [h["train_loss"] for h in history[:done]] == pytest.approx(losses)
    with pytest.raises(JobSpecError, match="has finished"):
        resume_job(spec.job_dir)


def test_a_bad_input_file_ends_failed_with_the_error_in_the_log(files, tmp_path):
    not_fits = tmp_path / "img.fits"
    not_fits.write_text("not a FITS file")
    spec = unet_spec(files, tmp_path)
    spec.image = str(not_fits)
    state = start_job(spec).wait(timeout=60)
    assert state.status == "failed"
    assert state.error.startswith(f"image file {not_fits} is not a readable FITS image")
    assert "Traceback" in state.records[-1]["traceback"]
    spec = unet_spec(files, tmp_path, name="job2")
    spec.truth = str(tmp_path / "missing.fits")
    state = start_job(spec).wait(timeout=60)
    assert state.status == "failed" and state.error == f"truth file {tmp_path / 'missing.fits'} does not exist"


def test_a_forest_job_needs_no_checkpoints(files, tmp_path):
    spec = JobSpec(method="forest", image=str(files["image"]), rms=str(files["rms"]), truth=str(files["truth"]),
                   output=str(tmp_path / "forest"), job_dir=str(tmp_path / "fjob"), runner="thread",
                   settings={"n_estimators": 5, "max_depth": 6, "max_train_pixels": 2000})
    with pytest.raises(JobSpecError, match="does not run on a torch device"):
        JobSpec.from_dict({**spec.to_dict(), "device": "cpu"})
    state = start_job(spec).wait(timeout=120)
    assert state.status == "finished", state.summary()
    from napari_galseg.segmenters import get

    assert get("forest").load(tmp_path / "forest").params.n_estimators == 5
    assert not (tmp_path / "fjob" / "checkpoints").exists()


def test_a_running_job_whose_process_is_gone_is_said_so_and_can_be_resumed(files, tmp_path):
    import socket
    import subprocess
    import sys

    from napari_galseg.jobs.runners import prepare

    spec = unet_spec(files, tmp_path)
    prepare(spec)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    log.append(spec.job_dir, "status", status="running", pid=int(gone.stdout), host=socket.gethostname())
    state = read_log(spec.job_dir)
    assert state.orphaned and state.summary().startswith("running (its process is gone; resume it)")
    prepare(spec, resume=True)  # allowed: nothing runs it any more
    for pid, host in ((os.getpid(), socket.gethostname()), (int(gone.stdout), "another-node")):
        log.append(spec.job_dir, "status", status="running", pid=pid, host=host)
        assert not read_log(spec.job_dir).orphaned
    with pytest.raises(JobSpecError, match="is still running; cancel it first"):
        prepare(spec, resume=True)


def test_a_like_job_needs_no_truth_and_checks_its_field_size(tmp_path):
    """``like: true`` trains on fields simulated like the image: the truth may be empty."""
    base = dict(method="forest", image=str(tmp_path / "img.fits"), output=str(tmp_path / "m"), job_dir=str(tmp_path / "j"))
    with pytest.raises(JobSpecError, match="'truth' must be a non-empty text"):
        JobSpec(truth="", **base).check()
    JobSpec(truth="", like=True, **base).check()
    with pytest.raises(JobSpecError, match="'like_size' must be a whole number of pixels >= 256"):
        JobSpec(truth="", like=True, like_size=100, **base).check()
    with pytest.raises(JobSpecError, match="'like' must be true or false"):
        JobSpec(truth="", like="yes", **base).check()
    assert JobSpec.from_dict(JobSpec(truth="", like=True, **base).to_dict()).like is True
