"""U-Net segmenter: trained on 256² patches of a field, predicts huge frames tile by tile.

The network (``napari_galseg.models.unet.UNet``) outputs a galaxy probability and a normalised
distance-to-edge map; watershed of the distance inside the thresholded probability gives instance
labels, which splits touching galaxies. Training uses the shared loop
(``napari_galseg.training.loop``) on a spatial train/val/test split of the field.

>>> seg = UNetSegmenter(epochs=20)                                   # doctest: +SKIP
>>> seg.fit(image, truth, rms)                                      # doctest: +SKIP
>>> seg.save("models/unet-1")                                       # doctest: +SKIP
>>> labels = UNetSegmenter.load("models/unet-1").predict(image, rms).labels   # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._duration import format_duration
from ..frames.bands import BandStack, check_bands
from ..inference import LabelParams, NoDataReader, TiledPredictor, iter_label_strips, with_no_data
from ..model_folder import ModelFolderError
from ..models.unet import UNet
from ..preprocess import as_recipe, image_only_recipe, snr_only_recipe, snr_recipe
from ..preprocess.bands import BandRecipe
from ..progress import ProgressCallback, reporter
from ..training import device as dev
from ..training.checkpoints import WEIGHTS_NAME, load_weights, save_weights
from ..training.loop import TrainReport
from ..training.loop import fit as train_loop
from ..training.patches import Augmentation, GridPatchDataset, PatchDataset, check_field, read_window, spatial_split
from ..training.tasks import SegmentationTask
from ..window import Window
from .base import Capabilities, Segmentation, Segmenter
from .sky_input import SkySubtractedInput


@dataclass
class UNetParams:
    """What the U-Net is and how its maps become labels (``--set key=value`` on the CLI).

    How it learns is the shared :class:`~napari_galseg.settings.TrainConfig`; tiles, threads and
    the device are :class:`~napari_galseg.settings.RunOptions`.
    """

    #: levels of the encoder (each halves the resolution)
    depth: int = 4
    #: channels of the first level; 16 doubles training time per step on 2 CPU cores (docs/results.md)
    base_width: int = 8
    #: subtract a smooth sky (the photutils Background2D model) before the recipe, at training and
    #: inference time; with the snr channel it raised test IoU from 0.755 to 0.790 (docs/results.md)
    subtract_background: bool = True
    #: box size in pixels of that sky model
    background_box: int = 64
    #: weight of the distance-map loss beside the probability loss
    distance_weight: float = 1.0
    #: galaxy probability at or above which a pixel is galaxy
    threshold: float = 0.5
    #: distance-map level that seeds the watershed splitting touching galaxies
    seed_threshold: float = 0.5
    #: average the network's maps over this many of a tile's 8 flips/rotations at inference (1, 2, 4
    #: or 8): 4 raised IoU from 0.780 to 0.785 on a GalSim test field (docs/results.md) at 2-4x the time
    flip_average: int = 1
    #: smallest object kept, in pixels; 10 (SExtractor-like minarea) rather than 5 raised purity from
    #: 0.74 to 0.80 on a GalSim tuning field at the same IoU, completeness -0.006 (docs/results.md)
    min_size: int = 10
    #: re-fit the recipe's intervals on each new image; off: on fields of the same survey depth,
    #: re-fitting on the test field dropped IoU from 0.57 to 0.36. On for another zero point or unit
    refit_recipe: bool = False
    #: start training from the weights of this local model folder (fine-tuning); never downloaded
    init_weights: str = ""

    def __post_init__(self):
        if self.flip_average not in (1, 2, 4, 8):
            raise ValueError(f"flip_average must be 1, 2, 4 or 8, got {self.flip_average}")


class UNetSegmenter(SkySubtractedInput, Segmenter):
    """A U-Net trained on patches; tiled, blended, streamed inference over frames of any size."""

    name = "unet"
    Params = UNetParams
    capabilities = Capabilities(trainable=True, region_with_context=True, region_equals_crop=True, streams_to_fits=True,
                                uses_device=True, uses_recipe=True, resumable=True)
    run_fields = ("tile_size", "tile_overlap", "tile_batch", "halo", "n_threads", "device", "bf16", "channels_last",
                  "scheduler")
    #: a time budget used well on a CPU (docs/results.md): 25 minutes by default (``epochs`` caps it on
    #: a GPU), the one-cycle schedule annealed over it at a peak of 1e-2 (2e-3 learned ~4x slower),
    #: 128² patches (4x the optimiser steps of 256² for the same pixels: test IoU 0.761 vs 0.716 after
    #: 5 minutes), no early stop (the schedule ends the run; the best validation epoch's weights are kept)
    train_defaults = {"lr": 1e-2, "max_minutes": 25.0, "epochs": 400, "patch_size": 128, "patches_per_epoch": 512,
                      "patience": 0}

    def __init__(self, params: UNetParams | None = None, **settings):
        super().__init__(params, **settings)
        self.net: UNet | None = None
        self.metrics: dict = {}
        self.history: list[dict] = []

    # -- input ----------------------------------------------------------------------------------
    # -- training --------------------------------------------------------------------------------
    def _fitted_recipe(self, image, rms):
        if isinstance(image, BandStack):  # one recipe per band (default: each band's S/N with its own noise)
            per_band = as_recipe(self.recipe) if self.recipe is not None else snr_only_recipe()
            if isinstance(per_band, BandRecipe):
                check_bands(per_band.bands, image, "this recipe")
                recipe = per_band
            else:
                recipe = BandRecipe.per_band(image.names, per_band)
            return recipe if recipe.is_fitted else recipe.fit(image, rms)
        if self.recipe is not None:
            recipe = as_recipe(self.recipe)
        else:  # the study's channels plus signal-to-noise; without an rms map, its image channels only
            recipe = snr_recipe() if rms is not None else image_only_recipe()
        if not recipe.is_fitted:
            recipe = recipe.fit(image, rms)
        return recipe

    def build_net(self, in_channels: int) -> UNet:
        return UNet(in_channels, 2, depth=self.params.depth, base_width=self.params.base_width)

    def _fit(self, image, truth, rms, progress: ProgressCallback, *, cancel=None,
             callback: Callable[[TrainReport], None] | None = None,
             checkpoint_dir: str | os.PathLike | None = None, resume: bool = False) -> None:
        """Train on one field (image, instance/binary ``truth``, rms).

        ``callback`` gets :class:`~napari_galseg.training.loop.TrainReport` objects; ``progress``
        (done, total, message) is the simpler form the CLI and widgets share. ``cancel`` is a
        ``threading.Event``. ``checkpoint_dir``/``resume`` keep and continue ``last.pt``.
        """
        p, t = self.params, self.train_config
        shape = check_field(image, truth, rms)
        self.bands = image.names if isinstance(image, BandStack) else None
        if rms is None and (self.bands or (self.recipe is not None and as_recipe(self.recipe).needs_rms)):
            rms = self.noise_map(image, None)
        else:
            self.noise_note = None
        image = self.input_image(image)
        recipe = self._fitted_recipe(image, rms)
        split = spatial_split(shape, t.patch_size, t.block_size or None, t.val_fraction, t.test_fraction, t.seed)
        aug = Augmentation(noise=t.noise_augment, flux_scale=(1 / t.flux_augment, t.flux_augment)) if t.augment else None
        train = PatchDataset(image, truth, rms, recipe, split.train, t.patch_size, t.patches_per_epoch,
                             t.positive_fraction, aug, seed=t.seed)
        val = GridPatchDataset(image, truth, rms, recipe, split.val, t.patch_size, t.val_max_patches, t.seed) if split.val else None
        torch.manual_seed(t.seed)
        net = self.build_net(recipe.n_channels)
        if p.init_weights:
            start = UNetSegmenter.load(p.init_weights)  # checks the folder; local paths only
            if start.net.architecture() != net.architecture():
                raise ValueError(f"init_weights {p.init_weights} holds {start.net.architecture()}, but this training "
                                 f"builds {net.architecture()}; set depth/base_width/recipe to match")
            net.load_state_dict(start.net.state_dict())
        task = SegmentationTask(p.distance_weight, p.threshold)

        def report(r: TrainReport) -> None:
            if progress is not None:
                done, total = (r.epoch - 1) * r.n_steps + r.step, r.n_epochs * r.n_steps
                budget = 60 * t.max_minutes if t.max_minutes else 0.0
                if budget and r.elapsed / budget > done / total:  # the clock will end the run first
                    done, total = int(1000 * min(r.elapsed / budget, 1.0)), 1000
                msg = f"epoch {r.epoch}/{r.n_epochs} loss {r.train_loss:.3f}"
                if budget:  # the bar may follow the clock: say so, or 100 % at "epoch 2/6" puzzles
                    msg += f", {format_duration(r.elapsed)} of {format_duration(budget)}"
                if r.val_iou is not None:
                    msg += f" val IoU {r.val_iou:.3f}"
                progress(done, total, msg)
            if callback is not None:
                if r.kind == "epoch":
                    r.snapshot = lambda: self._snapshot(net, recipe)
                callback(r)

        result = train_loop(net, task, train, val, t, self.run_options, checkpoint_dir, resume, report, cancel)
        self.net = net.cpu().eval()
        self.recipe = recipe.to_dict()
        self.history = result.history
        self.metrics = {"validation": result.best_metrics}
        if split.test:
            test = GridPatchDataset(image, truth, rms, recipe, split.test, t.patch_size, t.val_max_patches, t.seed)
            net_dev = dev.resolve_device(self.run_options.device)
            self.net.to(net_dev)
            with torch.no_grad():
                self.metrics["test"] = task.validate(
                    self.net, torch.utils.data.DataLoader(test, batch_size=t.batch_size), net_dev, False,
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

    def _snapshot(self, net: UNet, recipe) -> UNetSegmenter:
        """A copy of this segmenter with ``net``'s weights of this moment (a preview during training)."""
        snap = type(self)(self.params, train=self.train_config, run=self.run_options)
        snap.provenance = {"preview": True}
        snap.bands = self.bands
        snap.net = self.build_net(recipe.n_channels)
        snap.net.load_state_dict({k: v.detach().float().cpu() for k, v in net.state_dict().items()})
        snap.net.eval()
        snap.recipe = recipe.to_dict()
        return snap

    # -- inference -------------------------------------------------------------------------------
    def _require_net(self) -> UNet:
        if self.net is None:
            raise RuntimeError("this U-Net has no weights: train it (fit) or load a model folder first")
        return self.net

    def _inference_recipe(self, image, rms):
        if self.recipe is None:
            raise ValueError("this model has no preprocessing recipe; it was not trained or saved by napari-galseg")
        recipe = as_recipe(self.recipe)
        if self.params.refit_recipe:
            recipe = recipe.unfitted().fit(image, rms)
        return recipe

    def make_predictor(self) -> tuple[TiledPredictor, torch.device]:
        net = self._require_net().fused_for_inference()  # batch norms folded: the same maps, faster
        r = self.run_options
        device = dev.resolve_device(r.device)
        if device.type == "cpu":
            dev.configure_threads(r.n_threads or None)
        bf16 = dev.use_bf16(device, r.bf16)
        channels_last = dev.use_channels_last(device, r.channels_last)
        why = "" if str(r.bf16).lower() != "auto" or device.type != "cpu" else \
            (" (this CPU has native bf16)" if bf16 else " (no native bf16 on this CPU: fp32 is faster)")
        self.precision_note = (f"{self.name}: inference in {'bf16' if bf16 else 'fp32'}"
                               f"{', channels-last' if channels_last else ''} on {device}{why}")
        net.to(device).eval()
        if channels_last:
            net.to(memory_format=torch.channels_last)

        n_flips = self.params.flip_average

        def forward(batch: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(device)
            total = None
            for k in range(n_flips):
                xk = _dihedral(x, k)
                if channels_last:
                    xk = xk.contiguous(memory_format=torch.channels_last)
                with torch.inference_mode(), dev.autocast(device, bf16):
                    out = _dihedral(torch.sigmoid(net(xk).float()), k, inverse=True)
                total = out if total is None else total + out
            return (total / n_flips).cpu().numpy()

        return TiledPredictor(forward, 2, r.tile_size, r.tile_overlap, r.tile_batch), device

    def iter_maps(self, image, rms=None, region=None, progress: ProgressCallback | None = None
                  ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray | None]]:
        """Stream ``(y0, y1, maps, no_data)``: blended (probability, distance) rows of the frame or
        region, and the rows' no-data mask (None where every pixel has data)."""
        self._require_net()
        check_bands(self.bands, image, f"this {self.name} model")
        shape = check_field(image, None, rms)
        missing = NoDataReader(image, rms)  # the image and rms as given: NaN or a bad rms = no data
        if self.recipe is not None and as_recipe(self.recipe).needs_rms:
            rms = self.noise_map(image, rms)  # estimated when none was given (noise_note says so)
        image = self.input_image(image)
        recipe = self._inference_recipe(image, rms)
        x0, x1 = (region[2], region[3]) if region is not None else (0, shape[1])
        return with_no_data(self._iter_blended(image, rms, recipe, shape, region, progress), missing, x0, x1)

    def _iter_blended(self, image, rms, recipe, shape, region, progress) -> Iterator[tuple[int, int, np.ndarray]]:
        def source(y0, y1, x0, x1):
            img = read_window(image, y0, y1, x0, x1)
            r = read_window(rms, y0, y1, x0, x1) if rms is not None else None
            return recipe.network_input(img, r)  # no-data pixels at the recipe's fills, as in training

        if recipe.n_channels != self.net.in_channels:
            raise ModelFolderError(f"the recipe gives {recipe.n_channels} channels but the network expects {self.net.in_channels}")
        from ..cluster import current_client, gpu_resources, map_on_client

        client = current_client()
        if client is None:
            predictor, _ = self.make_predictor()
            return predictor.iter_rows(source, shape, region, progress)
        # each band of tile rows is a task on the cluster (the network runs there); blending stays here
        r = self.run_options
        layout = TiledPredictor(_runs_on_workers, 2, r.tile_size, r.tile_overlap, r.tile_batch)
        bands = functools.partial(map_on_client, client, BandsOnWorker(self, source), resources=gpu_resources(client))
        return layout.iter_rows(source, shape, region, progress, map_bands=bands)

    def label_params(self) -> LabelParams:
        return LabelParams(self.params.threshold, self.params.seed_threshold, self.params.min_size)

    def iter_labels(self, image, rms=None, region=None, progress=None) -> Iterator[tuple[int, int, np.ndarray]]:
        """Stream ``(y0, y1, labels int32)`` strips with frame-wide ids (for huge frames)."""
        return iter_label_strips(self.iter_maps(image, rms, region, progress), self.run_options.halo,
                                 self.label_params(), min_strip=max(256, self.run_options.tile_size))

    def _predict(self, image, rms, region: Window | None, progress) -> Segmentation:
        """Instance labels (int32, 0 = sky) and the galaxy probability of the image or of ``region``
        (the viewer's field of view, with one tile overlap of context around it). Maps are held in
        memory only for the returned area; labels are built strip by strip."""
        shape = check_field(image, None, rms)
        window = region.grow(self.run_options.tile_overlap, shape) if region is not None else Window.full(shape)
        labels = np.zeros(window.shape, np.int32)
        prob = np.zeros(window.shape, np.float32)
        bounds = window.bounds if region is not None else None
        maps_iter = _tee_probability(self.iter_maps(image, rms, bounds, progress), prob, window.y0)
        for y0, y1, lab in iter_label_strips(maps_iter, self.run_options.halo, self.label_params(),
                                             min_strip=max(256, self.run_options.tile_size)):
            labels[y0 - window.y0: y1 - window.y0] = lab
        result = Segmentation(labels, maps={"probability": prob})
        return result.crop(region, window) if region is not None else result

    def predict_to_fits(self, image, path: str | os.PathLike, rms=None, *, header=None, overwrite: bool = False,
                        progress: ProgressCallback | None = None, cancel=None) -> Segmentation:
        """Write the labels of a frame of any size to FITS strip by strip (atomic; memory ~ a strip)."""
        from ..io import open_fits
        from ..io.write import labels_header, write_label_strips

        with self.on_cluster():
            strips = self.iter_labels(image, rms, None, reporter(progress, cancel))
            write_label_strips(path, strips, tuple(image.shape), labels_header(header), overwrite)
        return Segmentation(open_fits(path).data)

    # -- model folders ---------------------------------------------------------------------------
    def config(self) -> dict:
        cfg = super().config()
        net = self._require_net()
        cfg["architecture"] = net.architecture()
        cfg["weights"] = WEIGHTS_NAME
        cfg["patch_size"] = self.train_config.patch_size
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
        if isinstance(recipe, BandRecipe) != bool(self.bands) or (self.bands and recipe.bands != self.bands):
            raise ModelFolderError(f"{path}/config.json: its bands ({', '.join(self.bands or ()) or 'none'}) and its "
                                   "recipe's do not agree; the folder is damaged")
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


