"""Setting values are checked the same way for --set, widgets and model folders."""
import dataclasses
import re
from typing import Literal

import pytest

from napari_galseg.segmenters import get
from napari_galseg.settings import RunOptions, SettingError, TrainConfig, descriptions, parse_value, split_settings


@dataclasses.dataclass
class Example:
    #: a threshold
    #: over two lines
    nsigma: float = 3.0
    deblend: bool = True
    n_pixels: int = 10
    mode: Literal["filtered", "study"] = "filtered"
    depth: int | None = None  # empty = automatic
    sigmas: list[float] = dataclasses.field(default_factory=list)
    name: str = ""


@pytest.mark.parametrize("text, value", [("2.5", 2.5), ("3", 3.0), ("1e-3", 1e-3), (" 4 ", 4.0)])
def test_numbers(text, value):
    assert parse_value(Example, "nsigma", text) == value


@pytest.mark.parametrize("text", ["abc", "nan", "inf", "-inf", "", "[1]"])
def test_bad_numbers_are_refused_with_the_field_and_its_type(text):
    with pytest.raises(SettingError, match=re.escape(f"nsigma={text.strip()} is not valid: nsigma takes a number")):
        parse_value(Example, "nsigma", text)


@pytest.mark.parametrize("text, value", [("true", True), ("False", False), ("no", False), ("yes", True),
                                         ("0", False), ("on", True), ("OFF", False)])
def test_booleans_mean_what_they_say(text, value):
    assert parse_value(Example, "deblend", text) is value


@pytest.mark.parametrize("text", ["maybe", "2", ""])
def test_other_booleans_are_refused(text):
    with pytest.raises(SettingError, match="deblend takes true or false"):
        parse_value(Example, "deblend", text)


def test_integers_choices_optionals_lists_and_text():
    assert parse_value(Example, "n_pixels", "12") == 12 and parse_value(Example, "n_pixels", 12) == 12
    with pytest.raises(SettingError, match="n_pixels takes a whole number"):
        parse_value(Example, "n_pixels", "2.5")
    with pytest.raises(SettingError):
        parse_value(Example, "n_pixels", True)
    assert parse_value(Example, "mode", "study") == "study"
    with pytest.raises(SettingError, match="mode takes one of filtered, study"):
        parse_value(Example, "mode", "x")
    assert parse_value(Example, "depth", "auto") is None and parse_value(Example, "depth", "") is None
    assert parse_value(Example, "depth", "4") == 4
    assert parse_value(Example, "sigmas", "1, 2.5") == [1.0, 2.5] and parse_value(Example, "sigmas", "[1,2]") == [1.0, 2.0]
    assert parse_value(Example, "sigmas", "") == []
    with pytest.raises(SettingError):
        parse_value(Example, "sigmas", "1, x")
    assert parse_value(Example, "name", "abc") == "abc"
    assert parse_value(RunOptions, "bf16", "false") is False and parse_value(RunOptions, "bf16", "auto") == "auto"


def test_descriptions_come_from_the_comments_of_the_fields():
    docs = descriptions(Example)
    assert docs["nsigma"] == "a threshold over two lines"
    assert docs["depth"] == "empty = automatic" and docs["deblend"] == ""
    assert all(descriptions(TrainConfig).values()) and all(descriptions(RunOptions).values())


def test_settings_are_routed_to_their_layer_and_unknown_names_listed():
    layers = split_settings(Example, {"nsigma": "2", "epochs": "3", "tile_size": "256"})
    assert layers == {"params": {"nsigma": 2.0}, "train": {"epochs": 3}, "run": {"tile_size": 256}}
    with pytest.raises(SettingError, match="unknown setting 'nsgima' for Example; valid: .*nsigma"):
        split_settings(Example, {"nsgima": 1})
    assert split_settings(Example, {"tile": 64, "gone": 1}, legacy=True)["run"] == {"tile_size": 64}


def test_layer_names_never_collide():
    names = [f.name for cls in (TrainConfig, RunOptions) for f in dataclasses.fields(cls)]
    assert len(names) == len(set(names))
    for method in ("photutils", "kmeans", "forest", "unet"):
        cls = get(method)
        params = {f.name for f in dataclasses.fields(cls.Params)}
        layers = cls().settings()
        used = set(layers["run"]) | ({f.name for f in dataclasses.fields(layers["train"])} if layers["train"] else set())
        assert not params & used, method


def test_deblend_false_means_off_end_to_end():
    photutils = get("photutils")
    assert photutils(deblend="False").params.deblend is False
    assert photutils(deblend="no").params.deblend is False
    with pytest.raises(SettingError, match="nsigma=abc is not valid"):
        photutils(nsigma="abc")
    with pytest.raises(SettingError, match="nsigma must be > 0"):  # the method's own checks, same error type
        photutils(nsigma="-1")
