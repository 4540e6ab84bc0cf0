"""What Mask R-CNN and DETR share as segmenters: training on patches, tiled scored inference, folders.

A subclass supplies the network (``build_net``/``rebuild_net``), its loss and its per-batch
prediction (mask probabilities and scores per image); this base does the rest:

- training on the shared loop (:mod:`napari_galseg.training.loop`) with the U-Net's spatial
  train/val/test split, galaxy-aware patches and augmentation, AdamW and gradient clipping; the
  test blocks are scored with COCO segm AP at the end;
- inference over tiles of any frame through :mod:`napari_galseg.instance_tiles` (one owner per
  object, mask-IoU suppression), labels with per-instance scores and a scored catalog, streamed to
  FITS in bounded memory and resumable (:meth:`predict_to_fits`);
- model folders: config.json (params, recipe, architecture) + ``weights.safetensors``.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..instance_tiles import TileLayout, assemble, catalog_table, stream_to_fits, tile_instances, without_no_data
from ..model_folder import ModelFolderError
from ..progress import ProgressCallback, reporter
from ..window import Window
from .base import Capabilities, Segmentation, Segmenter
from .sky_input import SkySubtractedInput


@dataclass
class InstanceParams:
    """What the instance models share (``--set key=value``); how they learn is the shared
    :class:`~napari_galseg.settings.TrainConfig`, tiles and device are
    :class:`~napari_galseg.settings.RunOptions`."""

    #: subtract a smooth sky (the photutils Background2D model) before the recipe, as the U-Net does
    subtract_background: bool = True
    #: box size in pixels of that sky model
    background_box: int = 64
    #: pixels an owned centre may lie outside a tile's core (the ambiguity is settled by mask IoU)
    margin: float = 4.0
    #: mask IoU above which a second detection of the same object is dropped as a duplicate
    iou_threshold: float = 0.5
    #: detections scoring below this are not kept
    score_threshold: float = 0.2
    #: mask probability at or above which a pixel belongs to a detection
    mask_threshold: float = 0.5
    #: smallest object kept, in pixels
    min_size: int = 3
    #: a detection left with fewer free pixels than this fraction of its mask (the rest taken by
    #: higher-scoring ones) is dropped rather than kept as a fragment; 0 keeps every fragment
    min_free_fraction: float = 0.0
    #: start training from this local weights file or folder (never downloaded)
    init_weights: str = ""

    def __post_init__(self):
        if not 0.0 <= self.min_free_fraction <= 1.0:
            raise ValueError(f"min_free_fraction must be between 0 and 1, got {self.min_free_fraction}")

    def paint_rules(self) -> dict:
        """How detections are painted (:class:`~napari_galseg.instance_tiles.Assembler`'s rules), as keywords."""
        return {"iou_threshold": self.iou_threshold, "min_size": self.min_size,
                "min_free_fraction": self.min_free_fraction}


#: training settings of the instance models where they differ from the shared defaults: small
#: batches (a CPU step of Mask R-CNN takes seconds), no early stopping (detection losses are noisy
#: on a few validation patches), AdamW with gradient clipping (plain SGD diverges from scratch)
INSTANCE_TRAIN_DEFAULTS = {"batch_size": 4, "lr": 1e-3, "patches_per_epoch": 128, "positive_fraction": 0.8,
                           "val_max_patches": 16, "patience": 0, "grad_clip": 1.0, "epochs": 20}


class InstanceSegmenter(SkySubtractedInput, Segmenter):
    """Base of the scored instance segmenters (see the module docstring)."""

    #: a field of view runs the frame grid's tiles whose cores lie within two tile overlaps (plus
    #: ``margin``) of it, painted in the whole-frame order: the crop of the whole-frame labels
    #: (region_equals_crop; see :meth:`predict_instances` for the one case it does not cover)
    capabilities = Capabilities(trainable=True, region_with_context=True, region_equals_crop=True,
                                streams_to_fits=True, streams_catalog=True, scored=True, uses_device=True, catalog=True,
                                uses_recipe=True, resumable=True)
    run_fields = ("tile_size", "tile_overlap", "tile_batch", "n_threads", "device")
    train_defaults = INSTANCE_TRAIN_DEFAULTS
    #: the architecture "class" a model folder of this segmenter holds
    architecture_class = ""
    #: torchvision detection models give losses only in training mode
    train_mode_loss = False

    def __init__(self, params=None, **settings):
        super().__init__(params, **settings)
        self.net = None
        self.metrics: dict = {}
        self.history: list[dict] = []

    # -- what subclasses provide ----------------------------------------------------------------
    def build_net(self, in_channels: int, train_data):
        raise NotImplementedError

    def rebuild_net(self, architecture: dict):
        raise NotImplementedError

    def loss_fn(self, model, inputs, labels):
        raise NotImplementedError

    def predict_batch(self, inputs) -> list:
        """Per image of a (B, C, t, t) tensor: (mask probabilities (N, t, t), scores (N,)), or the
        masks of the detections' boxes (:class:`~napari_galseg.instance_tiles.BoxedMasks`)."""
        raise NotImplementedError

    def prepare_inference(self, tile: int) -> None:
        """Adjust the network to tiles of side ``tile`` (Mask R-CNN's transform)."""

    # -- input ----------------------------------------------------------------------------------
    def _fitted_recipe(self, image, rms):
        from ..preprocess import as_recipe, image_only_recipe, snr_recipe

        recipe = as_recipe(self.recipe) if self.recipe is not None else (snr_recipe() if rms is not None else image_only_recipe())
        if recipe.needs_rms and rms is None:
            raise ValueError(f"the preprocessing recipe {recipe.name!r} needs an rms map; pass rms (--rms)")
        return recipe if recipe.is_fitted else recipe.fit(image, rms)

    # -- training --------------------------------------------------------------------------------
    def _fit(self, image, truth, rms, progress: ProgressCallback, *, callback=None, cancel=None,
             checkpoint_dir: str | os.PathLike | None = None, resume: bool = False) -> None:
        """Train on one field (image, instance ``truth``, rms) with the shared loop."""
        import torch

        from ..preprocess import as_recipe
        from ..training import device as dev
        from ..training.instances import GridInstanceDataset, InstancePatchDataset, InstanceTask
        from ..training.loop import fit as train_loop
        from ..training.patches import Augmentation, check_field, spatial_split

        t = self.train_config
        shape = check_field(image, truth, rms)
        if rms is None and self.recipe is not None and as_recipe(self.recipe).needs_rms:
            rms = self.noise_map(image, None)  # estimated (noise_note says so)
        image = self.input_image(image)
        recipe = self._fitted_recipe(image, rms)
        split = spatial_split(shape, t.patch_size, t.block_size or None, t.val_fraction, t.test_fraction, t.seed)
        aug = Augmentation(noise=t.noise_augment, flux_scale=(1 / t.flux_augment, t.flux_augment)) if t.augment else None
        train = InstancePatchDataset(image, truth, rms, recipe, split.train, t.patch_size, t.patches_per_epoch,
                                     t.positive_fraction, aug, seed=t.seed)
        val = (GridInstanceDataset(image, truth, rms, recipe, split.val, t.patch_size, t.val_max_patches, t.seed)
               if split.val else None)
        torch.manual_seed(t.seed)
        self.net = self.build_net(recipe.n_channels, train)
        self.recipe = recipe.to_dict()

        def report(r) -> None:
            if progress is not None:
                done, total = (r.epoch - 1) * r.n_steps + r.step, r.n_epochs * r.n_steps
                if t.max_minutes:
                    frac = max(done / total, r.elapsed / (60 * t.max_minutes))
                    done, total = int(1000 * min(frac, 1.0)), 1000
                progress(done, total, f"epoch {r.epoch}/{r.n_epochs} loss {r.train_loss:.3f}")
            if callback is not None:
                callback(r)

        task = InstanceTask(self.loss_fn, self.train_mode_loss)
        result = train_loop(self.net, task, train, val, t, self.run_options, checkpoint_dir, resume, report, cancel)
        self.net = self.net.cpu().eval()
        self.history = result.history
        self.metrics = {"validation": result.best_metrics}
        if split.test:
            test = GridInstanceDataset(image, truth, rms, recipe, split.test, t.patch_size, t.val_max_patches, t.seed)
            self.metrics["test"] = self.score_patches(test, dev.resolve_device(self.run_options.device))
        self.provenance.setdefault("training", {})
        self.provenance["training"].update({
            "shape": list(shape), "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
            "stopped": result.stopped, "elapsed_s": round(result.elapsed, 1), "device": result.device,
            "steps": result.global_step, "torch": torch.__version__,
            "split": {"block_size": split.block_size, "test": [list(b) for b in split.test]},
        })

    def score_patches(self, dataset, device) -> dict:
        """COCO segm AP / AP50 of the model on fixed patches (one COCO image per patch)."""
        import torch

        from ..instance_tiles import Assembler
        from ..metrics.coco import coco_evaluate

        net = self.net.to(device).eval()
        self.prepare_inference(self.train_config.patch_size if self.train_config else dataset.patch_size)
        preds, truths, scores = [], [], []
        with torch.inference_mode():
            for i in range(len(dataset)):
                inputs, labels = dataset[i]
                output, = self.predict_batch(torch.from_numpy(inputs[None]).to(device))
                layout = TileLayout(labels.shape, max(labels.shape), 0)
                asm = Assembler(layout, **self.params.paint_rules())
                rows = asm.paint(tile_instances(output, 0, 0, *labels.shape, self.params.mask_threshold))
                preds.append(asm.release(labels.shape[0])[2])
                truths.append(labels)
                table = np.full(len(rows) + 1, np.nan)
                for row in rows:
                    table[row[0]] = row[3]
                scores.append(table)
        net.cpu()
        stats = coco_evaluate(preds, truths, scores=scores, iou_types=("segm",))
        return {k: v for k, v in stats.items() if k in ("ap", "ap50", "ap75", "ar") and v is not None}

    # -- inference -------------------------------------------------------------------------------
    def _require_net(self):
        if self.net is None:
            raise RuntimeError(f"this {self.name} model has no weights: train it (fit) or load a model folder first")
        return self.net

    def detector(self, image, rms, sky_subtracted: bool = False) -> Callable:
        """A ``detect(windows)`` for :mod:`napari_galseg.instance_tiles` over this image: each tile's
        no-data pixels get the recipe's fills going in and are cut out of its detections coming out
        (:func:`~napari_galseg.instance_tiles.without_no_data`)."""
        import torch

        from ..preprocess import as_recipe, no_data
        from ..training import device as dev
        from ..training.patches import read_window

        net = self._require_net()
        if self.recipe is None:
            raise ValueError("this model has no preprocessing recipe; it was not trained or saved by napari-galseg")
        recipe = as_recipe(self.recipe)
        if recipe.needs_rms and rms is None:
            rms = self.noise_map(image, None)  # estimated (noise_note says so)
        p, run = self.params, self.run_options
        device = dev.resolve_device(run.device)
        if device.type == "cpu":
            dev.configure_threads(run.n_threads or None)
        net.to(device).eval()
        source = image if sky_subtracted else self.input_image(image)
        tile = run.tile_size
        self.prepare_inference(tile)

        def read(y0, y1, x0, x1):
            """The tile's network input (padded to the tile size) and its no-data mask (or None)."""
            img = read_window(source, y0, y1, x0, x1)  # the sky-subtracted image keeps the frame's NaN
            r = read_window(rms, y0, y1, x0, x1) if rms is not None else None
            missing = no_data(img, r)
            x = recipe.network_input(img, r, missing)  # no-data pixels at the recipe's fills, as in training
            out = np.zeros((x.shape[0], tile, tile), np.float32)  # pad edge tiles: the model's scale stays 1
            out[:, : y1 - y0, : x1 - x0] = x
            return out, (missing if missing.any() else None)

        def detect(windows):
            found = []
            step = max(1, run.tile_batch)
            for k in range(0, len(windows), step):
                batch = windows[k: k + step]
                inputs, masks = zip(*(read(*w) for w in batch))
                x = torch.from_numpy(np.stack(inputs)).to(device)
                with torch.inference_mode():
                    outputs = self.predict_batch(x)
                for (y0, y1, x0, x1), output, missing in zip(batch, outputs, masks):
                    found.append(without_no_data(tile_instances(output, y0, x0, y1 - y0, x1 - x0, p.mask_threshold),
                                                 missing, y0, x0))
            return found

        return detect

    def layout(self, shape) -> TileLayout:
        return TileLayout(shape, self.run_options.tile_size, self.run_options.tile_overlap)

    def predict_instances(self, image, rms=None, region: Window | None = None,
                          progress: ProgressCallback | None = None):
        """``(labels int32, scores indexed by label, catalog Table)`` of the frame, or of ``region``
        (labels and catalog positions then in the region's pixels).

        A region runs the tiles of the whole frame's grid whose cores lie within ``2 * tile_overlap
        + margin`` of it, painted in the same order, so its labels are the crop of the whole-frame
        labels (renumbered 1..n): every object reaching into the region (at most one overlap across)
        is detected by the tile that owns it in the frame run, and so is every detection that
        overlaps such an object and could take its pixels or suppress it. Not covered: a chain of
        three or more mutually overlapping detections reaching beyond that context, where the
        farthest one changes the middle one's pixels in the frame run.
        """
        from ..training.patches import check_field

        shape = check_field(image, None, rms)
        image = self.input_image(image)  # the sky of the whole frame, also for a field of view
        p = self.params
        layout = self.layout(shape)
        outer = Window.full(shape)
        if region is not None:
            bounds, layout = layout.around(*region.bounds, context=2 * self.run_options.tile_overlap + p.margin)
            outer = Window(*bounds)
            image = _Window(image, outer)
            rms = _Window(rms, outer) if rms is not None else None
        detect = self.detector(image, rms, sky_subtracted=True)
        labels, scores, rows = assemble(detect, layout, margin=p.margin, progress=progress, **p.paint_rules())
        table = catalog_table(rows)
        if region is None:
            return labels, scores, table
        for col in ("x_centroid", "bbox_xmin", "bbox_xmax"):
            table[col] = table[col] + (outer.x0 - region.x0)
        for col in ("y_centroid", "bbox_ymin", "bbox_ymax"):
            table[col] = table[col] + (outer.y0 - region.y0)
        cropped = Segmentation(labels, scores, catalog=table).crop(region, outer)
        return cropped.labels, cropped.scores, cropped.catalog

    def _predict(self, image, rms, region: Window | None, progress) -> Segmentation:
        """Instance labels (int32, 0 = sky) with a score per label and the scored catalog (pixel
        positions in the labels' grid: the frame's, or the region's)."""
        labels, scores, table = self.predict_instances(image, rms, region, progress)
        return Segmentation(labels, scores=scores, catalog=table)

    def predict_to_fits(self, image, path, rms=None, *, header=None, overwrite: bool = False,
                        progress: ProgressCallback | None = None, cancel=None, catalog_path=None,
                        resume: bool = True) -> Segmentation:
        """Labels of a frame of any size streamed to FITS, the scored catalog as ECSV beside them
        (``<stem>_catalog.ecsv``); an interrupted run resumes from ``<path>.partial``."""
        from astropy.table import Table

        from ..io import open_fits

        self._check_rms(rms)
        p = self.params
        out, cat = stream_to_fits(self.detector(image, rms), self.layout(tuple(np.shape(image))), path, header=header,
                                  catalog_path=catalog_path, overwrite=overwrite, resume=resume, margin=p.margin,
                                  **p.paint_rules(), wcs=_wcs_of(header),
                                  source_key=self._fingerprint(image, rms), progress=reporter(progress, cancel))
        table = Table.read(cat, format="ascii.ecsv")
        scores = np.full(int(table["label"].max(initial=0)) + 1, np.nan)
        scores[np.asarray(table["label"], int)] = np.asarray(table["score"], float)
        return Segmentation(open_fits(out).data, scores=scores, catalog=table)

    def _fingerprint(self, image, rms) -> str:
        """A cheap key of (a sparse sample of) the image and rms, the weights and the settings: a
        resumed ``predict_to_fits`` only continues work done on the same input with the same model."""
        import hashlib

        digest = hashlib.sha1()
        for array in (image, rms):
            if array is None:
                continue
            step = max(1, int(np.ceil(max(np.shape(array)) / 256)))
            sample = array[::step, ::step]
            sample = sample.compute() if hasattr(sample, "compute") else sample
            digest.update(np.ascontiguousarray(np.asarray(sample), np.float32))
        for tensor in self._require_net().state_dict().values():
            digest.update(tensor.detach().flatten()[:64].float().cpu().numpy().tobytes())
        digest.update(repr((self.params, self.recipe, self.run_options.tile_size, self.run_options.tile_overlap)).encode())
        return digest.hexdigest()

    # -- model folders ---------------------------------------------------------------------------
    def config(self) -> dict:
        cfg = super().config()
        cfg["architecture"] = dict(self._require_net().galseg_architecture)
        cfg["weights"] = "weights.safetensors"
        cfg["metrics"] = self.metrics
        cfg["history"] = self.history
        return cfg

    def _save_state(self, path: Path) -> None:
        from ..training.checkpoints import save_weights

        save_weights(self._require_net(), path / "weights.safetensors", {"format": f"napari-galseg/{self.name}"})

    def _load_state(self, path: Path, config: dict) -> None:
        from ..preprocess import as_recipe
        from ..training.checkpoints import load_weights

        arch = config.get("architecture")
        if not isinstance(arch, dict) or arch.get("class") != self.architecture_class:
            raise ModelFolderError(f"{path}/config.json has no {self.architecture_class} architecture; "
                                   f"the folder is not a napari-galseg {self.name} model")
        if self.recipe is None:
            raise ModelFolderError(f"{path}/config.json has no preprocessing recipe; re-train or re-save the model")
        recipe = as_recipe(self.recipe)
        if recipe.n_channels != int(arch.get("in_channels", -1)):
            raise ModelFolderError(f"{path}: the recipe makes {recipe.n_channels} channel(s) but the network takes "
                                   f"{arch.get('in_channels')}; the config and the weights do not belong together")
        try:
            net = self.rebuild_net(arch)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFolderError(f"{path}/config.json has an unusable architecture ({exc})") from None
        load_weights(net, path / config.get("weights", "weights.safetensors"))
        self.net = net.eval()
        self.metrics = config.get("metrics") or {}
        self.history = config.get("history") or []


def _wcs_of(header):
    if header is None:
        return None
    try:
        from astropy.wcs import WCS

        wcs = WCS(header)
        return wcs if wcs.has_celestial else None
    except Exception:  # a header without a usable WCS: the catalog keeps pixel positions only
        return None


class _Window:
    """A lazy window of a 2-D array (what the detector reads for a field-of-view prediction)."""

    def __init__(self, array, window: Window):
        self.array, self.y0, self.x0 = array, window.y0, window.x0
        self.shape = window.shape
        self.dtype = array.dtype
        self.ndim = 2

    def __getitem__(self, key):
        ys, xs = key
        return self.array[self.y0 + ys.start: self.y0 + ys.stop, self.x0 + xs.start: self.x0 + xs.stop]


__all__ = ["InstanceParams", "InstanceSegmenter"]
