"""Face alignment: detect (MTCNN) or read 5 landmarks, then warp onto a template.

- ``templates``: the ``sagan`` and ``arcface`` 5-point templates;
- ``warp``: the least-squares similarity transform and the warp;
- ``detect``: batched MTCNN and the choice of face (torch is imported on first use);
- ``stage``: ``align_dataset`` (chunks, workers, resume, rejects) and the
  ``align`` stage's ``run_stage``.
"""

from augment.align.stage import AlignResult, align_dataset, run_stage

__all__ = ["AlignResult", "align_dataset", "run_stage"]
