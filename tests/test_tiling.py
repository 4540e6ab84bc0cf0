"""Tiled connected components must equal the untiled ones exactly, whatever the chunking."""
import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

from napari_galseg.tiling import (
    ComponentStitcher,
    canonical_relabel,
    iter_tiles,
    label_mask,
    map_ordered,
)


def _random_mask(shape=(157, 203), fill=0.45, seed=0):
    rng = np.random.default_rng(seed)
    # smoothed noise gives blobs of many sizes, plenty of them crossing any chunk border
    field = ndimage.gaussian_filter(rng.normal(size=shape), 1.5)
    return field > np.quantile(field, 1 - fill)


def test_iter_tiles_cores_partition_image_and_halo_is_clipped():
    shape = (23, 31)
    seen = np.zeros(shape, int)
    for tile in iter_tiles(shape, (10, 8), halo=3):
        seen[tile.core] += 1
        outer = np.arange(np.prod(shape)).reshape(shape)[tile.outer]
        assert np.array_equal(outer[tile.inner], np.arange(np.prod(shape)).reshape(shape)[tile.core])
        assert tile.outer[0].start == max(0, tile.core[0].start - 3)
        assert tile.outer[1].stop == min(31, tile.core[1].stop + 3)
    assert (seen == 1).all()


def test_iter_tiles_rejects_bad_arguments():
    with pytest.raises(ValueError, match="2-D"):
        list(iter_tiles((3, 4, 5), 2))
    with pytest.raises(ValueError, match="positive"):
        list(iter_tiles((3, 4), 0))


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("chunks", [(16, 16), (50, 37), (157, 10), (1, 203)])
def test_dask_labels_equal_numpy_labels_exactly(chunks, connectivity):
    mask = _random_mask()
    expected = label_mask(mask, connectivity=connectivity)
    reference, n = ndimage.label(mask, structure=np.ones((3, 3)) if connectivity == 8 else None)
    assert np.array_equal(expected, reference) and expected.max() == n
    tiled = label_mask(da.from_array(mask, chunks=chunks), connectivity=connectivity)
    assert isinstance(tiled, da.Array) and tiled.chunks == da.from_array(mask, chunks=chunks).chunks
    result = tiled.compute()
    assert result.dtype == np.int32
    assert np.array_equal(result, expected)


def test_diagonal_contact_across_a_tile_corner_joins_only_with_8_connectivity():
    mask = np.zeros((8, 8), bool)
    mask[3, 3] = mask[4, 4] = True  # touch at the corner of four 4x4 tiles
    mask[3, 4] = False
    lab8 = label_mask(da.from_array(mask, chunks=4), connectivity=8).compute()
    lab4 = label_mask(da.from_array(mask, chunks=4), connectivity=4).compute()
    assert lab8.max() == 1 and lab4.max() == 2
    # anti-diagonal corner contact
    mask2 = np.zeros((8, 8), bool)
    mask2[3, 4] = mask2[4, 3] = True
    assert label_mask(da.from_array(mask2, chunks=4)).compute().max() == 1


def test_min_area_counts_the_whole_stitched_object():
    mask = np.zeros((20, 20), bool)
    mask[9:11, 6:14] = True  # 16 px, split 4 ways by the 10x10 chunks
    mask[1, 1:4] = True  # 3 px
    tiled = label_mask(da.from_array(mask, chunks=10), min_area=10).compute()
    assert tiled.max() == 1 and (tiled == 1).sum() == 16
    assert np.array_equal(tiled, label_mask(mask, min_area=10))


def test_min_area_on_random_mask_matches_numpy():
    mask = _random_mask(seed=3)
    expected = label_mask(mask, min_area=12)
    got = label_mask(da.from_array(mask, chunks=(33, 41)), min_area=12).compute()
    assert np.array_equal(got, expected)
    areas = np.bincount(expected.ravel())[1:]
    assert areas.min() >= 12