class BandsOnWorker:
    """What a dask worker runs for one band of tile rows: the network's outputs of its tiles.

    Sent to each worker once (the network's weights and the input's reader); the worker builds its
    own predictor on its own device (``device: auto`` takes the worker's GPU) at its first band.
    """

    def __init__(self, segmenter: UNetSegmenter, source):
        self.segmenter, self.source = segmenter, source
        self._predictor: TiledPredictor | None = None

    def __getstate__(self) -> dict:
        """The segmenter without its image caches (they hold the image) and with its network on the CPU."""
        import copy

        segmenter = copy.copy(self.segmenter)
        segmenter.drop_image_caches()
        net = segmenter._require_net()
        if any(t.device.type != "cpu" for t in net.parameters()):
            segmenter.net = copy.deepcopy(net).cpu()
        return {"segmenter": segmenter, "source": self.source, "_predictor": None}

    def __call__(self, band: tuple) -> list[np.ndarray]:
        if self._predictor is None:
            self._predictor, _ = self.segmenter.make_predictor()
        return self._predictor.band_outputs(self.source, *band)


def _dihedral(x: torch.Tensor, k: int, inverse: bool = False) -> torch.Tensor:
    """The ``k``-th (0..7) flip/transpose of the last two axes of ``x``, or its inverse."""
    ops = [lambda t: t.flip(-1), lambda t: t.flip(-2), lambda t: t.transpose(-1, -2)]
    steps = [op for bit, op in enumerate(ops) if k >> bit & 1]
    for op in (reversed(steps) if inverse else steps):
        x = op(x)
    return x


def _runs_on_workers(batch: np.ndarray) -> np.ndarray:
    raise RuntimeError("the network runs on the dask workers here (BandsOnWorker)")


def _tee_probability(rows, prob: np.ndarray, y_base: int):
    """Copy each row's probability into ``prob`` (NaN where there is no data) and pass the row on."""
    for y0, y1, maps, missing in rows:
        prob[y0 - y_base: y1 - y_base] = maps[0]
        if missing is not None:
            prob[y0 - y_base: y1 - y_base][missing] = np.nan
        yield y0, y1, maps, missing
