"""The batched photometry (sextractor.measure) against the per-object kernels, bit for bit, on the
strips SExtractor mode gives each object."""
import dataclasses
import importlib
import math

import numpy as np
import pytest
from numba import njit

from napari_galseg.sextractor.extract import ExtractSettings
from napari_galseg.sextractor.growth import growth_radii, windowed_position
from napari_galseg.sextractor.measure import STEP_APER, STEP_AUTO, STEP_GROWTH, STEP_WINPOS, Objects, PhotSettings, measure
from napari_galseg.sextractor.photometry import _subpixel_area, aperture_flux, auto_flux, subpixel_areas
from napari_galseg.sextractor.weights import WeightSettings
from napari_galseg.synth import make_field

ex = importlib.import_module("napari_galseg.sextractor.extract")
stream = importlib.import_module("napari_galseg.sextractor.stream")
ALL = STEP_APER | STEP_AUTO | STEP_GROWTH | STEP_WINPOS


def _captured(monkeypatch, weighted: bool, seed: int, bufsize: int = 64):
    """What extract() hands its photometry on a synthetic field (strips of ``bufsize`` rows)."""
    field = make_field(256, seed, psf_fwhm=3.0, galaxy_density=20000)
    weight = WeightSettings(type="MAP_RMS", image=field.rms.astype(np.float32)) if weighted else WeightSettings()
    s = ExtractSettings(apertures=(3.0, 6.0, 12.0), fluxfrac=(0.2, 0.5, 0.9), gain=2.0, clean=True,
                        bufsize=bufsize, weight=weight)
    calls = []
    photometry = ex._photometry

    def grab(rows, sub, comp, bg, s_, var, wvar, gainflag, oy=0):
        calls.append(dict(rows=[dict(r) for r in rows], sub=sub.copy(), comp=comp.copy(), var=var, wvar=wvar.copy(),
                          gainflag=gainflag, s=s_, oy=oy))
        photometry(rows, sub, comp, bg, s_, var, wvar, gainflag, oy)

    monkeypatch.setattr(stream, "_photometry", grab)  # the strip driver's call
    ex.extract(field.image.astype(np.float32), s)
    monkeypatch.undo()
    # the call that measured the most objects, its strip rows put back at their place in the frame
    # (the rows it did not hold are garbage: no kernel may read them)
    got = max(calls, key=lambda c: len(c["rows"]))
    h, oy = field.image.shape[0], got["oy"]
    for key, junk in (("sub", np.float32(7.0e6)), ("comp", 12345), ("wvar", np.float32(9.0e6))):
        part = got[key]
        if part.shape[0]:
            full = np.full((h, part.shape[1]), junk, part.dtype)
            full[oy:oy + part.shape[0]] = part
            got[key] = full
    return got


def _objects(rows) -> Objects:
    def col(k):
        return np.array([r[k] for r in rows], np.float64)

    return Objects(np.array([r["_cid"] for r in rows]), col("_mx"), col("_my"), col("A_IMAGE"), col("B_IMAGE"),
                   col("CXX_IMAGE"), col("CYY_IMAGE"), col("CXY_IMAGE"), col("X_IMAGE"), col("Y_IMAGE"),
                   np.array([r["_fymin"] for r in rows]), np.array([r["_fymax"] for r in rows]))


def _settings(g, steps=ALL) -> PhotSettings:
    s = g["s"]
    return PhotSettings(s.apertures, s.fluxfrac, s.autoparams, s.autoapers, g["var"], s.gain, s.mask_correct,
                        bool(g["gainflag"]), steps)


