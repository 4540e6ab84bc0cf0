"""The catalogue table dock (widgets/catalog_table.py) on large catalogues, against a QTableWidget.

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_catalog_table.py

A Points layer of N sources × 31 columns (like a SExtractor catalogue): seconds to open the table,
sort a column, click a row (select and centre) and select 100 points in the image; then the time a
QTableWidget takes just to fill 10 000 rows, the alternative the model/view avoids.
"""
from __future__ import annotations

import time

import numpy as np


def _timed(app, call) -> float:
    start = time.perf_counter()
    call()
    app.processEvents()
    return time.perf_counter() - start


def main() -> None:
    import napari
    import pandas as pd
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QTableWidget, QTableWidgetItem

    from napari_galseg.widgets.catalog_table import show_catalog_table

    viewer = napari.Viewer(show=True)
    app = napari.qt.get_qapp()
    for n in (10_000, 100_000):
        rng = np.random.default_rng(0)
        features = pd.DataFrame({f"COL{i}": rng.normal(size=n).astype(np.float32) for i in range(30)})
        features.insert(0, "NUMBER", np.arange(1, n + 1))
        points = viewer.add_points(rng.uniform(0, 8000, (n, 2)), features=features, name=f"c{n}", size=8)
        box = {}
        t_open = _timed(app, lambda: box.setdefault("table", show_catalog_table(viewer, points)))  # noqa: B023
        table = box["table"]
        t_sort = _timed(app, lambda: table.view.sortByColumn(5, Qt.DescendingOrder))  # noqa: B023
        t_row = _timed(app, lambda: table.go_to_row(0))  # noqa: B023
        t_sel = _timed(app, lambda: setattr(points, "selected_data", set(range(0, n, n // 100))))  # noqa: B023
        print(f"{n} rows x {table.model.columnCount()} columns: open {t_open:.2f} s, sort {t_sort:.3f} s, "
              f"row click {t_row:.3f} s, 100 points selected -> rows {t_sel:.3f} s")
    viewer.close()

    n, m = 10_000, 31
    values = np.random.default_rng(0).normal(size=(n, m)).astype(np.float32)

    def fill():
        widget = QTableWidget(n, m)
        for r in range(n):
            for c in range(m):
                widget.setItem(r, c, QTableWidgetItem(f"{values[r, c]:.6g}"))
        widget.show()

    print(f"QTableWidget {n} rows x {m} columns: fill {_timed(app, fill):.2f} s")


if __name__ == "__main__":
    main()
