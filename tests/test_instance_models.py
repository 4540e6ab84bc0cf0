"""Mask R-CNN and DETR: training lowers the loss, caps above 100 objects, model folders, pretrained folders."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
transformers = pytest.importorskip("transformers")

from napari_galseg.models import detr, maskrcnn
from napari_galseg.segmenters.base import ModelFolderError
from napari_galseg.synth import make_field
from napari_galseg.window import Window

TINY_MASKRCNN = {"widths": [8, 16, 32, 64], "fpn_channels": 16, "size": 64, "rois_per_image": 64}
TINY_DETR = {"d_model": 32, "heads": 8, "encoder_layers": 1, "decoder_layers": 1, "ffn_dim": 64,
             "backbone_widths": [8, 16, 32, 64], "num_queries": 40}


@pytest.fixture(scope="module")
def batch():
    f = make_field(128, seed=2)
    x = (f.image - np.median(f.image)) / f.rms
    inputs = torch.from_numpy(np.stack([x[:64, :64], x[64:, 64:]])[:, None].astype(np.float32)).clamp(-5, 50) / 10
    labels = torch.from_numpy(np.stack([f.truth[:64, :64], f.truth[64:, 64:]]).astype(np.int64))
    assert labels[0].max() > 0
    return inputs, labels


def _train_steps(model, loss_fn, inputs, labels, steps, lr, train_mode=True):
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train(train_mode)
    losses = []
    for _ in range(steps):
        loss = loss_fn(model, inputs, labels)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_maskrcnn_a_few_steps_lower_the_loss(batch):
    torch.manual_seed(0)
    model = maskrcnn.build(in_channels=1, **TINY_MASKRCNN)
    losses = _train_steps(model, maskrcnn.loss, *batch, steps=12, lr=2e-3)
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2]), np.round(losses, 2)


def test_maskrcnn_object_beyond_every_anchor_gets_no_anchor():
    """A galaxy cut to a 1 px sliver at a patch's right edge overlaps no anchor: torchvision made all
    of the patch's anchors positives for it (IoU 0 ties); only the real object's anchors are now."""
    model = maskrcnn.build(in_channels=1, **TINY_MASKRCNN)
    labels = torch.zeros(64, 64, dtype=torch.int64)
    labels[20:26, 30:36] = 1
    labels[10:13, 63] = 2  # in the last column only
    images, targets = model.transform([torch.zeros(1, 64, 64)], [maskrcnn.instance_targets(labels)])
    features = list(model.backbone(images.tensors).values())
    anchors = model.rpn.anchor_generator(images, features)
    (matched,), _ = model.rpn.assign_targets_to_anchors(anchors, targets)
    assert 0 < int((matched == 1).sum()) < 20, int((matched == 1).sum())
    import pickle

    assert type(pickle.loads(pickle.dumps(model)).rpn.proposal_matcher) is type(model.rpn.proposal_matcher)


@pytest.mark.parametrize("kind", ["detr", "mask2former"])
def test_detr_a_few_steps_lower_the_loss(batch, kind):
    torch.manual_seed(0)
    model = detr.build(kind=kind, in_channels=1, **TINY_DETR)
    losses = _train_steps(model, detr.loss, *batch, steps=12, lr=3e-3)
    assert np.mean(losses[-2:]) < np.mean(losses[:2]) - 0.5  # set losses fall slowly, but steadily


def test_detr_from_scratch_trains_its_whole_backbone(batch):
    """transformers' DETR freezes its backbone's batch norm and (by a name rule that misses HF
    ResNets) every backbone weight: from scratch that left a random, unnormalised backbone."""
    torch.manual_seed(0)
    model = detr.build(kind="detr", in_channels=1, **TINY_DETR)
    assert all(p.requires_grad for p in model.parameters())
    assert not [m for m in model.modules() if "Frozen" in type(m).__name__]
    stem = model.detr.model.backbone.model.embedder.embedder.convolution.weight
    before = stem.detach().clone()
    _train_steps(model, detr.loss, *batch, steps=1, lr=1e-3)
    assert not torch.equal(before, stem.detach())


@pytest.mark.parametrize("kind", ["detr", "mask2former"])
@pytest.mark.parametrize("stride", [1, 2, 4])
def test_detr_masks_come_at_the_stem_stride(kind, stride):
    model = detr.build(kind=kind, in_channels=1, **TINY_DETR, stem_stride=stride).eval()
    with torch.no_grad():
        out = model(pixel_values=torch.randn(1, 1, 64, 64))
    masks = out.pred_masks if kind == "detr" else out.masks_queries_logits
    assert masks.shape[-2:] == (64 // stride, 64 // stride)


def test_detr_folder_saved_before_the_trainable_backbone_still_loads():
    """Model folders written before ``stem_stride``/``backbone_norm`` existed hold a frozen-norm DETR."""
    old = {k: v for k, v in {**detr.DEFAULTS, **TINY_DETR, "in_channels": 1}.items()
           if k not in ("stem_stride", "backbone_norm")}
    model = detr.rebuild(old)
    assert [m for m in model.modules() if "Frozen" in type(m).__name__]
    with pytest.raises(ValueError, match="stem_stride must be one of"):
        detr.build(kind="detr", in_channels=1, **TINY_DETR, stem_stride=3)
    from napari_galseg.segmenters import get
    from napari_galseg.settings import SettingError

    with pytest.raises(SettingError, match="stem_stride must be 1, 2 or 4"):
        get("detr")().configure(stem_stride="3")


def test_maskrcnn_returns_more_than_100_detections_per_patch():
    torch.manual_seed(0)
    model = maskrcnn.build(in_channels=1, **{**TINY_MASKRCNN, "size": 128}, max_detections=300, score_threshold=0.0)
    model.eval()
    with torch.no_grad():
        (masks, scores), = maskrcnn.predict(model, torch.randn(1, 1, 128, 128))
    assert masks.shape[0] > 100 and masks.shape[1:] == (128, 128)  # torchvision's default would stop at 100
    assert (scores[:-1] >= scores[1:]).all()


@pytest.mark.parametrize("valid", [(128, 128), (100, 77)])
def test_maskrcnn_box_masks_give_what_pasted_masks_give(valid):
    """predict_boxed skips torchvision's pasting of every mask into a full tile; the instances (full
    tile, and an edge tile's valid part) are exactly those of the pasted masks."""
    from napari_galseg.instance_tiles import tile_instances

    torch.manual_seed(1)
    model = maskrcnn.build(in_channels=1, **{**TINY_MASKRCNN, "size": 128}, max_detections=300, score_threshold=0.0)
    model.eval()
    x = torch.randn(1, 1, 128, 128)
    with torch.no_grad():
        pasted, = maskrcnn.predict(model, x)
        boxed, = maskrcnn.predict_boxed(model, x, mask_threshold=0.5)
    a = tile_instances(pasted, 7, 9, *valid, mask_threshold=0.5)
    b = tile_instances(boxed, 7, 9, *valid)
    assert len(a) == len(b) > 50
    for i, j in zip(a, b):
        assert (i.y0, i.x0, i.score) == (j.y0, j.x0, j.score) and np.array_equal(i.mask, j.mask)


