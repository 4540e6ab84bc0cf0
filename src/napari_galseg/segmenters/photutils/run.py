"""One run of the pipeline: background, detection, deblending, numbering, catalog."""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from ...arrays import is_dask
from ...background import MeshBackground
from ...progress import ProgressCallback
from .deblending import deblend_group
from .labels import FinalLabels, Segments
from .params import PhotutilsParams, check_run
from .pipeline import Pipeline
from .workers import map_groups


@dataclasses.dataclass
class PhotutilsResult:
    """What one run produces: ``labels`` (int32, numpy or lazy dask), ``catalog`` (astropy Table or
    None), the ``background`` mesh model, the number of segments and a few run details."""

    labels: Any
    catalog: Any
    background: MeshBackground
    n_labels: int
    n_detected: int
    info: dict


def run_pipeline(image, rms, params: PhotutilsParams, progress: ProgressCallback | None = None, *,
                 tile_size: int = 512, n_threads: int = 0, n_workers: int = 1) -> PhotutilsResult:
    check_run(tile_size, n_threads, n_workers)
    pipe = Pipeline(image, rms, params, tile_size, n_threads, progress)
    pipe.background()
    stitcher = pipe.detect()
    n_obj = stitcher.n_labels
    width = pipe.shape[1]
    bboxes = stitcher.bboxes
    # group objects by the tile holding their first pixel: each group is deblended and catalogued
    # in one window around its objects' bounding boxes
    first = stitcher.first_pixel[1:]
    fy, fx = np.divmod(first, width)
    owner = (fy // pipe.tile) * pipe.grid[1] + (fx // pipe.tile)
    order = np.argsort(owner, kind="stable")
    groups = np.split(order + 1, np.flatnonzero(np.diff(owner[order])) + 1) if n_obj else []
    pipe.n_groups = len(groups)

    segments = Segments(first, width)
    n_workers = int(n_workers) or (os.cpu_count() or 1)
    if params.deblend:
        for split in pipe.interior_splits:
            segments.add(split)
        for part in map_groups(lambda g: deblend_group(pipe, groups[g], bboxes), len(groups), n_workers,
                               lambda done: pipe.report(done, "deblend")):
            for split in part:
                segments.add(split)
    parent_lut, child_luts, n_final = segments.number()
    basic_table, n_segments = None, n_final
    if params.min_snr > 0 and n_final:
        basic_table = _basic_catalog(pipe, segments, parent_lut, child_luts)
        parent_lut, child_luts, n_final, renumber = _reject_faint(basic_table, params.min_snr, parent_lut, child_luts, n_final)
        basic_table = basic_table[renumber[np.asarray(basic_table["label"])] > 0]
        basic_table["label"] = renumber[np.asarray(basic_table["label"])]
    final = FinalLabels(pipe, parent_lut, segments.splits, child_luts)

    catalog = None
    if params.catalog != "none" and not n_final:
        from ...catalog import BASIC_COLUMNS, CATALOG_COLUMNS, empty_table

        catalog = empty_table(BASIC_COLUMNS if params.catalog == "basic" else CATALOG_COLUMNS)
        pipe.report(1, "catalog") if params.catalog == "basic" else None
    elif params.catalog == "basic":
        catalog = basic_table if basic_table is not None else _basic_catalog(pipe, segments, parent_lut, child_luts)
        pipe.report(1, "catalog")
    elif params.catalog == "full":
        from astropy.table import vstack

        from .catalog_windows import build_catalog_window

        def catalog_of(g: int):
            labels_in_group = groups[g]
            finals = np.concatenate([
                child_luts[p][1:] if p in child_luts else parent_lut[[p]] for p in labels_in_group
            ])
            parent_of = np.concatenate([
                np.full(len(child_luts[p]) - 1, p) if p in child_luts else [p] for p in labels_in_group
            ])
            kept = finals > 0  # segments dropped by min_snr
            if not kept.any():
                return None
            finals, parent_of = finals[kept], parent_of[kept]
            return build_catalog_window(pipe, final, finals, parent_of, bboxes[labels_in_group])

        tables = map_groups(catalog_of, len(groups), n_workers, lambda done: pipe.report(done, "catalog"))
        tables = [t for t in tables if t is not None]
        if not tables:
            from ...catalog import CATALOG_COLUMNS, empty_table

            tables = [empty_table(CATALOG_COLUMNS)]
        catalog = vstack(tables, metadata_conflicts="silent")
        catalog.sort("label")
    if catalog is not None and (params.catalog == "basic" or n_final):
        catalog.meta["method"] = "photutils"
        catalog.meta["catalog"] = params.catalog
        catalog.meta["params"] = dataclasses.asdict(params)
    info = {
        "tile_size": pipe.tile,
        "n_tiles": len(pipe.tiles),
        "box_size": pipe.box,
        "noise_factor": pipe.noise_factor,
        "background_rms_median": pipe.mesh.rms_median,
        "n_deblended_parents": len(segments.splits),
        "n_rejected_min_snr": n_segments - n_final,
    }
    labels = final.as_dask() if is_dask(image) else final.as_numpy()
    return PhotutilsResult(labels=labels, catalog=catalog, background=pipe.mesh, n_labels=n_final, n_detected=n_obj, info=info)


def _reject_faint(table, min_snr: float, parent_lut, child_luts, n_final: int):
    """Drop the segments whose S/N (segment flux / error) is below ``min_snr`` and renumber the rest
    1..k in their order (raster order of first pixels stays). Returns the new LUTs, k and the map
    old id → new id (0 = dropped)."""
    flux = np.asarray(getattr(table["segment_flux"], "value", table["segment_flux"]), float)
    err = np.asarray(getattr(table["segment_flux_err"], "value", table["segment_flux_err"]), float)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(err > 0, flux / err, np.inf)  # no error known: keep
    keep = np.zeros(n_final + 1, bool)
    keep[np.asarray(table["label"])[snr >= min_snr]] = True
    renumber = np.zeros(n_final + 1, np.int32)
    renumber[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return renumber[parent_lut], {p: renumber[lut] for p, lut in child_luts.items()}, int(keep.sum()), renumber


def _basic_catalog(pipe: Pipeline, segments: Segments, parent_lut, child_luts):
    """One row per final segment: undeblended objects from the merged detection sums, deblended
    children from the sums taken while deblending."""
    from ...catalog_sums import concat_sums, table_from_sums, take_sums

    parents_kept = np.flatnonzero(parent_lut[1:]) + 1
    rows = [take_sums(pipe.object_sums, parents_kept - 1)]
    ids = [parent_lut[parents_kept]]
    parent_col = [parents_kept]
    for parent, split in segments.splits.items():
        rows.append(split.sums)
        ids.append(child_luts[parent][1:])
        parent_col.append(np.full(len(child_luts[parent]) - 1, parent))
    ids_all = np.concatenate(ids)
    order = np.argsort(ids_all)
    sums_all = take_sums(concat_sums(rows), order)
    return table_from_sums(ids_all[order], np.concatenate(parent_col)[order], sums_all)


def segment(image, rms=None, params: PhotutilsParams | None = None, progress: ProgressCallback | None = None,
            *, tile_size: int = 512, n_threads: int = 0, n_workers: int = 1, **overrides) -> PhotutilsResult:
    """Run the pipeline: ``segment(image, rms=None, nsigma=2.0, ...)`` → :class:`PhotutilsResult`
    (``.labels`` int32, ``.catalog`` astropy Table or None). ``tile_size``, ``n_threads`` and
    ``n_workers`` change only speed and memory, never the result."""
    if params is None:
        params = PhotutilsParams(**overrides)
    elif overrides:
        params = dataclasses.replace(params, **overrides)
    return run_pipeline(image, rms, params, progress, tile_size=tile_size, n_threads=n_threads, n_workers=n_workers)
