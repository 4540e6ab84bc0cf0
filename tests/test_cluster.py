"""`galseg segment ... --scheduler ADDRESS` and RunOptions.scheduler: the tiles (or the frames) run
as tasks on a real dask `distributed.LocalCluster` of two worker processes, with the same labels
as the local run."""
import shutil

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from napari_galseg import cluster as galseg_cluster
from napari_galseg.cli import main
from napari_galseg.io import open_fits
from napari_galseg.segmenters.unet import UNetSegmenter
from napari_galseg.synth import write_field

distributed = pytest.importorskip("distributed")

SETS = ["--set", "box_size=32", "--set", "tile_size=64"]


@pytest.fixture(scope="module")
def local_cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    return write_field(tmp_path_factory.mktemp("field"), size=256, seed=3)


def _task_names(task_stream) -> set[str]:
    return {str(record["key"]).strip("('\"").split("-")[0] for record in task_stream.data}


def _keys(task_stream) -> str:
    return " ".join(str(record["key"]) for record in task_stream.data)


def test_photutils_tiles_on_the_cluster_give_the_local_labels_and_catalog(local_cluster, field, tmp_path):
    local, remote = tmp_path / "local.fits", tmp_path / "remote.fits"
    args = ["segment", "photutils", str(field["image"]), "--rms", str(field["rms"]), *SETS]
    assert main([*args, "-o", str(local), "--catalog", str(tmp_path / "local.ecsv")]) == 0
    with distributed.Client(local_cluster, set_as_default=False) as watcher, distributed.get_task_stream(client=watcher) as tasks:
        assert main([*args, "-o", str(remote), "--catalog", str(tmp_path / "remote.ecsv"),
                     "--scheduler", local_cluster.scheduler_address]) == 0
    assert "_apply" in _task_names(tasks)  # the detection pass's tiles ran on the workers
    assert "window_of" in _keys(tasks)  # and so did the output's label blocks
    labels = fits.getdata(local)
    assert labels.max() > 10
    np.testing.assert_array_equal(fits.getdata(remote), labels)
    a, b = Table.read(tmp_path / "local.ecsv"), Table.read(tmp_path / "remote.ecsv")
    assert a.colnames == b.colnames and len(a) == len(b) == labels.max()
    for name in ("label", "x_centroid", "y_centroid", "area", "segment_flux"):
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]))


@pytest.fixture(scope="module")
def tiny_unet(field, tmp_path_factory):
    """A U-Net with random weights (no training): what the cluster must reproduce is the arithmetic."""
    import torch

    segmenter = UNetSegmenter(depth=2, base_width=4, tile_size=64, tile_overlap=16, tile_batch=3, device="cpu",
                              threshold=0.5, seed_threshold=0.5)
    image, rms = open_fits(field["image"]).data, open_fits(field["rms"]).data
    recipe = segmenter._fitted_recipe(segmenter.input_image(image), rms)
    segmenter.recipe = recipe.to_dict()
    torch.manual_seed(1)
    segmenter.net = segmenter.build_net(recipe.n_channels).eval()
    folder = tmp_path_factory.mktemp("models") / "unet-random"
    segmenter.save(folder)
    return folder


def test_unet_bands_on_the_cluster_give_the_local_maps_and_labels(local_cluster, field, tiny_unet, tmp_path):
    image, rms = open_fits(field["image"]).data, open_fits(field["rms"]).data
    local = UNetSegmenter.load(tiny_unet).predict(image, rms)
    remote_model = UNetSegmenter.load(tiny_unet).configure(scheduler=local_cluster.scheduler_address)
    with distributed.Client(local_cluster, set_as_default=False) as watcher, distributed.get_task_stream(client=watcher) as tasks:
        remote = remote_model.predict(image, rms)
    assert "_apply" in _task_names(tasks)
    assert len(tasks.data) >= 5  # one task per band of tile rows (256 px in 64 px tiles, 16 px overlap)
    np.testing.assert_array_equal(remote.maps["probability"], local.maps["probability"])
    np.testing.assert_array_equal(remote.labels, local.labels)
    assert local.labels.max() > 0
    # the CLI's streamed path too
    out = tmp_path / "unet.fits"
    assert main(["segment", "unet", str(field["image"]), "--rms", str(field["rms"]), "--model", str(tiny_unet),
                 "-o", str(out), "--scheduler", local_cluster.scheduler_address]) == 0
    np.testing.assert_array_equal(fits.getdata(out), local.labels)


def test_the_scheduler_address_is_not_saved_in_a_model_folder(tiny_unet, tmp_path):
    model = UNetSegmenter.load(tiny_unet).configure(scheduler="tcp://example.org:8786")
    model.save(tmp_path / "again")
    assert UNetSegmenter.load(tmp_path / "again").run_options.scheduler == ""


def test_many_frames_are_tasks_on_the_cluster(local_cluster, field, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("a", "b"):
        shutil.copy(field["image"], frames / f"{name}.fits")
    out = tmp_path / "out"
    argv = ["segment", "photutils", str(frames / "a.fits"), str(frames / "b.fits"), "-o", str(out), *SETS]
    with distributed.Client(local_cluster, set_as_default=False) as watcher, distributed.get_task_stream(client=watcher) as tasks:
        assert main([*argv, "--scheduler", local_cluster.scheduler_address]) == 0
    assert _task_names(tasks) == {"segment_frame"} and len(tasks.data) == 2
    local = tmp_path / "local.fits"
    assert main(["segment", "photutils", str(field["image"]), "-o", str(local), *SETS]) == 0
    for name in ("a", "b"):
        np.testing.assert_array_equal(fits.getdata(out / f"{name}_labels.fits"), fits.getdata(local))
        assert (out / f"{name}_catalog.ecsv").exists() and (out / ".galseg-frames" / f"{name}.json").exists()


def test_an_unreachable_scheduler_is_one_line_with_the_address(field, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(galseg_cluster, "CONNECT_TIMEOUT", 1.0)
    out = tmp_path / "labels.fits"
    rc = main(["segment", "photutils", str(field["image"]), "-o", str(out), "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not out.exists()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "cannot reach the dask scheduler at 'tcp://127.0.0.1:9'" in err and "dask scheduler" in err


def test_network_tasks_take_a_gpu_resource_where_workers_offer_one(local_cluster, field, tiny_unet):
    with distributed.Client(local_cluster, set_as_default=False) as client:
        assert galseg_cluster.gpu_resources(client) is None
    image, rms = open_fits(field["image"]).data, open_fits(field["rms"]).data
    local = UNetSegmenter.load(tiny_unet).predict(image, rms)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, resources={"GPU": 1},
                                  dashboard_address=None) as gpu_cluster:
        with distributed.Client(gpu_cluster, set_as_default=False) as client:
            assert galseg_cluster.gpu_resources(client) == {"GPU": 1}
            with distributed.get_task_stream(client=client) as tasks:
                remote = UNetSegmenter.load(tiny_unet).configure(scheduler=gpu_cluster.scheduler_address).predict(image, rms)
    assert len(tasks.data) >= 5
    np.testing.assert_array_equal(remote.labels, local.labels)
