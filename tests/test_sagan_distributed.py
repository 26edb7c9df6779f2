"""train_sagan under torchrun: 2 CPU processes (gloo), DistributedDataParallel keeps them in step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import torch

from augment import checkpoint as ckpt
from augment import distributed as dist
from augment import manifest as mf
from tests.sagan_fixtures import make_dataset

SCRIPT = """
import json, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from augment import distributed as dist
from augment import manifest as mf
from augment.config import PipelineConfig, TrainSaganConfig
from augment.sagan import train as T

dist.init("cpu")
tmp = Path({tmp!r})
cfg = PipelineConfig(device="cpu", train_sagan=TrainSaganConfig(
    preset="fast", image_size=16, g_width=4, d_width=4, res_blocks=1, steps=4, batch_size=4,
    checkpoint_every=2, sample_every=4, log_every=2))
run_dir = tmp / "train_sagan"
run_dir.mkdir(exist_ok=True)
out = T.run_stage(cfg, {{"aligned": mf.read(tmp / "aligned.parquet")}}, run_dir)
if dist.is_main():
    mf.write(out["generators"], run_dir / "generators.parquet")
(tmp / f"rank{{dist.rank()}}.json").write_text(json.dumps({{"world": dist.world_size()}}))
dist.shutdown()
"""

LIVE = """
import json, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
import torch
from augment import distributed as dist
from augment.config import TrainSaganConfig
from augment.sagan.steps import train_step
from augment.sagan.trainstate import build
from augment.sagan.model import SaganModelConfig

dist.init("cpu")
torch.set_num_threads(1)
m = SaganModelConfig(16, 4, 2, 1, 4, 3)
t = TrainSaganConfig(batch_size=4)
G, D, opt_G, opt_D = build(m, t, 0, torch.device("cpu"))
G_ddp, D_ddp = dist.wrap_ddp(G, torch.device("cpu")), dist.wrap_ddp(D, torch.device("cpu"))
g = torch.Generator().manual_seed(100 + dist.rank())  # different data on each rank
for _ in range(3):
    x = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1
    c = (torch.rand(4, generator=g) > 0.5).float()
    train_step(G_ddp, D_ddp, opt_G, opt_D, [(x, c, torch.rand(4, generator=g), None)], t)
sums = [sum(float(p.double().sum()) for p in net.parameters()) for net in (G, D)]
Path({tmp!r}, f"live{{dist.rank()}}.json").write_text(json.dumps(dist.all_gather_object(sums)))
dist.shutdown()
"""


def _torchrun(script: Path, cwd: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True, text=True, timeout=300, cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_ddp_keeps_both_ranks_identical_on_different_data(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    script = tmp_path / "live.py"
    script.write_text(LIVE.format(repo=str(repo), tmp=str(tmp_path)))
    _torchrun(script, repo)
    gathered = json.loads((tmp_path / "live0.json").read_text())
    assert len(gathered) == 2
    assert gathered[0] == pytest.approx(gathered[1], rel=0, abs=1e-9)  # G and D agree across ranks


@pytest.mark.slow
def test_train_sagan_stage_under_torchrun(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    aligned, _ = make_dataset(tmp_path / "data", n=16)
    mf.write(aligned, tmp_path / "aligned.parquet")
    script = tmp_path / "ddp.py"
    script.write_text(SCRIPT.format(repo=str(repo), tmp=str(tmp_path)))
    _torchrun(script, repo)
    gens = mf.read(tmp_path / "train_sagan" / "generators.parquet", "generators").df
    assert list(gens["attribute"]) == ["Eyeglasses"] and gens.iloc[0]["step"] == 4
    states, meta = ckpt.load(tmp_path / "train_sagan" / "Eyeglasses" / "checkpoints" / "step_0000004")
    assert set(states["rng"]) == {"alpha_0", "alpha_1", "diffaugment_0", "diffaugment_1"}  # each rank's RNGs, for exact resume
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    assert r0["world"] == 2
    lines = (tmp_path / "train_sagan" / "Eyeglasses" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["step"] for ln in lines] == [2, 4]  # rank 0 alone logs


def test_unwrap_finds_the_module_inside_compile_and_ddp_wrappers():
    net = torch.nn.Linear(2, 2)
    compiled = torch.compile(net)  # lazy: nothing compiles until it is called
    assert dist.unwrap(compiled) is net
    assert dist.unwrap(net) is net
