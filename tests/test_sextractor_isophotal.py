"""The batched isophotal measurements and the batched deblending front give what the per-detection
code gave, bit for bit: every row's keys in the same order, the same values and the same Python types.

Each field runs through ``extract`` twice: as it is, and with ``isophotal_rows`` replaced by a loop of
:func:`isophotal_row` (the per-detection numpy code) and every detection sent through ``deblend``
(which returns early itself when it cannot split). The rows given to CLEAN's list are caught and
compared, then the columns and the segmentation.
"""
from __future__ import annotations

import importlib

import numpy as np
import pytest
from isophotal_reference import _Weighted, isophotal_row

from napari_galseg.sextractor import ExtractSettings, extract
from napari_galseg.sextractor.classstar import NISO
from napari_galseg.sextractor.deblend import _local_maxima, may_split
from napari_galseg.sextractor.extract import OBJ_MERGED, _filter
from napari_galseg.sextractor.isophotal import _ISO_EXPO, isophotal_rows
from napari_galseg.sextractor.weights import WeightSettings
from napari_galseg.synth import make_field

cleaning = importlib.import_module("napari_galseg.sextractor.cleaning")
isophotal_mod = importlib.import_module("napari_galseg.sextractor.isophotal")
deblend_mod = importlib.import_module("napari_galseg.sextractor.deblend")


def _rows_one_by_one(cids, xs, ys, val, cval, offsets, dthresh, thresh, var, gain, h, w, minarea, *, objects=None,
                     centers=None, pthr=None, pvar=None, gainflag=False, threshfac=1.0):
    offsets = np.asarray(offsets, np.int64)
    objects = np.arange(len(offsets) - 1) if objects is None else objects
    rows = []
    for n, k in enumerate(objects):
        sl = slice(int(offsets[k]), int(offsets[k + 1]))
        opt = None if pthr is None else _Weighted(pthr[sl], pvar[sl], gainflag, threshfac)
        rows.append(isophotal_row(cids[n], ys[sl], xs[sl], val[sl], cval[sl], dthresh, thresh, var, gain, h, w,
                                  minarea, center=None if centers is None else centers[n], opt=opt))
    return rows


def _every(xs, ys, cval, offsets, nthresh, mincont):
    return np.ones(len(offsets) - 1, bool)


def _run(monkeypatch, image, settings, reference: bool):
    caught = []
    add = cleaning.CleanList.add

    def catch(self, row):
        caught.append(dict(row))
        return add(self, row)

    with monkeypatch.context() as m:
        m.setattr(cleaning.CleanList, "add", catch)
        if reference:
            m.setattr(isophotal_mod, "isophotal_rows", _rows_one_by_one)
            m.setattr(deblend_mod, "may_split", _every)
        res = extract(image.copy(), settings)
    return caught, res


