"""SExtractor's background read and interpolated a strip of rows at a time equals, bit for bit,
the whole-frame computation it replaced (kept here, frozen, as the reference)."""
import numpy as np
import pytest

from napari_galseg.sextractor.background import (
    BIG,
    _filter_meshes,
    _mesh_map,
    sextractor_background,
    sextractor_background_rows,
)
from napari_galseg.synth import make_field


# --- the whole-frame code before the strip rewrite (commit a6574b9), the reference -------------
def _ref_spline_coefficients(nodes):
    n = nodes.shape[0]
    d = np.zeros_like(nodes, dtype=np.float32)
    if n < 2:
        return d
    u = np.zeros((max(n - 1, 1),) + nodes.shape[1:], np.float32)
    for y in range(1, n - 1):
        temp = np.float32(-1) / (d[y - 1] + np.float32(4))
        d[y] = temp
        u[y] = temp * (u[y - 1] - 6 * (nodes[y + 1] + nodes[y - 1] - 2 * nodes[y]))
    d[n - 1] = 0.0
    for y in range(n - 2, 0, -1):
        d[y] = ((d[y] * d[y + 1] + u[y]).astype(np.float64) / 6.0).astype(np.float32)
    return d


def _ref_interpolate(nodes, shape, bw, bh):
    dnodes = _ref_spline_coefficients(nodes)
    height, width = shape
    nby, nbx = nodes.shape
    if nby > 1:
        y = np.arange(height, dtype=np.float32)
        dy = y / np.float32(bh) - np.float32(0.5)
        yl = dy.astype(np.int64)
        dy = (dy - yl.astype(np.float32)).astype(np.float32)
        low = yl < 0
        yl[low] = 0
        dy[low] -= 1.0
        high = yl >= nby - 1
        yl[high] = 0 if nby < 2 else nby - 2
        dy[high] += 1.0
        cdy = 1 - dy
        dy3 = dy * dy * dy - dy
        cdy3 = cdy * cdy * cdy - cdy
        rows = (cdy[:, None] * nodes[yl] + dy[:, None] * nodes[yl + 1] + cdy3[:, None] * dnodes[yl]
                + dy3[:, None] * dnodes[yl + 1]).astype(np.float32)
        drows = _ref_spline_coefficients(rows.T).T if nbx > 1 else np.zeros_like(rows)
    else:
        rows = np.repeat(nodes, height, axis=0)
        drows = np.repeat(dnodes, height, axis=0)
    if nbx == 1 or bw == 1:
        return np.ascontiguousarray(np.broadcast_to(rows[:, :1] if nbx == 1 else rows[:, :width], (height, width)))
    xstep = np.float32(1.0 / bw)
    changepoint = bw // 2
    dx = np.float32((xstep - 1) / 2)
    dx0 = np.float32(((bw + 1) % 2) * xstep / 2)
    lo = np.empty(width, np.int64)
    dxs = np.empty(width, np.float32)
    xnode = i = node = 0
    for j in range(width):
        if i == changepoint and xnode > 0 and xnode < nbx - 1:
            node += 1
            dx = dx0
        lo[j] = node
        dxs[j] = dx
        if i == bw:
            xnode += 1
            i = 0
        i += 1
        dx = np.float32(dx + xstep)
    cdx = 1 - dxs
    cdx3, dxs3 = cdx * cdx - 1, dxs * dxs - 1
    return cdx * (rows[:, lo] + cdx3 * drows[:, lo]) + dxs * (rows[:, lo + 1] + dxs3 * drows[:, lo + 1])


def _ref_background(image, back_size=(64, 64), filter_size=(3, 3), filter_thresh=0.0, var=None, wthresh=BIG):
    img = np.asarray(image, dtype=np.float32)
    if not np.isfinite(img).all():
        img = np.where(np.isfinite(img), img, np.float32(-BIG))
    ny, nx = img.shape
    bw = min(int(back_size[0]), nx)
    bh = min(int(back_size[1]), ny)
    weighted = var is not None
    wimg = np.asarray(var, np.float32) if weighted else img[:1, :1]
    back, sigma, wback, wsigma = _mesh_map(img, wimg, np.float32(wthresh), weighted, bw, bh, 2.5)
    fsize = (int(filter_size[0]), int(filter_size[1]))
    back, sigma, backmean, backsig = _filter_meshes(back, sigma, fsize, float(filter_thresh))
    var_back = _filter_meshes(wback, wsigma, fsize, float(filter_thresh))[0] if weighted else None
    return dict(back=back, sigma=sigma, backmean=backmean, backsig=backsig, bw=bw, bh=bh, shape=(ny, nx),
                var_back=var_back)
# -------------------------------------------------------------------------------------------------


