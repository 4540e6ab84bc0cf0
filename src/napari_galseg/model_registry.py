"""The models folder: trained models that every segmenter widget (and a script) can pick by name.

One folder (``GALSEG_MODELS``, else ``<user data dir>/napari-galseg/models``) holds one model
folder per registered model — ``config.json`` plus weights, as :meth:`Segmenter.save` writes —
and a ``registered.json`` beside them: when it was registered, from which job, its metrics.

Registering **copies** a finished job's output folder in: the models folder then holds
everything it lists (a job folder on a cluster's scratch disk may be purged; a recorded path
would dangle), the job's own output stays where its spec and log say, and the copy appears
atomically (a hidden temporary folder renamed into place), so a listing never sees half a model.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ._atomic import atomic_write_text
from .model_folder import CONFIG_NAME, ModelFolderError, read_model_config

ENV_VAR = "GALSEG_MODELS"
RECORD_NAME = "registered.json"
_PARTIAL = ".partial-"


def user_data_dir() -> Path:
    """napari-galseg's folder in the user's data directory (platformdirs; ~/.local/share without it)."""
    try:
        from platformdirs import user_data_dir as platform_data_dir
    except ImportError:
        return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "napari-galseg"
    return Path(platform_data_dir("napari-galseg", appauthor=False))


def models_root(root: str | os.PathLike | None = None) -> Path:
    """The models folder: ``root`` when given, else ``$GALSEG_MODELS``, else the user data dir's."""
    if root:
        return Path(root).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return user_data_dir() / "models"


@dataclass
class RegisteredModel:
    """One model of the models folder, as its config and registration record describe it."""

    path: Path
    method: str
    created: float
    metrics: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    job: str | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def val_iou(self) -> float | None:
        value = (self.metrics.get("validation") or {}).get("iou")
        return float(value) if isinstance(value, (int, float)) else None

    def label(self) -> str:
        """What a model list shows: name, date and validation IoU when known."""
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created))
        iou = self.val_iou
        return f"{self.name} ({when}" + (f", val IoU {iou:.3f})" if iou is not None else ")")


def read_registered(path: str | os.PathLike) -> RegisteredModel:
    """The registry's view of one model folder (a ModelFolderError when it is not one)."""
    path = Path(path)
    config = read_model_config(path)
    record: dict = {}
    try:
        record = json.loads((path / RECORD_NAME).read_text())
    except (OSError, ValueError):
        pass  # a model folder copied in by hand: its config alone describes it
    if not isinstance(record, dict):
        record = {}
    created = record.get("created")
    if not isinstance(created, (int, float)):
        created = (path / CONFIG_NAME).stat().st_mtime
    metrics = record.get("metrics") or config.get("metrics") or {}
    return RegisteredModel(path=path, method=str(config["method"]), created=float(created),
                           metrics=metrics if isinstance(metrics, dict) else {},
                           provenance=config.get("provenance") or {}, job=record.get("job"))


def list_models(root: str | os.PathLike | None = None, method: str | None = None) -> list[RegisteredModel]:
    """The models in the models folder (of ``method`` only, when given), newest first.

    Folders that are not model folders (damaged, half-copied, anything else) are left out.
    """
    root = models_root(root)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        if path.name.startswith(".") or not path.is_dir():
            continue
        try:
            model = read_registered(path)
        except (ModelFolderError, OSError):
            continue
        if method is None or model.method == method:
            found.append(model)
    return sorted(found, key=lambda m: (-m.created, m.name))


def _free_name(root: Path, name: str) -> str:
    candidate, n = name, 1
    while (root / candidate).exists():
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def register_model(model_dir: str | os.PathLike, root: str | os.PathLike | None = None, *, name: str | None = None,
                   job: str | os.PathLike | None = None, metrics: dict | None = None) -> RegisteredModel:
    """Copy the model folder ``model_dir`` into the models folder as ``name`` (its folder name by
    default; ``-2``, ``-3``... when taken) and return its entry. The copy appears atomically."""
    model_dir = Path(model_dir)
    config = read_model_config(model_dir)  # refuse anything that is not a model folder, in one line
    root = models_root(root)
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f"{_PARTIAL}{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(model_dir, partial)
        (partial / RECORD_NAME).unlink(missing_ok=True)
        record = {"created": time.time(), "method": config["method"], "source": str(model_dir.resolve()),
                  "job": str(Path(job).resolve()) if job else None, "metrics": metrics or config.get("metrics") or {}}
        atomic_write_text(partial / RECORD_NAME, json.dumps(record, indent=2, default=str))
        while True:  # another process may take the same name between the check and the rename
            target = root / _free_name(root, name or model_dir.name)
            try:
                os.rename(partial, target)
                break
            except OSError:
                if not target.exists():
                    raise
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return read_registered(target)


def register_job(job_dir: str | os.PathLike, root: str | os.PathLike | None = None) -> RegisteredModel:
    """Register the model of a finished job (named after the job); a job already registered
    returns its existing entry, so following the same job twice copies it once."""
    from .jobs.log import read_log

    job_dir = Path(job_dir)
    state = read_log(job_dir)
    if state.status != "finished":
        raise ValueError(f"job {job_dir.name} is {state.status}, not finished: it has no model to register")
    for model in list_models(root):
        if model.job and Path(model.job) == job_dir.resolve():
            return model
    last = next(r for r in reversed(state.records) if r.get("kind") == "status")
    output = last.get("output") or state.info.get("output")
    if not output:
        raise ValueError(f"job {job_dir.name}: its log names no output model folder")
    return register_model(output, root, name=job_dir.name, job=job_dir, metrics=last.get("metrics") or None)
