"""The models folder: where it is, what it lists, registering a model folder or a finished job."""
import json
import os

import pytest

from napari_galseg.jobs import JobSpec, log, start_job
from napari_galseg.model_folder import ModelFolderError
from napari_galseg.model_registry import (
    RECORD_NAME,
    list_models,
    models_root,
    read_registered,
    register_job,
    register_model,
    user_data_dir,
)
from napari_galseg.synth import write_field


@pytest.fixture(scope="module")
def forest_job(tmp_path_factory):
    """A finished forest job (thread runner, a few trees on a 96² field)."""
    root = tmp_path_factory.mktemp("forest")
    files = write_field(root / "field", size=96, seed=3)
    spec = JobSpec(method="forest", image=str(files["image"]), rms=str(files["rms"]), truth=str(files["truth"]),
                   output=str(root / "job-model"), job_dir=str(root / "forest-job"), runner="thread",
                   settings={"n_estimators": 3})
    state = start_job(spec).wait(timeout=120)
    assert state.status == "finished", state.summary()
    return root / "forest-job"


def test_the_folder_comes_from_the_argument_the_environment_or_the_user_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("GALSEG_MODELS", raising=False)
    assert models_root() == user_data_dir() / "models"
    assert user_data_dir().name == "napari-galseg"
    monkeypatch.setenv("GALSEG_MODELS", str(tmp_path / "env"))
    assert models_root() == tmp_path / "env"
    assert models_root(tmp_path / "given") == tmp_path / "given"


def test_a_finished_job_is_registered_once_with_its_metrics_and_provenance(forest_job, tmp_path):
    models = tmp_path / "models"
    assert list_models(models) == []
    entry = register_job(forest_job, models)
    assert entry.path == models / "forest-job" and entry.method == "forest" and entry.job == str(forest_job.resolve())
    assert entry.provenance["job"]["runner"] == "thread"
    assert entry.provenance["training"]["image"]["path"].endswith("img.fits")
    assert (entry.path / "config.json").exists() and (entry.path / RECORD_NAME).exists()
    # following the same job again (another widget, a restart) does not copy it twice
    assert register_job(forest_job, models).path == entry.path
    assert [m.name for m in list_models(models)] == ["forest-job"]
    # the job's own output stays where its log says
    assert (forest_job.parent / "job-model" / "config.json").exists()
    # the registered copy loads as a model
    from napari_galseg.segmenters import get

    assert get("forest").load(entry.path).fitted


def test_listing_filters_by_method_sorts_newest_first_and_skips_what_is_not_a_model(forest_job, tmp_path):
    models = tmp_path / "models"
    source = forest_job.parent / "job-model"
    first = register_model(source, models)
    second = register_model(source, models, name="job-model")  # the name is taken: a suffix
    assert (first.name, second.name) == ("job-model", "job-model-2")
    record = json.loads((first.path / RECORD_NAME).read_text())
    record["created"] -= 100
    (first.path / RECORD_NAME).write_text(json.dumps(record))
    (models / "junk").mkdir()  # not a model folder
    (models / ".partial-1234").mkdir()  # a copy still under way
    (models / "broken").mkdir()
    (models / "broken" / "config.json").write_text("{not json")
    assert [m.name for m in list_models(models)] == ["job-model-2", "job-model"]
    assert list_models(models, method="unet") == []
    assert "job-model-2 (" in second.label()
    # a folder copied in by hand (no registration record) is listed from its config alone
    os.remove(second.path / RECORD_NAME)
    assert read_registered(second.path).created == pytest.approx((second.path / "config.json").stat().st_mtime)


def test_what_cannot_be_registered_is_refused_in_one_line(tmp_path):
    with pytest.raises(ModelFolderError, match="is not a model folder"):
        register_model(tmp_path / "nothing", tmp_path / "models")
    log.append(tmp_path / "job", "status", status="failed", error="image file x.fits does not exist")
    with pytest.raises(ValueError, match="job job is failed, not finished"):
        register_job(tmp_path / "job", tmp_path / "models")
    assert not (tmp_path / "models").exists() or list_models(tmp_path / "models") == []
