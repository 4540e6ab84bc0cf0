"""scripts/evaluate_instances.py scores a saved model with other post-processing (``--load``), and
refuses wrong arguments in one line before it makes fields."""
import json

import pytest
from script_helpers import load_script, one_error_line

pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def evaluate_instances():
    return load_script("evaluate_instances")


@pytest.fixture(scope="module")
def detr_folder(tmp_path_factory):
    from napari_galseg.segmenters import get
    from napari_galseg.synth import make_field

    field = make_field(256, seed=4)
    model = get("detr")(epochs=1, patches_per_epoch=2, batch_size=2, patch_size=64, block_size=64, val_max_patches=2,
                        d_model=32, encoder_layers=1, decoder_layers=1, ffn_dim=64, backbone_widths=[8, 16, 32, 64],
                        kind="mask2former", subtract_background=False, score_threshold=0.0, device="cpu")
    model.fit(field.image, field.truth, field.rms)
    folder = tmp_path_factory.mktemp("models") / "detr"
    model.save(folder)
    return folder


def test_a_loaded_model_is_scored_with_the_post_processing_set(evaluate_instances, detr_folder, tmp_path):
    work = tmp_path / "w"
    argv = ["--load", f"detr={detr_folder}", "--test-size", "256", "--skip-photutils", "--tiled-crop", "0",
            "--workdir", str(work)]
    assert evaluate_instances.main([*argv, "--set", "detr.mask_quality=true", "--set", "detr.min_free_fraction=0.8"]) == 0
    result = json.loads((work / "evaluation.json").read_text())["methods"]["detr"]
    assert result["train_seconds"] is None and result["n_true"] > 10 and 0.0 <= result["ap"] <= 1.0
    assert not (work / "detr").exists()  # nothing trained, nothing saved


def test_settings_a_loaded_model_was_trained_with_are_refused(evaluate_instances, detr_folder, capsys, tmp_path):
    line = one_error_line(evaluate_instances, capsys, ["--load", f"detr={detr_folder}", "--set", "detr.d_model=128",
                                               "--set", "detr.lr=1e-3", "--workdir", str(tmp_path / "w")])
    assert "d_model, lr" in line and "how it predicts" in line
    assert not (tmp_path / "w").exists()


def test_a_missing_model_folder_is_one_line(evaluate_instances, capsys, tmp_path):
    line = one_error_line(evaluate_instances, capsys, ["--load", f"detr={tmp_path / 'nope'}", "--workdir", str(tmp_path / "w")])
    assert "--load" in line and "nope" in line
    assert not (tmp_path / "w").exists()


def test_a_wrong_post_processing_value_is_one_line(evaluate_instances, detr_folder, capsys, tmp_path):
    line = one_error_line(evaluate_instances, capsys, ["--load", f"detr={detr_folder}", "--set", "detr.min_free_fraction=2"])
    assert "min_free_fraction must be between 0 and 1" in line
