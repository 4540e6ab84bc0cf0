"""Faults during a write never lose the user's file: kill -9 and SIGTERM at several moments leave
the target absent or intact, the next write removes the left-over ``.part``; outputs that are
inputs, odd names and unwritable folders are refused before any work; values that an integer
file cannot hold are refused instead of truncated."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from astropy.io import fits

from napari_galseg import cli
from napari_galseg._atomic import OutputPathError, atomic_path, stale_parts
from napari_galseg.io import write_fits, write_labels

# A writer whose blocks take 0.2 s each: it prints "block N" as it goes, so the test can strike at
# a known moment. SIGTERM/SIGHUP are handled exactly as `galseg` handles them.
WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np, dask.array as da
    from napari_galseg import cli
    from napari_galseg.io import write_fits

    def slow(block, block_info=None):
        print("block", block_info[0]["chunk-location"][0], flush=True)
        time.sleep(0.2)
        return block + 1

    data = da.zeros((40 * 64, 256), dtype=np.float32, chunks=(64, 256)).map_blocks(slow, dtype=np.float32)
    print("ready", flush=True)
    with cli._stop_signals_interrupt():
        try:
            write_fits(sys.argv[1], data, overwrite=True)
        except KeyboardInterrupt:
            sys.exit(130)
    print("done", flush=True)
""")


