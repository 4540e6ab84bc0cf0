"""The photutils pipeline's lazy labels compute on a dask `distributed` cluster of worker
processes, identical to the local result (the windows' tasks carry the pipeline by pickle)."""
import numpy as np
import pytest

from napari_galseg.io import open_fits
from napari_galseg.segmenters import get
from napari_galseg.synth import write_field

distributed = pytest.importorskip("distributed")


def test_lazy_labels_on_a_local_cluster_equal_the_local_run(tmp_path):
    files = write_field(tmp_path, size=512, seed=4)
    image = open_fits(files["image"]).data.rechunk(128)  # 16 label blocks
    rms = open_fits(files["rms"]).data
    segmenter = get("photutils")(tile_size=128, deblend=True)
    labels = segmenter.predict(image, rms).labels
    assert labels.numblocks == (4, 4)
    local = labels.compute(scheduler="threads")
    assert local.max() > 10
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = client.compute(labels).result()
    np.testing.assert_array_equal(remote, local)
