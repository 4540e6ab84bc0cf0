"""The `galseg` command line: help everywhere, one-line errors, synth and demo end to end."""
import subprocess
import sys

import pytest

from napari_galseg import cli

GALSEG = [sys.executable, "-m", "napari_galseg.cli"]


def test_every_subcommand_has_help(capsys):
    for name in ("synth", "segment", "evaluate", "train", "demo"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([name, "--help"])
        assert exit_info.value.code == 0
        assert "usage: galseg " + name in capsys.readouterr().out


def test_bad_input_gives_one_line_and_status_2(tmp_path):
    result = subprocess.run([*GALSEG, "synth", str(tmp_path), "--size", "3"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["galseg synth: error: --size must be at least 16 px, got 3"]
    not_fits = tmp_path / "notes.fits"
    not_fits.write_text("hello")
    result = subprocess.run([*GALSEG, "evaluate", str(not_fits), str(not_fits)], capture_output=True, text=True)
    assert result.returncode != 0 and "Traceback" not in result.stderr


def test_synth_writes_the_field(tmp_path):
    assert cli.main(["synth", str(tmp_path / "f"), "--size", "200", "--seed", "2"]) == 0
    names = sorted(p.name for p in (tmp_path / "f").iterdir())
    assert names == ["catalog.ecsv", "img.fits", "rms.fits", "true.fits"]
    # a second run refuses to overwrite
    assert cli.main(["synth", str(tmp_path / "f"), "--size", "200"]) == 2


@pytest.mark.slow
def test_demo_without_screenshot(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path), "--size", "256", "--methods", "kmeans", "--no-screenshot"]) == 0
    out = capsys.readouterr().out
    assert "kmeans" in out and "iou" in out
    assert (tmp_path / "metrics.csv").exists() and (tmp_path / "pred_kmeans.fits").exists()
    # the demo is a one-variant study: its cell is kept, and a rerun of the same field skips it
    result = tmp_path / "study-256px-seed0" / "cells" / "kmeans__default" / "result.json"
    done = result.stat().st_mtime_ns
    assert cli.main(["demo", "--out", str(tmp_path), "--size", "256", "--methods", "kmeans", "--no-screenshot"]) == 0
    assert result.stat().st_mtime_ns == done and "kmeans" in capsys.readouterr().out


def test_core_never_imports_napari_or_qt():
    code = (
        "import sys, napari_galseg, napari_galseg.io, napari_galseg.synth, napari_galseg.metrics, "
        "napari_galseg.preprocess, napari_galseg.cli, napari_galseg.segmenters as s; s.available(); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'vispy', 'magicgui'}); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