def test_detr_returns_every_query_above_threshold():
    model = detr.build(kind="detr", in_channels=1, **{**TINY_DETR, "num_queries": 150}).eval()
    with torch.no_grad():
        (masks, scores), = detr.predict(model, torch.randn(1, 1, 64, 64), score_threshold=0.0)
    assert masks.shape == (150, 64, 64) and scores.shape == (150,)


@pytest.mark.parametrize("kind", ["detr", "mask2former"])
def test_detr_mask_quality_scores_are_class_times_mean_mask_probability(kind):
    model = detr.build(kind=kind, in_channels=1, **TINY_DETR).eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        (masks, by_class), = detr.predict(model, x, score_threshold=0.0)
        (masks_q, by_quality), = detr.predict(model, x, score_threshold=0.0, mask_quality=True, mask_threshold=0.5)
    # the same queries, each scored by its class probability times its mean probability inside its mask
    key = lambda m: tuple(m.flatten()[:8].tolist())
    class_of = {key(m): float(s) for m, s in zip(masks, by_class)}
    for m, s in zip(masks_q, by_quality):
        inside = m > 0.5
        expect = class_of[key(m)] * (float(m[inside].mean()) if inside.any() else 0.0)
        assert float(s) == pytest.approx(expect, rel=1e-5, abs=1e-7)
    assert torch.all(by_quality[:-1] >= by_quality[1:])  # highest first
    assert len(masks_q) == len(masks) == 40


