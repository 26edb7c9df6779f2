"""The ``report`` stage: one self-contained ``report.html`` (images embedded) and ``report.md``.

Sections: config summary, dataset counts, stage timings, per attribute an edit
grid (input | +attribute | -attribute | mask, drawn by eval_sagan), SaGAN
training curves, the edit-quality table, the recognition table beside the
paper's values read off its figures, and the ROC overlay. Every string that
comes from data (names, paths, config values) is HTML-escaped.

One job per module:

- ``doc``: ``Doc``, the page as HTML and Markdown side by side;
- ``sections``: configuration, datasets, stage timings, edit grids;
- ``quality``: edit quality (which judge made each figure, per attribute and
  direction; dlib's reference scale; ground truth; the run's own recognizer);
- ``recognition``: the recognition tables (per protocol, over seeds, oracle, strata);
- ``plots``: the SaGAN training curves (matplotlib);
- ``page``: ``build``, the sections in their order;
- ``stage``: ``run_stage`` (the stage's target): reads eval_sagan's grids, writes the files.
"""

from __future__ import annotations

from augment.report.page import build

__all__ = ["build"]
