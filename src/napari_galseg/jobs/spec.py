"""A job spec: everything a training job needs, as plain data that round-trips through YAML/JSON.

A spec names inputs by file path (never arrays), settings by name (the method's three layers,
checked by :meth:`Segmenter.split`), where the model goes and the job folder that holds its log,
checkpoints and cancel flag. The same spec runs in a thread, a local process, on SLURM or on a dask
worker: whoever runs it only needs the file system the paths point to.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the file a runner keeps in the job folder (what ``python -m napari_galseg.jobs`` is given)
SPEC_NAME = "spec.yaml"
RUNNERS = ("thread", "process", "slurm", "dask")
INPUTS = ("image", "rms", "truth")


class JobSpecError(ValueError):
    """A job spec that cannot run, said in one line."""


@dataclass
class JobSpec:
    """One training job: method, input files, recipe, settings, device, output and where it runs."""

    #: segmenter name in the registry (a trainable one: unet, forest, ...)
    method: str
    #: image FITS file
    image: str
    #: truth label FITS file (0 = sky)
    truth: str
    #: model folder written when the job finishes
    output: str
    #: job folder: spec.yaml, log.jsonl, checkpoints/, the cancel flag
    job_dir: str
    #: noise (rms) map FITS file
    rms: str | None = None
    #: preprocessing recipe: a name ('default', 'image-only', ...), a recipe file or a recipe table
    recipe: str | dict | None = None
    #: settings by name, any layer (method parameters, training, run options): ``{"epochs": 20}``
    settings: dict[str, Any] = field(default_factory=dict)
    #: torch device (auto, cpu, cuda, cuda:N, mps) for methods that use one; None = the method's default
    device: str | None = None
    #: train on fields simulated like ``image`` (its measured conditions) instead of a truth map:
    #: ``truth`` is then not used and may be empty
    like: bool = False
    #: with ``like``: the side of the simulated training field, px
    like_size: int = 2048
    #: where the job runs: thread, process, slurm or dask
    runner: str = "process"
    #: the runner's options (slurm: partition, gpus, time_min, mem_gb...; dask: address, gpu)
    runner_options: dict[str, Any] = field(default_factory=dict)

    # -- checks ----------------------------------------------------------------------------------
    def check(self) -> JobSpec:
        """Check names, types and settings (not the files: a job with a bad file ends ``failed``)."""
        if not isinstance(self.like, bool):
            raise JobSpecError(f"job spec: 'like' must be true or false, got {self.like!r}")
        if not isinstance(self.like_size, int) or self.like_size < 256:
            raise JobSpecError(f"job spec: 'like_size' must be a whole number of pixels >= 256, got {self.like_size!r}")
        for name in ("method", "image", *(() if self.like else ("truth",)), "output", "job_dir", "runner"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise JobSpecError(f"job spec: {name!r} must be a non-empty text, got {value!r}")
        if self.rms is not None and not isinstance(self.rms, str):
            raise JobSpecError(f"job spec: 'rms' must be a file path, got {self.rms!r}")
        if self.recipe is not None and not isinstance(self.recipe, (str, dict)):
            raise JobSpecError(f"job spec: 'recipe' must be a name, a file or a table, got {self.recipe!r}")
        for name in ("settings", "runner_options"):
            if not isinstance(getattr(self, name), dict):
                raise JobSpecError(f"job spec: {name!r} must be a table of name: value, got {getattr(self, name)!r}")
        if self.runner not in RUNNERS:
            raise JobSpecError(f"job spec: unknown runner {self.runner!r}; choose one of {', '.join(RUNNERS)}")
        self.layers()
        return self

    def segmenter_class(self):
        from ..segmenters import get

        try:
            cls = get(self.method)
        except KeyError as exc:
            raise JobSpecError(f"job spec: {exc.args[0]}") from None
        if not cls.capabilities.trainable:
            raise JobSpecError(f"job spec: {self.method!r} does not learn from data; a job trains a trainable method")
        return cls

    def layers(self) -> dict[str, dict[str, Any]]:
        """The settings routed to the method's three layers, every value checked (device included)."""
        from ..settings import SettingError

        cls = self.segmenter_class()
        values = dict(self.settings)
        if self.device is not None:
            if "device" not in cls.run_fields:
                raise JobSpecError(f"job spec: {self.method} does not run on a torch device; drop 'device'")
            values["device"] = self.device
        try:
            return cls.split(values)
        except SettingError as exc:
            raise JobSpecError(f"job spec: {exc}") from None

    def build(self):
        """The segmenter this job trains (settings applied; the recipe is set by the job)."""
        layers = self.layers()
        return self.segmenter_class()(**layers["params"], **layers["train"], **layers["run"])

    # -- paths -----------------------------------------------------------------------------------
    @property
    def job_id(self) -> str:
        return Path(self.job_dir).name

    def resolved(self, base: str | os.PathLike) -> JobSpec:
        """A copy whose relative paths are taken relative to ``base`` (the spec file's folder)."""
        base = Path(base)
        changes = {}
        for name in (*INPUTS, "output", "job_dir"):
            value = getattr(self, name)
            if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
                changes[name] = str((base / value).resolve())
            elif isinstance(value, str) and value:
                changes[name] = str(Path(value).expanduser())
        recipe = self.recipe
        if isinstance(recipe, str) and ("/" in recipe or recipe.endswith((".json", ".yaml", ".yml"))) \
                and not Path(recipe).is_absolute():
            changes["recipe"] = str((base / recipe).resolve())
        return dataclasses.replace(self, **changes)

    # -- round trip ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> JobSpec:
        if not isinstance(data, dict):
            raise JobSpecError(f"job spec: expected a table of fields, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise JobSpecError(f"job spec: unknown field {unknown[0]!r}; valid: {', '.join(names)}")
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise JobSpecError(f"job spec: missing {', '.join(repr(m) for m in missing)}")
        values = dict(data)
        for name in ("settings", "runner_options"):
            if values.get(name) is None:
                values[name] = {}
        return cls(**values).check()

    def dumps(self, fmt: str = "yaml") -> str:
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2) + "\n"
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the spec (JSON for ``.json``, else YAML), atomically."""
        from .._atomic import atomic_write_text

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, self.dumps("json" if path.suffix == ".json" else "yaml"))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> JobSpec:
        """Read and check a spec file; relative paths in it are relative to the file's folder."""
        path = Path(path)
        if path.is_dir():
            path = path / SPEC_NAME
        if not path.exists():
            raise JobSpecError(f"{path}: no such job spec (give a spec file or a job folder holding {SPEC_NAME})")
        text = path.read_text()
        try:
            if path.suffix == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as exc:  # yaml and json errors both: one line naming the file
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise JobSpecError(f"{path}: not a readable job spec ({first})") from None
        try:
            spec = cls.from_dict(data)
        except TypeError as exc:
            raise JobSpecError(f"{path}: {exc}") from None
        except JobSpecError as exc:
            raise JobSpecError(f"{path}: {str(exc).removeprefix('job spec: ')}") from None
        return spec.resolved(path.parent)


#: overrides where the viewer keeps its job folders
JOBS_ENV_VAR = "GALSEG_JOBS"


def jobs_root(root: str | os.PathLike | None = None) -> Path:
    """Where job folders go: ``root`` when given, else ``$GALSEG_JOBS``, else the user data dir's ``jobs``."""
    from ..model_registry import user_data_dir

    if root:
        return Path(root).expanduser()
    if os.environ.get(JOBS_ENV_VAR):
        return Path(os.environ[JOBS_ENV_VAR]).expanduser()
    return user_data_dir() / "jobs"


def new_job_dir(root: str | os.PathLike | None, method: str) -> Path:
    """A fresh job folder under ``root``, created (so two starts in one second never share it):
    ``<method>-<YYYYmmdd-HHMMSS>``, then ``-2``, ``-3``..."""
    import time

    root = jobs_root(root)
    root.mkdir(parents=True, exist_ok=True)
    base = f"{method}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 10_000):
        path = root / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free job folder name under {root} for {base}")
