"""Attribute regions on aligned crops, and the locality figures built on them."""

from __future__ import annotations

import numpy as np
import pytest

from augment.align.templates import template
from augment.judges import regions as R


@pytest.mark.parametrize("name", ["arcface", "sagan"])
def test_each_region_holds_its_landmarks_and_not_the_others(name):
    p = template(name, 64)
    eyes = R.region_mask("Eyeglasses", name, 64)
    mouth = R.region_mask("Smiling", name, 64)
    beard = R.region_mask("No_Beard", name, 64)
    at = lambda m, pt: m[int(round(pt[1])), int(round(pt[0]))]  # noqa: E731
    assert at(eyes, p[0]) == 1 and at(eyes, p[1]) == 1 and at(eyes, p[3]) == 0
    assert at(mouth, p[3]) == 1 and at(mouth, p[4]) == 1 and at(mouth, p[0]) == 0
    assert at(beard, p[3]) == 1 and at(beard, p[0]) == 0
    assert 0.05 < eyes.mean() < 0.5 and 0.02 < mouth.mean() < 0.4
    assert (beard >= mouth).all()  # the lower face holds the mouth box
    np.testing.assert_array_equal(R.region_mask("Smiling", name, 64), R.region_mask("Mouth_Slightly_Open", name, 64))


def test_unknown_attribute_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="Bald.*Eyeglasses"):
        R.region_mask("Bald", "arcface", 64)


def test_outside_change_counts_only_pixels_outside_the_region():
    region = np.zeros((8, 8), np.float32)
    region[2:5, 2:5] = 1
    x = np.zeros((8, 8, 3))
    inside = x.copy()
    inside[3, 3] = 1.0
    assert R.outside_change(x, inside, region) == 0.0
    outside = x.copy()
    outside[0, 0] = 1.0
    assert R.outside_change(x, outside, region) == pytest.approx(1.0 / (64 - 9))
    assert R.outside_change(x, outside, np.ones((8, 8))) is None


def test_mass_in_region():
    region = np.zeros((4, 4), np.float32)
    region[:2] = 1
    mask = np.zeros((4, 4))
    mask[0, 0], mask[3, 3] = 0.75, 0.25
    assert R.mass_in_region(mask, region) == pytest.approx(0.75)
    assert R.mass_in_region(np.zeros((4, 4)), region) is None
