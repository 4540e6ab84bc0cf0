"""Model folders: ``config.json`` (method, settings, recipe, provenance) beside weights or arrays.

Never a pickle: a folder from elsewhere must not run code when it is loaded. Reading one says
plainly what does not match.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

CONFIG_NAME = "config.json"


class ModelFolderError(ValueError):
    """A model folder that cannot be loaded, with a message that says what to do."""


def read_model_config(path: str | os.PathLike, expect_method: str | None = None) -> dict:
    """Read and check a model folder's config.json; say plainly what is wrong."""
    path = Path(path)
    if not path.is_dir():
        raise ModelFolderError(f"{path} is not a model folder (expected a directory holding {CONFIG_NAME})")
    cfg_path = path / CONFIG_NAME
    if not cfg_path.exists():
        raise ModelFolderError(
            f"{path} has no {CONFIG_NAME}: it was not saved by napari-galseg (save a model with `galseg train` or Segmenter.save)"
        )
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFolderError(f"{cfg_path} is not valid JSON ({exc}); the folder is damaged") from None
    if not isinstance(config, dict) or config.get("package") != "napari-galseg" or "method" not in config:
        raise ModelFolderError(f"{cfg_path} is not a napari-galseg model config (no 'package: napari-galseg' / 'method')")
    if expect_method and config["method"] != expect_method:
        raise ModelFolderError(
            f"{path} holds a {config['method']!r} model, not {expect_method!r}; use `galseg segment {config['method']} ...`"
        )
    return config


def file_provenance(path: str | os.PathLike | None) -> dict | None:
    """Where a training input came from (path, size, modification time), for a model folder's config."""
    if path is None:
        return None
    p = Path(path).resolve()
    stat = p.stat()
    return {"path": str(p), "bytes": stat.st_size, "modified": int(stat.st_mtime)}
