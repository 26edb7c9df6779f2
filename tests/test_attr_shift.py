"""The attr-shift protocol: pairs across an attribute, the pairs file, strata, the command."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from augment.cli import cli
from augment.data import lfw
from augment.data.errors import DatasetError
from recognition.protocols import attr_shift_pairs, pairs_protocol, strata, write_lfw_pairs
from recognition.scoring import oracle_fractions


def world(n_people=40, per=6, seed=0, both_fraction=0.75):
    """LFW-named images of ``n_people``; most people have photos with and without the attribute."""
    rng = np.random.default_rng(seed)
    paths, ids, values = [], [], []
    for p in range(n_people):
        name = f"Person_{p:03d}"
        mixed = rng.uniform() < both_fraction
        for j in range(per):
            paths.append(f"{name}/{name}_{j + 1:04d}.jpg")
            ids.append(name)
            values.append(int(j % 2) if mixed else int(p % 2))
    return paths, ids, np.array(values)


def test_pairs_cross_the_attribute_and_folds_are_person_disjoint():
    paths, ids, values = world()
    pairs, info = attr_shift_pairs(paths, ids, values, "Eyeglasses", seed=1)
    person = dict(zip(paths, ids))
    value = dict(zip(paths, values))
    n = info["pairs_per_fold"]
    assert n > 0 and info["folds"] == 10
    assert (pairs.groupby(["fold", "same"]).size() == n).all() and len(pairs) == 20 * n
    genuine, impostor = pairs[pairs["same"]], pairs[~pairs["same"]]
    assert all(person[a] == person[b] and value[a] != value[b] for a, b in zip(genuine["path_a"], genuine["path_b"]))
    assert all(person[a] != person[b] and value[a] == value[b] for a, b in zip(impostor["path_a"], impostor["path_b"]))
    # both values among the impostors, as evenly as the folds allow
    imp_values = np.array([value[a] for a in impostor["path_a"]])
    assert abs(imp_values.mean() - 0.5) < 0.1
    folds_of = {}
    for f, a, b in zip(pairs["fold"], pairs["path_a"], pairs["path_b"]):
        for p in (person[a], person[b]):
            folds_of.setdefault(p, set()).add(f)
    assert all(len(f) == 1 for f in folds_of.values())
    keys = list(zip(pairs["path_a"], pairs["path_b"]))
    assert len(set(keys)) == len(keys)  # no pair twice
    again, _ = attr_shift_pairs(paths, ids, values, "Eyeglasses", seed=1)
    pd.testing.assert_frame_equal(pairs, again)  # seeded


def test_unknown_values_are_left_out():
    paths, ids, values = world()
    values = values.copy()
    values[::3] = -1
    pairs, info = attr_shift_pairs(paths, ids, values, "Eyeglasses", seed=0)
    unknown = {p for p, v in zip(paths, values) if v < 0}
    assert info["labelled_images"] == int((values >= 0).sum())
    assert not (set(pairs["path_a"]) | set(pairs["path_b"])) & unknown


def test_too_few_people_is_a_clear_error():
    paths, ids, values = world(n_people=30, both_fraction=0.2, seed=3)
    both = sum(len(set(values[[i for i, x in enumerate(ids) if x == p]])) == 2 for p in set(ids))
    assert both < 10
    with pytest.raises(DatasetError, match=rf"attr-shift:Smiling: needs at least 10 people .* found {both} with both"):
        attr_shift_pairs(paths, ids, values, "Smiling", seed=0)


def test_large_folds_draw_impostors_without_enumerating():
    paths, ids, values = world(n_people=400, per=10)
    pairs, info = attr_shift_pairs(paths, ids, values, "Eyeglasses", seed=0, per_fold_max=300)
    assert info["pairs_per_fold"] == 300
    imp = pairs[~pairs["same"]]
    assert len(set(zip(imp["path_a"], imp["path_b"]))) == len(imp)


def test_pairs_file_round_trips_through_the_lfw_reader(tmp_path):
    paths, ids, values = world()
    pairs, info = attr_shift_pairs(paths, ids, values, "Eyeglasses", seed=0)
    out = write_lfw_pairs(pairs, tmp_path / "pairs.txt")
    back = lfw.read_pairs(out)
    assert back["fold"].nunique() == 10 and len(back) == len(pairs)
    assert list(back["same"]) == list(pairs["same"])
    assert list(back["path_a"]) == list(pairs["path_a"]) and list(back["path_b"]) == list(pairs["path_b"])


def test_pairs_file_refuses_names_outside_lfw_layout(tmp_path):
    pairs = pd.DataFrame({"fold": [0, 0], "path_a": ["a/000001.jpg", "x/x_0001.jpg"],
                          "path_b": ["a/000002.jpg", "y/y_0001.jpg"], "same": [True, False]})
    with pytest.raises(DatasetError, match="000001.jpg: not an LFW image name"):
        write_lfw_pairs(pairs, tmp_path / "p.txt")


def test_strata_split_pairs_by_shared_value():
    pairs = pd.DataFrame({"fold": [0] * 4, "path_a": ["a", "a", "a", "c"], "path_b": ["b", "c", "d", "d"],
                          "same": [True, True, False, False]})
    proto = pairs_protocol(pairs)
    order = np.argsort([proto.keys.index(k) for k in "abcd"])
    values = np.array([1, 1, 0, -1], dtype=np.int8)[order]
    masks = strata(proto, values)
    assert masks["genuine_same_value"].tolist() == [True, False, False, False]
    assert masks["genuine_different_value"].tolist() == [False, True, False, False]
    assert not masks["impostor_same_value"].any() and not masks["impostor_different_value"].any()  # d unknown


def test_oracle_fraction_per_seed_and_over_seeds():
    def d(acc, tar):
        return {"accuracy": {"delta": acc}, "tar_at_far_0.01": {"delta": tar}}

    result = {"deltas": {"+E": d(0.02, 0.01), "+E:oracle": d(0.04, 0.04), "+E@1": d(0.01, 0.0),
                         "+E:oracle@1": d(0.05, -0.01)}}
    out = oracle_fractions(result)["+E"]
    assert out["seeds"]["0"]["accuracy"]["fraction"] == pytest.approx(0.5)
    assert out["seeds"]["1"]["tar_at_far_0.01"]["fraction"] is None  # the oracle did not gain
    assert out["accuracy"]["fraction_mean"] == pytest.approx(0.35)
    assert out["accuracy"]["fraction_of_mean_gains"] == pytest.approx(0.015 / 0.045)
    assert out["tar_at_far_0.01"]["fraction_mean"] == pytest.approx(0.25)


def test_pairs_command_on_a_folder_with_a_csv(tmp_path):
    paths, ids, values = world()
    root = tmp_path / "lfw"
    for p in paths:
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_bytes(b"")
    csv = tmp_path / "attrs.csv"
    csv.write_text("image,attribute,value\n" + "".join(f"{p},Eyeglasses,{v}\n" for p, v in zip(paths, values)))
    out = tmp_path / "pairs.txt"
    res = CliRunner().invoke(cli, ["pairs", str(root), "--attribute", "Eyeglasses", "--attributes-from", str(csv),
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "attributes: csv" in res.output
    res = CliRunner().invoke(cli, ["datasets", "describe", "lfw", str(root), "--pairs", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert '"folds": 10' in res.output
    csv.write_text("image,attribute,value\n" + "".join(f"{p},Eyeglasses,0\n" for p in paths))
    res = CliRunner().invoke(cli, ["pairs", str(root), "--attribute", "Eyeglasses", "--attributes-from", str(csv),
                                   "--out", str(out)])
    assert res.exit_code == 1
    assert "found 0 with both values among 40 people" in res.output
    csv.write_text("image,attribute\nx,1\n")
    res = CliRunner().invoke(cli, ["pairs", str(root), "--attribute", "Eyeglasses", "--attributes-from", str(csv),
                                   "--out", str(out)])
    assert res.exit_code == 1 and "line 1 must be the header" in res.output


def test_pairs_command_on_the_real_lfw_sample(lfw_sample, tmp_path):
    """The LFW View 1 photos with a CSV of (here arbitrary, seeded) Eyeglasses values."""
    root = lfw_sample / "lfw-deepfunneled"
    tree = lfw.load_tree(root).frame
    rng = np.random.default_rng(0)
    csv = tmp_path / "eyeglasses.csv"
    csv.write_text("image,attribute,value\n" + "".join(f"{p},Eyeglasses,{int(v)}\n"
                                                      for p, v in zip(tree["path"], rng.integers(0, 2, len(tree)))))
    out = tmp_path / "pairs.txt"
    res = CliRunner().invoke(cli, ["pairs", str(root), "--attribute", "Eyeglasses", "--attributes-from", str(csv),
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["datasets", "describe", "lfw", str(root), "--pairs", str(out), "--json"])
    assert res.exit_code == 0, res.output
    import json

    info = json.loads(res.output)
    assert info["folds"] == 10 and info["same"] == info["different"] > 0
