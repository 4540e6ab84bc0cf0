"""scripts/evaluate_unet.py refuses wrong arguments in one line, before it spends minutes making fields."""
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "evaluate_unet.py"


@pytest.fixture(scope="module")
def evaluate_unet():
    spec = importlib.util.spec_from_file_location("evaluate_unet", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _error(evaluate_unet, capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        evaluate_unet.main(argv)
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert len(lines) == 1
    return lines[0]


def test_a_missing_model_folder_is_one_line(evaluate_unet, capsys, tmp_path):
    line = _error(evaluate_unet, capsys, ["--model", str(tmp_path / "nope"), "--workdir", str(tmp_path / "w")])
    assert "--model" in line and "not a model folder" in line
    assert not (tmp_path / "w").exists()


def test_settings_a_loaded_model_was_trained_with_are_refused(evaluate_unet, capsys, tmp_path):
    line = _error(evaluate_unet, capsys, ["--model", str(tmp_path), "--set", "depth=5", "--set", "lr=1e-3"])
    assert "depth, lr" in line and "how it predicts" in line


def test_an_unknown_setting_is_refused(evaluate_unet, capsys):
    assert "--set" in _error(evaluate_unet, capsys, ["--set", "no_such_setting=1"])
