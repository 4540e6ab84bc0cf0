"""Per-tile instance detections merged over a frame: one owner per object, no seams, resumable."""
import threading

import numpy as np
import pytest

from napari_galseg.instance_tiles import Assembler, Instance, TileLayout, assemble, instances_from_masks, stream_to_fits


def oracle(truth, score_of=None):
    """A perfect detector that sees only its tile: objects cut by the tile edge come out cut."""
    def detect(windows):
        out = []
        for y0, y1, x0, x1 in windows:
            crop = truth[y0:y1, x0:x1]
            ids = np.unique(crop[crop > 0])
            scores = [score_of(i) if score_of else 1.0 - i / (ids.max() + 1) for i in ids]
            out.append(instances_from_masks(crop[None] == ids[:, None, None], scores, y0, x0))
        return out
    return detect


def disk_field(shape, centres, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    truth = np.zeros(shape, np.int32)
    for k, (cy, cx) in enumerate(centres, start=1):
        truth[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2] = k
    return truth


def same_partition(a, b):
    """Labels equal up to renumbering: each object of one is exactly one object of the other."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return ((a > 0) == (b > 0)).all() and len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


def test_an_object_cut_by_a_tile_edge_is_one_instance():
    layout = TileLayout((200, 200), tile=96, overlap=40)
    edge = layout.ys[1]  # the top edge of the second tile row cuts the object
    truth = disk_field((200, 200), [(edge + 3, 100)], 12)
    labels, scores, catalog = assemble(oracle(truth), layout)
    assert np.unique(labels[labels > 0]).tolist() == [1]
    np.testing.assert_array_equal(labels > 0, truth > 0)
    assert len(catalog) == 1 and scores[1] == catalog[0][3]


def test_seam_objects_across_tile_borders_no_duplicates_no_splits():
    layout = TileLayout((300, 300), tile=100, overlap=36)
    lines = sorted({*layout.ys[1:], *(y + 100 for y in layout.ys[:-1]), *(lo for lo, _ in layout.core_y[1:])})
    centres = [(y + dy, x + dx) for y in lines for x in lines for dy, dx in [(0, 0), (1, -2)]
               if 10 < y < 290 and 10 < x < 290]
    truth = np.zeros((300, 300), np.int32)
    for k, c in enumerate(centres[::2], start=1):  # no two objects touch: keep every other
        truth[disk_field((300, 300), [c], 7) > 0] = k
    labels, _, _ = assemble(oracle(truth), layout)
    n_true = len(np.unique(truth)) - 1
    assert n_true > 10
    assert same_partition(labels, truth)  # 0 duplicated (one truth -> one label), 0 split


def test_duplicates_kept_by_two_tiles_are_suppressed_by_mask_iou():
    layout = TileLayout((100, 100), tile=64, overlap=28)
    mask = np.ones((6, 6), bool)
    asm = Assembler(layout, iou_threshold=0.5)
    rows = asm.paint([Instance(40, 40, mask, 0.9), Instance(41, 40, mask, 0.8), Instance(10, 10, mask, 0.7)])
    assert [r[0] for r in rows] == [1, 2]  # the 0.8 copy overlaps the 0.9 one with IoU 5/7
    assert rows[0][3] == 0.9


def test_a_remnant_below_min_free_fraction_is_dropped_not_kept_as_a_fragment():
    layout = TileLayout((100, 100), tile=64, overlap=28)
    big, small = np.ones((10, 10), bool), np.ones((4, 5), bool)
    # the 0.8 detection lies 3/4 inside the painted one: IoU 15/105, no duplicate, 5 of 20 pixels free
    found = [Instance(40, 40, big, 0.9), Instance(47, 45, small, 0.8)]
    kept = Assembler(layout, iou_threshold=0.5).paint(found)
    assert [r[4] for r in kept] == [100, 5]  # the remnant is kept as a 5 px fragment by default
    asm = Assembler(layout, iou_threshold=0.5, min_free_fraction=0.3)
    assert [r[4] for r in asm.paint(found)] == [100]
    assert set(np.unique(asm.release(100)[2]).tolist()) == {0, 1}
    asm = Assembler(layout, iou_threshold=0.5, min_free_fraction=0.25)  # exactly a quarter free: kept
    assert [r[4] for r in asm.paint(found)] == [100, 5]


def test_min_free_fraction_is_checked():
    from napari_galseg.segmenters import get
    from napari_galseg.settings import SettingError

    with pytest.raises(SettingError, match="min_free_fraction must be between 0 and 1"):
        get("maskrcnn")().configure(min_free_fraction=1.5)


def test_tiled_equals_untiled_within_001_ap():
    from napari_galseg.metrics.coco import coco_evaluate
    from napari_galseg.synth import make_field

    truth = make_field(384, seed=5).truth
    extent = max(max(s.stop - s.start for s in sl) for sl in __import__("scipy.ndimage").ndimage.find_objects(truth) if sl)
    rng = np.random.default_rng(0)
    table = rng.permutation(truth.max() + 1) / (truth.max() + 1)
    detect = oracle(truth, lambda i: float(table[i]))
    whole, s1, _ = assemble(detect, TileLayout(truth.shape, 384, 0))
    tiled, s2, _ = assemble(detect, TileLayout(truth.shape, 128, min(extent + 2, 100)))
    ap1 = coco_evaluate(whole, truth, scores=s1, iou_types=("segm",))["ap"]
    ap2 = coco_evaluate(tiled, truth, scores=s2, iou_types=("segm",))["ap"]
    assert ap1 == pytest.approx(1.0)
    assert abs(ap1 - ap2) <= 0.01


def test_stream_to_fits_resumes_after_an_interruption(tmp_path):
    from astropy.io import fits
    from astropy.table import Table

    truth = disk_field((260, 230), [(y, x) for y in range(15, 260, 40) for x in range(15, 230, 37)], 9)
    layout = TileLayout(truth.shape, 80, 30)
    ref, _, _ = assemble(oracle(truth), layout)
    cancel = threading.Event()

    def stop_after_three(done, total, message):
        if done == 3:
            cancel.set()

    with pytest.raises(Exception, match="cancel"):
        stream_to_fits(oracle(truth), layout, tmp_path / "labels.fits", progress=stop_after_three, cancel=cancel)
    assert not (tmp_path / "labels.fits").exists() and (tmp_path / "labels.fits.partial").exists()
    seen = []
    path, cat = stream_to_fits(oracle(truth), layout, tmp_path / "labels.fits",
                               progress=lambda d, t, m: seen.append(d))
    assert seen[0] == 4  # continued at the fourth tile row
    np.testing.assert_array_equal(fits.getdata(path), ref)
    table = Table.read(cat, format="ascii.ecsv")
    assert len(table) == ref.max() and np.isfinite(table["score"]).all()
    assert not (tmp_path / "labels.fits.partial").exists()
    with pytest.raises(FileExistsError):
        stream_to_fits(oracle(truth), layout, tmp_path / "labels.fits")


def test_leftovers_of_another_input_are_not_resumed(tmp_path):
    from astropy.io import fits

    truth = disk_field((160, 160), [(y, x) for y in range(15, 160, 40) for x in range(15, 160, 37)], 9)
    other = np.where(truth > 0, 0, 0)  # another image: nothing in it
    layout = TileLayout(truth.shape, 64, 24)
    cancel = threading.Event()
    with pytest.raises(Exception, match="cancel"):
        stream_to_fits(oracle(other), layout, tmp_path / "l.fits", source_key="empty image", cancel=cancel,
                       progress=lambda d, t, m: cancel.set() if d == 2 else None)
    seen = []
    stream_to_fits(oracle(truth), layout, tmp_path / "l.fits", source_key="the field",
                   progress=lambda d, t, m: seen.append(d))
    assert seen[0] == 1  # started afresh
    np.testing.assert_array_equal(fits.getdata(tmp_path / "l.fits"), assemble(oracle(truth), layout)[0])


def test_tiles_around_a_window_give_the_crop_of_the_frame_run():
    """The frame grid's tiles near a window, painted alone, give the frame's labels in the window
    (what lets a field-of-view prediction equal the crop), also with overlapping detections."""
    from skimage.segmentation import relabel_sequential

    rng = np.random.default_rng(5)
    shape = (300, 340)
    layout = TileLayout(shape, tile=96, overlap=32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    disks = [((yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2) for cy, cx, r in
             zip(rng.uniform(0, shape[0], 150), rng.uniform(0, shape[1], 150), rng.uniform(3, 10, 150))]
    scores = rng.uniform(0.1, 1.0, len(disks))

    def detect_in(oy, ox):  # each tile sees the disks that reach into it, cut at its edges
        def detect(windows):
            out = []
            for y0, y1, x0, x1 in windows:
                masks = np.stack([d[oy + y0: oy + y1, ox + x0: ox + x1] for d in disks])
                out.append(instances_from_masks(masks, scores, y0, x0))
            return out
        return detect

    frame, _, _ = assemble(detect_in(0, 0), layout, margin=4, iou_threshold=0.5)
    (cy0, _), (_, cy1), (cx0, _), (_, cx1) = layout.core_y[1], layout.core_y[2], layout.core_x[1], layout.core_x[3]
    # window edges on core boundaries: objects just outside are owned by tiles whose cores miss it
    for y0, y1, x0, x1 in [(cy0, cy1, cx0, cx1), (100, 180, 120, 200), (0, 50, 290, 340), (0, 300, 0, 340)]:
        (oy0, oy1, ox0, ox1), part = layout.around(y0, y1, x0, x1, context=2 * 32 + 4)
        assert oy0 <= y0 and y1 <= oy1 and ox0 <= x0 and x1 <= ox1
        labels, _, _ = assemble(detect_in(oy0, ox0), part, margin=4, iou_threshold=0.5)
        got = relabel_sequential(labels[y0 - oy0: y1 - oy0, x0 - ox0: x1 - ox0])[0]
        np.testing.assert_array_equal(got, relabel_sequential(frame[y0:y1, x0:x1])[0])
