"""GalSim galaxies beyond smooth profiles: knotty, irregular and merging systems, exact truth kept."""
import numpy as np
import pytest

pytest.importorskip("galsim")

from napari_galseg.synth.galsim_backend import make_galsim_field
from napari_galseg.synth.mosaic import ConditionRange, draw_conditions, make_mosaic

MIX = {"knotty_fraction": 0.25, "irregular_fraction": 0.25, "merger_fraction": 0.25}


@pytest.fixture(scope="module")
def mixed():
    return make_galsim_field(384, seed=5, galaxy_density=600.0, flux_min=1500.0, **MIX)


def test_every_morphology_is_drawn_with_exact_truth(mixed):
    cat = mixed.catalog
    kinds = set(cat["morphology"][cat["kind"] == "galaxy"])
    assert kinds == {"bulge_disk", "knotty", "irregular", "merger"}
    assert set(cat["morphology"][cat["kind"] == "star"]) == {"star"}
    assert not (mixed.truth > 0)[mixed.noiseless <= 0.5 * mixed.rms].any()
    np.testing.assert_array_equal(np.bincount(mixed.truth.ravel(), minlength=len(cat) + 1)[1:], cat["truth_area"])


def _asymmetries(field, kind: str, n: int = 12) -> list[float]:
    """Rotational (CAS) asymmetry of ``n`` galaxies of ``kind`` drawn alone about their centroid:
    0 for a point-symmetric profile."""
    import galsim

    from napari_galseg.synth.galsim_backend import GalSimOptions, _galaxy

    cat = field.catalog
    cat = {k: np.asarray(cat[k]) for k in ("flux", "r_eff", "bulge_fraction", "q", "theta", "morphology")}
    rows = np.nonzero(cat["morphology"] == kind)[0][:n]
    out = []
    for i in rows:
        gal, _ = _galaxy(galsim, int(i), cat, GalSimOptions(), galsim.GSParams(maximum_fft_size=16384), seed=5)
        c = gal.centroid
        img = galsim.Convolve(gal.shift(-c.x, -c.y), galsim.Gaussian(fwhm=1.0)).drawImage(nx=81, ny=81, scale=1.0).array
        out.append(float(np.abs(img - img[::-1, ::-1]).sum() / (2 * np.abs(img).sum())))
    return out


def test_irregulars_knotty_and_mergers_are_not_point_symmetric(mixed):
    """What 'beyond smooth Sérsic profiles' means here: clumpy, lopsided light."""
    smooth = np.median(_asymmetries(mixed, "bulge_disk"))
    assert smooth < 0.01
    for kind in ("knotty", "irregular", "merger"):
        assert np.median(_asymmetries(mixed, kind)) > 0.05 + smooth, kind


def test_default_fields_are_unchanged_by_the_new_kinds():
    plain = make_galsim_field(128, seed=2)
    zero = make_galsim_field(128, seed=2, knotty_fraction=0.0, irregular_fraction=0.0, merger_fraction=0.0)
    np.testing.assert_array_equal(plain.image, zero.image)
    assert set(plain.catalog["morphology"]) <= {"bulge_disk", "star"}


def test_bad_fractions_say_so():
    with pytest.raises(ValueError, match="add up to at most 1"):
        make_galsim_field(64, seed=0, knotty_fraction=0.7, merger_fraction=0.5)


def test_a_given_noise_map_sets_the_noise_and_the_truth():
    noise = np.full((128, 128), 3.0)
    noise[:, 64:] = 6.0
    f = make_galsim_field(128, seed=3, noise_map=noise, galaxy_density=200.0)
    np.testing.assert_array_equal(f.rms, noise)
    sky = f.noiseless < 1e-3
    left, right = (f.image - 200.0)[:, :64][sky[:, :64]], (f.image - 200.0)[:, 64:][sky[:, 64:]]
    assert abs(np.std(left) / 3.0 - 1) < 0.05 and abs(np.std(right) / 6.0 - 1) < 0.05
    assert not (f.truth > 0)[f.noiseless <= 0.5 * noise].any()


def test_mosaic_spans_the_range_with_estimated_noise():
    spec = ConditionRange()
    tiles = draw_conditions(40, seed=1, spec=spec)
    fwhm = [t["psf_fwhm"] for t in tiles]
    assert spec.psf_fwhm[0] <= min(fwhm) and max(fwhm) <= spec.psf_fwhm[1] and max(fwhm) / min(fwhm) > 2.5
    assert {t["psf"] for t in tiles} == {"moffat", "kolmogorov"} and {t["backend"] for t in tiles} == {"galsim", "builtin"}
    m = make_mosaic((2, 2), 128, seed=3, spec=ConditionRange(galaxy_density=(200.0, 300.0)))
    assert m.image.shape == m.truth.shape == m.rms.shape == (256, 256)
    # ids stay unique across tiles, and the noise given to the network is estimated, close to the truth
    ids = [set(np.unique(m.truth[y:y + 128, x:x + 128])) - {0} for y in (0, 128) for x in (0, 128)]
    assert all(not (a & b) for i, a in enumerate(ids) for b in ids[i + 1:])
    ratio = np.median(m.rms / m.true_rms)
    assert 0.9 < ratio < 1.15 and not np.array_equal(m.rms, m.true_rms)