def test_detr_queries_are_twice_the_most_objects_per_patch():
    from napari_galseg.segmenters.detr import DetrSegmenter

    truth = np.zeros((256, 256), np.int32)
    truth[::4, ::4] = np.arange(1, 64 * 64 + 1).reshape(64, 64)  # 1024 one-pixel objects per 128² patch
    data = [(None, truth[:128, :128]), (None, truth[:64, :64])]
    assert 2 * 1024 <= DetrSegmenter()._queries(data) < 2 * 1024 + 50  # rounded up to a multiple of 50
    assert DetrSegmenter()._queries([(None, truth[:8, :8])]) == 100  # never below 100


def test_more_than_100_disjoint_instances_in_one_tile_are_all_painted():
    from napari_galseg.instance_tiles import TileLayout, assemble, instances_from_masks

    truth = np.zeros((128, 128), np.int32)
    truth[2::8, 2::8] = 1
    truth = np.cumsum(truth.ravel()).reshape(truth.shape) * (truth > 0)  # 256 objects
    ids = np.arange(1, truth.max() + 1)
    detect = lambda windows: [instances_from_masks(truth[None] == ids[:, None, None], ids / 300.0)]
    labels, scores, _ = assemble(detect, TileLayout(truth.shape, 128, 0))
    assert labels.max() == 256 and np.isfinite(scores[1:]).all()


# -- segmenters end to end (tiny, short) ----------------------------------------------------------
@pytest.fixture(scope="module")
def small_field():
    return make_field(256, seed=4)


SEG_TINY = {"epochs": 1, "patches_per_epoch": 2, "batch_size": 2, "patch_size": 64, "block_size": 64,
            "val_max_patches": 2, "tile_size": 128, "tile_overlap": 32, "subtract_background": False}


