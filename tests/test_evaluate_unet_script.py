"""scripts/evaluate_unet.py refuses wrong arguments in one line, before it spends minutes making fields."""
import pytest
from script_helpers import load_script, one_error_line


@pytest.fixture(scope="module")
def evaluate_unet():
    return load_script("evaluate_unet")


def test_a_missing_model_folder_is_one_line(evaluate_unet, capsys, tmp_path):
    line = one_error_line(evaluate_unet, capsys, ["--model", str(tmp_path / "nope"), "--workdir", str(tmp_path / "w")])
    assert "--model" in line and "not a model folder" in line
    assert not (tmp_path / "w").exists()


def test_settings_a_loaded_model_was_trained_with_are_refused(evaluate_unet, capsys, tmp_path):
    line = one_error_line(evaluate_unet, capsys, ["--model", str(tmp_path), "--set", "depth=5", "--set", "lr=1e-3"])
    assert "depth, lr" in line and "how it predicts" in line


def test_an_unknown_setting_is_refused(evaluate_unet, capsys):
    assert "--set" in one_error_line(evaluate_unet, capsys, ["--set", "no_such_setting=1"])
