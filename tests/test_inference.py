"""Tiled inference: blending equals one untiled pass, no seams, streaming, stitched labels, FITS."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_galseg.inference import LabelParams, TiledPredictor, iter_label_strips, labels_from_maps, ramp_window, tile_starts
from napari_galseg.io.write import write_label_strips
from napari_galseg.models.unet import UNet
from napari_galseg.synth import make_field
from napari_galseg.training.patches import instance_targets
from napari_galseg.window import Window


@pytest.fixture(scope="module")
def field():
    return make_field(size=256, seed=1)


@pytest.fixture(scope="module")
def net_forward():
    torch.manual_seed(0)
    net = UNet(2, 2, depth=3, base_width=4).eval()
    # random-init batch norm is an identity; give it statistics so the net is not trivially local
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2)

    def forward(batch):
        with torch.no_grad():
            return torch.sigmoid(net(torch.from_numpy(batch))).numpy()
    return forward


def source_of(image):
    x = np.stack([image, np.sqrt(np.abs(image))]).astype(np.float32)
    return (lambda y0, y1, x0, x1: x[:, y0:y1, x0:x1]), x


def test_tile_layout_and_window():
    assert tile_starts(100, 128, 16) == [0]
    starts = tile_starts(300, 128, 32)
    assert starts[0] == 0 and starts[-1] == 300 - 128
    assert all(b - a <= 128 - 32 for a, b in zip(starts, starts[1:]))
    w = ramp_window(64, 16, True, False)
    assert w.min() > 0 and w[-1] == 1 and w[0] < 0.01 and np.all(np.diff(w[:16]) > 0)
    with pytest.raises(ValueError, match="overlap"):
        TiledPredictor(lambda b: b, 1, tile=64, overlap=64)


def test_pixel_local_model_is_reproduced_exactly(field):
    src, x = source_of(field.image[:200, :230] / 100)
    pred = TiledPredictor(lambda b: b * 2, 2, tile=64, overlap=16, batch_size=3).predict(src, (200, 230))
    np.testing.assert_allclose(pred, 2 * x, rtol=1e-6)


def test_tiled_equals_untiled_and_has_no_seams(field, net_forward):
    img = (field.image - 200) / 50
    src, x = source_of(img)
    untiled = net_forward(x[None])[0]
    tiler = TiledPredictor(net_forward, 2, tile=64, overlap=24, batch_size=4)
    tiled = tiler.predict(src, img.shape)
    diff = np.abs(tiled - untiled)
    assert diff.mean() < 1e-5
    assert diff.max() < 5e-4  # measured 1.3e-5; hard-cut tiles differ by 3e-3
    # no seam: at tile borders the tiled result is as close to the untiled one as anywhere else,
    # and much closer than hard-cut tiles without blending
    hard = TiledPredictor(net_forward, 2, tile=64, overlap=0).predict(src, img.shape)
    borders = [s for s in tile_starts(256, 64, 0) if s]
    seam_hard = np.abs(hard - untiled)[:, :, borders].max()
    seam_tiled = np.abs(tiled - untiled)[:, :, borders].max()
    assert seam_hard > 5 * seam_tiled
    jump = lambda a: np.abs(np.diff(a, axis=2))[:, :, [b - 1 for b in borders]].max()
    assert jump(tiled) <= jump(untiled) + 0.02


def test_rows_are_streamed_and_region_mode(field, net_forward):
    img = (field.image - 200) / 50
    src, x = source_of(img)
    tiler = TiledPredictor(net_forward, 2, tile=64, overlap=16)
    rows = list(tiler.iter_rows(src, img.shape))
    assert rows[0][0] == 0 and rows[-1][1] == 256
    assert all(a[1] == b[0] for a, b in zip(rows, rows[1:]))
    assert max(r[2].shape[1] for r in rows) <= 64  # never more than a tile of rows held finished
    full = np.concatenate([r[2] for r in rows], axis=1)
    view = Window(100, 150, 60, 140)
    window = view.grow(40, img.shape)
    assert window == Window(60, 190, 20, 180)
    part = tiler.predict(src, img.shape, bounds=window.bounds)
    crop = part[(slice(None), *view.within(window))]
    assert np.abs(crop - full[:, 100:150, 60:140]).max() < 0.02
    assert Window(0, 300, 0, 10).grow(8, img.shape) == Window(0, 256, 0, 18)  # clipped to the frame
    with pytest.raises(ValueError, match="inverted"):
        Window(10, 5, 0, 1)


def same_partition(a, b):
    """Equal up to renumbering."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def test_label_strips_match_whole_frame_labelling():
    f = make_field(size=320, seed=4)
    fg, dist = instance_targets(f.truth)
    params = LabelParams(threshold=0.5, seed_threshold=0.3, min_size=1)
    whole = labels_from_maps(fg, dist, params)
    assert whole.max() > 20
    maps = np.stack([fg, dist])
    rows = ((y, min(y + 40, 320), maps[:, y:y + 40]) for y in range(0, 320, 40))
    strips = list(iter_label_strips(rows, halo=48, params=params, min_strip=64))
    assert len(strips) > 2
    stitched = np.concatenate([s[2] for s in strips])
    assert stitched.shape == whole.shape
    assert same_partition(stitched, whole)


def test_touching_galaxies_are_split():
    labels = np.zeros((40, 60), int)
    yy, xx = np.mgrid[:40, :60]
    labels[(yy - 20) ** 2 + (xx - 20) ** 2 < 120] = 1
    labels[((yy - 20) ** 2 + (xx - 38) ** 2 < 120) & (labels == 0)] = 2
    fg, dist = instance_targets(labels)
    out = labels_from_maps(fg, dist)
    assert out.max() == 2 and same_partition(out, labels)


def test_labels_written_strip_by_strip(tmp_path):
    from astropy.io import fits

    labels = np.arange(30 * 20, dtype=np.int32).reshape(30, 20)
    strips = ((y, y + 10, labels[y:y + 10]) for y in range(0, 30, 10))
    write_label_strips(tmp_path / "l.fits", strips, labels.shape)
    assert np.array_equal(fits.getdata(tmp_path / "l.fits"), labels)
    with pytest.raises(FileExistsError):
        write_label_strips(tmp_path / "l.fits", iter(()), labels.shape)
    with pytest.raises(RuntimeError, match="only 10 of 30 rows"):
        write_label_strips(tmp_path / "m.fits", ((0, 10, labels[:10]),), labels.shape)
    with pytest.raises(RuntimeError, match="out of order"):
        write_label_strips(tmp_path / "m.fits", ((10, 20, labels[10:20]),), labels.shape)
    assert not (tmp_path / "m.fits").exists() and not list(tmp_path.glob(".m.fits*"))
