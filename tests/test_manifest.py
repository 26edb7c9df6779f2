import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from augment import manifest as mf


def _images(n=3):
    rows = [
        {
            "sample_id": mf.sample_id("celeba", f"img/{i}.jpg"),
            "path": f"img/{i}.jpg",
            "identity": i % 2,
            "identity_name": str(i % 2),
            "split": "train",
            "source": "celeba",
            "landmarks": np.arange(10, dtype=np.float32) if i else None,
            "attributes": np.ones(40, dtype=np.int8) if i != 1 else None,
        }
        for i in range(n)
    ]
    return mf.frame("images", rows)


def test_round_trip_keeps_rows_root_and_metadata(tmp_path):
    m = mf.Manifest("images", _images(), tmp_path / "data", {"extra": {"dropped": {"low_prob": 2}}})
    path = mf.write(m, tmp_path / "run" / "source.parquet", pipeline="demo", config_hash="abc")
    back = mf.read(path, "images")
    assert len(back) == 3
    assert back.root.resolve() == (tmp_path / "data").resolve()
    assert back.meta["pipeline"] == "demo" and back.meta["config_hash"] == "abc"
    assert back.meta["extra"] == {"dropped": {"low_prob": 2}}
    assert back.df["landmarks"][0] is None
    np.testing.assert_array_equal(back.df["landmarks"][2], np.arange(10))
    assert back.df["attributes"][1] is None
    assert list(back.df.columns) == mf.IMAGES.names


def test_root_inside_folder_is_stored_relative(tmp_path):
    m = mf.Manifest("images", _images(), tmp_path / "run" / "images")
    path = mf.write(m, tmp_path / "run" / "m.parquet")
    os.rename(tmp_path / "run", tmp_path / "moved")
    back = mf.read(tmp_path / "moved" / "m.parquet")
    assert back.root.resolve() == (tmp_path / "moved" / "images").resolve()


def test_write_rejects_wrong_columns_and_nulls(tmp_path):
    df = _images().drop(columns=["split"])
    with pytest.raises(mf.ManifestError, match="missing \\['split'\\]"):
        mf.write(mf.Manifest("images", df, tmp_path), tmp_path / "x.parquet")
    df = _images()
    df.loc[0, "path"] = None
    with pytest.raises(mf.ManifestError, match="'path' has 1 null"):
        mf.write(mf.Manifest("images", df, tmp_path), tmp_path / "x.parquet")
    df = _images()
    df["identity"] = ["a", "b", "c"]
    with pytest.raises(mf.ManifestError, match="'identity'"):
        mf.write(mf.Manifest("images", df, tmp_path), tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


def test_read_rejects_other_kind_and_foreign_parquet(tmp_path):
    path = mf.write(mf.Manifest("images", _images(), tmp_path), tmp_path / "m.parquet")
    with pytest.raises(mf.ManifestError, match="expected a 'pairs' manifest"):
        mf.read(path, "pairs")
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "foreign.parquet")
    with pytest.raises(mf.ManifestError, match="not an augment manifest"):
        mf.read(tmp_path / "foreign.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(mf.ManifestError, match="junk.parquet"):
        mf.read(tmp_path / "junk.parquet")


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path, monkeypatch):
    path = mf.write(mf.Manifest("images", _images(2), tmp_path), tmp_path / "m.parquet")
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(OSError, match="disk full"):
        mf.write(mf.Manifest("images", _images(3), tmp_path), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.parquet"]  # no temporary left behind


def test_same_rows_same_bytes(tmp_path):
    a = mf.write(mf.Manifest("images", _images(), tmp_path), tmp_path / "a.parquet", pipeline="p")
    b = mf.write(mf.Manifest("images", _images(), tmp_path), tmp_path / "b.parquet", pipeline="p")
    assert a.read_bytes() == b.read_bytes()


def test_root_above_the_manifest_folder_moves_with_the_tree(tmp_path):
    m = mf.Manifest("groundtruth", mf.frame("groundtruth", [{"image": "a.png", "attribute": "Bangs",
                                                            "counterfactual": "gt/a.png", "mask": "gt/m.png"}]), tmp_path / "out")
    mf.write(m, tmp_path / "out" / "groundtruth" / "index.parquet")
    os.rename(tmp_path / "out", tmp_path / "moved")
    back = mf.read(tmp_path / "moved" / "groundtruth" / "index.parquet")
    assert back.root.resolve() == (tmp_path / "moved").resolve()
