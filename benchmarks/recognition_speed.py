"""Face-recognition training and embedding speed on the CPU.

    python -m benchmarks.recognition_speed [--runs 3] [--threads 2]

For each backbone setting (the CPU default first), with random faces:

- ``train_per_s``: images per second through one optimiser step (forward,
  ArcFace head, backward, SGD), batch 64;
- ``embed_per_s``: images per second embedded as evaluation does it (the
  image and its mirror, L2-normalised sum), batch 128.

Both wall-clock and CPU-time rates are recorded (median, min, max of
``--runs``): on a shared machine the CPU-time rate times the number of
threads is the closer estimate of what idle cores do.
"""

from __future__ import annotations

import argparse
import os
import time

from benchmarks.common import save_result, summary

SETTINGS = [  # (backbone, image size, width): the CPU default first
    ("resnet18", 64, 16),
    ("resnet18", 64, 8),
    ("mobilefacenet", 64, 0),
    ("resnet18", 112, 64),  # the paper's ResNet-18 at the usual 112 px
]


def _rates(fn, n_items: int, runs: int) -> dict:
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(runs):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(n_items / (time.perf_counter() - w0))
        cpu.append(n_items / (time.process_time() - c0))
    return {"wall": summary(wall, "images/s"), "cpu": summary(cpu, "images/cpu-s")}


def measure(runs: int = 3, threads: int = 0, quick: bool = False, device: str = "cpu", bf16: bool = False,
            train_batch: int = 64, embed_batch_size: int = 128) -> dict:
    """Train and embed rates per setting (``quick``: the CPU default setting only).
    ``threads`` 0 leaves torch's setting alone."""
    import contextlib

    import torch
    import torch.nn.functional as F

    from recognition.backbones import BackboneConfig, build_backbone
    from recognition.embed import embed_batch
    from recognition.heads import build_head

    from benchmarks.common import sync

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    fmt = torch.channels_last if device.startswith("cuda") else torch.contiguous_format
    amp = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    results = {}
    for name, size, width in SETTINGS[:1] if quick else SETTINGS:
        model = build_backbone(BackboneConfig(name, 512, size, width)).to(device, memory_format=fmt)
        head = build_head("arcface", 512, 100).to(device)
        opt = torch.optim.SGD([*model.parameters(), *head.parameters()], lr=0.01, momentum=0.9)
        x = (torch.rand(train_batch, 3, size, size) * 2 - 1).to(device, memory_format=fmt)
        y = torch.randint(0, 100, (train_batch,)).to(device)

        def step() -> None:
            model.train()
            with amp():
                loss = F.cross_entropy(head(model(x), y).float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sync(device)

        xe = (torch.rand(embed_batch_size, 3, size, size) * 2 - 1).to(device, memory_format=fmt)

        def embed() -> None:
            model.eval()
            with torch.inference_mode(), amp():
                embed_batch(model, xe)
            sync(device)

        key = f"{name}_{size}px_w{width or 'default'}"
        results[key] = {"train_per_s": _rates(step, train_batch, runs),
                        "embed_per_s": _rates(embed, embed_batch_size, runs)}
        r = results[key]
        print(f"recognition {key}: train {r['train_per_s']['wall']['median']:.0f} img/s "
              f"({r['train_per_s']['cpu']['median']:.0f} per cpu-s), embed {r['embed_per_s']['wall']['median']:.0f} "
              f"img/s ({r['embed_per_s']['cpu']['median']:.0f} per cpu-s)", flush=True)  # fmt: skip
    results.update(threads=torch.get_num_threads(), device=device, train_batch=train_batch,
                   embed_batch=embed_batch_size,
                   note="random faces; train = forward, ArcFace head, backward, SGD; embed = image + mirror")
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="only the CPU default setting")
    args = ap.parse_args()
    results = measure(args.runs, args.threads, args.quick)
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS") if k in os.environ)
    results["command"] = f"{env + ' ' if env else ''}python -m benchmarks.recognition_speed --runs {args.runs} --threads {args.threads}"
    save_result("recognition", results)


if __name__ == "__main__":
    main()
