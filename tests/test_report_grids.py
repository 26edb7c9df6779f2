"""The report's edit grids show the attribute drawn and taken away: wearers first."""

from __future__ import annotations

import pandas as pd

from augment.data.celeba import CELEBA_ATTRIBUTES, attribute_index
from augment.report import grid_rows


def _rows(labels: list[int | None], split: str = "test") -> pd.DataFrame:
    i = attribute_index("Eyeglasses")
    attrs = []
    for v in labels:
        if v is None:
            attrs.append(None)
        else:
            a = [-1] * len(CELEBA_ATTRIBUTES)
            a[i] = 1 if v else -1
            attrs.append(a)
    return pd.DataFrame({"path": [f"{split}/{k}.png" for k in range(len(labels))], "split": split,
                         "attributes": attrs})


def test_half_with_half_without_the_attribute():
    df = pd.concat([_rows([0] * 30 + [1] * 5 + [None] * 5), _rows([1] * 10, "train")], ignore_index=True)
    pick = grid_rows(df, "Eyeglasses", 8)
    assert len(pick) == 8 and set(pick["split"]) == {"test"}
    wearers = [p for p in pick["path"] if 30 <= int(p.split("/")[1][:-4]) < 35]
    assert pick["path"].tolist()[:4] == wearers  # the 4 wearers first, then 4 without
    assert all(int(p.split("/")[1][:-4]) < 30 for p in pick["path"].tolist()[4:])


def test_fewer_wearers_than_half_and_no_labels():
    pick = grid_rows(_rows([0] * 20 + [1] * 2), "Eyeglasses", 8)
    assert len(pick) == 8 and sum(int(p.split("/")[1][:-4]) >= 20 for p in pick["path"]) == 2
    pick = grid_rows(_rows([None] * 20), "Eyeglasses", 6)  # nothing labelled: evenly spaced
    assert pick["path"].tolist() == [f"test/{k}.png" for k in (0, 3, 6, 9, 12, 15)]
