"""The built-in models: shipped inside the package (no pickles, small), used when no --model is
given, named like the user's models, checked against a frame's conditions, refused plainly when damaged."""
import json
import shutil

import numpy as np
import pytest
from astropy.io import fits

pytest.importorskip("torch")

import napari_galseg.builtin_models as builtin
from napari_galseg.cli import main
from napari_galseg.model_folder import ModelFolderError
from napari_galseg.segmenters import get
from napari_galseg.synth import write_field

MAX_BYTES = 25 * 1024 * 1024


def test_the_built_ins_ship_small_safe_and_loadable():
    found = {m.name: m for m in builtin.list_builtins()}
    assert {"unet-general", "forest-general"} <= set(found)
    total = 0
    for model in found.values():
        files = [p for p in model.path.rglob("*") if p.is_file()]
        assert not [p for p in files if p.suffix in (".pkl", ".pickle", ".joblib", ".pt", ".pth")]
        total += sum(p.stat().st_size for p in files)
        loaded = get(model.method).load(model.path)
        assert loaded.provenance["valid_range"]["psf_fwhm_px"] == [1.5, 6.0]
        card = model.card
        assert card["valid_range"] and card["trained_on"]["tiles"] and card["command"].startswith("scripts/")
        # nothing of the machine it was built on: all the user's cores, whatever device they have
        assert loaded.run_options.n_threads == 0 and loaded.run_options.device == "auto"
    assert total <= MAX_BYTES
    assert builtin.default_model("unet").name == "unet-general" and builtin.default_model("kmeans") is None


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    return write_field(tmp_path_factory.mktemp("frame"), size=256, seed=21)


def test_segment_with_no_model_and_no_rms_uses_the_built_in(frame, tmp_path, capsys):
    out = tmp_path / "unet.fits"
    assert main(["segment", "unet", str(frame["image"]), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "used the built-in model unet-general" in err and "noise was estimated from the image" in err
    labels, truth = fits.getdata(out), fits.getdata(frame["truth"])
    assert labels.shape == truth.shape and labels.max() > 0
    # by name, like a user's model
    out2 = tmp_path / "forest.fits"
    assert main(["segment", "forest", str(frame["image"]), "--model", "forest-general", "-o", str(out2)]) == 0
    assert fits.getdata(out2).max() > 0


def test_a_model_name_that_is_nowhere_is_one_line(frame, tmp_path, capsys):
    assert main(["segment", "unet", str(frame["image"]), "--model", "no-such-model", "-o", str(tmp_path / "x.fits")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no model folder or model named 'no-such-model'" in err[0] and "unet-general" in err[0]


def test_a_damaged_built_in_says_so_in_one_line(frame, tmp_path, monkeypatch, capsys):
    fake = tmp_path / "builtins"
    shutil.copytree(builtin.BUILTIN_DIR / "unet-general", fake / "unet-general")
    (fake / "unet-general" / "weights.safetensors").write_bytes(b"not weights")
    monkeypatch.setattr(builtin, "BUILTIN_DIR", fake)
    assert main(["segment", "unet", str(frame["image"]), "-o", str(tmp_path / "x.fits")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "corrupted" in err[-1] and not (tmp_path / "x.fits").exists()
    (fake / "unet-general" / "weights.safetensors").unlink()
    assert main(["segment", "unet", str(frame["image"]), "-o", str(tmp_path / "y.fits")]) == 2
    assert "weights" in capsys.readouterr().err


def test_a_frame_outside_the_range_is_warned_and_an_old_folder_is_not(tmp_path, capsys):
    wide = write_field(tmp_path / "wide", size=384, seed=3, psf_fwhm=9.0, star_density=200.0)
    assert main(["segment", "unet", str(wide["image"]), "-o", str(tmp_path / "a.fits")]) == 0
    err = capsys.readouterr().err
    assert "psf_fwhm_px" in err and "outside the range the model was made for (1.5–6.0)" in err
    # a model folder from before conditions were recorded: it loads, and no range is checked
    old = tmp_path / "old"
    shutil.copytree(builtin.BUILTIN_DIR / "unet-general", old)
    config = json.loads((old / "config.json").read_text())
    config["provenance"] = {}
    (old / "config.json").write_text(json.dumps(config))
    (old / "card.json").unlink()
    assert main(["segment", "unet", str(wide["image"]), "--model", str(old), "-o", str(tmp_path / "b.fits")]) == 0
    assert "outside the range" not in capsys.readouterr().err


def test_models_list_shows_the_built_ins_first(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GALSEG_MODELS", str(tmp_path / "models"))
    from napari_galseg.model_registry import register_model

    register_model(builtin.BUILTIN_DIR / "forest-general", name="my-forest")
    assert main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["source"] for r in rows][:2] == ["built-in", "built-in"] and rows[-1]["name"] == "my-forest"
    assert main(["models", "list", "--method", "unet"]) == 0
    out = capsys.readouterr().out
    assert "unet-general" in out and "default" in out and "forest" not in out.split("(models folder")[0]


def test_resolve_prefers_a_path_then_a_built_in_then_the_models_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("GALSEG_MODELS", str(tmp_path / "models"))
    assert builtin.resolve_model("unet-general") == builtin.BUILTIN_DIR / "unet-general"
    mine = tmp_path / "unet-general"
    mine.mkdir()
    monkeypatch.chdir(tmp_path)
    assert builtin.resolve_model("./unet-general") == mine.relative_to(tmp_path).parent / "unet-general"
    with pytest.raises(ModelFolderError, match="galseg models list"):
        builtin.resolve_model("nothing-here")


def test_range_warnings_only_outside_a_recorded_range():
    from napari_galseg.synth.conditions import FrameConditions

    cond = FrameConditions(shape=(100, 100), psf_fwhm_px=8.0)
    assert builtin.range_warnings({"valid_range": {"psf_fwhm_px": [1.5, 6.0]}}, cond)
    assert not builtin.range_warnings({"valid_range": {"psf_fwhm_px": [1.5, 9.0]}}, cond)
    assert not builtin.range_warnings({}, cond)
    assert np.isfinite(cond.psf_fwhm_px)
