"""Patch datasets: spatial split without leaks, lazy reading, sampling, augmentation, targets."""
import numpy as np
import pytest

pytest.importorskip("torch")

from napari_galseg.preprocess import default_recipe
from napari_galseg.synth import make_field
from napari_galseg.training.patches import (
    Augmentation,
    GridPatchDataset,
    PatchDataset,
    dihedral,
    galaxy_occupancy,
    instance_targets,
    read_window,
    spatial_split,
)


@pytest.fixture(scope="module")
def field():
    return make_field(size=256, seed=0)


@pytest.fixture(scope="module")
def recipe(field):
    return default_recipe().fit(field.image, field.rms)


def footprint(dataset, shape, epochs=3):
    mask = np.zeros(shape, bool)
    p = dataset.patch_size
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        for i in range(len(dataset)):
            y, x = dataset.position(np.random.default_rng([dataset.seed, epoch, i]))
            mask[y:y + p, x:x + p] = True
    return mask


def test_split_blocks_are_disjoint_and_cover_the_field():
    split = spatial_split((300, 260), patch_size=32, block_size=64, val_fraction=0.2, test_fraction=0.2, seed=1)
    count = split.mask("train").astype(int) + split.mask("val") + split.mask("test")
    assert (count == 1).all()
    assert split.train and split.val and split.test
    for box in split.train + split.val + split.test:
        assert box[1] - box[0] >= 64 and box[3] - box[2] >= 64


def test_no_test_or_val_patch_overlaps_training(field, recipe):
    split = spatial_split(field.image.shape, patch_size=48, block_size=96, seed=3)
    train = PatchDataset(field.image, field.truth, field.rms, recipe, split.train, 48, patches_per_epoch=64,
                         augmentation=Augmentation(), seed=0)
    seen = footprint(train, field.image.shape)
    assert not (seen & split.mask("test")).any()
    assert not (seen & split.mask("val")).any()
    assert seen.any()
    grid = GridPatchDataset(field.image, field.truth, field.rms, recipe, split.test, 48)
    test_cover = np.zeros(field.image.shape, bool)
    for y, x in grid.positions:
        test_cover[y:y + 48, x:x + 48] = True
    assert not (test_cover & seen).any()
    assert (test_cover == split.mask("test")).all()  # the test grid covers its blocks exactly


def test_split_is_seeded_and_checks_its_input():
    a = spatial_split((512, 512), 64, seed=5)
    assert a == spatial_split((512, 512), 64, seed=5)
    assert a != spatial_split((512, 512), 64, seed=6)
    with pytest.raises(ValueError, match="smaller than one patch"):
        spatial_split((100, 100), 128)
    with pytest.raises(ValueError, match="not enough"):
        spatial_split((128, 128), 64, block_size=128)


def test_items_are_deterministic_by_seed_and_epoch(field, recipe):
    split = spatial_split(field.image.shape, 64, seed=0)
    make = lambda seed: PatchDataset(field.image, field.truth, field.rms, recipe, split.train, 64, 8,
                                     augmentation=Augmentation(), seed=seed)
    a, b = make(7), make(7)
    x1, y1 = a[3]
    x2, y2 = b[3]
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert x1.shape == (recipe.n_channels, 64, 64) and x1.dtype == np.float32
    assert y1.shape == (2, 64, 64)
    b.set_epoch(1)
    assert not np.array_equal(b[3][0], x1)
    assert not np.array_equal(make(8)[3][0], x1)


def test_galaxy_sampling_avoids_empty_sky(recipe):
    f = make_field(size=256, seed=2, galaxy_density=60, star_density=0)
    split = spatial_split(f.image.shape, 32, block_size=128, val_fraction=0.25, test_fraction=0.25, seed=0)
    def galaxy_share(fraction):
        ds = PatchDataset(f.image, f.truth, f.rms, recipe, split.train, 32, 200, positive_fraction=fraction, seed=0)
        return np.mean([ds[i][1][0].any() for i in range(len(ds))])
    assert galaxy_share(1.0) > galaxy_share(0.0) + 0.2
    assert galaxy_share(1.0) > 0.9


def test_patches_read_lazily_from_dask_and_big_endian_memmap(field, recipe, tmp_path):
    da = pytest.importorskip("dask.array")
    big = np.memmap(tmp_path / "img.raw", dtype=">f4", mode="w+", shape=field.image.shape)
    big[:] = field.image
    ref = read_window(field.image, 10, 74, 20, 84)
    assert np.array_equal(read_window(big, 10, 74, 20, 84), ref)
    assert np.array_equal(read_window(da.from_array(field.image, chunks=50), 10, 74, 20, 84), ref)
    assert read_window(big, 0, 2, 0, 2).dtype.byteorder in "=|"
    split = spatial_split(field.image.shape, 64, seed=0)
    kw = dict(blocks=split.train, patch_size=64, patches_per_epoch=4, seed=1)
    lazy = PatchDataset(da.from_array(field.image, chunks=64), da.from_array(field.truth, chunks=64),
                        da.from_array(field.rms, chunks=64), recipe, **kw)
    eager = PatchDataset(field.image, field.truth, field.rms, recipe, **kw)
    assert np.array_equal(lazy[2][0], eager[2][0])
    occ_lazy = galaxy_occupancy(da.from_array(field.truth, chunks=100), 16)
    assert np.array_equal(occ_lazy, galaxy_occupancy(field.truth, 16))


def test_mismatched_shapes_say_so(field, recipe):
    with pytest.raises(ValueError, match="truth has shape"):
        PatchDataset(field.image, field.truth[:100], field.rms, recipe, [(0, 128, 0, 128)], 64)


def test_dihedral_group_and_augmentation(field):
    a = np.arange(12.0).reshape(3, 4)
    images = [dihedral(a, t) for t in range(8)]
    assert len({im.tobytes() + bytes(im.shape) for im in images}) == 8
    rng = np.random.default_rng(0)
    img, rms, truth = field.image[:64, :64], field.rms[:64, :64], field.truth[:64, :64]
    aug = Augmentation(dihedral=False, noise=0.5, noise_probability=1.0, flux_scale=(1.0, 1.0))
    img2, rms2, truth2 = aug(rng, img, rms, truth)
    assert (rms2 >= rms).all() and (rms2 > rms).any()
    assert np.array_equal(truth2, truth) and not np.array_equal(img2, img)
    flux = Augmentation(dihedral=False, noise=0, flux_scale=(2.0, 2.0 + 1e-9))
    img3, rms3, _ = flux(rng, img, rms, truth)
    sky = np.median(img)
    assert np.allclose(img3 - sky, 2 * (img - sky), rtol=1e-4, atol=1e-2)
    assert np.array_equal(rms3, rms)


def test_targets_split_touching_objects():
    labels = np.zeros((20, 30), int)
    labels[5:15, 3:13] = 1
    labels[5:15, 13:25] = 2  # touches object 1
    fg, dist = instance_targets(labels)
    assert fg.sum() == (labels > 0).sum()
    assert dist.max() == pytest.approx(1.0)
    assert (dist[labels == 1].max(), dist[labels == 2].max()) == (1.0, 1.0)
    assert dist[:, 12].max() == 0 and dist[:, 13].max() == 0  # the shared border is an edge of both
    from scipy import ndimage
    assert ndimage.label(dist > 0.5)[1] == 2
