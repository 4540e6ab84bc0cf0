"""Pixels without data in the networks' path: filled with the recipe's fills going in (the same
function at training and inference), cut out of the labels coming out, tile by tile, strip by strip;
objects keep only their pixels with data and those left under min_size are dropped. The U-Net on a
frame whose mask covers a bright galaxy labels nothing there."""
import numpy as np
import pytest
from astropy.io import fits

from napari_galseg.inference import LabelParams, NoDataReader, iter_label_strips, labels_from_maps, with_no_data
from napari_galseg.instance_tiles import TileLayout, assemble, instances_from_masks, without_no_data
from napari_galseg.preprocess import no_data, snr_recipe
from napari_galseg.synth import make_field


def disks(shape, centres, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    truth = np.zeros(shape, np.int32)
    for k, (cy, cx) in enumerate(centres, start=1):
        truth[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2] = k
    return truth


def maps_of(truth):
    """A probability and distance map that :func:`labels_from_maps` turns back into ``truth``."""
    from napari_galseg.training.patches import instance_targets

    return instance_targets(truth)


def test_no_data_is_a_non_finite_image_or_a_bad_rms():
    image = np.array([[1.0, np.nan, 2.0, 3.0]], np.float32)
    rms = np.array([[1.0, 1.0, 0.0, np.inf]], np.float32)
    assert no_data(image).tolist() == [[False, True, False, False]]
    assert no_data(image, rms).tolist() == [[False, True, True, True]]


def test_network_input_puts_every_channel_at_its_fill_where_there_is_no_data():
    f = make_field(64, seed=3)
    recipe = snr_recipe().fit(f.image, f.rms)
    image, rms = f.image.copy(), f.rms.copy()
    image[10:20] = np.nan  # a masked stripe (the rms is still defined there)
    rms[40:45, :8] = 0.0  # zero weight
    x = recipe.network_input(image, rms)
    missing = no_data(image, rms)
    assert x.shape == (recipe.n_channels, 64, 64) and np.isfinite(x).all()
    np.testing.assert_array_equal(x[:, missing], np.repeat(recipe.fills[:, None], missing.sum(), axis=1))
    np.testing.assert_array_equal(x[:, ~missing], np.asarray(recipe.apply(f.image, f.rms))[:, ~missing])
    assert not np.array_equal(recipe.fills, x[:, 30, 30])  # pixels with data are not at the fills


def test_an_object_cut_by_no_data_keeps_its_pixels_with_data_and_a_small_remnant_goes():
    truth = disks((60, 90), [(30, 20), (30, 65)], 9)
    prob, dist = maps_of(truth)
    missing = np.zeros(truth.shape, bool)
    missing[28:31, :45] = True  # a thin stripe across the first object
    missing[:, 45:] = True
    missing[24:26, 64:66] = False  # 4 pixels of the second object keep their data
    params = LabelParams(threshold=0.5, seed_threshold=0.3, min_size=5)
    labels = labels_from_maps(prob, dist, params, missing)
    assert not labels[missing].any()
    np.testing.assert_array_equal(labels > 0, (truth == 1) & ~missing)  # the remnant of 4 < 5 px is gone
    assert np.unique(labels[labels > 0]).tolist() == [1]  # the stripe does not split it in two
    assert labels_from_maps(prob, dist, LabelParams(0.5, 0.3, 4), missing)[24, 64] > 0


def test_label_strips_cut_no_data_as_one_whole_frame_pass():
    f = make_field(size=320, seed=4)
    prob, dist = maps_of(f.truth)
    missing = np.zeros(f.truth.shape, bool)
    missing[100:130] = True
    missing[:, 200:230] = True
    params = LabelParams(threshold=0.5, seed_threshold=0.3, min_size=5)
    whole = labels_from_maps(prob, dist, params, missing)
    maps = np.stack([prob, dist])
    rows = ((y, y + 40, maps[:, y:y + 40]) for y in range(0, 320, 40))
    reader = NoDataReader(np.where(missing, np.nan, f.image))  # read strip by strip, as the U-Net does
    strips = list(iter_label_strips(with_no_data(rows, reader, 0, 320), halo=48, params=params, min_strip=64))
    stitched = np.concatenate([s[2] for s in strips])
    assert not stitched[missing].any() and whole.max() > 10
    pairs = np.unique(np.stack([stitched.ravel(), whole.ravel()]), axis=1)
    assert np.array_equal(stitched > 0, whole > 0) and len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


def test_instances_lose_their_no_data_pixels_tile_by_tile():
    truth = disks((200, 200), [(50, 50), (50, 150), (150, 100)], 12)
    missing = np.zeros(truth.shape, bool)
    missing[36:65, 30:70] = True  # the whole first object but 2 pixels
    missing[38, 50] = missing[62, 50] = False
    missing[145:200, 100:] = True  # half of the third

    def detect(windows):  # a perfect detector that sees only its tile, then the tile's no-data cut
        out = []
        for y0, y1, x0, x1 in windows:
            crop = truth[y0:y1, x0:x1]
            ids = np.unique(crop[crop > 0])
            found = instances_from_masks(crop[None] == ids[:, None, None], [1.0 - i / 10 for i in ids], y0, x0)
            out.append(without_no_data(found, missing[y0:y1, x0:x1], y0, x0))
        return out

    labels, _, catalog = assemble(detect, TileLayout(truth.shape, tile=96, overlap=40), min_size=5)
    assert not labels[missing].any()
    np.testing.assert_array_equal(labels > 0, (truth > 1) & ~missing)  # the 2-pixel remnant is dropped
    assert len(catalog) == 2


@pytest.fixture(scope="module")
def unet_frame(tmp_path_factory):
    """The built-in U-Net, and a frame (image, rms, mask FITS) whose mask covers the core of the
    brightest galaxy."""
    pytest.importorskip("torch")
    from napari_galseg.builtin_models import builtin_model
    from napari_galseg.segmenters import get

    unet = get("unet").load(builtin_model("unet-general").path)
    unet.run_options.device = "cpu"
    test = make_field(192, seed=2)
    ids, counts = np.unique(test.truth[test.truth > 0], return_counts=True)
    ys, xs = np.nonzero(test.truth == ids[np.argmax(counts)])
    cy, cx = int(np.median(ys)), int(np.median(xs))
    bad = np.zeros(test.image.shape, bool)
    bad[max(0, cy - 4): cy + 5, max(0, cx - 4): cx + 5] = True
    root = tmp_path_factory.mktemp("unet-mask")
    fits.writeto(root / "img.fits", test.image)
    fits.writeto(root / "rms.fits", test.rms)
    fits.writeto(root / "mask.fits", bad.astype(np.uint8))
    return unet, root, test, bad


def test_the_unet_labels_nothing_under_a_mask_over_a_bright_galaxy(unet_frame):
    from napari_galseg.frames import open_frame

    unet, root, test, bad = unet_frame
    plain = np.asarray(unet.predict(test.image, test.rms).labels)
    assert plain[bad].all()  # without the mask the galaxy's core is labelled: the check can fail
    frame = open_frame(root / "img.fits", noise=root / "rms.fits", mask=str(root / "mask.fits"))
    result = unet.predict(frame.image, frame.rms)
    labels = np.asarray(result.labels)
    assert not labels[bad].any()
    assert np.isnan(result.maps["probability"][bad]).all()
    ring = np.zeros_like(bad)
    ring[np.nonzero(bad)[0].min() - 2: np.nonzero(bad)[0].max() + 3,
         np.nonzero(bad)[1].min() - 2: np.nonzero(bad)[1].max() + 3] = True
    ring &= ~bad
    assert labels[ring].any()  # the galaxy around the mask keeps its pixels with data
    # streamed strip by strip to FITS: the same labels
    out = unet.predict_to_fits(frame.image, root / "labels.fits", frame.rms)
    np.testing.assert_array_equal(np.asarray(out.labels), labels)
