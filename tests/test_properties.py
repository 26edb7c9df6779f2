"""Property tests: parsers read back what a writer of the official format wrote."""

from __future__ import annotations

import string

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from augment import manifest as mf
from augment.data import celeba, lfw

names = st.text(alphabet=string.ascii_letters + "_-", min_size=1, max_size=12)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(rows=st.dictionaries(names.map(lambda s: s + ".jpg"), st.lists(st.sampled_from([-1, 1]), min_size=40, max_size=40), max_size=15),
       count=st.integers(0, 10**6), spaces=st.integers(1, 3))
def test_celeba_attribute_file_round_trip(tmp_path_factory, rows, count, spaces):
    path = tmp_path_factory.mktemp("a") / "list_attr_celeba.txt"
    sep = " " * spaces
    body = "".join(f"{k}{sep}{sep.join(str(v) for v in vals)}\n" for k, vals in rows.items())
    path.write_text(f"{count}\n{' '.join(celeba.CELEBA_ATTRIBUTES)}\n{body}")  # the count line is not trusted
    got_names, got = celeba.read_attributes(path)
    assert got_names == celeba.CELEBA_ATTRIBUTES
    assert set(got) == set(rows)
    for k, vals in rows.items():
        np.testing.assert_array_equal(got[k], vals)


@FAST
@given(folds=st.integers(1, 4), n=st.integers(1, 5), data=st.data())
def test_lfw_pairs_round_trip(tmp_path_factory, folds, n, data):
    person = names.filter(lambda s: not s.isdigit())
    lines, expect = [], []
    for f in range(folds):
        for _ in range(n):
            p, i, j = data.draw(person), data.draw(st.integers(1, 999)), data.draw(st.integers(1, 999))
            lines.append(f"{p}\t{i}\t{j}")
            expect.append((f, lfw.lfw_path(p, i), lfw.lfw_path(p, j), True))
        for _ in range(n):
            p, i, q, j = data.draw(person), data.draw(st.integers(1, 999)), data.draw(person), data.draw(st.integers(1, 999))
            lines.append(f"{p}\t{i}\t{q}\t{j}")
            expect.append((f, lfw.lfw_path(p, i), lfw.lfw_path(q, j), False))
    header = f"{folds}\t{n}" if folds > 1 else str(n)
    path = tmp_path_factory.mktemp("p") / "pairs.txt"
    path.write_text(header + "\n" + "\n".join(lines) + "\n")
    got = lfw.read_pairs(path)
    assert list(map(tuple, got.itertuples(index=False))) == expect


@FAST
@given(rows=st.lists(
    st.fixed_dictionaries({
        "path": st.text(min_size=1, max_size=20),
        "identity": st.integers(-(2**40), 2**40),
        "identity_name": st.one_of(st.none(), st.text(max_size=10)),
        "split": st.sampled_from(["train", "val", "test"]),
        "mask_area": st.one_of(st.none(), st.floats(0, 1, width=32)),
        "landmarks": st.one_of(st.none(), st.lists(st.floats(-1e4, 1e4, width=32), min_size=10, max_size=10)),
        "target_value": st.one_of(st.none(), st.sampled_from([0, 1])),
    }), max_size=12))
def test_images_manifest_round_trip(tmp_path_factory, rows):
    full = [{**r, "sample_id": mf.sample_id("x", r["path"]), "source": "x"} for r in rows]
    folder = tmp_path_factory.mktemp("m")
    m = mf.Manifest("images", mf.frame("images", full), folder)
    back = mf.read(mf.write(m, folder / "m.parquet"))
    assert len(back) == len(rows)
    for r, (_, b) in zip(rows, back.df.iterrows()):
        assert b["path"] == r["path"] and b["identity"] == r["identity"] and b["split"] == r["split"]
        assert pd.isna(b["identity_name"]) == (r["identity_name"] is None)
        if r["landmarks"] is None:
            assert b["landmarks"] is None
        else:
            np.testing.assert_array_equal(b["landmarks"], np.float32(r["landmarks"]))
        if r["mask_area"] is None:
            assert pd.isna(b["mask_area"])
        else:
            assert b["mask_area"] == np.float32(r["mask_area"])
