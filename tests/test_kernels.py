"""The compiled deblending kernels against straightforward references: the level-by-level numpy
markers (the pipeline's former implementation), scikit-image's watershed, and the may-split test
that must never reject an object the markers would split."""
import numpy as np
from scipy import ndimage

from napari_galseg._kernels import (
    deblend_markers,
    deblend_watershed,
    may_split,
    watershed_flood,
)
from napari_galseg.segmenters.photutils.deblending import deblend_thresholds as _deblend_thresholds


def level_stack_structure(connectivity):
    """3-D structuring element that connects pixels within a level, never across levels."""
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = np.ones((3, 3), bool) if connectivity == 8 else ndimage.generate_binary_structure(2, 1)
    return structure


def markers_numpy(conv: np.ndarray, inside: np.ndarray, thresholds: np.ndarray, n_pixels: int, structure: np.ndarray):
    """photutils' ``make_markers``: the pieces of the source above each threshold level (pieces
    under ``n_pixels`` dropped); going up the levels, a marker that holds two or more pieces of the
    next level is replaced by them. None when no level has two pieces (the source cannot split).

    All levels are labelled at once (a 3-D stack, no connection across levels). The markers come
    back labelled 1..n in raster order, an order-preserving renumbering of photutils' labels (its
    watershed and contrast steps depend on the partition and that order only).
    """
    n_levels = len(thresholds)
    with np.errstate(invalid="ignore"):
        stack = conv[None] > thresholds[:, None, None]
    stack &= inside[None]
    labels, n = ndimage.label(stack, structure=structure)
    if n < 2:
        return None
    big = np.bincount(labels.ravel(), minlength=n + 1) >= n_pixels
    big[0] = False
    if big.sum() < 2:
        return None
    plane = inside.size
    level_of = np.zeros(n + 1, np.intp)
    level_of[labels.ravel()] = np.repeat(np.arange(n_levels), plane)
    pieces_per_level = np.bincount(level_of[big], minlength=n_levels)
    levels = np.flatnonzero(pieces_per_level >= 2)  # the levels where photutils' detection returns pieces
    if not len(levels):
        return None
    lower = None
    for k in levels:
        upper = labels[k] * big[labels[k]]  # pieces of level k, small ones dropped
        if lower is None:
            lower = upper
            continue
        both = (lower > 0) & (upper > 0)
        pairs = np.unique(lower[both].astype(np.int64) * (n + 1) + upper[both])
        split = np.bincount(pairs // (n + 1), minlength=int(lower.max()) + 1) >= 2
        if split.any():
            replaced = split[lower]
            markers = (lower > 0) & ~replaced
            markers |= replaced & (upper > 0)
            lower = ndimage.label(markers, structure=structure[1])[0]
    return ndimage.label(lower > 0, structure=structure[1])[0]


def _blobs(rng, n=3, shape=(40, 40)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.zeros(shape)
    for _ in range(n):
        y, x = rng.uniform(8, shape[0] - 8, 2)
        img += rng.uniform(20, 200) * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * rng.uniform(1.0, 3.5) ** 2))
    return (img + rng.normal(0, 0.3, shape)).astype(np.float32)


def _objects(n_trials=150, seed=0):
    """(trial, connectivity, image, inside) for every object of >= 20 px in random blob fields."""
    rng = np.random.default_rng(seed)
    for trial in range(n_trials):
        conn = 8 if trial % 2 else 4
        img = _blobs(rng, n=int(rng.integers(1, 5)))
        labels, n = ndimage.label(img > 1.0, structure=level_stack_structure(conn)[1])
        for lab in range(1, n + 1):
            inside = labels == lab
            if inside.sum() >= 20:
                yield trial, conn, img, labels, lab, inside


def test_compiled_markers_equal_the_numpy_markers():
    n_split = n_single = 0
    for trial, conn, img, _, _, inside in _objects():
        for mode in ("exponential", "linear"):
            thresholds, _ = _deblend_thresholds(img[inside], 32, mode)
            ref = markers_numpy(img, inside, thresholds, 10, level_stack_structure(conn))
            got, n = deblend_markers(img, inside, thresholds, 10, conn)
            if ref is None:
                assert n == 0, f"trial {trial}: compiled markers split an object the reference does not"
                n_single += 1
            else:
                assert n == ref.max() and np.array_equal(got, ref), f"trial {trial} ({mode}, {conn})"
                n_split += 1
    assert n_split > 20 and n_single > 20  # both kinds were exercised