@pytest.mark.parametrize("name, extra", [
    ("maskrcnn", {"widths": [8, 16, 32, 64], "fpn_channels": 16, "rois_per_image": 64}),
    ("detr", {"d_model": 32, "heads": 8, "encoder_layers": 1, "decoder_layers": 1, "ffn_dim": 64,
              "backbone_widths": [8, 16, 32, 64]}),
])
def test_segmenter_trains_predicts_saves_and_loads(tmp_path, small_field, name, extra):
    from napari_galseg.segmenters import get

    f = small_field
    seg = get(name)(**SEG_TINY, **extra, score_threshold=0.0)
    seg.fit(f.image, f.truth, f.rms)
    result = seg.predict(f.image, f.rms)
    labels = result.labels
    assert labels.shape == f.image.shape and labels.dtype == np.int32
    assert len(result.scores) == labels.max() + 1 and np.isnan(result.scores[0])
    assert len(result.catalog) == labels.max() and set(result.catalog["label"]) == set(range(1, labels.max() + 1))
    caps = type(seg).capabilities
    assert caps.scored and caps.trainable and caps.streams_to_fits and caps.streams_catalog and caps.catalog
    for region in [(64, 192, 64, 192), (10, 70, 150, 256)]:  # inside, and at the frame's edge
        window = seg.predict(f.image, f.rms, region=region)
        y0, y1, x0, x1 = region
        assert window.labels.shape == (y1 - y0, x1 - x0) and len(window.scores) == window.labels.max() + 1
        # region_equals_crop: the crop of the whole-frame result, ids renumbered 1..n, scores alike
        crop = result.crop(Window(*region), Window.full(labels.shape))
        np.testing.assert_array_equal(window.labels, crop.labels)
        np.testing.assert_array_equal(window.scores, crop.scores)
        # the catalog is in the region's pixels, like its labels
        for row in window.catalog:
            ys, xs = np.nonzero(window.labels == row["label"])
            assert row["bbox_xmin"] <= xs.min() and xs.max() <= row["bbox_xmax"]
            assert row["bbox_ymin"] <= ys.min() and ys.max() <= row["bbox_ymax"]
    assert caps.region_equals_crop and labels.max() > 5  # enough detections for the check to mean something
    seg.save(tmp_path / "m")
    assert (tmp_path / "m" / "weights.safetensors").exists() and not list((tmp_path / "m").glob("*.pt"))
    again = type(seg).load(tmp_path / "m")
    np.testing.assert_array_equal(again.predict(f.image, f.rms).labels, labels)
    # another kind of folder is refused plainly
    other = "detr" if name == "maskrcnn" else "maskrcnn"
    with pytest.raises(ModelFolderError, match=f"holds a '{name}' model"):
        get(other).load(tmp_path / "m")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps({"model_type": "detr"}))
    with pytest.raises(ModelFolderError, match="not a napari-galseg model config"):
        type(seg).load(tmp_path / "hf")


def test_local_pretrained_folder_checks(tmp_path):
    model = detr.build(kind="detr", in_channels=3, **TINY_DETR)
    model.save_pretrained(tmp_path / "pre")
    loaded = detr.from_pretrained(tmp_path / "pre", in_channels=3, num_queries=60)
    assert loaded.config.num_queries == 60 and loaded.config.num_labels == 1
    with pytest.raises(detr.PretrainedFolderError, match="3-channel images but the preprocessing recipe makes 2"):
        detr.from_pretrained(tmp_path / "pre", in_channels=2, num_queries=60)
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(detr.PretrainedFolderError, match="'bert' model"):
        detr.from_pretrained(tmp_path / "bert", 3, 60)
    with pytest.raises(detr.PretrainedFolderError, match="no config.json"):
        detr.from_pretrained(tmp_path, 3, 60)


def test_detr_predicts_on_tiles_of_its_training_patch_size(tmp_path, small_field):
    """The query cap and the image-normalised position code were learned on patches of that size."""
    from napari_galseg.segmenters import get

    tiny = {k: v for k, v in SEG_TINY.items() if k not in ("tile_size", "tile_overlap")}
    seg = get("detr")(**tiny, d_model=32, encoder_layers=1, decoder_layers=1, ffn_dim=64, backbone_widths=[8, 16, 32, 64])
    assert seg.run_options.tile_size == 256
    seg.fit(small_field.image, small_field.truth, small_field.rms)
    assert (seg.run_options.tile_size, seg.run_options.tile_overlap) == (64, 16)
    seg.save(tmp_path / "m")
    assert type(seg).load(tmp_path / "m").run_options.tile_size == 64
    chosen = get("detr")(**SEG_TINY, d_model=32, encoder_layers=1, decoder_layers=1, ffn_dim=64,
                         backbone_widths=[8, 16, 32, 64])
    chosen.fit(small_field.image, small_field.truth, small_field.rms)
    assert chosen.run_options.tile_size == 128  # a tile size the user chose is kept
    as_default = get("detr")(**tiny, tile_size=256, d_model=32, encoder_layers=1, decoder_layers=1, ffn_dim=64,
                             backbone_widths=[8, 16, 32, 64])
    as_default.fit(small_field.image, small_field.truth, small_field.rms)
    assert as_default.run_options.tile_size == 256  # even when it is the default's value
