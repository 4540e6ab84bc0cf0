"""A catalogue Points layer as a sortable table: a click on a row selects the source and centres the
view on it; selecting points in the image selects their rows.

The table is a model/view over the layer's ``features`` columns (numpy arrays): Qt asks only for
the cells on screen and sorting is one ``argsort``: 100k sources × 31 columns open in ~1 s and sort
in ~0.2 s, where a QTableWidget takes ~7 s to fill 10k rows (benchmarks/bench_catalog_table.py;
compare.py's table lists at most a few thousand objects). :func:`show_catalog_table` puts it in a dock, one per viewer, that follows
the newest catalogue.
"""
from __future__ import annotations

import numpy as np
from qtpy.QtCore import QAbstractTableModel, QItemSelection, QItemSelectionModel, QModelIndex, Qt
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableView, QVBoxLayout, QWidget

from ._layers import centre_on

#: the dock's name in the viewer's window
DOCK_NAME = "Catalogue table"


def _text(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.6g}"
    return str(value)


class CatalogModel(QAbstractTableModel):
    """Columns of equal length (name → 1-D array) as a read-only table; ``order`` maps a shown row
    to the source's index in the layer."""

    def __init__(self, columns: dict[str, np.ndarray] | None = None, parent=None):
        super().__init__(parent)
        self.set_columns(columns or {})

    def set_columns(self, columns: dict[str, np.ndarray]) -> None:
        self.beginResetModel()
        self.names = list(columns)
        self.values = [np.asarray(columns[name]) for name in self.names]
        n = len(self.values[0]) if self.values else 0
        self.order = np.arange(n)
        self.rows_of = np.arange(n)  # source index → shown row
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self.order)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.names)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return _text(self.values[index.column()][self.order[index.row()]])
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self.names[section] if 0 <= section < len(self.names) else None
        return str(section + 1)

    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        """Sort by a column (stable, NaN last), numbers as numbers."""
        if not 0 <= column < len(self.names):
            return
        self.layoutAboutToBeChanged.emit()
        values = self.values[column]
        keys = values if values.dtype.kind in "iufb" else values.astype(str)
        perm = np.argsort(keys, kind="stable")
        if order == Qt.SortOrder.DescendingOrder:
            perm = perm[::-1]
        self.order = perm
        self.rows_of = np.empty_like(perm)
        self.rows_of[perm] = np.arange(len(perm))
        self.layoutChanged.emit()


class CatalogTable(QWidget):
    """The features of a catalogue Points layer in a sortable table tied to the layer's selection."""

    def __init__(self, viewer, layer=None, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.layer = None
        self._syncing = False
        self.title = QLabel("")
        self.model = CatalogModel(parent=self)
        self.view = QTableView()
        self.view.setModel(self.model)
        # in the catalogue's order until a header is clicked (Qt would sort by column 0, descending)
        self.view.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.view.setSortingEnabled(True)
        self.view.horizontalHeader().setSortIndicatorShown(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        rows = self.view.verticalHeader()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)  # no per-row measuring of 10k rows
        rows.setDefaultSectionSize(22)
        self.view.horizontalHeader().setResizeContentsPrecision(50)  # column widths from the first rows only
        self.view.setToolTip("Click a row to select the source and centre the view on it; click a header to sort. "
                             "Selecting points in the image selects their rows.")
        self.setMinimumHeight(240)  # about eight rows: a bottom dock is otherwise squeezed to two
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.view)
        self.view.selectionModel().selectionChanged.connect(self._rows_selected)
        self.view.clicked.connect(lambda index: self.go_to_row(index.row()))
        if layer is not None:
            self.set_layer(layer)

    # -- the layer ---------------------------------------------------------------------------------
    def set_layer(self, layer) -> None:
        """Show ``layer``'s features (and follow its selection and later changes of its features)."""
        if self.layer is not None:
            self._disconnect()
        self.layer = layer
        layer.events.features.connect(self._refresh)
        layer.selected_data.events.items_changed.connect(self._points_selected)
        self._refresh()
        self._points_selected()  # what is already selected in the image

    def _disconnect(self) -> None:
        for signal, slot in ((self.layer.events.features, self._refresh),
                             (self.layer.selected_data.events.items_changed, self._points_selected)):
            try:
                signal.disconnect(slot)
            except (TypeError, ValueError, RuntimeError):
                pass

    def _alive(self) -> bool:
        """False (and the layer let go) once Qt has deleted the table: its dock was closed."""
        try:
            self.view.model()
            return True
        except RuntimeError:
            self._disconnect()
            return False

    def _refresh(self, event=None) -> None:
        if not self._alive():
            return
        features = self.layer.features
        self.model.set_columns({str(name): features[name].to_numpy() for name in features.columns})
        header = self.view.horizontalHeader()
        if header.sortIndicatorSection() < self.model.columnCount():  # a re-run keeps the user's sort
            self.model.sort(header.sortIndicatorSection(), header.sortIndicatorOrder())
        self.view.resizeColumnsToContents()
        self.title.setText(f"{self.layer.name}: {self.model.rowCount()} sources, {self.model.columnCount()} columns")

    # -- rows ↔ points -----------------------------------------------------------------------------
    def go_to_row(self, row: int) -> None:
        """Select the source of shown row ``row`` in the layer and centre the view on it."""
        if self.layer is None or not 0 <= row < self.model.rowCount():
            return
        index = int(self.model.order[row])
        if set(self.layer.selected_data) != {index}:
            self._syncing = True
            try:
                self.layer.selected_data = {index}
            finally:
                self._syncing = False
        centre_on(self.viewer, self.layer.data_to_world(self.layer.data[index]))

    def _rows_selected(self, selected=None, deselected=None) -> None:
        if self._syncing or self.layer is None:
            return
        rows = {i.row() for i in self.view.selectionModel().selectedRows()}
        self._syncing = True
        try:
            self.layer.selected_data = {int(self.model.order[r]) for r in rows}
        finally:
            self._syncing = False

    def _points_selected(self, *args) -> None:
        """Points selected in the image: their rows selected, the first one scrolled to."""
        if self._syncing or not self._alive():
            return
        rows = sorted(int(self.model.rows_of[i]) for i in self.layer.selected_data if i < len(self.model.rows_of))
        selection = QItemSelection()
        last = self.model.columnCount() - 1
        for r in rows:
            selection.select(self.model.index(r, 0), self.model.index(r, last))
        self._syncing = True
        try:
            self.view.selectionModel().select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        finally:
            self._syncing = False
        if rows:
            self.view.scrollTo(self.model.index(rows[0], 0))


def show_catalog_table(viewer, layer) -> CatalogTable:
    """The viewer's catalogue dock showing ``layer`` (added the first time, or again once closed)."""
    table = viewer.window.dock_widgets.get(DOCK_NAME)
    if isinstance(table, CatalogTable):
        table.set_layer(layer)
        return table
    table = CatalogTable(viewer, layer)
    viewer.window.add_dock_widget(table, name=DOCK_NAME, area="bottom")
    return table
