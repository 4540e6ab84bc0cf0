"""Model folders from elsewhere run no code: forests and KMeans are arrays, pickles are refused
unless the user trusts the folder; predictions after a round trip are identical."""
from __future__ import annotations

import zipfile

import joblib
import numpy as np
import pytest

from napari_galseg import cli
from napari_galseg.segmenters import ModelFolderError, Segmenter
from napari_galseg.segmenters.forest import ForestSegmenter
from napari_galseg.segmenters.kmeans import KMeansSegmenter


def _field(seed=0, shape=(80, 80)):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = rng.normal(0, 0.05, shape).astype(np.float32)
    truth = np.zeros(shape, np.int32)
    for i, (y, x) in enumerate(rng.uniform(10, 70, (5, 2)), start=1):
        blob = np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 20.0)
        image += blob.astype(np.float32)
        truth[blob > 0.3] = i
    return image, np.full(shape, 0.05, np.float32), truth


@pytest.fixture(scope="module")
def forest():
    image, rms, truth = _field()
    return ForestSegmenter(n_estimators=10, max_depth=8, window=5, max_train_pixels=4000, n_threads=1).fit(image, truth, rms)


class _Boom:
    """A pickle payload that would create a file when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_forest_round_trip_is_exact_and_pickle_free(forest, tmp_path):
    image, rms, _ = _field(seed=3)
    forest.save(tmp_path / "rf")
    assert sorted(p.name for p in (tmp_path / "rf").iterdir()) == ["config.json", "forest.npz"]
    with np.load(tmp_path / "rf" / "forest.npz", allow_pickle=False) as data:  # arrays only
        assert all(data[k].dtype != object for k in data.files)
    loaded = Segmenter.load(tmp_path / "rf")
    np.testing.assert_array_equal(loaded.predict_proba(image, rms), forest.predict_proba(image, rms))


def test_kmeans_round_trip_is_exact(tmp_path):
    image, _, _ = _field(seed=1)
    seg = KMeansSegmenter(n_clusters=3, galaxy_clusters=[2], min_area=4).fit(image)
    seg.save(tmp_path / "km")
    assert not list((tmp_path / "km").glob("*.joblib"))
    np.testing.assert_array_equal(Segmenter.load(tmp_path / "km").predict(image), seg.predict(image))


@pytest.mark.parametrize("method", ["forest", "kmeans"])
def test_a_crafted_pickle_runs_nothing(forest, method, tmp_path, capsys):
    folder = tmp_path / method
    if method == "forest":
        forest.save(folder)
        (folder / "forest.npz").unlink()
    else:
        image, _, _ = _field(seed=1)
        KMeansSegmenter(n_clusters=3, galaxy_clusters=[2]).fit(image).save(folder)
        (folder / "kmeans.npz").unlink()
    marker = tmp_path / "pwned"
    joblib.dump(_Boom(marker), folder / f"{method}.joblib")
    with pytest.raises(ModelFolderError, match="pickle"):
        Segmenter.load(folder)
    image_path = tmp_path / "img.fits"
    from astropy.io import fits

    fits.writeto(image_path, _field()[0])
    code = cli.main(["segment", method, str(image_path), "--model", str(folder), "-o", str(tmp_path / "o.fits")])
    assert code == 2 and "--trust-model" in capsys.readouterr().err
    assert not marker.exists()
    # an npz with a pickled object inside is refused too (np.load never unpickles here)
    np.savez(folder / f"{method}.npz", format=np.array(["x", _Boom(marker)], dtype=object))
    with pytest.raises(ModelFolderError):
        Segmenter.load(folder)
    assert not marker.exists()
    assert zipfile.is_zipfile(folder / f"{method}.npz")


def test_an_old_pickled_folder_loads_when_trusted(forest, tmp_path):
    image, rms, _ = _field(seed=2)
    forest.save(tmp_path / "old")
    (tmp_path / "old" / "forest.npz").unlink()
    joblib.dump(forest.model, tmp_path / "old" / "forest.joblib")  # what older versions wrote
    with pytest.raises(ModelFolderError, match="trust"):
        ForestSegmenter.load(tmp_path / "old")
    loaded = ForestSegmenter.load(tmp_path / "old", trust_pickle=True)
    np.testing.assert_array_equal(loaded.predict_proba(image, rms), forest.predict_proba(image, rms))
    loaded.save(tmp_path / "old")  # converted: arrays now, the pickle gone
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == ["config.json", "forest.npz"]


def test_every_torch_load_is_weights_only():
    """A checkpoint is data: ``torch.load`` without ``weights_only=True`` would unpickle code."""
    import re
    from pathlib import Path

    import napari_galseg

    root = Path(napari_galseg.__file__).parent
    calls = [(path, line) for path in root.rglob("*.py") for line in path.read_text().splitlines()
             if re.search(r"torch\.load\(", line)]
    assert calls, "the U-Net checkpoints are loaded somewhere"
    assert all("weights_only=True" in line for _, line in calls), calls
