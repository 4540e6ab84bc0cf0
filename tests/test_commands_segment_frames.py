"""`galseg segment METHOD FRAME1 FRAME2 ... -o DIR`: one labels file and catalog per frame, rms
maps by pattern or list, and a rerun that skips finished frames and redoes interrupted ones."""
import os
import shutil

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from napari_galseg.cli import main
from napari_galseg.synth import write_field

SETS = ["--set", "box_size=32", "--set", "tile_size=64"]


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """Two small frames (a, b) with their rms maps in another folder (a.rms.fits, b.rms.fits)."""
    root = tmp_path_factory.mktemp("frames")
    (root / "img").mkdir()
    (root / "rms").mkdir()
    for name, seed in (("a", 1), ("b", 2)):
        field = write_field(root / f"field-{name}", size=128, seed=seed)
        shutil.copy(field["image"], root / "img" / f"{name}.fits")
        shutil.copy(field["rms"], root / "rms" / f"{name}.rms.fits")
    return root


def _frames_argv(frames, out, *extra):
    return ["segment", "photutils", str(frames / "img" / "a.fits"), str(frames / "img" / "b.fits"),
            "--rms", str(frames / "rms" / "{name}.rms.fits"), "-o", str(out), *SETS, *extra]


def test_each_frame_gets_labels_and_a_catalog_equal_to_its_single_run(frames, tmp_path):
    out = tmp_path / "out"
    assert main(_frames_argv(frames, out)) == 0
    for name in ("a", "b"):
        single = tmp_path / f"{name}.fits"
        assert main(["segment", "photutils", str(frames / "img" / f"{name}.fits"), "--rms",
                     str(frames / "rms" / f"{name}.rms.fits"), "-o", str(single), *SETS]) == 0
        labels = fits.getdata(out / f"{name}_labels.fits")
        np.testing.assert_array_equal(labels, fits.getdata(single))
        assert len(Table.read(out / f"{name}_catalog.ecsv")) == labels.max() > 0


def test_a_rerun_skips_done_frames_and_redoes_an_interrupted_one(frames, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_frames_argv(frames, out)) == 0
    done_a, done_b = (np.array(fits.getdata(out / f"{n}_labels.fits")) for n in "ab")  # copies, not memmaps
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}
    capsys.readouterr()

    assert main(_frames_argv(frames, out)) == 0  # nothing to do
    assert "2 of 2 frames already done" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()} == stamps

    # b as a run killed mid-frame leaves it: its labels half-written by hand, no catalog, no marker
    (out / ".galseg-frames" / "b.json").unlink()
    (out / "b_catalog.ecsv").unlink()
    (out / "b_labels.fits").write_bytes(b"SIMPLE  =                    T" + b"\0" * 100)
    (out / f".b_labels.fits.{os.getpid() + 99999}-x.part").write_bytes(b"junk")  # a dead writer's part file
    assert main(_frames_argv(frames, out)) == 0
    err = capsys.readouterr().err
    assert "1 of 2 frames already done" in err and "b_labels.fits" in err
    np.testing.assert_array_equal(fits.getdata(out / "b_labels.fits"), done_b)
    assert (out / "b_catalog.ecsv").exists() and (out / ".galseg-frames" / "b.json").exists()
    assert (out / "a_labels.fits").stat().st_mtime_ns == stamps["a_labels.fits"]  # a was not redone
    np.testing.assert_array_equal(fits.getdata(out / "a_labels.fits"), done_a)


def test_other_settings_in_the_same_folder_stop_before_any_work(frames, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_frames_argv(frames, out)) == 0
    capsys.readouterr()
    assert main(_frames_argv(frames, out, "--set", "nsigma=5")) == 2
    err = capsys.readouterr().err
    assert "earlier run with other settings" in err and "--overwrite" in err
    assert main(_frames_argv(frames, out, "--set", "nsigma=5", "--overwrite")) == 0


def test_rms_maps_listed_once_per_frame(frames, tmp_path):
    out = tmp_path / "out"
    argv = ["segment", "photutils", str(frames / "img" / "a.fits"), str(frames / "img" / "b.fits"),
            "--rms", str(frames / "rms" / "a.rms.fits"), "--rms", str(frames / "rms" / "b.rms.fits"),
            "-o", str(out), *SETS]
    assert main(argv) == 0
    pattern = tmp_path / "by-pattern"
    assert main(_frames_argv(frames, pattern)) == 0
    for name in ("a", "b"):
        np.testing.assert_array_equal(fits.getdata(out / f"{name}_labels.fits"),
                                      fits.getdata(pattern / f"{name}_labels.fits"))


@pytest.mark.parametrize("extra, message", [
    (["--rms", "r1.fits"], "2 frames but 1 --rms map(s): give one --rms per frame"),
    (["--rms", "r1.fits", "--rms", "r2.fits", "--rms", "r3.fits"], "2 frames but 3 --rms map(s)"),
    (["--catalog", "x.ecsv"], "each catalog is written beside its labels"),
])
def test_bad_many_frame_options_are_one_line(frames, tmp_path, capsys, extra, message):
    argv = ["segment", "photutils", str(frames / "img" / "a.fits"), str(frames / "img" / "b.fits"),
            "-o", str(tmp_path / "out"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out" / "a_labels.fits").exists()


def test_frames_with_the_same_name_are_refused(frames, tmp_path, capsys):
    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(frames / "img" / "a.fits", other / "a.fits")
    argv = ["segment", "photutils", str(frames / "img" / "a.fits"), str(other / "a.fits"), "-o", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "would both write a_labels.fits" in capsys.readouterr().err


def test_a_frame_that_fails_does_not_stop_the_others(frames, tmp_path, capsys):
    broken = tmp_path / "c.fits"
    broken.write_text("not a FITS file")
    out = tmp_path / "out"
    argv = ["segment", "photutils", str(frames / "img" / "a.fits"), str(broken), "-o", str(out), *SETS]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "c.fits: error:" in err and "1 of 2 frame(s) failed" in err
    assert (out / "a_labels.fits").exists() and not (out / "c_labels.fits").exists()


def test_tasks_sent_to_a_cluster_carry_absolute_paths(tmp_path, monkeypatch):
    from napari_galseg.commands.segment import FrameTask
    from napari_galseg.commands.segment_frames import _absolute

    monkeypatch.chdir(tmp_path)
    task = _absolute(FrameTask("unet", "img/a.fits", "out/a_labels.fits", rms="rms/a.fits", model="models/m",
                               recipe="default", marker="out/.galseg-frames/a.json"))
    assert task.image == str(tmp_path / "img/a.fits") and task.output == str(tmp_path / "out/a_labels.fits")
    assert task.rms == str(tmp_path / "rms/a.fits") and task.model == str(tmp_path / "models/m")
    assert task.recipe == "default"  # a recipe name, not a file