def test_compiled_watershed_equals_scikit_image():
    from skimage.segmentation import watershed

    n_checked = 0
    for _, conn, img, _, _, inside in _objects(60, seed=3):
        thresholds, _ = _deblend_thresholds(img[inside], 32, "linear")
        markers, n = deblend_markers(img, inside, thresholds, 10, conn)
        if not n:
            continue
        footprint = level_stack_structure(conn)[1]
        ref = watershed(-img, markers, mask=inside, connectivity=footprint)
        got, count = deblend_watershed(img, inside, markers, -np.inf, 1.0, conn)  # no contrast step
        assert np.array_equal(got, ref) and count == len(np.unique(ref[ref > 0]))
        # plateaus: equal values everywhere, ties settled by the heap's (value, age) order
        flat = np.where(inside, np.float32(7.0), 0).astype(np.float32)
        assert np.array_equal(deblend_watershed(flat, inside, markers, -np.inf, 1.0, conn)[0],
                              watershed(-flat, markers, mask=inside, connectivity=footprint))
        # the contrast step: the faintest child goes until all hold >= contrast, as photutils
        contrast = 0.2
        source_sum = float(np.nansum(img[inside]))
        expect = ref.copy()
        while True:
            labels = np.unique(expect[expect > 0])
            frac = ndimage.sum_labels(img, expect, index=labels) / source_sum
            if labels.size == 1 or not (frac < contrast).any():
                break
            expect[expect == labels[np.argmin(frac)]] = 0
            expect = watershed(-img, expect, mask=inside, connectivity=footprint)
        got, count = deblend_watershed(img, inside, markers, contrast, source_sum, conn)
        assert np.array_equal(got, expect) and count == labels.size
        n_checked += 1
    assert n_checked > 10


def test_watershed_flood_leaves_unreachable_pixels_and_markers_alone():
    image = np.zeros(5 * 6, np.float64)
    mask = np.zeros((5, 6), np.int8)
    mask[1:4, 1:3] = 1
    mask[1:4, 4] = 1  # a separate column no marker reaches
    out = np.zeros(30, np.int32)
    out[1 * 6 + 1] = 3
    watershed_flood(image, out, mask.ravel(), np.array([-6, -1, 1, 6], np.int64))
    grid = out.reshape(5, 6)
    assert np.all(grid[1:4, 1:3] == 3) and np.all(grid[:, 4] == 0) and grid.sum() == 3 * 6


def test_may_split_is_true_whenever_the_markers_split():
    seen_split = seen_single = 0
    last = None
    for trial, conn, img, labels, lab, inside in _objects():
        if last != trial:  # one compiled call answers for every object of the field
            n = labels.max()
            candidate = np.ones(n + 1, bool)
            candidate[0] = False
            answer = may_split(img, labels.astype(np.int32), candidate, 10, conn)
            last = trial
        thresholds, _ = _deblend_thresholds(img[inside], 32, "exponential")
        splits = thresholds is not None and markers_numpy(img, inside, thresholds, 10, level_stack_structure(conn)) is not None
        if splits:
            assert answer[lab], f"trial {trial}: label {lab} splits but may_split said no"
            seen_split += 1
        elif not answer[lab]:
            seen_single += 1
    assert seen_split > 10 and seen_single > 10  # both kinds were exercised


def test_may_split_two_separate_peaks_and_a_single_one():
    yy, xx = np.mgrid[:30, :60]
    two = (100 * np.exp(-((yy - 15) ** 2 + (xx - 15) ** 2) / 18) + 100 * np.exp(-((yy - 15) ** 2 + (xx - 45) ** 2) / 18)
           + 5 * np.exp(-((yy - 15) ** 2) / 50)).astype(np.float32)
    one = (100 * np.exp(-((yy - 15) ** 2 + (xx - 30) ** 2) / 40)).astype(np.float32)
    inside = np.ones((30, 60), np.int32)
    wanted = np.array([False, True])
    assert may_split(two, inside, wanted, 10, 8)[1]
    assert not may_split(one, inside, wanted, 10, 8)[1]
    assert not may_split(two, inside, np.array([False, False]), 10, 8)[1]  # not a candidate
    assert not may_split(two, inside, wanted, 2000, 8)[1]  # pieces too small for n_pixels


def test_label_mask_and_summary_equal_scipy():
    from napari_galseg._kernels import label_mask, label_summary

    rng = np.random.default_rng(5)
    for conn in (8, 4):
        structure = level_stack_structure(conn)[1]
        for _ in range(20):
            mask = ndimage.gaussian_filter(rng.normal(size=(120, 97)), rng.uniform(0.5, 3)) > rng.uniform(0, 0.3)
            ref, n = ndimage.label(mask, structure=structure)
            got, k = label_mask(mask, conn)
            assert k == n and np.array_equal(got, ref)
            boxes, areas, first = label_summary(got, k)
            objects = ndimage.find_objects(ref)
            assert np.array_equal(boxes, [(s[0].start, s[0].stop, s[1].start, s[1].stop) for s in objects] or np.zeros((0, 4)))
            assert np.array_equal(areas[1:], np.bincount(ref.ravel(), minlength=n + 1)[1:])
            flat = ref.ravel()
            assert all(first[i] == np.flatnonzero(flat == i)[0] for i in range(1, n + 1))
    empty, n = label_mask(np.zeros((5, 5), bool), 8)
    assert n == 0 and not empty.any()