def _one_by_one(sub, seg, wvar, o: Objects, p: PhotSettings, junk: bool = False):
    """The per-object kernel calls, as extract._photometry made them, on each object's strip;
    ``junk``: every row outside the strip is garbage (a kernel reading there would show)."""
    rows = []
    fr = np.asarray(p.fluxfrac, np.float64)
    for i in range(len(o)):
        fy0, fy1 = int(o.fy0[i]), int(o.fy1[i])
        s, g, w = sub, seg, wvar
        if junk:
            s, g = sub.copy(), seg.copy()
            s[:fy0], s[fy1:], g[:fy0], g[fy1:] = 1e30, 1e30, o.own[i], o.own[i]
            if wvar.shape[0]:
                w = wvar.copy()
                w[:fy0], w[fy1:] = 1e30, 1e30
        s, g = s[fy0:fy1], g[fy0:fy1]
        w = w[fy0:fy1] if w.shape[0] else w
        own, mx, my = int(o.own[i]), float(o.mx[i]), float(o.my[i])
        flag, r = 0, {}
        if p.steps & STEP_APER:
            res = [aperture_flux(s, g, own, mx, my, float(d), p.var, p.gain, p.correct, fy0, fy1, w, p.gainflag)
                   for d in p.apertures]
            r["aper"] = [x[:2] for x in res]
            for x in res:
                flag |= x[2]
        if p.steps & STEP_AUTO:
            tv, err, kron, fg = auto_flux(s, g, own, mx, my, o.a[i], o.b[i], o.cxx[i], o.cyy[i], o.cxy[i],
                                          p.autoparams[0], p.autoparams[1], p.autoapers[0], p.autoapers[1], p.var,
                                          p.gain, p.correct, fy0, fy1, w, p.gainflag)
            flag |= fg
            r["auto"] = (tv, err, kron)
            if p.steps & STEP_GROWTH:
                radii, hl, fg = growth_radii(s, g, own, mx, my, o.a[i], p.autoapers[0], tv, fr, p.correct, fy0, fy1)
                flag |= fg
                r["radii"] = radii
                if p.steps & STEP_WINPOS:
                    xw, yw, fg = windowed_position(s, g, own, o.x_image[i], o.y_image[i], hl, o.cxx[i], o.cyy[i],
                                                   o.cxy[i], p.correct, fy0, fy1)
                    flag |= fg
                    r["win"] = (xw, yw)
        r["flag"] = flag
        rows.append(r)
    return rows


def _assert_same(m, ref, p: PhotSettings):
    for i, r in enumerate(ref):
        assert m.flags[i] == r["flag"], i
        if p.steps & STEP_APER:
            assert m.flux_aper[i].tolist() == [f for f, _e in r["aper"]], i
            assert m.fluxerr_aper[i].tolist() == [e for _f, e in r["aper"]], i
        if p.steps & STEP_AUTO:
            assert (m.flux_auto[i], m.fluxerr_auto[i], m.kron_radius[i]) == r["auto"], i
        if p.steps & STEP_GROWTH:
            assert np.array_equal(m.flux_radius[i], r["radii"]), i
        if p.steps & STEP_WINPOS:
            assert (m.xwin[i], m.ywin[i]) == r["win"], i


@pytest.mark.parametrize("weighted", [False, True])
def test_batched_photometry_is_the_per_object_calls(monkeypatch, weighted):
    g = _captured(monkeypatch, weighted, seed=3)
    o, p = _objects(g["rows"]), _settings(g)
    h = g["sub"].shape[0]
    assert len(o) > 50 and (o.fy1 - o.fy0 < h).all() and len(set(zip(o.fy0, o.fy1))) > 5  # narrow strips
    assert (g["wvar"].shape[0] > 0) == weighted
    ref = _one_by_one(g["sub"], g["comp"], g["wvar"], o, p)
    for threads, block in ((1, 64), (2, 7), (2, 1000)):
        _assert_same(measure(g["sub"], g["comp"], g["wvar"], 0, o, p, threads=threads, block=block), ref, p)
    # the rows held may start anywhere above the strips: here just the rows they span
    lo, hi = int(o.fy0.min()), int(o.fy1.max())
    wv = g["wvar"][lo:hi] if weighted else g["wvar"]
    _assert_same(measure(g["sub"][lo:hi], g["comp"][lo:hi], wv, lo, o, p, threads=2, block=5), ref, p)


def test_kernels_read_only_the_strip(monkeypatch):
    g = _captured(monkeypatch, True, seed=4)
    o, p = _objects(g["rows"]), _settings(g)
    sel = np.nonzero(o.fy1 - o.fy0 < g["sub"].shape[0])[0][::5]
    o = Objects(*(getattr(o, f.name)[sel] for f in dataclasses.fields(Objects)))
    clean = _one_by_one(g["sub"], g["comp"], g["wvar"], o, p)
    junk = _one_by_one(g["sub"], g["comp"], g["wvar"], o, p, junk=True)
    for a, b in zip(clean, junk):
        assert repr(a) == repr(b)


