"""Many frames: ``galseg segment METHOD FRAME1 FRAME2 ... -o DIR``, resumable, here or on a cluster.

Each frame ``PATH/NAME.fits`` gives ``DIR/NAME_labels.fits`` and, for methods that make one,
``DIR/NAME_catalog.ecsv``. Both are written atomically; then a marker
``DIR/.galseg-frames/NAME.json`` (the method, inputs and settings) says the frame is done. A rerun
skips the frames whose marker and outputs are there, and redoes the rest — a run killed in the
middle of a frame leaves no marker for it, so that frame is done again. A marker of other settings
stops the run before any work (another folder, or ``--overwrite`` to redo every frame).

The rms maps: one ``--rms`` per frame in the frames' order, or one pattern in which ``{name}``
stands for the frame's name (``--rms 'rms/{name}.rms.fits'``).

With ``--scheduler ADDRESS`` every pending frame is one task on the dask cluster (each worker runs
the whole frame, so the output folder must be on a file system the workers share); without it the
frames run here one after another.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .segment import FrameTask, _error, segment_frame

#: the folder (inside DIR) that holds one "done" marker per frame
MARKERS = ".galseg-frames"
_FITS_SUFFIXES = (".fits.gz", ".fit.gz", ".fts.gz", ".fits.fz", ".fits", ".fit", ".fts", ".fz")


def frame_name(path: str | Path) -> str:
    """``field-07`` for ``data/field-07.fits`` (or .fits.gz, .fz, ...)."""
    name = Path(path).name
    for suffix in _FITS_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def is_many_frames(images: list[str], output: str) -> bool:
    """The many-frames form: several frames, or ``-o`` is a folder (existing, or ending in /)."""
    return len(images) > 1 or Path(output).is_dir() or output.endswith(("/", "\\"))


def rms_paths(frames: list[str], given: list[str] | None, option: str = "--rms") -> list[str | None]:
    """The noise map (or ``option``'s file) of each frame: none, one per frame in order, or one
    ``{name}`` pattern."""
    given = given or []
    if not given:
        return [None] * len(frames)
    if len(given) == 1 and "{name}" in given[0]:
        return [given[0].replace("{name}", frame_name(f)) for f in frames]
    if len(given) != len(frames):
        raise _error(f"{len(frames)} frames but {len(given)} {option} map(s): give one {option} per frame, in the "
                     "frames' order, or one pattern in which {name} is the frame's file name without .fits, "
                     f"e.g. {option} 'maps/{{name}}.fits'")
    return list(given)


def _record(task: FrameTask) -> dict:
    """What a marker holds; a frame done with another record is not this run's."""
    return {"method": task.method, "image": str(Path(task.image).resolve()),
            "rms": str(Path(task.rms).resolve()) if task.rms else None, "hdu": task.hdu,
            "settings": dict(sorted(task.overrides.items())),
            "model": str(Path(task.model).resolve()) if task.model else None, "recipe": task.recipe,
            "sextractor_config": task.sextractor_config,
            **{k: getattr(task, k) for k in ("noise_kind", "noise_hdu", "mask", "mask_bits", "mask_hdu")
               if getattr(task, k)},
            **({"noise_scale": task.noise_scale} if task.noise_scale != 1.0 else {}),
            "outputs": [p for p in (task.output, task.catalog) if p]}


def write_marker(task: FrameTask) -> None:
    """Say atomically that ``task``'s frame is done (after its outputs were written)."""
    from .._atomic import atomic_write_text

    atomic_write_text(task.marker, json.dumps(task.marker_record, indent=1), overwrite=True)


def _is_done(task: FrameTask) -> bool:
    """True when the frame's marker and outputs are there; a marker of other settings stops the run."""
    marker = Path(task.marker)
    if not marker.exists():
        return False
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False  # a damaged marker: do the frame again
    if record != task.marker_record:
        changed = sorted(k for k in task.marker_record if record.get(k) != task.marker_record[k])
        raise _error(f"{task.output} was made by an earlier run with other {', '.join(changed)} ({marker}); "
                     "write to another folder, or pass --overwrite to segment every frame again")
    return all(Path(p).exists() for p in record["outputs"])


def plan(args, cls, overrides: dict, sex) -> tuple[list[FrameTask], list[FrameTask]]:
    """``(pending, done)`` frame tasks of a many-frames run; everything checked before any work."""
    from .._atomic import check_output_folder

    if args.catalog:
        raise _error("with many frames each catalog is written beside its labels (DIR/NAME_catalog.ecsv); drop --catalog")
    if str(args.output).lower().endswith((".fits", ".fit", ".fts", ".fits.gz")):
        raise _error(f"-o {args.output} names a FITS file, but {len(args.image)} frames need a folder: -o DIR")
    if sex is not None and sex.weight_image is not None:
        raise _error("the configuration's WEIGHT_IMAGE is one file; for many frames give each frame's rms with --rms")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise _error(f"-o {out} is a file; many frames need a folder")
    names: dict[str, str] = {}
    for frame in args.image:
        name = frame_name(frame)
        if name in names:
            raise _error(f"{names[name]} and {frame} would both write {name}_labels.fits; give frames distinct names")
        names[name] = frame
    out.mkdir(parents=True, exist_ok=True)
    check_output_folder(out / "x.fits", create=False)
    (out / MARKERS).mkdir(exist_ok=True)
    catalog = cls.capabilities.catalog and str(overrides.get("catalog", "")).lower() != "none"
    pending, done = [], []
    inputs = {str(Path(f).resolve()) for f in args.image}
    from .segment import _plane_options

    masks = rms_paths(args.image, getattr(args, "mask", None), "--mask")
    for frame, rms, mask in zip(args.image, rms_paths(args.image, args.rms), masks):
        name = frame_name(frame)
        task = FrameTask(cls.name, frame, str(out / f"{name}_labels.fits"), rms,
                         str(out / f"{name}_catalog.ecsv") if catalog else None, args.hdu, dict(overrides),
                         args.model, args.trust_model, args.recipe, args.sextractor_config,
                         overwrite=True, marker=str(out / MARKERS / f"{name}.json"), **_plane_options(args, mask))
        if {str(Path(p).resolve()) for p in (task.output, task.catalog) if p} & inputs:
            raise _error(f"{task.output} would replace an input frame; write to another folder")
        task.marker_record = _record(task)
        if not args.overwrite and _is_done(task):
            done.append(task)
        else:
            Path(task.marker).unlink(missing_ok=True)  # not done until its outputs are written again
            pending.append(task)
    return pending, done


def run_frames(args, cls, overrides: dict, sex) -> int:
    """Segment every pending frame (here, or one task each on ``--scheduler``); 1 if any failed."""
    pending, done = plan(args, cls, overrides, sex)
    if done:
        print(f"{len(done)} of {len(args.image)} frames already done in {args.output}; skipped: "
              + ", ".join(frame_name(t.image) for t in done[:5]) + (" ..." if len(done) > 5 else ""), file=sys.stderr)
    if not pending:
        return 0
    if args.scheduler:
        return run_on_cluster(args.scheduler, pending)
    from . import progress_bar

    failed = 0
    for n, task in enumerate(pending, 1):
        with progress_bar(f"{cls.name}: {frame_name(task.image)} ({n}/{len(pending)})", unit="step") as bar:
            try:
                message = segment_frame(task, progress=bar)
            except Exception as exc:
                failed += 1
                message = f"{task.image}: error: {_one_line(exc)}"
        print(message, file=sys.stderr)
    return _summary(len(pending), failed)


def run_on_cluster(address: str, tasks: list[FrameTask]) -> int:
    """Each task on the dask cluster at ``address``, a line as each one ends; 1 if any failed."""
    from ..cluster import connect

    tasks = [_absolute(task) for task in tasks]  # the workers run in other folders, on other machines
    client = connect(address)
    failed = 0
    try:
        import distributed

        from ..cluster import gpu_resources
        from ..segmenters import get

        # a network method takes a worker's GPU resource: one frame per GPU at a time
        resources = gpu_resources(client) if get(tasks[0].method).capabilities.uses_device else None
        futures = {client.submit(segment_frame, task, pure=False, resources=resources): task for task in tasks}
        print(f"{len(tasks)} frame(s) sent to {address} ({len(client.nthreads())} workers)", file=sys.stderr)
        for future in distributed.as_completed(futures, loop=client.loop):
            task = futures[future]
            try:
                print(future.result(), file=sys.stderr)
            except Exception as exc:
                failed += 1
                print(f"{task.image}: error: {_one_line(exc)}", file=sys.stderr)
    finally:
        client.close()
    return _summary(len(tasks), failed)


def _absolute(task: FrameTask) -> FrameTask:
    """``task`` with every file path made absolute (a worker's working folder is not ours)."""
    import dataclasses

    paths = {name: str(Path(value).absolute()) for name in ("image", "output", "rms", "catalog", "model", "recipe",
                                                           "sextractor_config", "marker", "mask")
             if (value := getattr(task, name))}
    if task.recipe and not Path(task.recipe).exists():  # a recipe name ('default'), not a file
        paths.pop("recipe")
    return dataclasses.replace(task, **paths)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _summary(n: int, failed: int) -> int:
    if failed:
        print(f"{failed} of {n} frame(s) failed (see above); rerun the same command to do them again "
              "(finished frames are skipped)", file=sys.stderr)
        return 1
    return 0