def test_stitcher_reports_areas_and_first_pixels():
    mask = _random_mask(seed=5, shape=(60, 70))
    stitcher = ComponentStitcher(mask.shape)
    local = {}
    for tile in iter_tiles(mask.shape, 17):
        local[tile.index] = (tile, stitcher.add(tile, mask[tile.core]))
    stitcher.finish()
    out = np.zeros(mask.shape, np.int32)
    for tile, lab in local.values():
        out[tile.core] = stitcher.relabel(tile.index, lab)
    expected = label_mask(mask)
    assert np.array_equal(out, expected)
    assert np.array_equal(stitcher.areas[1:], np.bincount(expected.ravel())[1:])
    firsts = [np.flatnonzero(expected.ravel() == k)[0] for k in range(1, expected.max() + 1)]
    assert np.array_equal(stitcher.first_pixel[1:], firsts)


def test_label_mask_rejects_non_boolean_and_empty_masks_work():
    with pytest.raises(ValueError, match="boolean"):
        label_mask(np.ones((3, 3)))
    with pytest.raises(ValueError, match="2-D"):
        label_mask(np.ones((3, 3, 3), bool))
    assert label_mask(np.zeros((5, 5), bool)).max() == 0
    assert label_mask(da.zeros((9, 9), dtype=bool, chunks=4)).compute().max() == 0


def test_canonical_relabel_orders_by_first_pixel():
    labels = np.array([[0, 7, 7], [3, 0, 9], [3, 9, 9]])
    assert np.array_equal(canonical_relabel(labels), [[0, 1, 1], [2, 0, 3], [2, 3, 3]])


def test_stitcher_bounding_boxes_cover_whole_objects():
    mask = _random_mask(seed=7, shape=(90, 110))
    stitcher = ComponentStitcher(mask.shape)
    for tile in iter_tiles(mask.shape, (20, 30)):
        stitcher.add(tile, mask[tile.core])
    stitcher.finish(min_area=5)
    expected = label_mask(mask, min_area=5)
    for label, sl in enumerate(ndimage.find_objects(expected), start=1):
        assert tuple(stitcher.bboxes[label]) == (sl[0].start, sl[0].stop, sl[1].start, sl[1].stop)


def test_map_ordered_keeps_order_and_bounds_work_ahead():
    import threading
    import time

    started = []
    lock = threading.Lock()

    def work(i):
        with lock:
            started.append(i)
        time.sleep(0.002 * (i % 3))  # finish out of order
        return i * i

    consumed = []
    for k, value in enumerate(map_ordered(work, range(20), n_threads=2, max_ahead=3)):
        with lock:
            assert len(started) <= k + 1 + 3  # never more than max_ahead beyond the consumer
        consumed.append(value)
    assert consumed == [i * i for i in range(20)]
    assert list(map_ordered(work, range(5), n_threads=1)) == [0, 1, 4, 9, 16]


def test_map_ordered_propagates_errors():
    def work(i):
        if i == 3:
            raise ValueError("tile 3 is bad")
        return i

    with pytest.raises(ValueError, match="tile 3"):
        list(map_ordered(work, range(8), n_threads=2))


def test_add_labels_and_node_labels_allow_labelling_elsewhere():
    """Tiles labelled outside the stitcher (e.g. in threads) and recorded in order give the same
    result; node_labels maps every tile-local component to its final label."""
    mask = _random_mask(seed=9, shape=(70, 90))
    stitcher = ComponentStitcher(mask.shape)
    tiles = list(iter_tiles(mask.shape, 25))
    labelled = [stitcher.label_tile(mask[t.core]) for t in tiles]
    for tile, (labels, n) in zip(tiles, labelled):
        stitcher.add_labels(tile, labels, n)
    stitcher.finish(min_area=4)
    expected = label_mask(mask, min_area=4)
    nodes = stitcher.node_labels
    for tile, (labels, n) in zip(tiles, labelled):
        offset = stitcher._offsets[tile.index]
        lut = np.concatenate([[0], nodes[offset : offset + n]])
        assert np.array_equal(lut[labels], expected[tile.core])
    with pytest.raises(ValueError, match="does not match"):
        ComponentStitcher(mask.shape).add_labels(tiles[0], np.zeros((3, 3), np.int32), 0)
