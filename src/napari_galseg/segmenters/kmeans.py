"""KMeans pixel clustering (`kmeans`): the study's unsupervised baseline, made to find galaxies.

Every pixel is a point whose coordinates are its channels:

- ``channels="snr"`` (default): the signal-to-noise of the sky-subtracted image smoothed at each of
  ``scales`` (in units of the smoothed noise, see :mod:`.snr_features`), compressed as
  ``asinh(S/N / softening)``. In these units the sky is one compact blob around 0 on every field,
  whatever its depth pattern, and galaxies spread away from it; ``n_clusters`` = 24 clusters cut that
  range, and the galaxy clusters are those whose centroid's mean S/N reaches ``galaxy_snr`` (5σ of
  the smoothed noise). On the study's channels the two clusters split the sky by depth instead
  (IoU 0.14 on unseen fields; 0.57–0.68 with these on four fields of other PSFs and densities).
- ``channels="recipe"``: the study's variants — the preprocessing recipe's channels (by default the
  image-only recipe: normalised and asinh-stretched image; the rms channel only with a recipe that
  has one), with :data:`STUDY_PRESET` (2 clusters, the brightest is galaxy).

MiniBatchKMeans is fitted on a reproducible random sample of the pixels, so a 25000² frame costs the
same to fit as a 1000² one; prediction assigns every pixel to its nearest centroid tile by tile (with
the smoothing's halo for the S/N channels). The clusters are renumbered by the brightness of their
centroid (``brightness_channel`` of the recipe, the mean S/N of the snr channels; 0 = faintest), the
galaxy cluster(s) are chosen as above unless ``galaxy_clusters`` names them, and connected components
of the galaxy mask larger than ``min_area`` pixels become the instances.

>>> seg = KMeansSegmenter(n_clusters=3)                     # doctest: +SKIP
>>> labels = seg.predict(image, rms)                        # fits on this image first
>>> seg.centroids                                           # (k, C), ordered faint to bright
"""
from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np

from ..arrays import exceeds_tiles, is_dask
from ..model_folder import ModelFolderError
from ..progress import ProgressCallback, reporter
from .base import Capabilities, Segmentation, Segmenter
from .features import check_image, counting_progress, map_stack_with_halo, resolve_recipe, valid_pixels
from .snr_features import TRUNCATE, SnrInputs, smoothed_snr

STATE_NAME = "kmeans.npz"  # the centroids as arrays: loading runs no code (see ._sklearn_state)
#: what older versions wrote: a pickle, loaded only from a folder the user trusts
LEGACY_STATE_NAME = "kmeans.joblib"
CHANNELS = ("snr", "recipe")
#: the study's variants: its recipe channels, 2 clusters, the brightest is galaxy
STUDY_PRESET = {"channels": "recipe", "n_clusters": 2}


@dataclasses.dataclass
class KMeansParams:
    #: "snr": asinh(S/N / softening) of the sky-subtracted image smoothed at ``scales``;
    #: "recipe": the preprocessing recipe's channels (the study's)
    channels: str = "snr"
    #: number of clusters (the study: 2, sky and galaxy). With S/N channels, fine clusters put the
    #: sky/galaxy boundary close to galaxy_snr: 24 gave IoU >= 0.65 on six tuning fields, 8 fell to 0.54
    n_clusters: int = 24
    #: clusters that count as galaxy, numbered faint (0) to bright (n_clusters-1); None = those whose
    #: centroid's mean S/N reaches ``galaxy_snr`` (snr channels) or the brightest (recipe channels)
    galaxy_clusters: list[int] | None = None
    #: snr channels: Gaussian scales (px), asinh softening (S/N), galaxy clusters' least mean S/N,
    #: background mesh box (px)
    scales: list[float] = dataclasses.field(default_factory=lambda: [1.0, 2.0, 4.0])
    softening: float = 3.0
    galaxy_snr: float = 5.0
    background_box: int = 64
    #: recipe channel whose centroid value orders the clusters (0 = the normalised image)
    brightness_channel: int = 0
    #: pixels sampled (reproducibly, with ``seed``) to fit the clusters
    sample_size: int = 200_000
    #: smallest instance kept, in pixels
    min_area: int = 10
    #: 8- or 4-connectivity of the instances
    connectivity: int = 8
    seed: int = 0

    def __post_init__(self):
        if self.channels not in CHANNELS:
            raise ValueError(f"channels must be one of {', '.join(CHANNELS)}, got {self.channels!r}")
        self.scales = [float(v) for v in (self.scales or [])]
        if not self.scales or any(not v > 0 for v in self.scales):
            raise ValueError(f"scales must be positive numbers of pixels, got {self.scales}")
        if not self.softening > 0:
            raise ValueError(f"softening must be > 0, got {self.softening}")
        if int(self.n_clusters) < 2:
            raise ValueError(f"n_clusters must be at least 2, got {self.n_clusters}")
        if self.galaxy_clusters is not None:
            if isinstance(self.galaxy_clusters, int):
                self.galaxy_clusters = [self.galaxy_clusters]
            bad = [c for c in self.galaxy_clusters if not 0 <= int(c) < int(self.n_clusters)]
            if bad or not self.galaxy_clusters:
                raise ValueError(f"galaxy_clusters must list cluster numbers between 0 and {self.n_clusters - 1} "
                                 f"(0 = faintest), got {self.galaxy_clusters}")
            self.galaxy_clusters = sorted({int(c) for c in self.galaxy_clusters})
        if self.sample_size < 10 * self.n_clusters:
            raise ValueError(f"sample_size={self.sample_size} is too small for {self.n_clusters} clusters")
        if self.min_area < 0:
            raise ValueError(f"min_area must be >= 0, got {self.min_area}")


