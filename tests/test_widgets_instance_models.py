"""Mask R-CNN and DETR prediction widgets: a model folder loaded, field of view and whole image, scores shown."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("transformers")

from skimage.segmentation import relabel_sequential

from napari_galseg.synth import make_field

pytestmark = pytest.mark.gui

TINY = {
    "maskrcnn": {"widths": [8, 16, 32, 64], "fpn_channels": 16, "rois_per_image": 64},
    "detr": {"d_model": 32, "heads": 8, "encoder_layers": 1, "decoder_layers": 1, "ffn_dim": 64,
             "backbone_widths": [8, 16, 32, 64], "num_queries": 40},
}
WIDGETS = {"maskrcnn": "MaskRCNNWidget", "detr": "DetrWidget"}


@pytest.fixture(scope="module")
def field():
    return make_field(256, seed=1)


def save_tiny_model(name, folder, field):
    """A randomly initialised tiny model with a fitted snr recipe, saved as a model folder (no training:
    the widget's job is to load, run and show, whatever the weights are)."""
    from napari_galseg.models import detr
    from napari_galseg.preprocess import snr_recipe
    from napari_galseg.segmenters import get

    seg = get(name)(**TINY[name], score_threshold=0.0, subtract_background=False, tile_size=128, tile_overlap=32,
                    patch_size=128, device="cpu")
    recipe = snr_recipe().fit(field.image, field.rms)
    seg.recipe = recipe.to_dict()
    torch.manual_seed(0)
    if name == "maskrcnn":
        seg.net = seg.build_net(recipe.n_channels, None)
    else:
        p = seg.params
        seg.net = detr.build(kind="detr", in_channels=recipe.n_channels, num_queries=p.num_queries, d_model=p.d_model,
                             heads=p.heads, encoder_layers=p.encoder_layers, decoder_layers=p.decoder_layers,
                             ffn_dim=p.ffn_dim, backbone_widths=list(p.backbone_widths))
    seg.save(folder)
    return type(seg)


@pytest.mark.parametrize("name", ["maskrcnn", "detr"])
def test_instance_widget_predicts_whole_image_and_view_with_scores(make_napari_viewer, qtbot, monkeypatch, tmp_path,
                                                                   field, name):
    from napari_galseg.widgets import segment

    cls = save_tiny_model(name, tmp_path / name, field)
    viewer = make_napari_viewer()
    viewer.add_image(field.image, name="img")
    viewer.add_image(field.rms, name="rms")
    widget = getattr(segment, WIDGETS[name])(viewer)
    assert widget.method == name and widget.segmenter_cls is cls
    widget.rms_combo.value = viewer.layers["rms"]
    widget.model_dir.value = str(tmp_path / name)
    widget._load_model()
    assert widget.status.value.startswith("loaded") and widget.current_params().score_threshold == 0.0

    with qtbot.waitSignal(widget.work_finished, timeout=120000):  # connected before the worker starts
        widget.run(field_of_view=False)
    expected = cls.load(tmp_path / name).predict(field.image, field.rms)
    whole = viewer.layers[name]
    n = int(expected.labels.max())
    assert n > 3, "the tiny model should find something to show"
    np.testing.assert_array_equal(whole.data, expected.labels)
    # each instance's score: in the labels layer's features (status bar on hover) and the catalog's
    np.testing.assert_array_equal(whole.features["index"], np.arange(1, n + 1))
    np.testing.assert_allclose(whole.features["score"], expected.scores[1:])
    assert "scores" in widget.status.value
    points = viewer.layers[f"{name} catalog"]
    np.testing.assert_allclose(points.features["score"], np.asarray(expected.catalog["score"]))
    label = int(np.argmax(expected.scores[1:])) + 1
    ys, xs = np.nonzero(expected.labels == label)
    status = whole.get_status((ys[0], xs[0]), world=True)
    assert f"score: {expected.scores[label]:.3g}"[:10] in status["coordinates"]

    monkeypatch.setattr(segment, "visible_region", lambda layer: (slice(64, 192), slice(32, 160)))
    with qtbot.waitSignal(widget.work_finished, timeout=120000):
        widget.run(field_of_view=True)
    view = viewer.layers[f"{name} [view]"]
    np.testing.assert_allclose(view.translate, [64, 32])
    # region_equals_crop: the view is the crop of the whole-image result (ids renumbered)
    np.testing.assert_array_equal(view.data, relabel_sequential(expected.labels[64:192, 32:160])[0])
    assert len(view.features["score"]) == view.data.max()
    # the view's catalog is in the view's pixels, like its labels: each object's box holds its pixels
    f = viewer.layers[f"{name} [view] catalog"].features
    assert sorted(f["label"]) == list(range(1, int(view.data.max()) + 1))
    for label, x0, x1, y0, y1 in zip(f["label"], f["bbox_xmin"], f["bbox_xmax"], f["bbox_ymin"], f["bbox_ymax"]):
        ys, xs = np.nonzero(view.data == label)
        assert x0 <= xs.min() and xs.max() <= x1 and y0 <= ys.min() and ys.max() <= y1
