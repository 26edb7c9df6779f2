"""Colours an edit brought that the photo did not have: a model-free check for
the tints and colour speckle a generator lays down when it fools a classifier
instead of painting the attribute.

Glasses frames are dark, grey or the colour of the face around them; a removal
leaves skin; a smile shows teeth and lips. An edit that passes its judge with
a blue tint over the eyes or a patch of red, yellow and green speckle puts
colours on the face that occur nowhere in the input. ``novel_colour`` counts
them: of the pixels the edit changed, the share with a colour (not a grey:
black frames, dark lenses and white teeth are never counted) far in RGB from
every colour of the input's central part (the face and hair of an aligned
crop; the corners, mostly background, are left out so that a blue wall does
not excuse a blue tint).

It depends on no model, so a generator cannot learn to please it; it can miss
a novel colour that happens to match something in the photo, and it counts a
legitimately new colour (white teeth on a closed mouth, red SynthFaces
frames), so compare recipes on one attribute and dataset, beside the grids.
"""

from __future__ import annotations

import numpy as np

CHANGED = 0.08  # a pixel is changed when its mean |edit - input| over RGB exceeds this ([0, 1] scale)
FAR = 0.1  # RGB distance ([0, 1] scale, about 26 of 255) from the nearest input colour that makes a colour novel
GREY = 0.1  # a colour with max - min over RGB below this is a grey (black, white): never novel
PALETTE_STRIDE = 2  # every 2nd pixel of the input's central part is its palette


def novel_colour(x: np.ndarray, edit: np.ndarray, changed: float = CHANGED, far: float = FAR) -> float | None:
    """x, edit: (S,S,3) in [0,1] -> the share of the changed pixels (mean |edit - x|
    over RGB > ``changed``) whose edited colour is not a grey (``GREY``) and lies
    more than ``far`` from every colour of x's central square (the middle 3/4 of
    each side, every ``PALETTE_STRIDE``-th pixel); None when the edit changed no pixel."""
    x = np.asarray(x, np.float32)
    edit = np.asarray(edit, np.float32)
    moved = np.abs(edit - x).mean(axis=2) > changed
    if not moved.any():
        return None
    s = x.shape[0]
    lo, hi = s // 8, s - s // 8
    palette = x[lo:hi:PALETTE_STRIDE, lo:hi:PALETTE_STRIDE].reshape(-1, 3)
    new = edit[moved]  # (N,3)
    # squared distances via |a|^2 - 2ab + |b|^2: (N,P) without an (N,P,3) array
    d2 = (new ** 2).sum(1)[:, None] - 2 * new @ palette.T + (palette ** 2).sum(1)[None, :]
    nearest = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    chroma = new.max(axis=1) - new.min(axis=1)
    return float(((nearest > far) & (chroma >= GREY)).mean())