def _sample_features(channels, valid, sample_size: int, seed: int) -> np.ndarray:
    """(n, C) channel values of up to ``sample_size`` valid pixels, the same for the same seed."""
    if is_dask(channels):
        # a strided grid, offset by the seed: reads every chunk once, keeps a small part of each
        _, ny, nx = channels.shape
        step = max(1, int(np.ceil(np.sqrt(ny * nx / sample_size))))
        off = np.random.default_rng(seed).integers(0, step, size=2)
        grid = channels[:, off[0]::step, off[1]::step].compute()
        ok = np.asarray(valid[off[0]::step, off[1]::step].compute())
        return grid[:, ok].T
    flat_valid = np.flatnonzero(valid)
    rng = np.random.default_rng(seed)
    if flat_valid.size > sample_size:
        flat_valid = np.sort(rng.choice(flat_valid, size=sample_size, replace=False))
    return channels.reshape(channels.shape[0], -1)[:, flat_valid].T


class KMeansSegmenter(Segmenter):
    """Unsupervised clustering of S/N channels (or the study's recipe channels).

    Not trainable: ``fit`` needs no truth, and ``predict`` fits on its own input when not fitted;
    a fitted model still saves to a folder, to apply the same clusters to other frames.
    """

    name = "kmeans"
    Params = KMeansParams
    capabilities = Capabilities(uses_recipe=True)
    run_fields = ("tile_size",)
    #: images above 2 × 2 tiles of 2048² (and dask inputs) are clustered tile by tile
    run_defaults = {"tile_size": 2048}

    def __init__(self, params: KMeansParams | None = None, **overrides):
        super().__init__(params, **overrides)
        self.model = None  # sklearn MiniBatchKMeans with clusters ordered faint to bright
        self.centroids: np.ndarray | None = None
        self._snr_inputs = None  # SnrInputs: the background mesh of the last image seen

    @property
    def fitted(self) -> bool:
        return self.model is not None

    @property
    def snr(self) -> bool:
        return self.params.channels == "snr"

    @property
    def galaxy_clusters(self) -> list[int]:
        p = self.params
        k = int(p.n_clusters)
        if p.galaxy_clusters is not None:
            return list(p.galaxy_clusters)
        if self.snr and self.centroids is not None:
            level = self._centroid_snr(self.centroids)
            return sorted(set(np.flatnonzero(level >= p.galaxy_snr).tolist()) | {k - 1})
        return [k - 1]

    def _centroid_snr(self, centroids: np.ndarray) -> np.ndarray:
        """Mean S/N of each centroid of the snr channels (undoing the asinh compression)."""
        return (np.sinh(centroids) * self.params.softening).mean(axis=1)

    # -- inputs ------------------------------------------------------------------------------------
    def _channels(self, image, rms):
        if self.snr:
            return self._snr_channels(image, rms)
        return self._recipe_channels(image, rms)

    def _snr_channels(self, image, rms):
        p = self.params
        if self.recipe is not None:
            raise ValueError("a preprocessing recipe applies to the recipe channels only: set channels=recipe "
                             "(--set channels=recipe) to cluster on it")
        if self._snr_inputs is None or self._snr_inputs.box != int(p.background_box):
            self._snr_inputs = SnrInputs(int(p.background_box))
        tile = int(self.run_options.tile_size)
        stack, valid = self._snr_inputs.stack(image, rms, tile=tile, lazy=exceeds_tiles(image.shape, tile))
        scales, soft = tuple(p.scales), float(p.softening)

        def channels(block):
            return np.arcsinh(smoothed_snr(block[0], scales) / np.float32(soft))

        if not is_dask(stack):
            return channels(stack), valid
        halo = int(TRUNCATE * max(scales) + 0.5)
        return map_stack_with_halo(channels, stack, halo, len(scales), np.float32), valid

    def _recipe_channels(self, image, rms):
        from ..preprocess import image_only_recipe

        # Without an explicit recipe KMeans clusters the image channels only: the smooth rms channel
        # otherwise splits the field into depth zones instead of sky and galaxy (IoU 0.08 vs 0.19 at k=2
        # on make_field(512, seed=1)). Set `recipe` (--recipe) to cluster on other channels.
        rec = resolve_recipe(self.recipe if self.recipe is not None else image_only_recipe(), image, rms)
        self.recipe = rec.to_dict()
        rms_used = rms if rec.needs_rms else None
        if not is_dask(image) and exceeds_tiles(image.shape, self.run_options.tile_size):
            import dask.array as da

            image = da.from_array(image, chunks=self.run_options.tile_size)
            rms_used = None if rms_used is None else da.from_array(rms_used, chunks=self.run_options.tile_size)
        elif is_dask(image) or is_dask(rms_used):
            import dask.array as da

            image = image if is_dask(image) else da.from_array(image, chunks=self.run_options.tile_size)
            rms_used = None if rms_used is None else (
                rms_used.rechunk(image.chunks) if is_dask(rms_used) else da.from_array(rms_used, chunks=image.chunks))
        return rec.apply(image, rms_used), valid_pixels(image, rms_used)

    # -- fit / predict -----------------------------------------------------------------------------
    def fit(self, image, truth=None, rms=None, *, progress: ProgressCallback | None = None, cancel=None,
            **ignored) -> KMeansSegmenter:
        """Cluster a sample of ``image``'s pixels. ``truth`` is accepted and ignored (unsupervised)."""
        from sklearn.cluster import MiniBatchKMeans

        progress = reporter(progress, cancel)
        check_image(image, rms)
        p = self.params
        if progress:
            progress(0, 2, "preprocessing")
        channels, valid = self._channels(image, rms)
        if not self.snr and not 0 <= p.brightness_channel < channels.shape[0]:
            raise ValueError(f"brightness_channel={p.brightness_channel} but the recipe has {channels.shape[0]} channels")
        x = _sample_features(channels, valid, int(p.sample_size), int(p.seed))
        x = np.nan_to_num(x.astype(np.float32, copy=False))
        if len(x) < p.n_clusters or not (x.max(axis=0) > x.min(axis=0)).any():
            raise ValueError("every valid pixel has the same value after preprocessing: nothing to cluster "
                             "(is the image constant or almost empty?)")
        if progress:
            progress(1, 2, f"clustering {len(x)} pixels")
        model = MiniBatchKMeans(n_clusters=int(p.n_clusters), random_state=int(p.seed), batch_size=4096,
                                n_init=3, max_iter=200)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning on easy data is noise here
            model.fit(x)
        brightness = self._centroid_snr(model.cluster_centers_) if self.snr else model.cluster_centers_[:, p.brightness_channel]
        order = np.argsort(brightness, kind="stable")
        model.cluster_centers_ = np.ascontiguousarray(model.cluster_centers_[order])
        self.model = model
        self.centroids = model.cluster_centers_.copy()
        self.provenance = {"fitted_on_shape": list(image.shape), "sample_pixels": len(x)}
        if progress:
            progress(2, 2, "fitted")
        return self

    def _mask_block(self, channels: np.ndarray, valid: np.ndarray) -> np.ndarray:
        c, ny, nx = channels.shape
        x = np.nan_to_num(channels.reshape(c, -1).T.astype(np.float32, copy=False))
        cluster = self.model.predict(x).reshape(ny, nx)
        return np.isin(cluster, self.galaxy_clusters) & valid

    def cluster_map(self, image, rms=None) -> np.ndarray:
        """Cluster number of every pixel (0 = faintest), -1 where the input is not valid; numpy."""
        if not self.fitted:
            self.fit(image, rms=rms)
        channels, valid = self._channels(image, rms)
        channels, valid = np.asarray(channels), np.asarray(valid)
        c, ny, nx = channels.shape
        out = self.model.predict(np.nan_to_num(channels.reshape(c, -1).T)).reshape(ny, nx).astype(np.int32)
        out[~valid] = -1
        return out

    def predict_mask(self, image, rms=None, progress: ProgressCallback | None = None):
        """The galaxy mask (bool): numpy for numpy input, lazy dask for dask or huge input."""
        check_image(image, rms)
        if not self.fitted:
            self.fit(image, rms=rms, progress=progress)
        channels, valid = self._channels(image, rms)
        if is_dask(channels):
            import dask.array as da

            block = counting_progress(lambda ch, ok: self._mask_block(ch, ok), channels.numblocks[1] * channels.numblocks[2],
                              progress, "tiles clustered")
            return da.map_blocks(block, channels.rechunk({0: -1}), valid,
                                 drop_axis=0, dtype=bool, meta=np.empty((0, 0), bool))
        return self._mask_block(channels, valid)

    def _predict(self, image, rms, region, progress) -> Segmentation:
        """int32 instance labels (0 = sky): numpy for numpy input, lazy dask for dask input."""
        from ..tiling import label_mask

        mask = self.predict_mask(image, rms, progress)
        if progress:
            progress(1, 2, "labelling")
        labels = label_mask(mask, min_area=int(self.params.min_area), connectivity=int(self.params.connectivity))
        if not is_dask(image) and is_dask(labels):
            labels = labels.compute()
        if progress:
            progress(2, 2, "done")
        return Segmentation(labels)

    # -- model folders -----------------------------------------------------------------------------
    def config(self) -> dict:
        cfg = super().config()
        cfg["centroids"] = None if self.centroids is None else self.centroids.tolist()
        return cfg

    @classmethod
    def load(cls, path, *, trust_pickle: bool = False) -> KMeansSegmenter:
        """Load a model folder; ``trust_pickle=True`` also accepts an old ``kmeans.joblib``
        pickle (it can run code: only for folders you trust)."""
        import contextlib

        from ._sklearn_state import trusted_pickles

        with trusted_pickles(trust_pickle) if trust_pickle else contextlib.nullcontext():
            return super().load(path)

    def _save_state(self, path: Path) -> None:
        from ._sklearn_state import save_kmeans

        if self.model is None:
            raise ValueError("this KMeans segmenter has not been fitted yet: call fit(image) or predict(image) first")
        save_kmeans(self.model, path / STATE_NAME)
        (path / LEGACY_STATE_NAME).unlink(missing_ok=True)

    def _load_state(self, path: Path, config: dict) -> None:
        from sklearn.cluster import MiniBatchKMeans

        from ._sklearn_state import load_kmeans, load_trusted_pickle

        state = path / STATE_NAME
        if state.exists():
            model = load_kmeans(state, random_state=int(self.params.seed))
        elif (path / LEGACY_STATE_NAME).exists():
            state = path / LEGACY_STATE_NAME
            model = load_trusted_pickle(state)
            if not isinstance(model, MiniBatchKMeans):
                raise ModelFolderError(f"{state} holds a {type(model).__name__}, not a KMeans model")
        else:
            raise ModelFolderError(f"{path} has no {STATE_NAME}: the KMeans model was not saved completely")
        if "channels" not in (config.get("params") or {}):  # saved before the snr channels existed
            self.params = dataclasses.replace(self.params, channels="recipe")
        if model.n_clusters != self.params.n_clusters:
            raise ModelFolderError(f"{state} has {model.n_clusters} clusters but config.json says {self.params.n_clusters}")
        self.model = model
        self.centroids = model.cluster_centers_.copy()
