"""Docks that fit a laptop screen (1600×1000): wrapped labels that keep all their lines, forms that
scroll down but never sideways, docks tabified when a side of the window is full.

A word-wrapped QLabel in a dock is given the height of one line when its layout is tight (Qt does
not ask it for its height at the dock's width), so a status of three lines shows one and a half.
:func:`wrap_label` keeps its minimum height at what its text needs at its current width.
"""
from __future__ import annotations

from qtpy.QtCore import QEvent, QObject, Qt, QTimer
from qtpy.QtWidgets import QDockWidget, QLabel, QMainWindow, QScrollArea


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


class _KeepContentWidth(QObject):
    def __init__(self, scroll: QScrollArea):
        super().__init__(scroll)
        self.scroll = scroll

    def eventFilter(self, obj, event):
        if event.type() in (QEvent.Type.LayoutRequest, QEvent.Type.Show):
            bar = self.scroll.verticalScrollBar().sizeHint().width()
            self.scroll.setMinimumWidth(obj.minimumSizeHint().width() + bar + 2 * self.scroll.frameWidth())
        return False


def vertical_only(scroll: QScrollArea) -> QScrollArea:
    """A scroll area that scrolls down, never sideways: as wide as its content needs (so the dock is
    never narrower than a label or a button: nothing is cut), laid out at the dock's width."""
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    original = scroll.setWidget

    def set_widget(widget):
        original(widget)
        widget.installEventFilter(_KeepContentWidth(scroll))

    scroll.setWidget = set_widget
    return scroll


# -- docks in the window -------------------------------------------------------------------------------
#: room the window keeps besides the docks of one side: menu bar, status bar, dock title bars
WINDOW_CHROME = 90


def is_galseg_dock(dock: QDockWidget) -> bool:
    widget = dock.widget()
    inner = getattr(widget, "_magic_widget", widget)
    return dock.isVisible() and type(inner).__module__.startswith("napari_galseg.")


def _stacks(window: QMainWindow, area) -> list[list[QDockWidget]]:
    """The visible docks of one side, grouped by tab group (docks tabified together share a place)."""
    docks = [d for d in window.findChildren(QDockWidget) if d.isVisible() and not d.isFloating()
             and window.dockWidgetArea(d) == area]
    groups: list[list[QDockWidget]] = []
    for dock in docks:
        group = next((g for g in groups if dock in window.tabifiedDockWidgets(g[0])), None)
        if group is None:
            groups.append([dock])
        else:
            group.append(dock)
    return groups


#: the least height a dock is worth stacking with: less, and its form is a scroll area of three rows
USEFUL_HEIGHT = 420


def _needed_height(groups: list[list[QDockWidget]]) -> int:
    return sum(max(USEFUL_HEIGHT, *(d.minimumSizeHint().height() for d in group)) for group in groups)


def available_height(window: QMainWindow) -> int:
    """The height docks may take: the screen's (not the window's: a window grows past its screen)."""
    screen = window.screen() if hasattr(window, "screen") else None
    height = screen.availableGeometry().height() if screen is not None else window.height()
    return min(height, max(window.height(), 1)) if window.isVisible() else height


def fit_docks(window: QMainWindow) -> list[QDockWidget]:
    """Tabify galseg docks of a side that do not fit its height, each at least USEFUL_HEIGHT or its
    minimum (each new one joins the tabs of the one opened before it), then give the window back its
    screen size; returns the docks tabified."""
    moved = []
    for dock in window.findChildren(QDockWidget):  # a galseg dock is never narrower than its title
        if is_galseg_dock(dock) and dock.widget() is not None:
            dock.widget().setMinimumWidth(max(dock.widget().minimumWidth(), _title_width(dock)))
    limit = available_height(window) - WINDOW_CHROME
    for area in (Qt.DockWidgetArea.RightDockWidgetArea, Qt.DockWidgetArea.LeftDockWidgetArea):
        groups = _stacks(window, area)
        while len(groups) > 1 and _needed_height(groups) > limit:
            galseg = [g for g in groups if any(is_galseg_dock(d) for d in g)]
            if len(galseg) < 2:
                break
            newest, target = galseg[-1], galseg[-2]
            for dock in newest:
                window.tabifyDockWidget(target[0], dock)
                moved.append(dock)
            newest[-1].raise_()
            groups = _stacks(window, area)
    screen = window.screen() if hasattr(window, "screen") else None
    if screen is not None and window.isVisible():
        room = screen.availableGeometry()
        if window.height() > room.height() or window.width() > room.width():
            window.resize(min(window.width(), room.width()), min(window.height(), room.height()))
    return moved


class _DockWatcher(QObject):
    """Fits the docks each time a child (a dock) is added to the window or its layout changes (a dock
    shown), once Qt has placed it: any child counts (it is not yet a QDockWidget while it is being
    built), fits are debounced to one per event-loop pass."""

    def __init__(self, window):
        super().__init__(window)
        self.window, self.pending = window, False

    def eventFilter(self, obj, event):
        if event.type() in (QEvent.Type.ChildAdded, QEvent.Type.LayoutRequest, QEvent.Type.Resize) and not self.pending:
            self.pending = True
            QTimer.singleShot(0, self._fit)
        return False

    def _fit(self):
        self.pending = False
        fit_docks(self.window)


def _title_width(dock: QDockWidget) -> int:
    return dock.fontMetrics().horizontalAdvance(dock.windowTitle()) + 70  # its buttons beside it


def install_docking(viewer) -> None:
    """Once per window: every dock added from now on is fitted (tabified when the side is full), and
    a galseg dock is never narrower than its title."""
    viewer = getattr(viewer, "__wrapped__", viewer)  # napari hands plugins a public-only proxy
    window = getattr(getattr(viewer, "window", None), "_qt_window", None)
    if window is None or getattr(window, "_galseg_docking", None) is not None:
        return
    window._galseg_docking = _DockWatcher(window)
    window.installEventFilter(window._galseg_docking)

