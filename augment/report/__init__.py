"""The ``report`` stage: one self-contained ``report.html`` (images embedded) and ``report.md``.

The page opens with a summary read in ten seconds: the claim (SaGAN's edits
help a recognizer across the attribute) and its answer on the attr-shift
protocol (SaGAN gain, oracle gain, their fraction, over seeds, with
significance), edit success per direction, identity kept on dlib's reference
scale, which judge made each figure, and eval_sagan's edit grids. The details
follow: edit quality, recognition per protocol, the ROC overlay, the SaGAN
training curves (one plot per quantity), the paper's values (real data, once),
datasets, stage timings, and the configuration folded in a ``<details>``.
Every table fits a 1280 px page. Every string that comes from data (names,
paths, config values) is HTML-escaped.

One job per module:

- ``doc``: ``Doc``, the page as HTML and Markdown side by side;
- ``text``: how numbers are written (p-values, spreads, ``n/a`` with its reason);
- ``claim``: the claim's answer per augmented model, from evaluate's metrics;
- ``summary``: the opening section; ``idscale``: dlib's distance scale drawn;
- ``quality``: edit quality in detail (which judge made each figure, per
  attribute and direction; dlib's reference scale; ground truth; the run's own
  recognizer);
- ``recognition``: the recognition tables (per protocol, deltas, over seeds,
  oracle, strata) and the ROC overlay; ``paper``: the paper's values;
- ``plots``: the SaGAN training curves (matplotlib);
- ``sections``: datasets, stage timings, configuration;
- ``page``: ``build``, the sections in their order;
- ``stage``: ``run_stage`` (the stage's target): reads eval_sagan's grids, writes the files.
"""

from __future__ import annotations

from augment.report.page import build

__all__ = ["build"]
