"""Following a growing job log: each poll reads only what was appended, whole lines only."""
import json

from napari_galseg.jobs import LogFollower, log, read_log
from napari_galseg.jobs.spec import jobs_root, new_job_dir


def test_a_follower_returns_each_new_record_once_and_waits_for_whole_lines(tmp_path):
    follower = LogFollower(tmp_path)
    assert follower.poll() == [] and follower.state.status == "unknown"  # no log yet
    log.append(tmp_path, "status", status="running")
    log.append(tmp_path, "epoch", epoch=1, n_epochs=3, train_loss=0.5)
    assert [r["kind"] for r in follower.poll()] == ["status", "epoch"]
    assert follower.poll() == []
    with open(tmp_path / log.LOG_NAME, "ab") as f:  # a record half written
        f.write(b'{"time": 2, "kind": "epoch", "epoch": 2, ')
    assert follower.poll() == []
    with open(tmp_path / log.LOG_NAME, "ab") as f:
        f.write(b'"train_loss": 0.4}\n')
    assert [r["epoch"] for r in follower.poll()] == [2]
    log.append(tmp_path, "status", status="finished")
    follower.poll()
    assert follower.state.status == "finished" and [e["epoch"] for e in follower.state.epochs] == [1, 2]
    assert follower.state.records == read_log(tmp_path).records
    assert follower.offset == (tmp_path / log.LOG_NAME).stat().st_size


def test_a_replaced_log_is_read_again_from_the_start(tmp_path):
    follower = LogFollower(tmp_path)
    for i in range(5):
        log.append(tmp_path, "progress", done=i, total=5)
    assert len(follower.poll()) == 5
    (tmp_path / log.LOG_NAME).write_text(json.dumps({"time": 1, "kind": "status", "status": "queued"}) + "\n")
    assert [r["kind"] for r in follower.poll()] == ["status"]
    assert len(follower.state.records) == 1


def test_new_job_folders_are_claimed_under_the_jobs_root(tmp_path, monkeypatch):
    monkeypatch.setenv("GALSEG_JOBS", str(tmp_path / "env"))
    assert jobs_root() == tmp_path / "env"
    first, second = new_job_dir(None, "unet"), new_job_dir(None, "unet")
    assert first.parent == tmp_path / "env" and first.is_dir() and second.is_dir() and first != second
    assert first.name.startswith("unet-")
    assert second.name == first.name + "-2" or second.name > first.name  # the same second, or the next one
