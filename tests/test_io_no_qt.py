"""The core must import without napari or Qt: scripts, the CLI and dask workers rely on it."""
from __future__ import annotations

import json
import subprocess
import sys

GUI_MODULES = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy", "magicgui", "npe2")


def test_io_and_reader_import_without_gui_modules():
    code = (
        "import sys, json\n"
        "import napari_galseg.io, napari_galseg.io.pyramid, napari_galseg.io.wcs\n"
        "import napari_galseg.plugin.reader, napari_galseg.plugin.writer\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {GUI_MODULES!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
