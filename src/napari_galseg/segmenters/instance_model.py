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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..inference import expand_region
from ..instance_tiles import TileLayout, assemble, catalog_table, instances_from_masks, stream_to_fits
from .base import ModelFolderError, ProgressCallback, Segmenter


@dataclass
class InstanceParams:
    """Settings shared by the instance models (``--set key=value``)."""

    # data
    subtract_background: bool = True  # the U-Net's sky step (napari_galseg.background), boxes of background_box px
    background_box: int = 64
    patch_size: int = 256
    patches_per_epoch: int = 128
    positive_fraction: float = 0.8
    val_fraction: float = 0.15
    test_fraction: float = 0.1
    block_size: int = 0
    val_max_patches: int = 16
    augment: bool = True
    noise_augment: float = 0.3
    flux_augment: float = 1.25
    # optimisation: AdamW with gradient clipping (plain SGD diverges from scratch within a few steps)
    epochs: int = 20
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "onecycle"
    patience: int = 0  # 0 = no early stopping (detection losses are noisy on small validation sets)
    grad_clip: float = 1.0
    max_minutes: float = 0.0
    init_weights: str = ""  # a local file/folder to start from; never downloaded
    # inference
    tile_size: int = 512
    tile_overlap: int = 96  # >= the largest object, so the tile that owns an object sees all of it
    tile_batch: int = 2
    margin: float = 4.0  # px an owned centre may lie outside the tile's core (ambiguity -> mask IoU)
    iou_threshold: float = 0.5  # mask IoU above which a second detection is a duplicate
    score_threshold: float = 0.2
    mask_threshold: float = 0.5
    min_size: int = 3
    # machine
    device: str = "auto"
    threads: int = 0
    seed: int = 0

    def train_config(self):
        from ..training.loop import TrainConfig

        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                           schedule=self.schedule, patience=self.patience, grad_clip=self.grad_clip, device=self.device,
                           bf16=False, channels_last=False, threads=self.threads or None, seed=self.seed,
                           max_minutes=self.max_minutes or None)


