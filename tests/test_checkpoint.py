import json

import pytest
import torch

from augment import checkpoint as ck


def _states():
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    return net, opt


def test_round_trip_model_and_optimizer(tmp_path):
    net, opt = _states()
    ck.save(tmp_path / "step_5", {"net": net.state_dict(), "opt": opt.state_dict()}, {"kind": "toy", "step": 5})
    states, meta = ck.load(tmp_path / "step_5", expect={"kind": "toy"})
    assert meta["step"] == 5
    net2 = torch.nn.Linear(3, 2)
    net2.load_state_dict(states["net"])
    assert torch.equal(net2.weight, net.weight)
    opt2 = torch.optim.Adam(net2.parameters(), lr=1e-3)
    opt2.load_state_dict(states["opt"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_mismatch_names_both_values(tmp_path):
    net, _ = _states()
    ck.save(tmp_path / "c", {"net": net.state_dict()}, {"attribute": "Eyeglasses"})
    with pytest.raises(ck.CheckpointError, match="attribute='Eyeglasses'.*attribute='Smiling'"):
        ck.load(tmp_path / "c", expect={"attribute": "Smiling"})


def test_latest_ignores_incomplete_and_temporary(tmp_path):
    net, _ = _states()
    for s in (1, 2):
        ck.save(tmp_path / f"step_{s}", {"net": net.state_dict()}, {"step": s})
    (tmp_path / "step_3").mkdir()  # a folder with no metadata: half-written by hand
    (tmp_path / "step_4").mkdir()
    (tmp_path / "step_4" / "meta.json").write_text(json.dumps({"format_version": 1, "step": 4}))
    (tmp_path / ".step_5.tmp-1").mkdir()
    assert ck.latest(tmp_path).name == "step_2"


def test_no_pickle_in_checkpoint(tmp_path):
    net, opt = _states()
    ck.save(tmp_path / "c", {"net": net.state_dict(), "opt": opt.state_dict()}, {})
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["meta.json", "weights.safetensors"]


def test_prune_keeps_the_last_checkpoints_and_leaves_other_folders(tmp_path):
    net = torch.nn.Linear(2, 1)
    for step in (1, 2, 3, 10):
        ck.save(tmp_path / f"step_{step:07d}", {"net": net.state_dict()}, {"step": step})
    (tmp_path / "step_9999999").mkdir()  # no metadata: not a checkpoint, never counted nor removed
    (tmp_path / "other").mkdir()
    ck.prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "step_0000003", "step_0000010", "step_9999999"]
    ck.prune(tmp_path, keep=5)  # fewer than keep: nothing goes
    assert len(list(tmp_path.glob("step_*"))) == 3


def test_drop_records_rewrites_only_when_something_goes(tmp_path):
    path = tmp_path / "metrics.jsonl"
    ck.drop_records(path, lambda r: True)  # no file: nothing to do
    assert not path.exists()
    recs = [{"model": "a", "epoch": 1}, {"model": "b", "epoch": 2}, {"model": "a", "epoch": 2}, {"model": "a", "epoch": 3}]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    before = path.stat().st_mtime_ns, path.stat().st_ino
    ck.drop_records(path, lambda r: r["epoch"] > 5)
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before  # untouched
    ck.drop_records(path, lambda r: r["model"] == "a" and r["epoch"] > 1)
    assert [json.loads(ln) for ln in path.read_text().splitlines()] == recs[:2]
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]  # no temporary left
