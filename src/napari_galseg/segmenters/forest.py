"""Random Forest pixel classifier (`forest`): the study's supervised baseline, made to find galaxies.

Each pixel is described by features that see galaxies (``features="galaxy"``, the default, see
:mod:`.snr_features`: signal-to-noise of the sky-subtracted image at several Gaussian scales,
differences of Gaussians, Hessian eigenvalues, gradients, the relative rms and a local texture — all
in units of the noise, so a forest trained on one field applies to fields of other depths and PSFs),
or by the study's 13 features (``features="study"``, see :mod:`.features`: the recipe's intensity
channels, a local binary pattern and 9 Haralick statistics), and a scikit-learn
RandomForestClassifier decides sky or galaxy. Defaults: 6 trees of depth 6, predicted by a compiled
tree walker (:mod:`.tree_predict`) on the pixels that reach ``sky_gate`` σ at some scale; :data:`STUDY_PRESET` is the study's setting (its features, 250
trees of depth 12, balanced classes). Connected components of the galaxy mask larger than
``min_area`` pixels become the instances.

Training data is either a dense truth image (any label > 0 is galaxy) — :meth:`ForestSegmenter.fit`
— or sparse scribbles painted by a user, 1 = sky, 2 = galaxy, 0 = unlabelled —
:meth:`ForestSegmenter.fit_scribbles`. At most ``max_train_pixels`` pixels are used, drawn
reproducibly; with ``class_balance`` each class gets half of them and the forest weights the classes
as "balanced" (the default for scribbles, whose proportions say nothing about the sky); dense truth is
sampled in its natural proportions by default, so the probabilities are calibrated and 0.5 is the
right threshold (balancing cost 0.1 IoU on unseen fields: pixels around galaxies turned galaxy). Features are only computed in
the tiles (and the bounding box within each tile) that hold a sampled pixel, so scribbles on a huge
image cost little.

Prediction works tile by tile with a halo (``dask.map_overlap``), so the result on a dask or huge
image equals the in-memory result pixel for pixel. The galaxy features need the sky background: a
mesh (:func:`napari_galseg.background.estimate_mesh`) estimated once over the whole image.

>>> seg = ForestSegmenter(n_estimators=50).fit(image, truth, rms)   # doctest: +SKIP
>>> labels = seg.predict(other_image, other_rms)
>>> seg.save("forest-model/"); ForestSegmenter.load("forest-model/")
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from ..arrays import exceeds_tiles, is_dask
from ..frames.bands import BandStack, check_bands
from ..model_folder import ModelFolderError
from ..progress import ProgressCallback, reporter
from ..window import Window
from .base import Capabilities, Segmentation, Segmenter
from .features import (
    FeatureSpec,
    check_image,
    counting_progress,
    feature_halo,
    feature_names,
    fit_value_range,
    map_stack_with_halo,
    pixel_features,
    resolve_recipe,
    valid_pixels,
)
from .forest_training import binary_target, class_counts, sample_tile, scribble_target, tiles, trim_to_quota
from .snr_features import SnrFeatureSpec, SnrInputs, snr_feature_halo, snr_feature_names, snr_features

STATE_NAME = "forest.npz"  # the trees as arrays: loading runs no code (see ._sklearn_state)
#: what older versions wrote: a pickle, loaded only from a folder the user trusts
LEGACY_STATE_NAME = "forest.joblib"
#: pixels classified per predict_proba call (bounds the memory of one call)
PREDICT_BATCH = 262_144

FEATURE_SETS = ("galaxy", "study")
#: the study's literal setting: its 13 features, 250 trees of depth 12, balanced classes
STUDY_PRESET = {"features": "study", "n_estimators": 250, "max_depth": 12, "class_balance": True}


@dataclasses.dataclass
class ForestParams:
    #: "galaxy": S/N of the sky-subtracted image at ``scales`` and its derivatives (see
    #: :mod:`.snr_features`); "study": the study's 13 features (recipe channels, LBP, Haralick)
    features: str = "galaxy"
    #: 6 trees of depth 6: the same IoU as 10 of depth 8 or 20 of depth 10 on unseen fields (0.748
    #: against 0.749 / 0.758), 2-3x faster to predict (docs/results.md)
    n_estimators: int = 6
    max_depth: int | None = 6
    #: Gaussian scales (px) of the galaxy features (adding 8 px changed IoU by < 0.005 and cost 40 % speed)
    scales: list[float] = dataclasses.field(default_factory=lambda: [1.0, 2.0, 4.0])
    #: background mesh box (px) of the galaxy features' sky subtraction
    background_box: int = 64
    #: galaxy features: a pixel below this S/N at every scale is sky without asking the forest (no
    #: galaxy pixel of the forest fell below 2.08 on two unseen fields; skips 55-65 % of the pixels)
    sky_gate: float = 2.0
    #: side of the Haralick co-occurrence window (odd)
    window: int = 7
    #: grey levels the texture channel is quantised to for the co-occurrence matrices
    levels: int = 8
    #: recipe channel used for texture (LBP, Haralick): 1 = the asinh-stretched image in the default recipes
    texture_channel: int = 1
    #: Gaussian scales of optional extra features (smoothed, DoG, Hessian eigenvalues); empty = the study's 13
    extra_sigmas: list[float] = dataclasses.field(default_factory=list)
    #: equal numbers of sky and galaxy training pixels and class_weight="balanced"; None: balanced
    #: for scribbles, natural proportions for dense truth (calibrated probabilities)
    class_balance: bool | None = None
    #: cap on training pixels, drawn reproducibly with ``seed``
    max_train_pixels: int = 200_000
    #: galaxy probability at or above which a pixel is galaxy
    threshold: float = 0.5
    min_area: int = 10
    connectivity: int = 8
    seed: int = 0

    def __post_init__(self):
        if self.features not in FEATURE_SETS:
            raise ValueError(f"features must be one of {', '.join(FEATURE_SETS)}, got {self.features!r}")
        self.scales = [float(s) for s in (self.scales or [])]
        SnrFeatureSpec(scales=tuple(self.scales))
        if int(self.background_box) < 8:
            raise ValueError(f"background_box must be >= 8 pixels, got {self.background_box}")
        if self.n_estimators < 1:
            raise ValueError(f"n_estimators must be >= 1, got {self.n_estimators}")
        if self.max_depth is not None and self.max_depth < 1:
            raise ValueError(f"max_depth must be >= 1 or None, got {self.max_depth}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold}")
        if self.max_train_pixels < 100:
            raise ValueError(f"max_train_pixels must be at least 100, got {self.max_train_pixels}")
        self.extra_sigmas = [float(s) for s in (self.extra_sigmas or [])]
        FeatureSpec(window=int(self.window), levels=int(self.levels), extra_sigmas=tuple(self.extra_sigmas))


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


class ForestSegmenter(Segmenter):
    """Random Forest on per-pixel features (S/N at several scales, or the study's); sky vs galaxy."""

    name = "forest"
    Params = ForestParams
    capabilities = Capabilities(trainable=True, uses_recipe=True)
    run_fields = ("tile_size", "n_threads")
    train_fields = ()  # its training settings (trees, pixels drawn) are its own parameters
    #: tiles of 1024² for huge images (memory per tile ~ 100-150 bytes per pixel of features)
    run_defaults = {"tile_size": 1024, "n_threads": 2}

    def __init__(self, params: ForestParams | None = None, **overrides):
        super().__init__(params, **overrides)
        self.model = None  # sklearn RandomForestClassifier, classes 0 = sky, 1 = galaxy
        self.value_range: tuple[float, float] | None = None
        self._flat = None  # (model, FlatForest) for the compiled prediction
        self._sky_cache = None  # SnrInputs: keeps the background mesh of the last image seen
        self._band_caches: list = []  # one SnrInputs per band, for a forest trained on bands

    @property
    def fitted(self) -> bool:
        return self.model is not None

    @property
    def study(self) -> bool:
        return self.params.features == "study"

    @property
    def spec(self) -> FeatureSpec | SnrFeatureSpec:
        """What decides the feature values (a FeatureSpec for the study's set, else a SnrFeatureSpec)."""
        p = self.params
        if not self.study:
            return SnrFeatureSpec(scales=tuple(p.scales))
        if self.value_range is None:
            raise ValueError("this forest has not been trained yet: call fit(image, truth) or fit_scribbles(...)")
        return FeatureSpec(window=int(p.window), levels=int(p.levels), texture_channel=int(p.texture_channel),
                           value_range=tuple(self.value_range), extra_sigmas=tuple(p.extra_sigmas))

    @property
    def feature_names(self) -> list[str]:
        if not self.study:
            names = snr_feature_names(self.spec)
            # several bands: each band's features in turn, named band:feature
            return [f"{b}:{n}" for b in self.bands for n in names] if self.bands else names
        from ..preprocess import as_recipe

        rec = as_recipe(self.recipe)
        return feature_names(rec.n_channels, self.spec)

    def _features(self, stack: np.ndarray) -> np.ndarray:
        if self.study:
            return pixel_features(stack, self.spec)
        if self.bands:  # the (snr, rel_rms) pairs of each band: features per band, concatenated
            n = stack.shape[0] // len(self.bands)
            return np.concatenate([snr_features(stack[i * n:(i + 1) * n], self.spec) for i in range(len(self.bands))])
        return snr_features(stack, self.spec)

    def _halo(self) -> int:
        return feature_halo(self.spec) if self.study else snr_feature_halo(self.spec)

    # -- inputs ------------------------------------------------------------------------------------
    def _inputs(self, image, rms, rec=None):
        """The stack the features are computed from, and the valid pixels: the recipe's channels
        (study) or snr and rel_rms (galaxy); a dask array chunked by ``tile`` for big or dask input."""
        if self.study:
            return self._lazy_channels(image, rms, rec)
        return self._snr_stack(image, rms)

    def _lazy_channels(self, image, rms, rec):
        """Recipe channels as a dask array chunked by ``tile`` (big or dask input), else numpy."""
        rms_used = rms if rec.needs_rms else None
        lazy = is_dask(image) or is_dask(rms_used) or exceeds_tiles(image.shape, self.run_options.tile_size)
        if not lazy:
            return rec.apply(image, rms_used), valid_pixels(image, rms_used)
        import dask.array as da

        t = int(self.run_options.tile_size)
        image = image.rechunk(t) if is_dask(image) else da.from_array(image, chunks=t)
        if rms_used is not None:
            rms_used = rms_used.rechunk(image.chunks) if is_dask(rms_used) else da.from_array(rms_used, chunks=image.chunks)
        return rec.apply(image, rms_used), valid_pixels(image, rms_used)

    def _snr_stack(self, image, rms):
        if isinstance(image, BandStack):
            return self._band_snr_stack(image, rms)
        p, run = self.params, self.run_options
        if self._sky_cache is None or self._sky_cache.box != int(p.background_box):
            self._sky_cache = SnrInputs(int(p.background_box), n_threads=int(run.n_threads) or 1)
        # above one tile, tiles (with halos) run in parallel threads: the features are most of the time
        lazy = is_dask(image) or is_dask(rms) or exceeds_tiles(image.shape, run.tile_size, n_tiles=1)
        return self._sky_cache.stack(image, rms, tile=int(run.tile_size), lazy=lazy)

    def _band_snr_stack(self, image: BandStack, rms):
        """Each band's (snr, rel_rms) with its own sky and noise, stacked band after band; a pixel is
        valid where every band is."""
        if self.study:
            raise ValueError("the study's features (features=study) take one image; bands take the galaxy features")
        p, run = self.params, self.run_options
        n = len(image.planes)
        if len(self._band_caches) != n or self._band_caches[0].box != int(p.background_box):
            self._band_caches = [SnrInputs(int(p.background_box), n_threads=int(run.n_threads) or 1) for _ in range(n)]
        rms_planes = rms.planes if rms is not None else [None] * n
        lazy = (any(is_dask(x) for x in (*image.planes, *rms_planes))
                or exceeds_tiles(image.shape, run.tile_size, n_tiles=1))
        parts = [cache.stack(plane, sigma, tile=int(run.tile_size), lazy=lazy)
                 for cache, plane, sigma in zip(self._band_caches, image.planes, rms_planes)]
        valid = parts[0][1]
        for _, ok in parts[1:]:
            valid = valid & ok
        if lazy:
            import dask.array as da

            return da.concatenate([stack for stack, _ in parts]), valid
        return np.concatenate([stack for stack, _ in parts]), valid

    def _check_texture_channel(self, n_channels: int) -> None:
        if self.study and not 0 <= self.params.texture_channel < n_channels:
            raise ValueError(f"texture_channel={self.params.texture_channel} but the recipe gives {n_channels} "
                             f"channels; choose 0 .. {n_channels - 1}")

    # -- training ----------------------------------------------------------------------------------
    def fit(self, image, truth, rms=None, *, progress: ProgressCallback | None = None, cancel=None,
            **ignored) -> ForestSegmenter:
        """Train on dense truth: labels > 0 are galaxy, 0 is sky.

        ``image``, ``truth`` and ``rms`` may be lists (several training images); the recipe is fitted
        on the first image unless it was fitted before.
        """
        images, truths = _as_list(image), _as_list(truth)
        rmss = _as_list(rms) if rms is not None else [None] * len(images)
        names = {im.names if isinstance(im, BandStack) else None for im in images}
        if len(names) > 1:
            raise ValueError("the training images must all be the same bands (or all single images)")
        self.bands = names.pop()
        if not (len(images) == len(truths) == len(rmss)):
            raise ValueError(f"got {len(images)} images, {len(truths)} truth images and {len(rmss)} rms maps; "
                             "they must pair up")
        targets = []
        for im, tr, rm in zip(images, truths, rmss):
            check_image(im, rm, tr, "truth")
            targets.append(binary_target(tr))
        return self._fit_targets(images, targets, rmss, reporter(progress, cancel), "truth")

    def fit_scribbles(self, image, scribbles, rms=None, progress: ProgressCallback | None = None,
                      cancel=None) -> ForestSegmenter:
        """Train on sparse scribbles: 1 = sky, 2 = galaxy, 0 = unlabelled (ilastik/APOC style)."""
        check_image(image, rms, scribbles, "scribbles")
        self.bands = image.names if isinstance(image, BandStack) else None
        target = scribble_target(scribbles)
        return self._fit_targets([image], [target], [rms], reporter(progress, cancel), "scribbles")

    def _fit_targets(self, images, targets, rmss, progress, kind: str) -> ForestSegmenter:
        from sklearn.ensemble import RandomForestClassifier

        p = self.params
        if self.study and self.bands:
            raise ValueError("the study's features (features=study) take one image; bands take the galaxy features")
        if self.study:
            rec = resolve_recipe(self.recipe, images[0], rmss[0])
            self._check_texture_channel(rec.n_channels)
            self.recipe = rec.to_dict()
            channel_stacks = [self._lazy_channels(im, rm, rec) for im, rm in zip(images, rmss)]
            # grey-level range of the texture channel, from the first image (fixed for all tiles and images)
            texture = channel_stacks[0][0][p.texture_channel]
            ny, nx = texture.shape
            step = max(1, int(math.ceil(math.sqrt(ny * nx / 1_000_000))))
            tex_sample = texture[::step, ::step]
            self.value_range = fit_value_range([tex_sample.compute() if is_dask(tex_sample) else tex_sample])
        else:
            if self.recipe is not None:
                raise ValueError("a preprocessing recipe shapes the study's features only: set features=study "
                                 "(--set features=study) to train on it")
            self.value_range = None
            channel_stacks = [self._snr_stack(im, rm) for im, rm in zip(images, rmss)]
        halo = self._halo()

        counts = np.zeros(2, dtype=np.int64)
        for t in targets:
            counts += class_counts(t)
        if counts.min() == 0:
            missing = "galaxy" if counts[1] == 0 else "sky"
            hint = "paint some pixels with label 2 (galaxy) and 1 (sky)" if kind == "scribbles" else \
                "the truth image must contain both sky (0) and galaxy (> 0) pixels"
            raise ValueError(f"no {missing} pixels to learn from in the {kind}: {hint}")
        cap = int(p.max_train_pixels)
        balance = p.class_balance if p.class_balance is not None else kind == "scribbles"
        # draw ~5% more than the quota tile by tile, then trim to the quota exactly
        if balance:
            quota = np.array([cap // 2, cap - cap // 2])
            prob = np.minimum(1.0, 1.05 * quota / counts)
        else:
            quota = None
            prob = np.full(2, min(1.0, 1.05 * cap / counts.sum()))

        xs, ys = [], []
        n_tiles = sum(len(tiles(t.shape, self.run_options.tile_size)) for t in targets)
        done = 0
        for i, ((channels, valid), target) in enumerate(zip(channel_stacks, targets)):
            for tile in tiles(target.shape, self.run_options.tile_size):
                done += 1
                if progress:
                    progress(done, n_tiles + 1, "features of training pixels")
                x, y = sample_tile(channels, valid, target, tile, prob, self._features, halo, seed=(p.seed, i, *tile.index))
                if len(y):
                    xs.append(x)
                    ys.append(y)
        if not xs:
            raise ValueError(f"no valid (finite) pixels under the {kind}: check the image and the rms map")
        x, y = np.concatenate(xs), np.concatenate(ys)
        keep = trim_to_quota(y, quota, cap, int(p.seed))
        x, y = x[keep], y[keep]
        if len(np.unique(y)) < 2:
            raise ValueError(f"the {kind} pixels that are valid all belong to one class; label both sky and galaxy")
        if progress:
            progress(n_tiles, n_tiles + 1, f"training on {len(y)} pixels")
        model = RandomForestClassifier(
            n_estimators=int(p.n_estimators), max_depth=p.max_depth, n_jobs=int(self.run_options.n_threads) or -1,
            class_weight="balanced" if balance else None, random_state=int(p.seed),
        )
        model.fit(x, y)
        self.model = model
        self.provenance.update({  # beside what a job recorded before fitting (inputs, runner)
            "trained_on": kind,
            "n_images": len(images),
            "shapes": [list(im.shape) for im in images],
            "training_pixels": {"sky": int((y == 0).sum()), "galaxy": int((y == 1).sum())},
            "labelled_pixels": {"sky": int(counts[0]), "galaxy": int(counts[1])},
        })
        if progress:
            progress(n_tiles + 1, n_tiles + 1, "trained")
        return self

    # -- prediction --------------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if self.model is None:
            raise ValueError("this forest has not been trained yet: call fit(image, truth) or fit_scribbles(...), "
                             "or load a model folder (--model)")

    def _flat_forest(self):
        from .tree_predict import flatten_forest

        cached = self._flat
        if cached is None or cached[0] is not self.model:
            cached = self._flat = (self.model, flatten_forest(self.model))
        return cached[1]

    def _proba_block(self, stack: np.ndarray, n_threads: int = 1) -> np.ndarray:
        from .tree_predict import forest_proba

        feats = self._features(stack)
        f, ny, nx = feats.shape
        planes = feats.reshape(f, -1)
        index = None
        if not self.study and self.params.sky_gate > 0:
            scales = [i for i, n in enumerate(self.feature_names) if n.rsplit(":", 1)[-1].startswith("snr_")]
            index = np.flatnonzero(planes[scales].max(axis=0) >= np.float32(self.params.sky_gate))
        return forest_proba(self._flat_forest(), planes, n_threads, index=index).reshape(ny, nx)

    def _prepare(self, image, rms):
        """Input stack and valid pixels for prediction (the recipe resolved for the study's set)."""
        if not self.study:
            return self._snr_stack(image, rms)
        rec = resolve_recipe(self.recipe, image, rms)
        channels, valid = self._lazy_channels(image, rms, rec)
        self._check_texture_channel(channels.shape[0])
        return channels, valid

    def predict_proba(self, image, rms=None, progress: ProgressCallback | None = None):
        """Galaxy probability per pixel (float32, NaN where the input is not valid); lazy for dask/huge."""
        self._require_fitted()
        check_bands(self.bands, image, f"this {self.name} model")
        check_image(image, rms)
        stack, valid = self._prepare(image, rms)
        if is_dask(stack):
            import dask.array as da

            block = counting_progress(lambda ch: self._proba_block(ch)[None], stack.numblocks[1] * stack.numblocks[2],
                                      progress, "tiles classified")
            proba = map_stack_with_halo(block, stack, self._halo(), 1, np.float32)[0]
            proba = da.where(valid, proba, np.float32(np.nan))
            if not (is_dask(image) or is_dask(rms) or exceeds_tiles(image.shape, self.run_options.tile_size)):
                return proba.compute()  # numpy in, numpy out (only huge inputs stay lazy)
            return proba
        if progress:
            progress(0, 1, "features and classification")
        proba = self._proba_block(stack, n_threads=int(self.run_options.n_threads))
        proba[~valid] = np.nan
        if progress:
            progress(1, 1, "classified")
        return proba

    def predict_mask(self, image, rms=None, progress: ProgressCallback | None = None):
        """Galaxy mask (bool): probability >= ``threshold`` on valid pixels."""
        proba = self.predict_proba(image, rms, progress)
        return proba >= np.float32(self.params.threshold)  # NaN compares False

    def _predict(self, image, rms, region, progress) -> Segmentation:
        """int32 instance labels (0 = sky): numpy for numpy input, lazy dask for dask input."""
        from ..tiling import label_mask

        mask = self.predict_mask(image, rms, progress)
        labels = label_mask(mask, min_area=int(self.params.min_area), connectivity=int(self.params.connectivity))
        if not is_dask(image) and is_dask(labels):
            labels = labels.compute()
        return Segmentation(labels)

    def predict_region(self, image, region, rms=None) -> np.ndarray:
        """Galaxy probability of a window of a (possibly huge) image, with the context a tile needs.

        Equal to ``predict_proba(image)[region]`` but only the window plus a halo is computed — what
        a viewer's "field of view" preview needs.
        """
        import dask.array as da

        self._require_fitted()
        if self.bands or isinstance(image, BandStack):
            raise ValueError("a field-of-view preview takes one image; segment bands with predict()")
        t = int(self.run_options.tile_size)
        img = image if is_dask(image) else da.from_array(image, chunks=t)
        if self.study:
            rec = resolve_recipe(self.recipe, image, rms)
            rms_used = rms if rec.needs_rms else None
            if rec.needs_rms and rms is None:
                raise ValueError("this model's recipe uses an rms map: pass rms=...")
            if rms_used is not None:
                rms_used = rms_used.rechunk(img.chunks) if is_dask(rms_used) else da.from_array(rms_used, chunks=img.chunks)
            stack = rec.apply(img, rms_used)
            valid = valid_pixels(img, rms_used)
        else:
            stack, valid = self._snr_stack(img, rms)
        ny, nx = image.shape
        window = Window.of(region).clip(image.shape)
        ys, xs = (window.y0, window.y1), (window.x0, window.x1)
        h = self._halo()
        oy0, oy1 = max(0, ys[0] - h), min(ny, ys[1] + h)
        ox0, ox1 = max(0, xs[0] - h), min(nx, xs[1] + h)
        ch = np.asarray(stack[:, oy0:oy1, ox0:ox1].compute())
        proba = self._proba_block(ch, n_threads=int(self.run_options.n_threads))[ys[0] - oy0 : ys[1] - oy0, xs[0] - ox0 : xs[1] - ox0]
        ok = np.asarray(valid[ys[0] : ys[1], xs[0] : xs[1]].compute())
        proba[~ok] = np.nan
        return proba

    # -- model folders -----------------------------------------------------------------------------
    def config(self) -> dict:
        cfg = super().config()
        cfg["value_range"] = None if self.value_range is None else list(self.value_range)
        cfg["features"] = self.feature_names if self.model is not None else None
        return cfg

    @classmethod
    def load(cls, path, *, trust_pickle: bool = False) -> ForestSegmenter:
        """Load a model folder; ``trust_pickle=True`` also accepts an old ``forest.joblib``
        pickle (it can run code: only for folders you trust)."""
        import contextlib

        from ._sklearn_state import trusted_pickles

        with trusted_pickles(trust_pickle) if trust_pickle else contextlib.nullcontext():
            return super().load(path)

    def _save_state(self, path: Path) -> None:
        from ._sklearn_state import save_forest

        self._require_fitted()
        save_forest(self.model, path / STATE_NAME)
        (path / LEGACY_STATE_NAME).unlink(missing_ok=True)

    def _load_state(self, path: Path, config: dict) -> None:
        from sklearn.ensemble import RandomForestClassifier

        from ._sklearn_state import load_forest, load_trusted_pickle

        state = path / STATE_NAME
        if not state.exists() and not (path / LEGACY_STATE_NAME).exists():
            raise ModelFolderError(f"{path} has no {STATE_NAME}: the forest was not saved completely")
        if "features" not in (config.get("params") or {}):  # saved before the galaxy features existed
            self.params = dataclasses.replace(self.params, features="study")
        if config.get("features") is None or (self.study and (self.recipe is None or config.get("value_range") is None)):
            raise ModelFolderError(f"{path / 'config.json'} lacks the recipe, value_range or feature list of a trained forest")
        try:
            self.value_range = tuple(float(v) for v in config["value_range"]) if self.study else None
            expected = self.feature_names
        except (ValueError, TypeError) as exc:
            raise ModelFolderError(f"{path}: the saved recipe or feature settings are invalid ({exc})") from None
        saved = list(config["features"])
        if saved != expected:
            raise ModelFolderError(
                f"{path} was trained on features {saved} but this napari-galseg computes {expected} for its "
                "settings; retrain the forest with this version (galseg train forest ...)")
        if state.exists():
            model = load_forest(state, n_jobs=int(self.run_options.n_threads) or -1)
        else:
            state = path / LEGACY_STATE_NAME
            model = load_trusted_pickle(state)
            if not isinstance(model, RandomForestClassifier):
                raise ModelFolderError(f"{state} holds a {type(model).__name__}, not a RandomForestClassifier")
        if model.n_features_in_ != len(expected):
            raise ModelFolderError(f"{state} expects {model.n_features_in_} features but config.json lists {len(expected)}")
        self.model = model
