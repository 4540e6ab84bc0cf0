"""Synthetic fields: determinism, truth consistency, streaming to FITS equals the in-memory field."""
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from napari_galseg import synth


@pytest.fixture(scope="module")
def field():
    return synth.make_field(600, seed=7)


def test_same_seed_same_field_other_seed_other_field(field):
    again = synth.make_field(600, seed=7)
    np.testing.assert_array_equal(field.image, again.image)
    np.testing.assert_array_equal(field.truth, again.truth)
    other = synth.make_field(600, seed=8)
    assert not np.array_equal(field.truth, other.truth)


def test_types_and_ranges(field):
    assert field.image.dtype == np.float32 and field.rms.dtype == np.float32
    assert field.truth.dtype == np.int32 and field.truth.shape == (600, 600)
    assert np.isfinite(field.image).all() and (field.rms > 0).all()
    # sky dominates: the median pixel is near the sky level, scattered by about the rms
    resid = (field.image - field.noiseless)
    sky_like = resid[field.truth == 0]
    assert abs(np.median(sky_like) - field.options.sky_level) < 0.3 * field.options.sky_level
    # galaxies of many sizes: most objects small and faint, a few large
    areas = field.catalog["truth_area"][field.catalog["truth_area"] > 0]
    assert np.median(areas) < 60 and areas.max() > 500


def test_truth_is_the_brightest_object_above_the_rms_fraction(field):
    cat = field.catalog
    labelled = field.truth > 0
    # every truth pixel has noiseless flux above the stated fraction of the local rms
    assert (field.noiseless[labelled] > field.options.truth_fraction * field.rms[labelled]).all()
    # and no sky pixel does (largest single-object flux <= total flux, so this bounds one way only:
    # sky pixels are where even the total noiseless flux is low, or where only faint wings overlap)
    assert (field.noiseless[~labelled] <= field.options.truth_fraction * field.rms[~labelled] * 4).mean() > 0.99
    # labels are catalog ids, areas in the catalog match the map
    ids, counts = np.unique(field.truth[labelled], return_counts=True)
    assert set(ids) <= set(cat["id"])
    by_id = dict(zip(cat["id"], cat["truth_area"]))
    assert all(by_id[i] == c for i, c in zip(ids, counts))
    # bright objects own their centre pixel
    bright = cat[(cat["flux"] > 2e4)]
    for row in bright[:20]:
        y, x = int(round(row["y"])), int(round(row["x"]))
        if 0 <= y < 600 and 0 <= x < 600:
            assert field.truth[y, x] != 0


def test_field_spans_several_blocks_seamlessly():
    # 1100 px crosses a BLOCK border at 1024: an object straddling it keeps one id on both sides
    f = synth.make_field((200, 1100), seed=3, galaxy_density=3000)
    left, right = f.truth[:, synth.BLOCK - 1], f.truth[:, synth.BLOCK]
    shared = (left == right) & (left > 0)
    assert shared.any()


def test_write_field_equals_make_field_and_refuses_overwrite(tmp_path):
    paths = synth.write_field(tmp_path, size=300, seed=5)
    mem = synth.make_field(300, seed=5)
    with fits.open(paths["image"]) as h:
        np.testing.assert_array_equal(h[0].data, mem.image)
        assert h[0].header["CTYPE1"].startswith("RA")
    with fits.open(paths["truth"]) as h:
        np.testing.assert_array_equal(h[0].data, mem.truth)
        assert h[0].data.dtype.kind == "i" and h[0].header["CONTENT"] == "segmentation"
    with fits.open(paths["rms"]) as h:
        np.testing.assert_array_equal(h[0].data, mem.rms)
    cat = Table.read(paths["catalog"])
    assert len(cat) == len(mem.catalog) and cat["id"][0] == 1
    before = paths["image"].read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        synth.write_field(tmp_path, size=64, seed=1)
    assert paths["image"].read_bytes() == before
    assert not list(tmp_path.glob(".*part"))


def _peak_bytes_writing(path, shape):
    import tracemalloc

    tracemalloc.start()
    synth.write_field(path, size=shape, seed=1, galaxy_density=20, star_density=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def test_write_field_memory_does_not_grow_with_the_frame(tmp_path):
    # streaming: a field four blocks long needs no more memory than a one-block field
    small = _peak_bytes_writing(tmp_path / "small", (1024, 1024))
    large = _peak_bytes_writing(tmp_path / "large", (1024, 4 * 1024))
    assert large < 1.3 * small
    assert large < 20 * synth.BLOCK**2 * 8  # a bounded number of block-sized float64 arrays


def test_bad_options():
    with pytest.raises(ValueError, match="16 px"):
        synth.make_field(4)
    with pytest.raises(ValueError, match="PSF"):
        synth.make_field(64, psf="airy")
    with pytest.raises(TypeError):
        synth.make_field(64, not_an_option=1)