def _frames():
    """(name, image, var or None, wthresh, back_size, filter_size, filter_thresh)."""
    out = []
    f = make_field(256, 1, psf_fwhm=2.5, galaxy_density=200)
    out.append(("square256", f.image, None, BIG, (64, 64), (3, 3), 0.0))
    f = make_field((300, 517), 2, psf_fwhm=4.0, galaxy_density=400)
    out.append(("odd300x517", f.image, None, BIG, (64, 64), (3, 3), 0.0))
    out.append(("odd300x517_mesh48x40_thresh", f.image, None, BIG, (48, 40), (5, 3), 0.5))
    img = f.image.copy()
    img[40:130, 100:260] = np.nan  # a hole that empties whole meshes (filled from their neighbours)
    img[290:, :] = np.nan          # the short last band empty
    img[::37, ::11] = np.inf
    out.append(("odd300x517_nan_holes", img, None, BIG, (64, 64), (3, 3), 0.0))
    var = (f.rms * f.rms).astype(np.float32)
    var[10:90, 300:420] = np.float32(BIG)  # zero weight: left out of the statistics
    var[200:220, :] = np.nan
    out.append(("odd300x517_var_holes", f.image, var, np.float32(1e29), (64, 64), (3, 3), 0.0))
    f = make_field((130, 70), 3, psf_fwhm=3.0, galaxy_density=100)
    out.append(("one_mesh_column", f.image, None, BIG, (100, 32), (3, 3), 0.0))   # nbx == 1 (bw = 70)
    out.append(("one_mesh_row", f.image, None, BIG, (32, 200), (3, 3), 0.0))      # nby == 1
    out.append(("one_pixel_meshes_x", f.image[:40], None, BIG, (1, 16), (3, 3), 0.0))  # bw == 1
    out.append(("small_meshes", f.image, None, BIG, (7, 9), (3, 3), 0.0))
    return out


FRAMES = _frames()
SPLITS = (1, 7, 64, 100, None)


def _strips(height, step):
    step = step or height
    return [(y0, min(height, y0 + step)) for y0 in range(0, height, step)]


@pytest.mark.parametrize("frame", FRAMES, ids=[f[0] for f in FRAMES])
def test_rows_background_equals_the_whole_frame_reference(frame):
    _, image, var, wthresh, bs, fs, ft = frame
    ref = _ref_background(image, bs, fs, ft, var=var, wthresh=wthresh)
    reads = []

    def read_rows(y0, y1):
        reads.append((y0, y1))
        return image[y0:y1].copy()

    bgs = [sextractor_background(image, bs, fs, ft, var=var, wthresh=wthresh),
           sextractor_background_rows(read_rows, image.shape, bs, fs, ft,
                                      read_var_rows=None if var is None else (lambda y0, y1: var[y0:y1].copy()),
                                      wthresh=wthresh)]
    for bg in bgs:
        for key in ("back", "sigma", "var_back"):
            a, b = getattr(bg, key), ref[key]
            assert (a is None) == (b is None)
            if a is not None:
                assert a.dtype == b.dtype and np.array_equal(a, b), key
        for key in ("backmean", "backsig", "bw", "bh", "shape"):
            assert getattr(bg, key) == ref[key], key
    bh = ref["bh"]
    assert reads == _strips(image.shape[0], bh)  # one band of meshes at a time, each once


@pytest.mark.parametrize("frame", FRAMES, ids=[f[0] for f in FRAMES])
def test_level_rms_and_subtraction_by_strips_equal_the_whole_frame_reference(frame):
    _, image, var, wthresh, bs, fs, ft = frame
    bg = sextractor_background(image, bs, fs, ft, var=var, wthresh=wthresh)
    level = _ref_interpolate(bg.back, bg.shape, bg.bw, bg.bh)
    rms = _ref_interpolate(bg.sigma, bg.shape, bg.bw, bg.bh)
    sub = image.copy()
    sub -= level  # the old subtract_from: float32 pixel minus float32 level
    assert level.dtype == np.float32 and rms.dtype == np.float32
    assert np.array_equal(bg.level(), level) and np.array_equal(bg.rms(), rms)
    whole = image.copy()
    bg.subtract_from(whole)
    assert np.array_equal(whole, sub, equal_nan=True)
    height = image.shape[0]
    for step in SPLITS:
        got_level = np.concatenate([bg.level_rows(y0, y1) for y0, y1 in _strips(height, step)])
        got_rms = np.concatenate([bg.rms_rows(y0, y1) for y0, y1 in _strips(height, step)])
        assert np.array_equal(got_level, level), step
        assert np.array_equal(got_rms, rms), step
        strips = []
        for y0, y1 in _strips(height, step):
            block = image[y0:y1].copy()
            bg.subtract_rows(block, y0)
            strips.append(block)
        assert np.array_equal(np.concatenate(strips), sub, equal_nan=True), step


def test_streamed_field_like_extract_uses_it():
    """A frame read strip by strip from a FITS file, background subtracted strip by strip."""
    f = make_field((333, 450), 5, psf_fwhm=3.0, galaxy_density=300)
    ref = _ref_background(f.image)
    level = _ref_interpolate(ref["back"], ref["shape"], ref["bw"], ref["bh"])
    bg = sextractor_background_rows(lambda y0, y1: f.image[y0:y1].astype(np.float64), f.image.shape)
    assert np.array_equal(bg.back, ref["back"]) and bg.backsig == ref["backsig"]
    out = np.empty_like(f.image)
    for y0, y1 in _strips(333, 50):
        block = f.image[y0:y1].copy()
        bg.subtract_rows(block, y0)
        out[y0:y1] = block
    assert np.array_equal(out, f.image - level)


def test_wrong_rows_are_refused():
    f = make_field((100, 80), 1)
    with pytest.raises(ValueError, match="shape"):
        sextractor_background_rows(lambda y0, y1: f.image[y0:y1, :79], f.image.shape)
    bg = sextractor_background(f.image)
    with pytest.raises(ValueError, match="not inside"):
        bg.level_rows(90, 101)
    with pytest.raises(ValueError, match="not inside"):
        bg.subtract_rows(np.zeros((20, 80), np.float32), 90)
    with pytest.raises(ValueError, match="not inside"):
        bg.subtract_rows(np.zeros((20, 81), np.float32), 0)
