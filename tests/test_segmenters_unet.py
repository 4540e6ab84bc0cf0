"""The U-Net segmenter: training, model folder round trip, clear errors, regions, streamed FITS."""
import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_galseg.segmenters import ModelFolderError, get
from napari_galseg.segmenters.unet import UNetSegmenter
from napari_galseg.synth import make_field

TINY = dict(depth=2, base_width=4, patch_size=64, epochs=2, patches_per_epoch=16, batch_size=8,
            val_max_patches=4, lr=1e-2, device="cpu", tile_size=128, tile_overlap=32, halo=32, bf16=False)


@pytest.fixture(scope="module")
def field():
    return make_field(size=256, seed=0)


@pytest.fixture(scope="module")
def trained(field, tmp_path_factory):
    seg = UNetSegmenter(**TINY)
    reports = []
    seg.fit(field.image, field.truth, field.rms, callback=reports.append)
    folder = tmp_path_factory.mktemp("m") / "unet"
    seg.save(folder)
    return seg, folder, reports


def test_registered_and_trainable():
    assert get("unet") is UNetSegmenter and UNetSegmenter.capabilities.trainable


def test_fit_reports_and_records_metrics(trained):
    seg, folder, reports = trained
    assert [r.epoch for r in reports if r.kind == "epoch"] == [1, 2]
    assert set(seg.metrics["validation"]) >= {"loss", "iou", "dice"}
    assert set(seg.metrics["test"]) >= {"loss", "iou", "dice"}
    config = json.loads((folder / "config.json").read_text())
    assert config["method"] == "unet" and config["architecture"]["in_channels"] == 4  # default+snr: normalised, stretched, rms, snr
    assert config["recipe"]["channels"][0]["params"]["vmax"] is not None  # fitted recipe stored
    assert config["provenance"]["training"]["shape"] == [256, 256]
    assert config["patch_size"] == 64 and config["version"]
    assert (folder / "weights.safetensors").exists()


def test_folder_round_trip_gives_identical_predictions(trained, field):
    seg, folder, _ = trained
    result = seg.predict(field.image, field.rms)
    labels, prob = result.labels, result.maps["probability"]
    assert labels.dtype == np.int32 and labels.shape == field.image.shape
    assert prob.dtype == np.float32 and prob.min() >= 0 and prob.max() <= 1
    loaded = UNetSegmenter.load(folder)
    again = loaded.predict(field.image, field.rms)
    assert np.array_equal(labels, again.labels) and np.array_equal(prob, again.maps["probability"])
    assert loaded.run_options == seg.run_options and loaded.train_config == seg.train_config
    via_registry = get("unet").load(folder)
    assert np.array_equal(via_registry.predict(field.image, field.rms).labels, labels)


def test_region_and_fits_output_agree_with_whole_frame(trained, field, tmp_path):
    from astropy.io import fits

    seg, _, _ = trained
    whole = seg.predict(field.image, field.rms)
    labels, prob = whole.labels, whole.maps["probability"]
    region = (64, 192, 32, 160)
    part = seg.predict(field.image, field.rms, region=region)
    assert part.labels.shape == (128, 128)
    np.testing.assert_allclose(part.maps["probability"], prob[64:192, 32:160], atol=1e-3)
    seg.predict_to_fits(field.image, tmp_path / "labels.fits", field.rms)
    on_disk = fits.getdata(tmp_path / "labels.fits")
    assert np.array_equal(on_disk, labels)


