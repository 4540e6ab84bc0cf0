"""Preprocess widgets in a real viewer: apply each step, display-only, preview, recipes, composite."""
import dask.array as da
import numpy as np
import pytest

from napari_galseg.preprocess import (
    NormaliseParams,
    Recipe,
    RmsParams,
    StretchParams,
    default_recipe,
    normalise,
    rms_channel,
    stretch,
)

pytestmark = pytest.mark.gui


def _field(shape=(120, 160)):
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    rms = (1.0 + xx / shape[1]).astype(np.float32)
    img = 10 + rng.normal(0, 1, shape) * rms
    for y, x, f in [(30, 40, 80.0), (80, 120, 40.0)]:
        img += f * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 15.0)
    return img.astype(np.float32), rms


@pytest.fixture
def viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    img, rms = _field()
    viewer.add_image(img, name="img")
    viewer.add_image(rms, name="rms")
    return viewer


def test_normalise_widget_apply_display_and_recipe(viewer, tmp_path):
    from napari_galseg.widgets.preprocess import NormaliseWidget

    widget = NormaliseWidget(viewer)
    widget.input_combo.value = viewer.layers["img"]
    widget.params.interval.value = "zscale"
    layer = widget.apply()
    assert layer.name == "img [normalise]" and "img [normalise]" in viewer.layers
    expected = normalise(viewer.layers["img"].data, NormaliseParams(interval="zscale"))
    np.testing.assert_array_equal(np.asarray(layer.data), expected)
    assert layer.metadata["galseg_recipe"]["channels"][0]["params"]["vmin"] is not None

    assert widget.display_only()
    params = widget.fitted_params()
    assert viewer.layers["img"].contrast_limits == pytest.approx([params.vmin, params.vmax])

    path = widget.save_recipe(tmp_path / "norm.yaml")
    saved = Recipe.load(path)
    assert saved.is_fitted and saved.channels[0].params.interval == "zscale"
    widget.params.interval.value = "minmax"
    widget.load_recipe(path)
    assert widget.params.interval.value == "zscale"
    assert float(widget.params.vmin.value) == params.vmin  # loaded levels are used as they are


def test_stretch_widget_apply_and_display_only(viewer):
    from napari_galseg.widgets.preprocess import StretchWidget

    widget = StretchWidget(viewer)
    widget.input_combo.value = viewer.layers["img"]
    widget.params.stretch.value = "asinh"
    widget.params.a.value = "0.05"
    layer = widget.apply()
    expected = stretch(viewer.layers["img"].data, StretchParams(stretch="asinh", a=0.05))
    np.testing.assert_array_equal(np.asarray(layer.data), expected)
    assert not widget.display_only()  # asinh needs data
    assert "use Apply" in widget.status.value

    widget.params.stretch.value = "power"
    widget.params.a.value = "0.5"
    assert widget.display_only()
    img = viewer.layers["img"]
    p = widget.fitted_params()
    assert img.gamma == pytest.approx(0.5) and img.contrast_limits == pytest.approx([p.black, p.white])


def test_rms_widget_and_bad_input_messages(viewer):
    from napari_galseg.widgets.preprocess import RmsChannelWidget

    widget = RmsChannelWidget(viewer)
    widget.input_combo.value = viewer.layers["rms"]
    layer = widget.apply()
    assert layer.name == "rms [rms channel]"
    np.testing.assert_array_equal(np.asarray(layer.data), rms_channel(viewer.layers["rms"].data, RmsParams()))
    widget.params.a.value = "not a number"
    widget._report(widget.apply)
    assert widget.status.value.startswith("error:") and "a takes a number, or empty for auto" in widget.status.value


def test_lazy_and_multiscale_inputs_give_lazy_layers(make_napari_viewer):
    from napari_galseg.widgets.preprocess import StretchWidget

    viewer = make_napari_viewer()
    img, _ = _field((128, 128))
    pyramid = [da.from_array(img, chunks=64), da.from_array(img[::2, ::2], chunks=64)]
    viewer.add_image(pyramid, name="big", multiscale=True, contrast_limits=(0, 100))
    widget = StretchWidget(viewer)
    widget.input_combo.value = viewer.layers["big"]
    layer = widget.apply()
    assert layer.multiscale and isinstance(layer.data[0], da.Array)
    np.testing.assert_array_equal(np.asarray(layer.data[0]), stretch(img, widget.fitted_params()))


def test_preview_shows_what_apply_gives(viewer):
    from napari_galseg.widgets.preprocess import PREVIEW_LAYER, StretchWidget

    widget = StretchWidget(viewer)
    widget.input_combo.value = viewer.layers["img"]
    widget.params.stretch.value = "sqrt"
    preview = widget.update_preview()
    assert preview.name == PREVIEW_LAYER
    applied = np.asarray(widget.apply().data)
    np.testing.assert_array_equal(np.asarray(preview.data), applied[: preview.data.shape[0], : preview.data.shape[1]])
    widget.preview_check.value = True
    widget.preview_check.value = False  # switching the preview off removes its layer
    assert PREVIEW_LAYER not in viewer.layers


def test_live_preview_is_debounced_and_follows_parameters(viewer, qtbot):
    from napari_galseg.widgets.preprocess import PREVIEW_LAYER, NormaliseWidget

    widget = NormaliseWidget(viewer)
    widget.input_combo.value = viewer.layers["img"]
    widget.preview_check.value = True
    qtbot.waitUntil(lambda: PREVIEW_LAYER in viewer.layers, timeout=30_000)
    first = np.asarray(viewer.layers[PREVIEW_LAYER].data).copy()
    widget.params.interval.value = "minmax"
    widget.params.interval.value = "zscale"  # two quick changes: one recomputation, with the last value
    qtbot.waitUntil(lambda: not np.array_equal(np.asarray(viewer.layers[PREVIEW_LAYER].data), first), timeout=30_000)
    expected = normalise(viewer.layers["img"].data, NormaliseParams(interval="zscale"))
    np.testing.assert_array_equal(np.asarray(viewer.layers[PREVIEW_LAYER].data), expected)


def test_composite_widget_default_recipe_and_round_trip(viewer, tmp_path):
    from napari_galseg.widgets.preprocess import CompositeWidget

    widget = CompositeWidget(viewer)
    widget.input_combo.value = viewer.layers["img"]
    widget._report(widget.apply)
    assert "choose an rms layer" in widget.status.value
    widget.rms_combo.value = viewer.layers["rms"]
    layer = widget.apply()
    img, rms = viewer.layers["img"].data, viewer.layers["rms"].data
    assert layer.data.shape == (3, *img.shape) and layer.metadata["channel_names"] == ["normalised", "stretched", "rms"]
    np.testing.assert_array_equal(np.asarray(layer.data), default_recipe().apply(img, rms))

    path = widget.save_recipe(tmp_path / "composite.json")
    widget.preset.value = "image-only"
    assert widget.current_recipe().n_channels == 2
    widget.load_recipe(path)
    assert widget.preset.value == "custom" and widget.current_recipe() == Recipe.load(path)
    again = widget.apply()
    np.testing.assert_array_equal(np.asarray(again.data), np.asarray(layer.data))