def _start_writer(target, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.Popen([sys.executable, str(script), str(target)], stdout=subprocess.PIPE, text=True, env=env)


def _wait_for(process, line: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = process.stdout.readline()
        if not text:
            break
        if text.strip() == line:
            return
    process.kill()
    raise AssertionError(f"the writer never printed {line!r}")


def _parts(target):
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.") and p.name.endswith(".part"))


@pytest.mark.parametrize("moment", ["ready", "block 0", "block 20"])
@pytest.mark.parametrize("existing", [False, True])
def test_kill_9_leaves_the_target_absent_or_intact(tmp_path, moment, existing):
    target = tmp_path / "labels.fits"
    if existing:
        fits.writeto(target, np.full((4, 4), 7, np.int32))
    before = target.read_bytes() if existing else None
    writer = _start_writer(target, tmp_path)
    _wait_for(writer, moment)
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert (target.read_bytes() == before) if existing else not target.exists()
    if moment != "ready":
        assert _parts(target)  # kill -9 leaves the writer no chance to clean up...
    # ...so the next write to the same target removes the dead writer's part and succeeds
    write_fits(target, np.zeros((8, 8), np.float32), overwrite=True)
    assert _parts(target) == []
    assert fits.getdata(target).shape == (8, 8)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_sigterm_and_sighup_end_like_ctrl_c(tmp_path, sig):
    target = tmp_path / "labels.fits"
    fits.writeto(target, np.full((4, 4), 7, np.int32))
    before = target.read_bytes()
    writer = _start_writer(target, tmp_path)
    _wait_for(writer, "block 3")
    writer.send_signal(sig)
    assert writer.wait(timeout=30) == 130
    assert target.read_bytes() == before
    assert _parts(target) == []  # removed by the writer itself


def test_stop_signals_become_keyboard_interrupt_in_process():
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), cli._stop_signals_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
    assert signal.getsignal(signal.SIGTERM) is previous


def test_parts_of_a_running_writer_are_left_alone(tmp_path):
    target = tmp_path / "x.fits"
    alive = tmp_path / f".x.fits.{os.getpid()}-abcd1234.fits.part"
    dead = tmp_path / ".x.fits.999999999-abcd1234.fits.part"
    other = tmp_path / ".x.fits.bak.999999999-abcd1234.bak.part"  # another target's part
    for p in (alive, dead, other):
        p.write_bytes(b"partial")
    assert stale_parts(target) == [dead]
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert alive.exists() and other.exists() and not dead.exists()


def test_output_equal_to_an_input_is_refused_even_with_overwrite(tmp_path, capsys):
    image = tmp_path / "img.fits"
    rng = np.random.default_rng(0)
    fits.writeto(image, rng.normal(0, 1, (64, 64)).astype(np.float32))
    rms = tmp_path / "rms.fits"
    fits.writeto(rms, np.ones((64, 64), np.float32))
    before = image.read_bytes(), rms.read_bytes()
    link = tmp_path / "link.fits"
    link.symlink_to(image)
    for out in (image, rms, link):
        code = cli.main(["segment", "photutils", str(image), "--rms", str(rms), "-o", str(out), "--overwrite",
                         "--set", "box_size=16"])
        assert code == 2 and "is also an input" in capsys.readouterr().err
    assert (image.read_bytes(), rms.read_bytes()) == before
    truth = tmp_path / "true.fits"
    fits.writeto(truth, np.zeros((64, 64), np.int32))
    code = cli.main(["evaluate", str(truth), str(truth), "--csv", str(truth), "--overwrite"])
    assert code == 2 and "is also an input" in capsys.readouterr().err


@pytest.mark.parametrize("output, words", [
    ("x.png", "written as FITS"),
    ("x.fits.fz", "tile-compressed"),
    ("missing/x.fits", "does not exist"),
    ("afile.fits/x.fits", "is a file, not a folder"),
])
def test_bad_outputs_are_refused_before_the_work(tmp_path, capsys, output, words):
    image = tmp_path / "img.fits"
    fits.writeto(image, np.random.default_rng(1).normal(0, 1, (64, 64)).astype(np.float32))
    (tmp_path / "afile.fits").write_bytes(b"x")
    code = cli.main(["segment", "photutils", str(image), "-o", str(tmp_path / output), "--set", "box_size=16"])
    err = capsys.readouterr().err
    assert code == 2 and words in err and "segmenting" not in err  # refused before any work
    assert not (tmp_path / output).exists() or output.startswith("afile")


def test_a_bad_catalog_name_is_refused_before_the_labels_are_written(tmp_path, capsys):
    image = tmp_path / "img.fits"
    fits.writeto(image, np.random.default_rng(1).normal(0, 1, (64, 64)).astype(np.float32))
    out = tmp_path / "labels.fits"
    code = cli.main(["segment", "photutils", str(image), "-o", str(out), "--catalog", str(tmp_path / "c.txt")])
    assert code == 2 and "catalog format" in capsys.readouterr().err
    assert not out.exists()


def test_a_parent_that_is_a_file_is_said_in_words(tmp_path):
    (tmp_path / "afile").write_bytes(b"x")
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        write_fits(tmp_path / "afile" / "x.fits", np.zeros((4, 4), np.float32))


def test_integer_files_never_get_truncated_or_nan_values(tmp_path):
    with pytest.raises(ValueError, match="whole numbers"):
        write_labels(tmp_path / "a.fits", np.array([[0, 1.7], [2.0, 0]]))
    nan = np.array([[0, np.nan], [2.0, 0]])
    with pytest.raises(ValueError, match="NaN"):
        write_fits(tmp_path / "b.fits", nan, dtype=np.int32)
    assert not (tmp_path / "a.fits").exists() and not (tmp_path / "b.fits").exists()
    write_labels(tmp_path / "c.fits", np.array([[0, 1.0], [2.0, 0]]))  # whole floats are fine
    np.testing.assert_array_equal(fits.getdata(tmp_path / "c.fits"), [[0, 1], [2, 0]])
    with pytest.raises(ValueError, match="writes FITS"):
        write_fits(tmp_path / "x.png", np.zeros((4, 4), np.float32))


def test_sigterm_stops_galseg_segment_and_leaves_nothing(tmp_path):
    image = tmp_path / "img.fits"
    rng = np.random.default_rng(3)
    fits.writeto(image, rng.normal(0, 1, (3072, 3072)).astype(np.float32))
    out = tmp_path / "labels.fits"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    process = subprocess.Popen([sys.executable, "-m", "napari_galseg.cli", "segment", "photutils", str(image),
                                "-o", str(out)], stderr=subprocess.PIPE, text=True, env=env)
    seen = ""
    while "segmenting" not in seen:  # the progress bar: the work has started
        char = process.stderr.read(1)
        assert char, f"galseg ended before it started segmenting: {seen}"
        seen += char
    process.send_signal(signal.SIGTERM)
    rest = process.stderr.read()
    assert process.wait(timeout=60) == 130, seen + rest
    assert "Traceback" not in seen + rest and "interrupted" in rest
    assert not out.exists() and _parts(out) == []


FORKED = textwrap.dedent("""
    import sys, time
    from napari_galseg import cli
    from napari_galseg.segmenters.photutils.workers import map_groups

    def slow(i):
        time.sleep(0.5)
        return i

    print("ready", flush=True)
    with cli._stop_signals_interrupt():
        try:
            map_groups(slow, 80, 2, lambda done: print("done", done, flush=True))
        except KeyboardInterrupt:
            sys.exit(130)
""")


@pytest.mark.parametrize("group", [False, True])
def test_sigterm_stops_forked_workers_at_once(tmp_path, group):
    """SIGTERM to galseg (or to its whole process group) during the forked per-object steps
    ends it within seconds, without a traceback from the workers."""
    script = tmp_path / "forked.py"
    script.write_text(FORKED)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env, start_new_session=True)
    _wait_for(process, "ready")
    time.sleep(1.0)  # the workers are busy with their first batches
    start = time.monotonic()
    if group:
        os.killpg(process.pid, signal.SIGTERM)
    else:
        process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 130
    assert time.monotonic() - start < 10  # 80 items x 0.5 s / 2 workers would take 20 s
    assert "Traceback" not in process.stderr.read()


def test_a_model_folder_over_a_file_is_refused_before_training(tmp_path, capsys):
    image = tmp_path / "img.fits"
    fits.writeto(image, np.random.default_rng(2).normal(0, 1, (64, 64)).astype(np.float32))
    truth = tmp_path / "true.fits"
    fits.writeto(truth, np.zeros((64, 64), np.int32))
    for out in (image, image / "sub"):
        code = cli.main(["train", "forest", "--image", str(image), "--truth", str(truth), "-o", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and "is a file, not a folder" in err and "train forest" not in err  # no work done


def test_python_dash_m_reports_command_errors_in_one_line(tmp_path):
    """`python -m napari_galseg.cli` runs cli.py as __main__: its errors must still be the
    package's (a second copy of CliError once turned them into 'unexpected' errors)."""
    image = tmp_path / "img.fits"
    fits.writeto(image, np.zeros((16, 16), np.float32) + 1)
    result = subprocess.run([sys.executable, "-m", "napari_galseg.cli", "segment", "forest", str(image), "--model",
                             "no-such-model", "-o", str(tmp_path / "o.fits")], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        line for line in result.stderr.strip().splitlines() if line.startswith("galseg segment: error:")]
    assert "unexpected" not in result.stderr and "no model folder or model named" in result.stderr
