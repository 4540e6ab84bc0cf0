"""`galseg train/segment maskrcnn|detr`: a model folder, labels FITS and a scored catalog beside them."""
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def field_files(tmp_path_factory):
    from napari_galseg.synth import write_field

    return write_field(tmp_path_factory.mktemp("field"), 192, seed=6)


TINY = {
    "maskrcnn": ["widths=[8,16,32,64]", "fpn_channels=16", "rois_per_image=64"],
    "detr": ["d_model=32", "encoder_layers=1", "decoder_layers=1", "ffn_dim=64", "backbone_widths=[8,16,32,64]"],
}


@pytest.mark.parametrize("method", ["maskrcnn", "detr"])
def test_train_then_segment_from_the_cli(tmp_path, field_files, method):
    from astropy.io import fits
    from astropy.table import Table

    from napari_galseg.cli import main

    common = ["epochs=1", "patches_per_epoch=2", "batch_size=2", "patch_size=64", "block_size=64", "val_max_patches=2",
              "tile_size=96", "tile_overlap=32", "score_threshold=0.0", *TINY[method]]
    sets = [a for kv in common for a in ("--set", kv)]
    img, rms, truth = (str(field_files[k]) for k in ("image", "rms", "truth"))
    assert main(["train", method, "--image", img, "--rms", rms, "--truth", truth, "-o", str(tmp_path / "m"), *sets]) == 0
    assert (tmp_path / "m" / "weights.safetensors").exists()
    out = tmp_path / "labels.fits"
    assert main(["segment", method, img, "--rms", rms, "--model", str(tmp_path / "m"), "-o", str(out)]) == 0
    labels = fits.getdata(out)
    table = Table.read(tmp_path / "labels_catalog.ecsv")
    assert labels.shape == (192, 192) and len(table) == labels.max()
    assert {"label", "score", "x_centroid", "ra", "dec"} <= set(table.colnames)
    assert np.all(np.diff(np.sort(table["label"])) == 1)
    # --catalog naming the file the labels' catalog streams to (the default name, here) is that file
    out2, named = tmp_path / "again.fits", tmp_path / "again_catalog.ecsv"
    assert main(["segment", method, img, "--rms", rms, "--model", str(tmp_path / "m"), "-o", str(out2),
                 "--catalog", str(named)]) == 0
    assert len(Table.read(named)) == len(table) and np.array_equal(fits.getdata(out2), labels)
    # the other model's folder is refused with one line, no traceback
    other = "detr" if method == "maskrcnn" else "maskrcnn"
    assert main(["segment", other, img, "--model", str(tmp_path / "m"), "-o", str(tmp_path / "x.fits")]) == 2
