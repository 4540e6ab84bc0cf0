"""CLI progress: a bar on a terminal, a line every few percent in a log, no absurd numbers."""
import io
import re

import pytest

from napari_galseg._duration import format_duration
from napari_galseg.commands._progress import ProgressDisplay


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def _log_display(**kwargs):
    stream, clock = io.StringIO(), Clock()
    return ProgressDisplay("segment", unit="tiles", stream=stream, tty=False, clock=clock, **kwargs), stream, clock


def test_a_log_gets_a_line_every_five_percent_and_how_it_ended():
    display, stream, clock = _log_display()
    for done in range(1, 1001):
        clock.t += 0.02
        display(done, 1000, "tiles")
    display.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 21 + 1  # 0 % ... 100 % in steps of 5, then "done in"
    assert lines[1].startswith("segment:   5% (50/1000 tiles) · tiles · ")
    assert lines[-1] == "segment: done in 20 s (tiles)"  # timed from the start, not the first report
    assert "\r" not in stream.getvalue() and "it/s" not in stream.getvalue()


def test_no_rate_and_no_time_left_from_a_first_report():
    display, stream, clock = _log_display()
    display(500, 1000, "")  # the first report already says half is done (a resumed run), after no time at all
    assert "left" not in stream.getvalue()
    clock.t += 4.0
    display(600, 1000, "")
    assert "about 16 s left" in stream.getvalue()  # 4 s for 10 %: the speed since the first report
    assert re.search(r"\d{4,} ?(it|tiles)/s", stream.getvalue()) is None


def _percents(text: str) -> list[int]:
    return [int(m) for m in re.findall(r"^\S.*?:\s+(\d+)%", text, flags=re.M)]


def test_a_growing_total_spreads_over_what_is_left_never_backwards():
    display, stream, _ = _log_display()
    for done in range(1, 11):
        display(done, 20, "detect")  # background and detection: half of what was announced
    assert display.percent == 50.0
    display(21, 60, "deblend")  # the groups to deblend are known only now: 35 % of the new total
    assert display.percent == pytest.approx(50.0)  # held, not 35 %
    assert display.counts is None  # counts of a total that moved would mislead
    display(40, 60, "deblend")  # 50 % of what was left after 35 %: half-way from 50 % to 100 %
    assert display.percent == pytest.approx(50.0 + 50.0 * (40 / 60 - 0.35) / 0.65)
    display(30, 60, "deblend")
    assert display.percent == pytest.approx(50.0 + 50.0 * (40 / 60 - 0.35) / 0.65)  # never backwards
    display.close()
    assert "stopped at 74%" in stream.getvalue().splitlines()[-1]
    percents = _percents(stream.getvalue())
    assert percents == sorted(percents)


def test_a_stage_after_100_percent_holds_100_and_says_its_own_counts():
    display, stream, _ = _log_display()
    for done in range(1, 4):
        display(done, 3, "segment")
    display(1, 2, "writing")  # the labels are written after the segmentation said 100 %
    assert display.percent == 100.0 and display.status().startswith("100% · writing 1/2 · ")
    display.close()
    assert "stopped at 100%" in stream.getvalue().splitlines()[-1]  # the writing did not finish
    display2, stream2, _ = _log_display()
    for report in [(3, 3, "segment"), (1, 2, "writing"), (2, 2, "writing")]:
        display2(*report)
    display2.close()
    assert _percents(stream2.getvalue()) == [100] and stream2.getvalue().splitlines()[-1].startswith("segment: done in")


def test_a_terminal_gets_one_redrawn_bar_and_lines_above_it():
    stream, clock = io.StringIO(), Clock()
    display = ProgressDisplay("train unet", unit="step", stream=stream, tty=True, clock=clock)
    for done in range(1, 11):
        clock.t += 1.0
        display(done, 10, f"epoch {1 + (done - 1) // 5}/2 loss 0.5")
        if done == 5:
            display.write("epoch 1/2, train loss 0.5")
    display.close()
    out = stream.getvalue()
    assert out.count("\n") == 2  # the epoch line and the end of the bar
    assert "\r\x1b[Kepoch 1/2, train loss 0.5\n" in out
    last = out.rstrip("\n").split("\r\x1b[K")[-1]
    assert last.startswith("train unet: [") and "100% (10/10 step) · epoch 2/2 loss 0.5 · 10 s" in last


@pytest.mark.parametrize(("seconds", "text"), [
    (0.04, "0.0 s"), (3.14, "3.1 s"), (42.4, "42 s"), (185, "3 min 05 s"), (3725, "1 h 02 min"),
    (float("nan"), "?"),
])
def test_durations_read_like_durations(seconds, text):
    assert format_duration(seconds) == text


def test_cli_output_in_a_log_is_lines_not_a_bar(tmp_path, capsys):
    from napari_galseg import cli

    assert cli.main(["synth", str(tmp_path / "f"), "--size", "512", "--seed", "1"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    progress = [line for line in err.splitlines() if line.startswith("synth ")]
    assert progress[0].startswith("synth 512² seed 1: 100% (1/1 block)")  # one block: one line
    assert progress[-1].startswith("synth 512² seed 1: done in")


def test_segment_progress_lines_never_go_backwards(tmp_path, capsys):
    from napari_galseg import cli

    assert cli.main(["synth", str(tmp_path / "f"), "--size", "256", "--seed", "3"]) == 0
    capsys.readouterr()
    assert cli.main(["segment", "photutils", str(tmp_path / "f" / "img.fits"), "--rms", str(tmp_path / "f" / "rms.fits"),
                     "-o", str(tmp_path / "p.fits")]) == 0
    err = capsys.readouterr().err
    percents = _percents(err)
    assert len(percents) >= 3 and percents == sorted(percents) and percents[-1] == 100
    assert any("segmenting: done in" in line for line in err.splitlines())


def test_time_left_after_a_rebase_is_measured_from_the_rebase():
    display, stream, clock = _log_display()
    clock.t += 10.0
    display(10, 20, "detect")  # the first phase took 10 s for 50 %
    display(1, 4, "writing")  # a new total: 25 % of the writing, a moment later; 50 % is held
    assert "left" not in stream.getvalue().splitlines()[-1]  # nothing measured since the re-base
    clock.t += 3.0
    display(2, 4, "writing")  # a third of the rest in 3 s: 6 s to go, not an estimate from the first 10 s
    assert stream.getvalue().splitlines()[-1].endswith("13 s, about 6.0 s left")
