"""novel_colour: colours an edit brought that the face did not have."""

from __future__ import annotations

import numpy as np

from augment.judges.colour import novel_colour
from augment.sagan.quality import image_metrics, summarise


def _face(s: int = 64) -> np.ndarray:
    """(S,S,3) in [0,1]: skin with dark hair on top and a teal background in the corners."""
    x = np.empty((s, s, 3), np.float32)
    x[:] = (0.80, 0.60, 0.48)  # skin
    x[: s // 4] = (0.15, 0.10, 0.08)  # hair
    c = s // 10
    x[:c, :c] = x[:c, -c:] = x[-c:, :c] = x[-c:, -c:] = (0.20, 0.70, 0.70)  # background
    return x


def test_dark_frames_and_skin_are_not_novel_but_colour_speckle_and_a_tint_are():
    x = _face()
    frames = x.copy()
    frames[28:30, 12:52] = (0.05, 0.05, 0.05)  # a dark bar like a frame: near the hair's colour
    assert novel_colour(x, frames) == 0.0
    skin = x.copy()
    skin[8:12, 20:44] = (0.80, 0.60, 0.48)  # hair replaced by skin: a colour the face has
    assert novel_colour(x, skin) == 0.0

    speckle = x.copy()
    rng = np.random.default_rng(0)
    speckle[26:34, 14:50] = rng.choice(np.array([[0.9, 0.1, 0.1], [0.1, 0.2, 0.9], [0.1, 0.8, 0.2]],
                                                np.float32), size=(8, 36))
    assert novel_colour(x, speckle) == 1.0
    tint = x.copy()
    tint[26:34, 14:50] = 0.6 * x[26:34, 14:50] + 0.4 * np.array([0.1, 0.3, 0.9], np.float32)  # a blue tint
    assert novel_colour(x, tint) == 1.0


def test_the_corners_do_not_excuse_a_colour_and_nothing_changed_is_none():
    x = _face()
    teal = x.copy()
    teal[30:34, 20:44] = (0.20, 0.70, 0.70)  # the background's colour, on the face
    assert novel_colour(x, teal) == 1.0  # the corners are not the face's palette
    assert novel_colour(x, x.copy()) is None
    faint = x + 0.03  # below the changed threshold everywhere
    assert novel_colour(x, np.clip(faint, 0, 1)) is None


def test_image_metrics_carry_it_and_summaries_skip_edits_that_changed_nothing():
    x = _face()
    speckle = x.copy()
    speckle[26:34, 14:50] = (0.1, 0.2, 0.9)
    mask = np.zeros((64, 64), np.float32)
    recs = [image_metrics(x, speckle, mask), image_metrics(x, x.copy(), mask)]
    assert recs[0]["novel_colour"] == 1.0 and recs[1]["novel_colour"] is None
    assert summarise(recs)["novel_colour"] == 1.0
    assert summarise([recs[1]])["novel_colour"] is None
