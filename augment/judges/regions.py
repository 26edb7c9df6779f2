"""Where each attribute lives on an aligned face, from the alignment template's
five points; and how much of an edit stays there.

An aligned crop puts the eyes, nose and mouth corners where its template says
(``augment.align.templates``), so every attribute has a fixed box on it, sized
in eye distances d (documented in ``REGIONS``):

- Eyeglasses: the eye band, from 0.75 d left of the left eye to 0.75 d right of
  the right eye, 0.5 d above and below the eyes (frames and lenses);
- Smiling, Mouth_Slightly_Open: the mouth box, 0.4 d beyond each mouth corner,
  from the nose to 0.6 d below the mouth;
- No_Beard: the lower face, 0.8 d beyond each mouth corner, from the nose to
  1.3 d below the mouth (moustache, chin and jaw).

``outside_change`` measures how much an edit changed pixels outside that box;
``mass_in_region`` where its attention mask put its mass. Neither depends on a
model, so a generator cannot learn to please them.
"""

from __future__ import annotations

import numpy as np

from augment.align.templates import template as template_points

# attribute -> (x margin beyond the outer points, top, bottom) in eye distances;
# the outer points are the eyes (Eyeglasses) or the mouth corners (the rest);
# top and bottom are measured from the eye line (Eyeglasses) or, for the mouth
# and lower face, top from the nose tip and bottom from the mouth line.
REGIONS: dict[str, tuple[float, float, float]] = {
    "Eyeglasses": (0.75, 0.5, 0.5),
    "Smiling": (0.4, 0.0, 0.6),
    "Mouth_Slightly_Open": (0.4, 0.0, 0.6),
    "No_Beard": (0.8, 0.0, 1.3),
}


def region_box(attribute: str, points: np.ndarray) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) in pixels of ``attribute``'s region around five
    (5,2) points (left eye, right eye, nose, left and right mouth corner)."""
    if attribute not in REGIONS:
        raise ValueError(f"no region known for {attribute!r}; known: {', '.join(REGIONS)}")
    p = np.asarray(points, np.float64).reshape(5, 2)
    d = float(np.linalg.norm(p[1] - p[0]))
    margin, top, bottom = REGIONS[attribute]
    if attribute == "Eyeglasses":
        eye_y = p[:2, 1].mean()
        return p[0, 0] - margin * d, eye_y - top * d, p[1, 0] + margin * d, eye_y + bottom * d
    mouth_y = p[3:, 1].mean()
    return p[3, 0] - margin * d, p[2, 1] - top * d, p[4, 0] + margin * d, mouth_y + bottom * d


def region_mask(attribute: str, template: str, size: int) -> np.ndarray:
    """(size, size) float32, 1 inside ``attribute``'s region of a ``template`` crop, else 0."""
    left, top, right, bottom = region_box(attribute, template_points(template, size))
    ys, xs = np.mgrid[0:size, 0:size]
    inside = (xs >= left) & (xs <= right) & (ys >= top) & (ys <= bottom)
    return inside.astype(np.float32)


def outside_change(x: np.ndarray, edit: np.ndarray, region: np.ndarray) -> float | None:
    """Mean absolute change of the pixels outside ``region``: x, edit (S,S,3) in [0,1];
    region (S,S) in {0,1}. None when the region covers the whole crop."""
    out = region < 0.5
    if not out.any():
        return None
    return float(np.abs(edit.astype(np.float64) - x.astype(np.float64))[out].mean())


def mass_in_region(mask: np.ndarray, region: np.ndarray) -> float | None:
    """Fraction of an attention mask's mass (S,S) in [0,1] that lies inside ``region``;
    None for an empty mask."""
    total = float(mask.sum())
    return None if total <= 0 else float((mask * region).sum()) / total
