"""U-Net segmenter: trained on 256² patches of a field, predicts huge frames tile by tile.

The network (``napari_galseg.models.unet.UNet``) outputs a galaxy probability and a normalised
distance-to-edge map; watershed of the distance inside the thresholded probability gives instance
labels, which splits touching galaxies. Training uses the shared loop
(``napari_galseg.training.loop``) on a spatial train/val/test split of the field.

>>> seg = UNetSegmenter(epochs=20)                                   # doctest: +SKIP
>>> seg.fit(image, truth, rms)                                      # doctest: +SKIP
>>> seg.save("models/unet-1")                                       # doctest: +SKIP
>>> labels = UNetSegmenter.load("models/unet-1").predict(image, rms)   # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from .._duration import format_duration
from ..background import SkySubtracted, estimate_mesh
from ..inference import LabelParams, TiledPredictor, expand_region, iter_label_strips, write_labels_fits
from ..models.unet import UNet
from ..preprocess import as_recipe, image_only_recipe, snr_recipe
from ..training import device as dev
from ..training.checkpoints import WEIGHTS_NAME, load_weights, save_weights
from ..training.loop import TrainConfig, TrainReport, fit as train_loop
from ..training.patches import (Augmentation, GridPatchDataset, PatchDataset, check_field, read_window,
                                spatial_split)
from ..training.tasks import SegmentationTask
from .base import ModelFolderError, ProgressCallback, Segmenter, register


@dataclass
class UNetParams:
    """Architecture, training and inference settings (``--set key=value`` on the CLI)."""

    # architecture
    depth: int = 4
    base_width: int = 8  # 16 doubles training time per step on 2 CPU cores; see docs/results.md
    # data
    # Subtract a smooth sky (napari_galseg.background: the photutils Background2D model, boxes of
    # background_box px) from the image before the recipe, at training and inference time. With it
    # and the snr channel, test IoU rose from 0.755 to 0.790 in a 6-minute run (docs/results.md).
    subtract_background: bool = True
    background_box: int = 64
    patch_size: int = 256
    patches_per_epoch: int = 512
    positive_fraction: float = 0.7  # share of training patches centred near a galaxy
    val_fraction: float = 0.15
    test_fraction: float = 0.1
    block_size: int = 0  # side of the split's blocks; 0 = automatic
    val_max_patches: int = 64
    augment: bool = True
    noise_augment: float = 0.3  # extra noise up to this many rms
    flux_augment: float = 1.25  # source flux scaled within [1/x, x]
    # optimisation (napari_galseg.training.loop.TrainConfig)
    epochs: int = 30
    batch_size: int = 8
    lr: float = 1e-2  # peak of the one-cycle schedule (2e-3 learned ~4x slower in a 3-minute run)
    weight_decay: float = 1e-4
    schedule: str = "onecycle"
    patience: int = 6
    max_minutes: float = 0.0  # 0 = no time limit
    distance_weight: float = 1.0
    # inference
    threshold: float = 0.5
    seed_threshold: float = 0.5
    min_size: int = 5
    tile_size: int = 512
    tile_overlap: int = 64
    tile_batch: int = 4
    halo: int = 96  # rows of context when labelling strips of a streamed frame
    # Re-fit the recipe's intervals on each new image? Off: on synthetic fields of the same survey
    # depth, re-fitting percentiles on the test field dropped test IoU from 0.57 to 0.36 (the levels
    # move with the galaxy content). Turn on for images with another zero point or unit.
    refit_recipe: bool = False
    # start training from the weights of this local model folder (fine-tuning); never downloaded
    init_weights: str = ""
    # machine
    device: str = "auto"
    bf16: bool | str = "auto"  # "auto" (on for CPU inference where native), true or false
    channels_last: str = "auto"
    threads: int = 0  # 0 = all cores this process may use
    seed: int = 0

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
            schedule=self.schedule, patience=self.patience, device=self.device, bf16=self.bf16,
            channels_last=self.channels_last, threads=self.threads or None, seed=self.seed,
            max_minutes=self.max_minutes or None,
        )


@register
class UNetSegmenter(Segmenter):
    """A U-Net trained on patches; tiled, blended, streamed inference over frames of any size."""

    name = "unet"
    Params = UNetParams
    trainable = True

    def __init__(self, params: UNetParams | None = None, **overrides):
        super().__init__(params, **overrides)
        self.net: UNet | None = None
        self.metrics: dict = {}
        self.history: list[dict] = []

    # -- input ----------------------------------------------------------------------------------
    def input_image(self, image):
        """What the network's recipe reads: ``image`` less its sky background (a lazy array-like,
        see ``subtract_background``), or ``image`` itself. The background mesh of the last image
        is kept, so repeated field-of-view runs on one frame estimate it once."""
        p = self.params
        if not p.subtract_background:
            return image
        key = (id(image), tuple(np.shape(image)), int(p.background_box))
        cached = getattr(self, "_sky_cache", None)
        if cached is None or cached[0] != key or cached[1] is not image:
            mesh = estimate_mesh(image, p.background_box, n_threads=p.threads or (os.cpu_count() or 1))
            cached = self._sky_cache = (key, image, SkySubtracted(image, mesh))
        return cached[2]

    # -- training --------------------------------------------------------------------------------
    def _fitted_recipe(self, image, rms):
        if self.recipe is not None:
            recipe = as_recipe(self.recipe)
        else:  # the study's channels plus signal-to-noise; without an rms map, its image channels only
            recipe = snr_recipe() if rms is not None else image_only_recipe()
        if recipe.needs_rms and rms is None:
            raise ValueError(f"the preprocessing recipe {recipe.name!r} needs an rms map; pass rms (--rms)")
        if not recipe.is_fitted:
            recipe = recipe.fit(image, rms)
        return recipe

    def build_net(self, in_channels: int) -> UNet:
        return UNet(in_channels, 2, depth=self.params.depth, base_width=self.params.base_width)

    def fit(self, image, truth, rms=None, progress: ProgressCallback | None = None, *,
            callback: Callable[[TrainReport], None] | None = None, cancel=None,
            checkpoint_dir: str | os.PathLike | None = None, resume: bool = False) -> "UNetSegmenter":
        """Train on one field (image, instance/binary ``truth``, rms).

        ``callback`` gets :class:`~napari_galseg.training.loop.TrainReport` objects; ``progress``
        (done, total, message) is the simpler form the CLI and widgets share. ``cancel`` is a
        ``threading.Event``. ``checkpoint_dir``/``resume`` keep and continue ``last.pt``.
        """
        p = self.params
        if truth is None:
            raise ValueError("the U-Net needs a truth label image to train on (--truth)")
        shape = check_field(image, truth, rms)
        image = self.input_image(image)
        recipe = self._fitted_recipe(image, rms)
        split = spatial_split(shape, p.patch_size, p.block_size or None, p.val_fraction, p.test_fraction, p.seed)
        aug = Augmentation(noise=p.noise_augment, flux_scale=(1 / p.flux_augment, p.flux_augment)) if p.augment else None
        train = PatchDataset(image, truth, rms, recipe, split.train, p.patch_size, p.patches_per_epoch,
                             p.positive_fraction, aug, seed=p.seed)
        val = GridPatchDataset(image, truth, rms, recipe, split.val, p.patch_size, p.val_max_patches, p.seed) if split.val else None
        torch.manual_seed(p.seed)
        net = self.build_net(recipe.n_channels)
        if p.init_weights:
            start = UNetSegmenter.load(p.init_weights)  # checks the folder; local paths only
            if start.net.architecture() != net.architecture():
                raise ValueError(f"init_weights {p.init_weights} holds {start.net.architecture()}, but this training "
                                 f"builds {net.architecture()}; set depth/base_width/recipe to match")
            net.load_state_dict(start.net.state_dict())
        task = SegmentationTask(p.distance_weight, p.threshold)
        config = p.train_config()

        def report(r: TrainReport) -> None:
            if progress is not None:
                done, total = (r.epoch - 1) * r.n_steps + r.step, r.n_epochs * r.n_steps
                budget = 60 * p.max_minutes if p.max_minutes else 0.0
                if budget and r.elapsed / budget > done / total:  # the clock will end the run first
                    done, total = int(1000 * min(r.elapsed / budget, 1.0)), 1000
                msg = f"epoch {r.epoch}/{r.n_epochs} loss {r.train_loss:.3f}"
                if budget:  # the bar may follow the clock: say so, or 100 % at "epoch 2/6" puzzles
                    msg += f", {format_duration(r.elapsed)} of {format_duration(budget)}"
                if r.val_iou is not None:
                    msg += f" val IoU {r.val_iou:.3f}"
                progress(done, total, msg)
            if callback is not None:
                callback(r)

        result = train_loop(net, task, train, val, config, checkpoint_dir, resume, report, cancel)
        self.net = net.cpu().eval()
        self.recipe = recipe.to_dict()
        self.history = result.history
        self.metrics = {"validation": result.best_metrics}
        if split.test:
            test = GridPatchDataset(image, truth, rms, recipe, split.test, p.patch_size, p.val_max_patches, p.seed)
            net_dev = dev.resolve_device(p.device)
            self.net.to(net_dev)
            with torch.no_grad():
                self.metrics["test"] = task.validate(
                    self.net, torch.utils.data.DataLoader(test, batch_size=p.batch_size), net_dev, False,
                    lambda: dev.autocast(net_dev, False))
            self.net.cpu()
        self.provenance.setdefault("training", {})
        self.provenance["training"].update({
            "shape": list(shape),
            "split": {"block_size": split.block_size, "train": [list(b) for b in split.train],
                      "val": [list(b) for b in split.val], "test": [list(b) for b in split.test]},
            "epochs_run": result.epochs_run, "best_epoch": result.best_epoch, "stopped": result.stopped,
            "elapsed_s": round(result.elapsed, 1), "device": result.device, "bf16": result.bf16,
            "torch": torch.__version__,
        })
        return self

    # -- inference -------------------------------------------------------------------------------
    def _require_net(self) -> UNet:
        if self.net is None:
            raise RuntimeError("this U-Net has no weights: train it (fit) or load a model folder first")
        return self.net

    def _inference_recipe(self, image, rms):
        if self.recipe is None:
            raise ValueError("this model has no preprocessing recipe; it was not trained or saved by napari-galseg")
        recipe = as_recipe(self.recipe)
        if recipe.needs_rms and rms is None:
            raise ValueError("this model's recipe needs an rms map; pass rms (--rms)")
        if self.params.refit_recipe:
            recipe = recipe.unfitted().fit(image, rms)
        return recipe

    def make_predictor(self) -> tuple[TiledPredictor, torch.device]:
        net = self._require_net()
        p = self.params
        device = dev.resolve_device(p.device)
        if device.type == "cpu":
            dev.configure_threads(p.threads or None)
        bf16 = dev.use_bf16(device, p.bf16)
        channels_last = dev.use_channels_last(device, p.channels_last)
        net.to(device).eval()
        if channels_last:
            net.to(memory_format=torch.channels_last)

        def forward(batch: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), dev.autocast(device, bf16):
                out = net(x)
            return torch.sigmoid(out.float()).cpu().numpy()

        return TiledPredictor(forward, 2, p.tile_size, p.tile_overlap, p.tile_batch), device

    def iter_maps(self, image, rms=None, region=None, progress: ProgressCallback | None = None
                  ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Stream ``(y0, y1, maps)``: blended (probability, distance) rows of the frame or region."""
        self._require_net()
        shape = check_field(image, None, rms)
        image = self.input_image(image)
        recipe = self._inference_recipe(image, rms)

        def source(y0, y1, x0, x1):
            img = read_window(image, y0, y1, x0, x1)
            r = read_window(rms, y0, y1, x0, x1) if rms is not None else None
            return np.nan_to_num(np.asarray(recipe.apply(img, r), np.float32), nan=0.0, posinf=0.0, neginf=0.0)

        predictor, _ = self.make_predictor()
        if recipe.n_channels != self.net.in_channels:
            raise ModelFolderError(f"the recipe gives {recipe.n_channels} channels but the network expects {self.net.in_channels}")
        return predictor.iter_rows(source, shape, region, progress)

    def label_params(self) -> LabelParams:
        return LabelParams(self.params.threshold, self.params.seed_threshold, self.params.min_size)

    def iter_labels(self, image, rms=None, region=None, progress=None) -> Iterator[tuple[int, int, np.ndarray]]:
        """Stream ``(y0, y1, labels int32)`` strips with frame-wide ids (for huge frames)."""
        return iter_label_strips(self.iter_maps(image, rms, region, progress), self.params.halo,
                                 self.label_params(), min_strip=max(256, self.params.tile_size))

    def predict(self, image, rms=None, progress: ProgressCallback | None = None, return_probability: bool = False,
                region: tuple[int, int, int, int] | None = None, margin: int | None = None):
        """Instance labels (int32, 0 = sky) of the image, or of ``region = (y0, y1, x0, x1)`` only
        (the viewer's field of view; ``margin`` pixels of context around it, default one overlap).
        With ``return_probability`` also the galaxy probability (float32) of the same area.
        Probabilities are held in memory only for the returned area; labels are built strip by strip.
        """
        shape = check_field(image, None, rms)
        window = None
        if region is not None:
            margin = self.params.tile_overlap if margin is None else int(margin)
            window = expand_region(region, shape, margin)
        h = (window[1] - window[0]) if window else shape[0]
        w = (window[3] - window[2]) if window else shape[1]
        labels = np.zeros((h, w), np.int32)
        prob = np.zeros((h, w), np.float32) if return_probability else None
        y_base = window[0] if window else 0
        maps_iter = self.iter_maps(image, rms, window, progress)
        if return_probability:
            maps_iter = _tee_probability(maps_iter, prob, y_base)
        for y0, y1, lab in iter_label_strips(maps_iter, self.params.halo, self.label_params(),
                                             min_strip=max(256, self.params.tile_size)):
            labels[y0 - y_base: y1 - y_base] = lab
        if region is not None:
            ys = slice(region[0] - window[0], region[1] - window[0])
            xs = slice(region[2] - window[2], region[3] - window[2])
            labels = _relabel(labels[ys, xs])
            prob = prob[ys, xs] if prob is not None else None
        return (labels, prob) if return_probability else labels

    def predict_to_fits(self, image, path: str | os.PathLike, rms=None, header=None, overwrite: bool = False,
                        progress: ProgressCallback | None = None) -> Path:
        """Write the labels of a frame of any size to FITS strip by strip (atomic; memory ~ a strip)."""
        write_labels_fits(path, self.iter_labels(image, rms, None, progress), tuple(image.shape), header, overwrite)
        return Path(path)

    # -- model folders ---------------------------------------------------------------------------
    def config(self) -> dict:
        cfg = super().config()
        net = self._require_net()
        cfg["architecture"] = net.architecture()
        cfg["weights"] = WEIGHTS_NAME
        cfg["patch_size"] = self.params.patch_size
        cfg["metrics"] = self.metrics
        cfg["history"] = self.history
        return cfg

    def _save_state(self, path: Path) -> None:
        save_weights(self._require_net(), path / WEIGHTS_NAME, {"format": "napari-galseg/unet"})

    def _load_state(self, path: Path, config: dict) -> None:
        arch = config.get("architecture")
        if not isinstance(arch, dict) or arch.get("class") != "UNet":
            raise ModelFolderError(f"{path}/config.json has no U-Net architecture section; the folder is not a napari-galseg U-Net")
        if self.recipe is None:
            raise ModelFolderError(f"{path}/config.json has no preprocessing recipe; re-train or re-save the model")
        try:
            recipe = as_recipe(self.recipe)
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelFolderError(f"{path}/config.json has an unreadable recipe: {exc}") from None
        try:
            in_channels = int(arch["in_channels"])
            net = UNet(in_channels, int(arch.get("out_channels", 2)), int(arch["depth"]), int(arch["base_width"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFolderError(f"{path}/config.json has an incomplete U-Net architecture ({exc})") from None
        if recipe.n_channels != in_channels:
            raise ModelFolderError(
                f"{path}: the recipe makes {recipe.n_channels} channel(s) ({', '.join(recipe.channel_names)}) but the "
                f"network was built for {in_channels}; the config and the weights do not belong together")
        if "subtract_background" not in (config.get("params") or {}):  # saved before the option existed
            self.params = dataclasses.replace(self.params, subtract_background=False)
        if (arch["depth"], arch["base_width"]) != (self.params.depth, self.params.base_width):
            self.params = dataclasses.replace(self.params, depth=int(arch["depth"]), base_width=int(arch["base_width"]))
        load_weights(net, path / config.get("weights", WEIGHTS_NAME))
        self.net = net.eval()
        self.metrics = config.get("metrics") or {}
        self.history = config.get("history") or []


def _tee_probability(rows, prob: np.ndarray, y_base: int):
    for y0, y1, maps in rows:
        prob[y0 - y_base: y1 - y_base] = maps[0]
        yield y0, y1, maps


def _relabel(labels: np.ndarray) -> np.ndarray:
    from skimage.segmentation import relabel_sequential

    return relabel_sequential(labels)[0].astype(np.int32)
