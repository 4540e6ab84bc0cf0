"""LutzStream (the scan fed in strips of rows) gives exactly the whole-frame scan's objects, order and
lists (``lutz_reference``: the scan SExtractor mode ran before it read strips)."""
from __future__ import annotations

import numpy as np
import pytest
from lutz_reference import links_to_labels, lutz_scan, pixel_lists

from napari_galseg.sextractor.lutz import LutzStream, lutz_lists
from napari_galseg.synth import make_field


def _whole(above):
    """What the whole-frame scan gives: every object's pixel list (pixel_lists' order) and the map."""
    first, counts, nextpix = lutz_scan(above)
    flat, offsets = pixel_lists(first, counts, nextpix, 1)
    comp = links_to_labels(first, nextpix.copy()).reshape(above.shape)
    return [flat[offsets[k]:offsets[k + 1]] for k in range(len(counts))], comp


def _streamed(above, chunk, values=(), **kw):
    """Objects of a LutzStream fed ``chunk`` rows at a time: pixel lists and their gathered values."""
    h, w = above.shape
    stream = LutzStream(w, **kw)
    objects, gathered = [], []

    def take(pos, offsets):
        for k in range(len(offsets) - 1):
            p = pos[offsets[k]:offsets[k + 1]]
            objects.append(stream.idx[p].copy())
            gathered.append([v[p].copy() for v in stream.values])

    for y in range(0, h, chunk):
        take(*stream.feed(above[y:y + chunk], *(v[y:y + chunk] for v in values)))
    take(*stream.finish())
    return objects, gathered, stream


def _check(above, chunks=(1, 3, 17, None), **kw):
    lists, comp = _whole(above)
    rng = np.random.default_rng(1)
    values = (rng.normal(size=above.shape).astype(np.float32), rng.normal(size=above.shape).astype(np.float32))
    for chunk in chunks:
        objects, gathered, _ = _streamed(above, chunk or max(above.shape[0], 1), values, **kw)
        assert len(objects) == len(lists), chunk
        for a, b in zip(objects, lists):
            assert np.array_equal(a, b), chunk
        lab = np.zeros(above.size, np.int64)
        for k, obj in enumerate(objects):
            lab[obj] = k + 1
        assert np.array_equal(lab.reshape(above.shape), comp), chunk
        for obj, got in zip(objects, gathered):  # the values pooled are the arrays' entries there
            for v, g in zip(values, got):
                assert np.array_equal(v.reshape(-1)[obj], g)


@pytest.mark.parametrize("shape", [(1, 1), (1, 40), (40, 1), (2, 2), (37, 53), (256, 300)])
@pytest.mark.parametrize("density", [0.05, 0.3, 0.5, 0.65, 0.9])
def test_stream_gives_the_whole_frame_scan_on_random_masks(shape, density):
    rng = np.random.default_rng(hash((shape, density)) % 2**32)
    _check(rng.random(shape) < density)


@pytest.mark.parametrize("compact", [True, False])
def test_stream_gives_the_whole_frame_scan_on_thresholded_fields(compact):
    for seed, size in [(0, 200), (1, (150, 260))]:
        f = make_field(size, seed=seed)
        for nsig in (1.0, 1.5, 3.0):
            above = f.image > np.median(f.image) + nsig * np.median(f.rms)
            _check(above, compact=compact)


def test_stream_compacts_its_pool_and_stays_exact():
    """Large objects spanning many strips while small ones complete: the pool is compacted often."""
    yy, xx = np.mgrid[:300, :120]
    above = ((yy - 150) ** 2 / 140**2 + (xx - 60) ** 2 / 50**2 < 1) & ((xx + yy) % 7 != 0)  # a big ring-ish blob
    above |= np.random.default_rng(2).random(above.shape) < 0.08
    _check(above, chunks=(1, 5, None))
    _, _, stream = _streamed(above, 1)
    assert stream.npool < above.sum()  # handed-out pixels were dropped
    _, _, stream = _streamed(above, 1, compact=False)
    assert stream.npool == above.sum()


def test_stream_takes_strided_rows():
    """Views that are not C-contiguous (a column slice, Fortran order) scan the same."""
    rng = np.random.default_rng(7)
    big = rng.random((90, 140)) < 0.4
    _check(big[:, ::2], chunks=(4, None))
    _check(np.asfortranarray(big), chunks=(6,))


def test_empty_frame_and_misuse():
    s = LutzStream(5)
    pos, off = s.finish()
    assert len(pos) == 0 and list(off) == [0]
    with pytest.raises(RuntimeError):
        s.feed(np.zeros((1, 5), bool))
    with pytest.raises(ValueError):
        LutzStream(5).feed(np.zeros((1, 4), bool))
    s = LutzStream(3)
    s.feed(np.ones((1, 3), bool), np.ones((1, 3), np.float32))
    with pytest.raises(ValueError):
        s.feed(np.ones((1, 3), bool))


@pytest.mark.parametrize("minarea", [1, 3, 7])
def test_lutz_lists_of_a_whole_map_are_the_whole_frame_scans(minarea):
    """deblend's sub-threshold scans: the same objects, order and pixel lists as the reference."""
    rng = np.random.default_rng(minarea)
    for shape, density in [((1, 1), 0.9), ((37, 53), 0.5), ((64, 80), 0.3), ((120, 90), 0.7)]:
        above = rng.random(shape) < density
        first, counts, nextpix = lutz_scan(above)
        flat, offsets = pixel_lists(first, counts, nextpix, minarea)
        got_flat, got_offsets = lutz_lists(above, minarea)
        assert np.array_equal(got_flat, flat) and np.array_equal(got_offsets, offsets)