def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, float) and np.isnan(a):
        return np.isnan(b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _compare(monkeypatch, image, settings):
    new_rows, new = _run(monkeypatch, image, settings, reference=False)
    old_rows, old = _run(monkeypatch, image, settings, reference=True)
    assert len(new_rows) == len(old_rows) > 0
    for rn, ro in zip(new_rows, old_rows):
        assert list(rn) == list(ro)  # the same keys in the same order
        bad = [k for k in ro if not _same(rn[k], ro[k])]
        assert not bad, (bad, [(rn[k], ro[k]) for k in bad])
    assert list(new.columns) == list(old.columns)
    for k in old.columns:
        assert new.columns[k].dtype == old.columns[k].dtype, k
        assert np.array_equal(new.columns[k], old.columns[k], equal_nan=True), k
    assert np.array_equal(new.segmentation, old.segmentation)
    return new_rows


@pytest.mark.parametrize("seed,fwhm,density,minarea", [(1, 3.0, 3000, 5), (2, 2.0, 6000, 3), (3, 4.5, 1500, 9)])
@pytest.mark.parametrize("mincont", [0.005, 1.0])
def test_batched_rows_equal_the_per_detection_rows(monkeypatch, seed, fwhm, density, minarea, mincont):
    image = make_field(256, seed, psf_fwhm=fwhm, galaxy_density=density).image.astype(np.float32)
    s = ExtractSettings(apertures=(4.0,), deblend_mincont=mincont, minarea=minarea, gain=2.0 if seed != 2 else 0.0,
                        clean=seed != 3)
    rows = _compare(monkeypatch, image, s)
    if mincont < 1.0:
        assert any(r["_flag"] & OBJ_MERGED for r in rows)  # deblended branches were measured


@pytest.mark.parametrize("wtype,gain", [("MAP_RMS", True), ("MAP_VAR", False), ("MAP_WEIGHT", True)])
def test_batched_rows_with_a_weight_map(monkeypatch, wtype, gain):
    f = make_field(256, 4, psf_fwhm=3.0, galaxy_density=6000)
    image = f.image.astype(np.float32)
    sig = float(np.median(np.abs(image - np.median(image)))) * 1.4826
    rms = np.full(image.shape, sig, np.float32) * np.linspace(0.8, 1.6, 256, dtype=np.float32)  # a gradient
    rms[:, 128:] *= 2
    rng = np.random.default_rng(4)
    image[:, 128:] += (rng.normal(size=(256, 128)) * rms[:, 128:] * np.sqrt(3)).astype(np.float32)
    raw = {"MAP_RMS": rms, "MAP_VAR": rms**2, "MAP_WEIGHT": 1.0 / rms**2}[wtype]
    raw = raw.copy()
    raw[100:120, 50:60] = 0.0 if wtype == "MAP_WEIGHT" else 1e31  # no data
    s = ExtractSettings(apertures=(4.0,), deblend_mincont=0.005, gain=2.0,
                        weight=WeightSettings(type=wtype, image=raw, gain=gain))
    rows = _compare(monkeypatch, image, s)
    assert len({r["_dthresh"] for r in rows}) > 20  # each detection's own threshold
    assert any(r["_flag"] & OBJ_MERGED for r in rows)


def test_batched_rows_without_a_filter_absolute_threshold_and_flag_maps(monkeypatch):
    image = make_field(256, 5, psf_fwhm=2.5, galaxy_density=4000).image.astype(np.float32)
    sig = float(np.std(image[:30, :30]))
    fl = np.zeros(image.shape, np.int32)
    fl[:, :90] |= 1
    fl[np.random.default_rng(5).random(fl.shape) < 0.05] |= 4
    s = ExtractSettings(kernel=None, thresh_absolute=True, detect_thresh=2 * sig, analysis_thresh=2.5 * sig,
                        deblend_mincont=0.01, flag_images=(fl, fl * 3), flag_types=("OR", "MAX"))
    _compare(monkeypatch, image, s)


def test_isophotal_rows_direct_with_centres_and_subsets():
    """Objects given as a subset of the offsets, some with a core centre, against isophotal_row."""
    rng = np.random.default_rng(0)
    xs, ys, val, cval, offsets = [], [], [], [], [0]
    for n in (1, 2, 5, 8, 9, 40, 130, 300):
        x0, y0 = rng.integers(0, 50, 2)
        cells = rng.choice(400, n, replace=False)
        xs.append(x0 + cells % 20)
        ys.append(y0 + cells // 20)
        cval.append(rng.normal(5, 3, n).astype(np.float32))
        val.append((cval[-1] + rng.normal(0, 1, n)).astype(np.float32))
        offsets.append(offsets[-1] + n)
    xs, ys = np.concatenate(xs).astype(np.int64), np.concatenate(ys).astype(np.int64)
    val, cval = np.concatenate(val), np.concatenate(cval)
    objects = np.array([7, 0, 3, 5, 6, 1])
    centers = [None, (2.5, 3.25), None, (40.0, 31.5), (3.0, 44.0), None]
    args = (1.3, 1.5, 0.7, 2.0, 60, 60, 5)
    new = isophotal_rows(list(range(6)), xs, ys, val, cval, offsets, *args, objects=objects, centers=centers)
    old = _rows_one_by_one(list(range(6)), xs, ys, val, cval, offsets, *args, objects=objects, centers=centers)
    for rn, ro in zip(new, old):
        assert list(rn) == list(ro)
        assert all(_same(rn[k], ro[k]) for k in ro), [k for k in ro if not _same(rn[k], ro[k])]
    pthr = (np.abs(cval) * 0.3 + 1).astype(np.float32)
    pvar = (np.abs(val) * 0.1 + 0.5).astype(np.float32)
    for gainflag in (False, True):
        kw = dict(objects=objects, centers=centers, pthr=pthr, pvar=pvar, gainflag=gainflag, threshfac=1.2)
        new = isophotal_rows(list(range(6)), xs, ys, val, cval, offsets, *args, **kw)
        old = _rows_one_by_one(list(range(6)), xs, ys, val, cval, offsets, *args, **kw)
        for rn, ro in zip(new, old):
            assert list(rn) == list(ro)
            assert all(_same(rn[k], ro[k]) for k in ro), [k for k in ro if not _same(rn[k], ro[k])]
    assert isophotal_rows([], xs, ys, val, cval, offsets, *args, objects=np.zeros(0, np.int64)) == []


def test_iso_levels_use_pythons_pow():
    """The compiled levels call the C library's pow() like Python's ** (0.5 included)."""
    from napari_galseg.sextractor.classstar import iso_areas

    rng = np.random.default_rng(1)
    for _ in range(2000):
        thresh = float(np.float32(rng.uniform(0.01, 10)))
        peak = float(np.float32(thresh * np.exp(rng.uniform(0, 12))))
        levels = np.array([thresh * (peak / thresh) ** (i / NISO) for i in range(NISO)], np.float32)
        val = np.concatenate([levels, np.nextafter(levels, np.float32(np.inf)), [np.float32(peak)]]).astype(np.float32)
        n = len(val)
        new = isophotal_rows([0], np.arange(n), np.zeros(n, np.int64), val, val, [0, n], 0.001, thresh, 1.0, 0.0,
                             10, n + 2, 3)[0]["_iso"]
        assert np.array_equal(new, iso_areas(val, float(val.max()), float(np.float32(thresh))))
    assert list(_ISO_EXPO) == [i / NISO for i in range(NISO)]


def test_may_split_is_deblends_early_exit():
    image = make_field(256, 6, psf_fwhm=3.0, galaxy_density=5000).image.astype(np.float32)
    s = ExtractSettings()
    sub = image - np.median(image)
    filt = _filter(sub, s.kernel, True)
    above = filt > 1.5 * np.std(sub[:40, :40])
    from napari_galseg.sextractor.lutz import lutz_lists

    flat, offsets = lutz_lists(above, 3)
    ys, xs = flat // 256, flat % 256
    cval = filt[ys, xs]
    got = may_split(xs, ys, cval, offsets, 32, 0.005)
    want = []
    for k in range(len(offsets) - 1):
        ox, oy, oc = xs[offsets[k]:offsets[k + 1]], ys[offsets[k]:offsets[k + 1]], cval[offsets[k]:offsets[k + 1]]
        sx, sy = int(ox.min()), int(oy.min())
        submap = np.full((int(oy.max()) - sy + 1, int(ox.max()) - sx + 1), -1, np.int64)
        submap[oy - sy, ox - sx] = np.arange(len(ox))
        want.append(_local_maxima(submap, oc, ox, oy, sx, sy) >= 2)
    assert got.tolist() == want and any(want) and not all(want)
    assert not may_split(xs, ys, cval, offsets, 1, 0.005).any()
    assert not may_split(xs, ys, cval, offsets, 32, 1.0).any()


def _deblend_before(xs, ys, cval, dval, dthresh0, nthresh, mincont, minarea, rng):
    """deblend() as it was: its front in Python (the levels with Python's **), every part cut."""
    from napari_galseg.sextractor.deblend import MAXDEBAREA, _gatherup, _Obj, _parcel

    xs, ys, cval = xs.astype(np.int64), ys.astype(np.int64), cval.astype(np.float32)
    sx, sy = int(xs.min()), int(ys.min())
    submap = np.full((int(ys.max()) - sy + 1, int(xs.max()) - sx + 1), -1, np.int64)
    submap[ys - sy, xs - sx] = np.arange(len(xs))
    if _local_maxima(submap, cval, xs, ys, sx, sy) < 2:
        return None
    root_flux = float(np.float32(cval.astype(np.float64).sum()))
    peak = float(cval.max())
    thresholds = np.array([np.float32(dthresh0 * (peak / dthresh0) ** (k / nthresh) if peak > 0.0 else dthresh0)
                           for k in range(nthresh)], np.float32)
    split, chosen, pix, start, end, flux, fpeak, fthresh = _parcel(
        submap, cval, xs, ys, sx, sy, thresholds, root_flux * mincont, min(minarea, MAXDEBAREA), root_flux, peak,
        float(dthresh0), np.ones(len(xs), bool))  # every part cut, none left whole for its single maximum
    if not split:
        return None
    branches = [_Obj(pix[start[j]:end[j]], flux[j], fpeak[j], (0, 0, 0, 0), float(fthresh[j])) for j in chosen]
    return _gatherup(branches, xs, ys, cval, dval, dthresh0, rng)


@pytest.mark.parametrize("nthresh,mincont", [(32, 0.005), (8, 0.05), (64, 0.0001)])
@pytest.mark.parametrize("seed,fwhm,density", [(7, 3.0, 8000), (8, 2.0, 4000)])
def test_compiled_deblend_front_is_the_python_one(nthresh, mincont, seed, fwhm, density):
    """The same branches and the same random draws, detection after detection."""
    from napari_galseg.sextractor.deblend import GlibcRand, deblend
    from napari_galseg.sextractor.lutz import lutz_lists

    image = make_field(256, seed, psf_fwhm=fwhm, galaxy_density=density).image.astype(np.float32)
    sub = image - np.median(image)
    filt = _filter(sub, ExtractSettings().kernel, True)
    dthresh = 1.5 * float(np.std(sub[:40, :40]))
    flat, offsets = lutz_lists(filt > dthresh, 5)
    ys, xs = flat // 256, flat % 256
    new_rng, old_rng = GlibcRand(), GlibcRand()
    nsplit = 0
    for k in range(len(offsets) - 1):
        sl = slice(offsets[k], offsets[k + 1])
        args = (xs[sl], ys[sl], filt[ys[sl], xs[sl]], sub[ys[sl], xs[sl]], dthresh, nthresh, mincont, 5)
        new, old = deblend(*args, new_rng), _deblend_before(*args, old_rng)
        assert (new is None) == (old is None)
        if new is not None:
            nsplit += 1
            assert len(new) == len(old)
            for (pn, cn, nn), (po, co, no) in zip(new, old):
                assert np.array_equal(pn, po) and cn == co and nn == no
    assert nsplit > 0, nsplit
    assert new_rng() == old_rng()