class InstanceSegmenter(Segmenter):
    """Base of the scored instance segmenters (see the module docstring)."""

    trainable = True
    #: the architecture "class" a model folder of this segmenter holds
    architecture_class = ""
    #: torchvision detection models give losses only in training mode
    train_mode_loss = False

    def __init__(self, params=None, **overrides):
        super().__init__(params, **overrides)
        self.net = None
        self.metrics: dict = {}
        self.history: list[dict] = []
        self.scores_: np.ndarray | None = None
        self.catalog_ = None

    # -- what subclasses provide ----------------------------------------------------------------
    def build_net(self, in_channels: int, train_data):
        raise NotImplementedError

    def rebuild_net(self, architecture: dict):
        raise NotImplementedError

    def loss_fn(self, model, inputs, labels):
        raise NotImplementedError

    def predict_batch(self, inputs) -> list[tuple]:
        """Per image of a (B, C, t, t) tensor: (mask probabilities (N, t, t), scores (N,))."""
        raise NotImplementedError

    def prepare_inference(self, tile: int) -> None:
        """Adjust the network to tiles of side ``tile`` (Mask R-CNN's transform)."""

    # -- input ----------------------------------------------------------------------------------
    def input_image(self, image):
        """The image less its sky (lazy; cached per image), as the U-Net does; or the image itself."""
        from ..background import SkySubtracted, estimate_mesh

        p = self.params
        if not p.subtract_background:
            return image
        cached = getattr(self, "_sky_cache", None)
        if cached is None or cached[0] is not image:
            mesh = estimate_mesh(image, p.background_box, n_threads=p.threads or (os.cpu_count() or 1))
            cached = self._sky_cache = (image, SkySubtracted(image, mesh))
        return cached[1]

    def _fitted_recipe(self, image, rms):
        from ..preprocess import as_recipe, image_only_recipe, snr_recipe

        recipe = as_recipe(self.recipe) if self.recipe is not None else (snr_recipe() if rms is not None else image_only_recipe())
        if recipe.needs_rms and rms is None:
            raise ValueError(f"the preprocessing recipe {recipe.name!r} needs an rms map; pass rms (--rms)")
        return recipe if recipe.is_fitted else recipe.fit(image, rms)

    # -- training --------------------------------------------------------------------------------
    def fit(self, image, truth, rms=None, progress: ProgressCallback | None = None, *, callback=None, cancel=None,
            checkpoint_dir: str | os.PathLike | None = None, resume: bool = False):
        """Train on one field (image, instance ``truth``, rms); see :class:`InstanceParams`."""
        import torch

        from ..training import device as dev
        from ..training.instances import GridInstanceDataset, InstancePatchDataset, InstanceTask
        from ..training.loop import fit as train_loop
        from ..training.patches import Augmentation, check_field, spatial_split

        p = self.params
        if truth is None:
            raise ValueError(f"{self.name} needs a truth instance map to train on (--truth)")
        shape = check_field(image, truth, rms)
        image = self.input_image(image)
        recipe = self._fitted_recipe(image, rms)
        split = spatial_split(shape, p.patch_size, p.block_size or None, p.val_fraction, p.test_fraction, p.seed)
        aug = Augmentation(noise=p.noise_augment, flux_scale=(1 / p.flux_augment, p.flux_augment)) if p.augment else None
        train = InstancePatchDataset(image, truth, rms, recipe, split.train, p.patch_size, p.patches_per_epoch,
                                     p.positive_fraction, aug, seed=p.seed)
        val = (GridInstanceDataset(image, truth, rms, recipe, split.val, p.patch_size, p.val_max_patches, p.seed)
               if split.val else None)
        torch.manual_seed(p.seed)
        self.net = self.build_net(recipe.n_channels, train)
        self.recipe = recipe.to_dict()

        def report(r) -> None:
            if progress is not None:
                done, total = (r.epoch - 1) * r.n_steps + r.step, r.n_epochs * r.n_steps
                if p.max_minutes:
                    frac = max(done / total, r.elapsed / (60 * p.max_minutes))
                    done, total = int(1000 * min(frac, 1.0)), 1000
                progress(done, total, f"epoch {r.epoch}/{r.n_epochs} loss {r.train_loss:.3f}")
            if callback is not None:
                callback(r)

        task = InstanceTask(self.loss_fn, self.train_mode_loss)
        result = train_loop(self.net, task, train, val, p.train_config(), checkpoint_dir, resume, report, cancel)
        self.net = self.net.cpu().eval()
        self.history = result.history
        self.metrics = {"validation": result.best_metrics}
        if split.test:
            test = GridInstanceDataset(image, truth, rms, recipe, split.test, p.patch_size, p.val_max_patches, p.seed)
            self.metrics["test"] = self.score_patches(test, dev.resolve_device(p.device))
        self.provenance.setdefault("training", {})
        self.provenance["training"].update({
            "shape": list(shape), "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
            "stopped": result.stopped, "elapsed_s": round(result.elapsed, 1), "device": result.device,
            "steps": result.global_step, "torch": torch.__version__,
            "split": {"block_size": split.block_size, "test": [list(b) for b in split.test]},
        })
        return self

    def score_patches(self, dataset, device) -> dict:
        """COCO segm AP / AP50 of the model on fixed patches (one COCO image per patch)."""
        import torch

        from ..instance_tiles import Assembler
        from ..metrics.coco import coco_evaluate

        net = self.net.to(device).eval()
        self.prepare_inference(self.params.patch_size)
        preds, truths, scores = [], [], []
        with torch.inference_mode():
            for i in range(len(dataset)):
                inputs, labels = dataset[i]
                (masks, s), = self.predict_batch(torch.from_numpy(inputs[None]).to(device))
                layout = TileLayout(labels.shape, max(labels.shape), 0)
                asm = Assembler(layout, self.params.iou_threshold, self.params.min_size)
                rows = asm.paint(instances_from_masks(masks.cpu().numpy(), s.cpu().numpy().tolist(), 0, 0,
                                                      self.params.mask_threshold))
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
        """A ``detect(windows)`` for :mod:`napari_galseg.instance_tiles` over this image."""
        import torch

        from ..preprocess import as_recipe
        from ..training import device as dev
        from ..training.patches import read_window

        net = self._require_net()
        if self.recipe is None:
            raise ValueError("this model has no preprocessing recipe; it was not trained or saved by napari-galseg")
        recipe = as_recipe(self.recipe)
        if recipe.needs_rms and rms is None:
            raise ValueError("this model's recipe needs an rms map; pass rms (--rms)")
        p = self.params
        device = dev.resolve_device(p.device)
        if device.type == "cpu":
            dev.configure_threads(p.threads or None)
        net.to(device).eval()
        source = image if sky_subtracted else self.input_image(image)
        tile = p.tile_size
        self.prepare_inference(tile)

        def read(y0, y1, x0, x1):
            img = read_window(source, y0, y1, x0, x1)
            r = read_window(rms, y0, y1, x0, x1) if rms is not None else None
            x = np.nan_to_num(np.asarray(recipe.apply(img, r), np.float32), nan=0.0, posinf=0.0, neginf=0.0)
            out = np.zeros((x.shape[0], tile, tile), np.float32)  # pad edge tiles: the model's scale stays 1
            out[:, : y1 - y0, : x1 - x0] = x
            return out

        def detect(windows):
            found = []
            for k in range(0, len(windows), max(1, p.tile_batch)):
                batch = windows[k: k + max(1, p.tile_batch)]
                x = torch.from_numpy(np.stack([read(*w) for w in batch])).to(device)
                with torch.inference_mode():
                    outputs = self.predict_batch(x)
                for (y0, y1, x0, x1), (masks, scores) in zip(batch, outputs):
                    # threshold on the device: one byte per pixel crosses to the host, not four
                    masks = (masks[:, : y1 - y0, : x1 - x0] > p.mask_threshold).cpu().numpy()
                    found.append(instances_from_masks(masks, scores.float().cpu().numpy().tolist(), y0, x0))
            return found

        return detect

    def layout(self, shape) -> TileLayout:
        p = self.params
        return TileLayout(shape, p.tile_size, p.tile_overlap)

    def predict_instances(self, image, rms=None, region=None, progress: ProgressCallback | None = None, cancel=None):
        """``(labels int32, scores indexed by label, catalog Table)`` of the frame or of
        ``region = (y0, y1, x0, x1)`` (computed with one overlap of context around it)."""
        from ..training.patches import check_field

        shape = check_field(image, None, rms)
        image = self.input_image(image)  # the sky of the whole frame, also for a field of view
        if region is not None:
            y0, y1, x0, x1 = expand_region(region, shape, self.params.tile_overlap)
            image = _Window(image, y0, y1, x0, x1)
            rms = _Window(rms, y0, y1, x0, x1) if rms is not None else None
        p = self.params
        detect = self.detector(image, rms, sky_subtracted=True)
        labels, scores, rows = assemble(detect, self.layout(tuple(np.shape(image))), margin=p.margin,
                                        iou_threshold=p.iou_threshold, min_size=p.min_size, progress=progress,
                                        cancel=cancel)
        table = catalog_table(rows)
        if region is not None:
            ry0, ry1, rx0, rx1 = region
            labels = labels[ry0 - y0: ry1 - y0, rx0 - x0: rx1 - x0]
            labels, scores, table = _keep_present(labels, scores, table, (ry0 - y0, rx0 - x0))
        return labels, scores, table

    def predict(self, image, rms=None, progress: ProgressCallback | None = None, region=None):
        """Instance labels (int32, 0 = sky); per-label scores in ``scores_``, the catalog in ``catalog_``."""
        labels, self.scores_, self.catalog_ = self.predict_instances(image, rms, region, progress)
        return labels

    def predict_to_fits(self, image, path, rms=None, header=None, overwrite: bool = False,
                        progress: ProgressCallback | None = None, catalog_path=None, resume: bool = True, cancel=None):
        """Labels of a frame of any size streamed to FITS, the scored catalog as ECSV beside them
        (``<stem>_catalog.ecsv``); an interrupted run resumes from ``path.partial``."""
        p = self.params
        out, cat = stream_to_fits(self.detector(image, rms), self.layout(tuple(np.shape(image))), path, header=header,
                                  catalog_path=catalog_path, overwrite=overwrite, resume=resume, margin=p.margin,
                                  iou_threshold=p.iou_threshold, min_size=p.min_size, wcs=_wcs_of(header),
                                  progress=progress, cancel=cancel)
        from astropy.table import Table

        self.catalog_ = Table.read(cat, format="ascii.ecsv")
        return Path(out)

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

    def __init__(self, array, y0, y1, x0, x1):
        self.array, self.y0, self.x0 = array, y0, x0
        self.shape = (y1 - y0, x1 - x0)
        self.dtype = array.dtype
        self.ndim = 2

    def __getitem__(self, key):
        ys, xs = key
        return self.array[self.y0 + ys.start: self.y0 + ys.stop, self.x0 + xs.start: self.x0 + xs.stop]


def _keep_present(labels, scores, table, offset):
    from skimage.segmentation import relabel_sequential

    new, forward, _ = relabel_sequential(labels)
    present = np.unique(labels[labels > 0])
    out_scores = np.full(len(present) + 1, np.nan)
    out_scores[forward[present]] = scores[present]
    keep = np.isin(table["label"], present)
    table = table[keep]
    table["label"] = forward[np.asarray(table["label"])]
    for col, off in (("y_centroid", offset[0]), ("bbox_ymin", offset[0]), ("bbox_ymax", offset[0]),
                     ("x_centroid", offset[1]), ("bbox_xmin", offset[1]), ("bbox_xmax", offset[1])):
        table[col] = table[col] - off
    return new.astype(np.int32), out_scores, table


__all__ = ["InstanceParams", "InstanceSegmenter"]
