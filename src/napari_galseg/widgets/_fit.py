"""Docks that fit a laptop screen: wrapped labels that keep all their lines, forms that wrap rather
than scroll sideways.

A word-wrapped QLabel in a dock is given the height of one line when its layout is tight (Qt does
not ask it for its height at the dock's width), so a status of three lines shows one and a half.
:func:`wrap_label` keeps its minimum height at what its text needs at its current width.
"""
from __future__ import annotations

from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import QLabel, QScrollArea


class _HeightForWidth(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Resize:
            fit_label_height(obj)
        return False


def fit_label_height(label: QLabel) -> None:
    """The label's height: its text's height at its width (0 when empty)."""
    if not label.text():
        label.setFixedHeight(0)
        return
    width = max(label.width(), 120)
    # fixed: its own sizeHint guesses a narrower width, and the layout would hand it blank lines
    label.setFixedHeight(label.heightForWidth(width) if label.wordWrap() else label.sizeHint().height())


def wrap_label(label: QLabel) -> QLabel:
    """Word-wrap ``label`` and keep every line of it visible as the dock is resized or the text changes."""
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    keeper = _HeightForWidth(label)
    label.installEventFilter(keeper)
    label._galseg_fit = keeper  # kept alive with the label
    return label


def vertical_only(scroll: QScrollArea) -> QScrollArea:
    """A scroll area that scrolls down, never sideways: its content is laid out at the dock's width."""
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return scroll
