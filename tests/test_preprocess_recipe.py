"""Recipes: fit once, apply anywhere; round trips through JSON/YAML give bit-identical outputs."""
import json

import dask.array as da
import numpy as np
import pytest

from napari_galseg.preprocess import (
    Channel,
    NormaliseParams,
    Recipe,
    StretchParams,
    as_recipe,
    default_recipe,
    image_only_recipe,
)


def field(shape=(96, 128), seed=4):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    rms = (1.0 + 0.5 * xx / shape[1]).astype(np.float32)
    img = 2.0 + rng.normal(0.0, 1.0, shape) * rms
    for y, x, f in [(20, 30, 60.0), (70, 90, 25.0), (50, 20, 200.0)]:
        img += f * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 10.0)
    return img.astype(np.float32), rms


def test_default_recipe_shape_and_range():
    img, rms = field()
    recipe = default_recipe()
    assert recipe.n_channels == 3 and recipe.needs_rms and not recipe.is_fitted
    assert recipe.channel_names == ["normalised", "stretched", "rms"]
    out = recipe.apply(img, rms)
    assert out.shape == (3, *img.shape) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    # asinh with the black level at the 84th percentile: most of the sky is black
    assert 0.75 < np.mean(out[1] == 0) < 0.9


def test_fit_stores_numbers_and_patch_equals_whole():
    img, rms = field()
    fitted = default_recipe().fit(img, rms)
    assert fitted.is_fitted
    p = fitted.channels[0].params
    assert isinstance(p.vmin, float) and isinstance(p.vmax, float)
    whole = fitted.apply(img, rms)
    patch = fitted.apply(img[16:80, 32:96], rms[16:80, 32:96])
    np.testing.assert_array_equal(patch, whole[:, 16:80, 32:96])
    assert fitted.unfitted() == default_recipe()


def test_unfitted_apply_fits_on_its_input():
    img, rms = field()
    recipe = default_recipe()
    np.testing.assert_array_equal(recipe.apply(img, rms), recipe.fit(img, rms).apply(img, rms))


@pytest.mark.parametrize("lazy", ["image", "rms", "both"])
def test_dask_is_lazy_and_equals_numpy(lazy):
    img, rms = field()
    recipe = default_recipe().fit(img, rms)
    dimg = da.from_array(img, chunks=(40, 50)) if lazy in ("image", "both") else img
    drms = da.from_array(rms, chunks=(30, 64)) if lazy in ("rms", "both") else rms
    out = recipe.apply(dimg, drms)
    assert isinstance(out, da.Array) and out.shape == (3, *img.shape)
    assert out.chunks[0] == (3,)
    np.testing.assert_array_equal(out.compute(), recipe.apply(img, rms))


def test_unfitted_dask_fit_matches_numpy_fit():
    img, rms = field()
    lazy = default_recipe().fit(da.from_array(img, chunks=32), da.from_array(rms, chunks=32))
    assert lazy == default_recipe().fit(img, rms)


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_round_trip_text_and_files_bit_identical(tmp_path, fmt):
    img, rms = field()
    recipe = Recipe([
        Channel("normalise", NormaliseParams(interval="zscale")),
        Channel("stretch", StretchParams(stretch="histeq", interval="minmax"), name="eq"),
        Channel("stretch", StretchParams(stretch="log", a=300.0, flatten_background=True, background_box=32)),
        Channel("rms"),
    ]).fit(img, rms)
    text = recipe.to_json() if fmt == "json" else recipe.to_yaml()
    again = Recipe.from_json(text) if fmt == "json" else Recipe.from_yaml(text)
    assert again == recipe
    np.testing.assert_array_equal(again.apply(img, rms), recipe.apply(img, rms))
    path = recipe.save(tmp_path / f"recipe.{fmt}")
    loaded = Recipe.load(path)
    assert loaded == recipe
    np.testing.assert_array_equal(loaded.apply(img, rms), recipe.apply(img, rms))
    if fmt == "json":
        assert json.loads(path.read_text())["format"] == "napari-galseg/recipe"


def test_save_refuses_to_overwrite_when_asked(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("mine")
    with pytest.raises(FileExistsError):
        default_recipe().save(path, overwrite=False)
    assert path.read_text() == "mine"


def test_missing_rms_and_mismatched_shapes_are_clear():
    img, rms = field()
    with pytest.raises(ValueError, match="needs an rms map"):
        default_recipe().apply(img)
    with pytest.raises(ValueError, match="same pixels"):
        default_recipe().apply(img, rms[:-1])
    out = image_only_recipe().apply(img)
    assert out.shape == (2, *img.shape) and not image_only_recipe().needs_rms


def test_bad_recipe_documents_are_clear(tmp_path):
    with pytest.raises(ValueError, match="unknown preprocessing step"):
        Recipe.from_dict({"channels": [{"step": "blur"}]})
    with pytest.raises(ValueError, match="unknown parameter"):
        Recipe.from_dict({"channels": [{"step": "stretch", "params": {"softening": 1}}]})
    with pytest.raises(ValueError, match="'channels'"):
        Recipe.from_dict({"steps": []})
    with pytest.raises(ValueError, match="newer"):
        Recipe.from_dict({"version": 99, "channels": [{"step": "normalise"}]})
    with pytest.raises(ValueError, match="source must be 'rms'"):
        Recipe.from_dict({"channels": [{"step": "rms", "source": "image"}]})
    with pytest.raises(FileNotFoundError):
        Recipe.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("channels: [\n")
    with pytest.raises(ValueError, match="not valid"):
        Recipe.load(bad)


def test_as_recipe_accepts_everything_a_segmenter_may_store(tmp_path):
    recipe = default_recipe()
    assert as_recipe(None) is None
    assert as_recipe(recipe) is recipe
    assert as_recipe(recipe.to_dict()) == recipe
    assert as_recipe("default") == recipe
    assert as_recipe(str(recipe.save(tmp_path / "r.json"))) == recipe
