"""The npe2 manifest is valid and every contribution points at something that exists."""
import importlib
from pathlib import Path

from npe2 import PluginManifest

import napari_galseg

MANIFEST = Path(napari_galseg.__file__).parent / "napari.yaml"


def test_manifest_valid_and_every_command_importable():
    manifest = PluginManifest.from_file(MANIFEST)
    assert manifest.name == "napari-galseg"
    for command in manifest.contributions.commands:
        module, attr = command.python_name.split(":")
        assert callable(getattr(importlib.import_module(module), attr)), command.python_name


def test_installed_entry_point_finds_the_manifest():
    manifest = PluginManifest.from_distribution("napari-galseg")
    patterns = manifest.contributions.readers[0].filename_patterns
    assert {"*.fits", "*.fit", "*.fts", "*.fz", "*.fits.gz"} <= set(patterns)
    assert manifest.contributions.readers[0].accepts_directories
