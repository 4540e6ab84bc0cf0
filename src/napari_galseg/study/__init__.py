"""The study, reproduced: every method under every preprocessing variant, trained on one field and
scored on another, into one set of tables (``galseg study``).

- :mod:`.variants`: the study's four preprocessing variants and the project's own default;
- :mod:`.grid`: the (method, variant) cells, each run in a process of its own (wall time and peak
  memory per cell), resumable — a finished cell is never run again;
- :mod:`.tables`: Markdown, CSV and PNG tables of the results, the study's numbers beside them.
"""
from .grid import Cell, StudyPlan, run_study
from .variants import VARIANTS

__all__ = ["VARIANTS", "Cell", "StudyPlan", "run_study"]
