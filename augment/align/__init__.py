"""Face alignment: detect (MTCNN) or read 5 landmarks, then warp onto a template.

- ``templates``: the ``sagan`` and ``arcface`` 5-point templates;
- ``warp``: the least-squares similarity transform and the warp;
- ``detect``: batched MTCNN and the choice of face (torch is imported on first use);
- ``chunk``: what a worker runs on one chunk of rows (decode, detect, warp, write);
- ``dataset``: ``align_dataset`` (chunks, worker processes, resume, rejects, the
  evaluation fallback) and ``alignment_of`` (what an aligned manifest was made with);
- ``stage``: the ``align`` stage's ``run_stage``;
- ``command``: ``augment align`` on a dataset folder or an images manifest.
"""

from augment.align.dataset import AlignResult, align_dataset

__all__ = ["AlignResult", "align_dataset"]