@pytest.mark.parametrize("steps", [STEP_APER, STEP_AUTO, STEP_AUTO | STEP_GROWTH, ALL])
def test_steps_not_run_set_no_flags(monkeypatch, steps):
    g = _captured(monkeypatch, False, seed=5)
    o, p = _objects(g["rows"]), _settings(g, steps)
    m = measure(g["sub"], g["comp"], g["wvar"], 0, o, p, threads=2, block=16)
    _assert_same(m, _one_by_one(g["sub"], g["comp"], g["wvar"], o, p), p)


def test_photometry_rows_match_the_per_object_calls(monkeypatch):
    """extract._photometry's columns come from the batched measurement of each object's strip."""
    g = _captured(monkeypatch, False, seed=6)
    rows = g["rows"]
    o, p = _objects(rows), _settings(g)
    ref = _one_by_one(g["sub"], g["comp"], g["wvar"], o, p)
    from napari_galseg.sextractor.background import sextractor_background

    bg = sextractor_background(g["sub"].copy(), g["s"].back_size, g["s"].back_filtersize, g["s"].back_filtthresh)
    ex._photometry(rows, g["sub"], g["comp"], bg, dataclasses.replace(g["s"], threads=2), g["var"], g["wvar"],
                   g["gainflag"])
    for r, want in zip(rows, ref):
        assert r["FLUX_APER"].tolist() == [f for f, _e in want["aper"]]
        assert (r["FLUX_AUTO"], r["FLUXERR_AUTO"], r["KRON_RADIUS"]) == want["auto"]
        assert r["FLUX_RADIUS"].tolist() == want["radii"].tolist()
        assert (r["XWIN_IMAGE"], r["YWIN_IMAGE"]) == want["win"]
        assert r["FLAGS"] & ~4 == (r["_flag"] | want["flag"]) & ~4  # 4: saturated, from FLUX_MAX
        zp = g["s"].mag_zeropoint
        assert r["MAG_AUTO"] == (-2.5 * math.log10(r["FLUX_AUTO"]) + zp if r["FLUX_AUTO"] > 0 else 99.0)


@njit(cache=False)
def _summed_area(dx, dy, offset, scale, scale2, raper2, oversamp):
    """SExtractor's loop: the sub-pixel area added once per sub-pixel inside."""
    dx += offset
    dy += offset
    locarea = np.float32(0.0)
    for _sy in range(oversamp):
        dx1 = dx
        dy2 = dy * dy
        for _sx in range(oversamp):
            if dx1 * dx1 + dy2 < raper2:
                locarea += scale2
            dx1 += scale
        dy += scale
    return locarea


@njit(cache=False)
def _count_mismatches(raper, dx, dy, oversamp):
    scale = np.float32(1.0 / oversamp)
    scale2 = scale * scale
    offset = np.float32(0.5 * (scale - 1.0))
    areas = subpixel_areas(scale2, oversamp)
    buf = np.empty(oversamp, np.float32)
    bad = 0
    for i in range(len(raper)):
        r2 = raper[i] * raper[i]
        if _summed_area(dx[i], dy[i], offset, scale, scale2, r2, oversamp) != \
                _subpixel_area(dx[i], dy[i], offset, scale, r2, oversamp, areas, buf):
            bad += 1
    return bad


@pytest.mark.parametrize("oversamp", [5, 11])
def test_counted_subpixel_area_is_the_summed_one(oversamp):
    """Border pixels around apertures of many radii, some on a 1/16-pixel grid (integer pixels
    about a rounded centre)."""
    rng = np.random.default_rng(oversamp)
    n = 300_000
    raper = rng.uniform(0.1, 40.0, n).astype(np.float32)
    ang = rng.uniform(0.0, 2 * np.pi, n)
    r = raper + rng.uniform(-0.8, 0.8, n)
    dx, dy = r * np.cos(ang), r * np.sin(ang)
    grid = np.arange(n) % 5 == 0
    dx[grid], dy[grid] = np.round(dx[grid] * 16) / 16, np.round(dy[grid] * 16) / 16
    assert _count_mismatches(raper, dx.astype(np.float32), dy.astype(np.float32), oversamp) == 0
