"""The models of the models folder as widget choices, and one signal for "the folder changed".

The training widget registers a model and emits :func:`models_changed`; every segmenter widget
of that method refreshes its model list. Choices are read from the folder each time (a few
small JSON files), so models registered by another session or the CLI show up too.
"""
from __future__ import annotations

from qtpy.QtCore import QObject, Signal

from ..model_registry import list_models

#: the last entry of a model list: no model (train one on a truth layer)
NONE_CHOSEN = ("— no model (train on truth) —", "")


class _ModelsFolder(QObject):
    changed = Signal()


_folder: _ModelsFolder | None = None


def models_folder_events() -> _ModelsFolder:
    """The one object whose ``changed`` signal says a model was registered."""
    global _folder
    if _folder is None:
        _folder = _ModelsFolder()
    return _folder


def models_changed() -> None:
    models_folder_events().changed.emit()


def model_choices(method: str) -> list[tuple[str, str]]:
    """(label, folder) of ``method``'s models: the built-in ones first (the default first of all),
    then the models folder's, newest first, then a "none" entry."""
    from ..builtin_models import DEFAULTS, list_builtins

    builtins = sorted(list_builtins(method), key=lambda m: m.name != DEFAULTS.get(method))
    return ([(m.label(), str(m.path)) for m in builtins] + [(m.label(), str(m.path)) for m in list_models(method=method)]
            + [NONE_CHOSEN])
