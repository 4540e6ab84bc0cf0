"""Every test runs with its own models folder and jobs folder: nothing reads or writes the user's."""
import pytest


@pytest.fixture(autouse=True)
def _private_models_and_jobs_folders(tmp_path_factory, monkeypatch):
    root = tmp_path_factory.mktemp("galseg-user")
    monkeypatch.setenv("GALSEG_MODELS", str(root / "models"))
    monkeypatch.setenv("GALSEG_JOBS", str(root / "jobs"))