def test_folder_errors_are_plain(trained, tmp_path):
    _, folder, _ = trained
    with pytest.raises(ModelFolderError, match="not a model folder"):
        UNetSegmenter.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFolderError, match="not saved by napari-galseg"):
        UNetSegmenter.load(tmp_path / "empty")

    def copy(name, edit=None):
        dst = tmp_path / name
        shutil.copytree(folder, dst)
        if edit:
            config = json.loads((dst / "config.json").read_text())
            edit(config)
            (dst / "config.json").write_text(json.dumps(config))
        return dst

    def drop_channel(cfg):
        cfg["recipe"]["channels"] = cfg["recipe"]["channels"][:2]
    with pytest.raises(ModelFolderError, match="recipe makes 2 channel"):
        UNetSegmenter.load(copy("channels", drop_channel))

    def wider(cfg):
        cfg["architecture"]["base_width"] = 8
    with pytest.raises(ModelFolderError, match="does not match the architecture"):
        UNetSegmenter.load(copy("arch", wider))

    def other_method(cfg):
        cfg["method"] = "forest"
    with pytest.raises(ModelFolderError, match="holds a 'forest' model"):
        UNetSegmenter.load(copy("method", other_method))

    def bad_recipe(cfg):
        cfg["recipe"] = {"channels": [{"step": "nonsense"}]}
    with pytest.raises(ModelFolderError, match="recipe"):
        UNetSegmenter.load(copy("recipe", bad_recipe))

    corrupt = copy("corrupt")
    data = (corrupt / "weights.safetensors").read_bytes()
    (corrupt / "weights.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFolderError, match="corrupted"):
        UNetSegmenter.load(corrupt)
    (corrupt / "weights.safetensors").unlink()
    with pytest.raises(ModelFolderError, match="incomplete"):
        UNetSegmenter.load(corrupt)


def test_input_errors(trained, field):
    seg, _, _ = trained
    # a model whose recipe reads the rms map runs without one: the map is estimated, and said
    labels = seg.predict(field.image).labels
    assert labels.shape == field.image.shape and "noise was estimated" in seg.noise_note
    assert seg.predict(field.image, field.rms) is not None and seg.noise_note is None
    with pytest.raises(RuntimeError, match="no weights"):
        UNetSegmenter().predict(field.image, field.rms)
    with pytest.raises(ValueError, match="truth"):
        UNetSegmenter(**TINY).fit(field.image, None, field.rms)
    with pytest.raises(ValueError, match="unknown setting"):
        UNetSegmenter(widht=3)


def test_bf16_channels_last_inference_matches_fp32(trained, field):
    import dataclasses

    from napari_galseg.training.device import cpu_has_native_bf16

    if not cpu_has_native_bf16():
        pytest.skip("this CPU has no native bf16 (it stays off by default there)")
    seg, _, _ = trained
    prob32 = seg.predict(field.image, field.rms).maps["probability"]
    fast = UNetSegmenter(seg.params, run=dataclasses.replace(seg.run_options, bf16="auto", channels_last="auto"))
    fast.net, fast.recipe = seg.net, seg.recipe
    prob16 = fast.predict(field.image, field.rms).maps["probability"]
    assert np.abs(prob16 - prob32).max() < 0.05


def test_fine_tuning_starts_from_local_weights(trained, field):
    seg, folder, _ = trained
    tuned = UNetSegmenter(**{**TINY, "epochs": 1, "init_weights": str(folder), "lr": 1e-9})
    tuned.fit(field.image, field.truth, field.rms)
    for key, value in seg.net.state_dict().items():
        if key.endswith("weight") and value.ndim == 4:
            assert torch.allclose(value, tuned.net.state_dict()[key], atol=1e-6), key
    with pytest.raises(ValueError, match="init_weights"):
        UNetSegmenter(**{**TINY, "epochs": 1, "init_weights": str(folder), "base_width": 8}).fit(
            field.image, field.truth, field.rms)


def test_network_sees_the_sky_subtracted_image(trained, field):
    from napari_galseg.background import SkySubtracted

    seg, _, _ = trained
    assert seg.params.subtract_background and seg.recipe["name"] == "default+snr"
    sky = seg.input_image(field.image)
    assert isinstance(sky, SkySubtracted) and seg.input_image(field.image) is sky  # mesh estimated once
    assert abs(float(np.median(np.asarray(sky)))) < 0.2 * float(np.median(field.rms))
    raw = UNetSegmenter(**{**TINY, "subtract_background": False})
    assert raw.input_image(field.image) is field.image


def test_folder_saved_before_sky_subtraction_loads_without_it(trained, tmp_path):
    _, folder, _ = trained
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    config = json.loads((old / "config.json").read_text())
    del config["params"]["subtract_background"]
    (old / "config.json").write_text(json.dumps(config))
    assert UNetSegmenter.load(folder).params.subtract_background
    assert not UNetSegmenter.load(old).params.subtract_background


def test_flip_average_is_the_mean_of_the_flipped_tiles_maps(trained, field):
    from napari_galseg.segmenters.base import SettingError
    from napari_galseg.segmenters.unet import _dihedral

    x = torch.arange(2 * 3 * 5, dtype=torch.float32).reshape(1, 2, 3, 5)
    for k in range(8):
        assert torch.equal(_dihedral(_dihedral(x, k), k, inverse=True), x), k
    seg, _, _ = trained
    plain = UNetSegmenter(seg.params, run=seg.run_options)
    plain.net, plain.recipe = seg.net, seg.recipe
    tiles = np.random.default_rng(0).normal(size=(2, seg.net.in_channels, 64, 48)).astype(np.float32)
    one = plain.make_predictor()[0].forward(tiles)
    plain.configure(flip_average=4)
    four = plain.make_predictor()[0].forward(tiles)
    with torch.no_grad():
        by_hand = sum(_dihedral(torch.sigmoid(seg.net(_dihedral(torch.from_numpy(tiles), k))), k, inverse=True)
                      for k in range(4)) / 4
    assert not np.allclose(one, four) and np.allclose(four, by_hand.numpy(), atol=1e-5)
    result = plain.predict(field.image, field.rms)
    assert result.labels.shape == field.image.shape and result.maps["probability"].max() <= 1
    with pytest.raises(SettingError, match="flip_average"):
        plain.configure(flip_average=3)


def test_batch_norms_folded_for_inference_give_the_same_maps():
    """The inference copy folds each batch norm into its convolution: same output, original untouched."""
    import torch

    from napari_galseg.models.unet import UNet

    torch.manual_seed(0)
    net = UNet(1, 2, depth=3, base_width=4)
    for m in net.modules():  # batch norms that are not the identity, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    net.eval()
    fused = net.fused_for_inference()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    x = torch.randn(2, 1, 40, 36)
    with torch.inference_mode():
        expected, got = net(x), fused(x)
    assert torch.allclose(expected, got, atol=1e-4, rtol=1e-4)
