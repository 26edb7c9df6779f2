"""What SaGAN training shows while it runs: ``metrics.jsonl`` lines, the
progress bar and the sample grids.

A metrics line (one per ``log_every`` generator steps, and one at the last
step) holds the step, the mean of every loss term over the updates since the
last line (the critic's ``d_*``/``wasserstein`` terms over its ``n_critic``
updates per step, the generator's ``g_*`` terms, ``mask_mean`` the mean of
F_a's mask b in [0,1]), ``step_time_s`` (wall), ``step_cpu_s`` (this
process's CPU-seconds per step, every thread counted: what a study at equal
compute compares) and ``images_per_s``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from augment import distributed as dist
from augment.config import TrainSaganConfig
from augment.fs import write_text
from augment.io import save_png, tile, to_uint8
from augment.sagan.apply import attend_and_manipulate
from augment.sagan.model import SaGANGenerator


def forget_after(path: Path, step: int) -> None:
    """Drop the lines of ``path`` past ``step``, the checkpoint a run resumes from:
    an interrupted run logged them, and the resumed one logs those steps again
    (kept, they would count the steps' time twice in the CPU-hours of a shipped
    generator, augment/pretrained/record.py)."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
    if len(kept) != len(lines):
        write_text(path, "".join(line + "\n" for line in kept))


class MetricsLog:
    """The running sums of the loss terms between two metrics lines, and the bar."""

    def __init__(self, path: Path, attribute: str, step: int, steps: int, sagan_cfg: TrainSaganConfig,
                 bar_position: int | None = None) -> None:
        self.path, self.sagan_cfg = path, sagan_cfg
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self.t_log, self.cpu_log = time.perf_counter(), time.process_time()
        self.steps_since_log = 0
        self.bar = tqdm(total=steps, initial=step, desc=f"train_sagan {attribute}", unit="step",
                        disable=not dist.is_main(), dynamic_ncols=True, position=bar_position)
        if dist.is_main():
            forget_after(path, step)

    def add(self, parts: list[dict[str, torch.Tensor]]) -> None:
        """Add one generator step's loss terms (every update's, as ``train_step`` returns them)."""
        for update in parts:
            for name, v in update.items():
                # summed on the device; read back once per log line
                self.sums[name] = self.sums[name] + v if name in self.sums else v
                self.counts[name] = self.counts.get(name, 0) + 1
        self.steps_since_log += 1
        self.bar.update(1)

    def write(self, step: int) -> dict:
        """Append the line of ``step`` (rank 0), show it on the bar, start the next sums; returns it."""
        elapsed = time.perf_counter() - self.t_log
        cfg = self.sagan_cfg
        record = {"step": step, **{k: float(self.sums[k]) / self.counts[k] for k in self.sums},
                  "step_time_s": elapsed / self.steps_since_log,
                  "step_cpu_s": (time.process_time() - self.cpu_log) / self.steps_since_log,
                  "images_per_s": self.steps_since_log * cfg.n_critic * cfg.batch_size
                  * dist.world_size() / elapsed}
        if dist.is_main():
            with open(self.path, "a") as fh:
                fh.write(json.dumps(record) + "\n")
        self.bar.set_postfix(W=f"{record['wasserstein']:.2f}", id=f"{record['g_rec_id']:.3f}",
                             mask=f"{record['mask_mean']:.2f}", acc=f"{record['d_acc_real']:.2f}")
        self.sums, self.counts, self.steps_since_log = {}, {}, 0
        self.t_log, self.cpu_log = time.perf_counter(), time.process_time()
        return record

    def close(self) -> None:
        self.bar.close()


@torch.no_grad()
def sample_grid(G: SaGANGenerator, x: torch.Tensor) -> np.ndarray:
    """One row per image of ``x`` (N,3,H,W) in [-1,1]: input | G(I, 1) | G(I, 0) |
    F_a's mask b; (H*N, W*4, 3) uint8."""
    # the edit kernel: one attention pass unless F_a sees the change (then one per value)
    masks, manipulated = attend_and_manipulate(G, x.shape[-1], x, [1, 0])
    to1, to0 = (G.blend(x, manipulated[v], masks[v]) for v in (1, 0))
    mask = torch.maximum(masks[1], masks[0])
    cols = [x, to1, to0, mask.expand(-1, 3, -1, -1) * 2 - 1]
    imgs = [to_uint8(c.float()) for c in cols]  # each (N,H,W,3)
    return tile(zip(*imgs))


def save_samples(G: SaGANGenerator, x_fixed: torch.Tensor, samples_dir: Path, step: int) -> Path:
    """Write the sample grid of generator step ``step`` to ``samples_dir/step_XXXXXXX.png``."""
    path = Path(samples_dir) / f"step_{step:07d}.png"
    save_png(sample_grid(G, x_fixed), path)
    return path
