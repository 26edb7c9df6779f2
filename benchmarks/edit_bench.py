"""Edit: the ``edit`` stage's code path against the plain reference loop, plus FLOP efficiency.

Both edit the same aligned 128 px face images (SynthFaces renders written as
PNG) to both target values with the same random-init weights of the ``paper``
preset, in one process run:

- ours: ``augment.edit.edit_rows`` as the stage calls it on a CPU (one
  DataLoader decode worker, the attention mask computed once per image and
  reused for both values, channels_last, inference_mode, the batch split
  across one-thread compute threads, PNG encoding in a thread pool while the
  next batch computes, Parquet parts written);
- reference: the loop of the public PyTorch port's inference: the same
  weights in stock PyTorch modules, eager, batch 16, ``torch.no_grad``,
  ``G(x, c)`` called once per target value (the attention network runs
  twice), decoding and PNG saving (PIL defaults) one image at a time in this
  process.

``max_abs_diff``: the largest difference between the two sides' output
tensors (edits and masks, in [-1, 1] / [0, 1]) over all images;
``png_max_abs_diff``: the same over the written 8-bit PNGs.

Without ``--compile`` the stage's ``edit.compile: true`` (the generator
under torch.compile) is timed too, interleaved, as ``compiled``.

``flop_efficiency``: the generator forward's achieved GFLOP/s (convolution
FLOPs = 2 x multiply-accumulates, counted by ``conv_macs``; batch 16, run as
the stage runs it) divided by a 2048 x 2048 fp32 matmul's GFLOP/s, both
measured in this run.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import Options, comparison, matmul_gflops, summary, sync

ATTRIBUTE = "Eyeglasses"
REF_BATCH = 16


def render_images(root: Path, n: int, size: int = 128):
    """``n`` SynthFaces photos as PNGs under ``root/train/`` -> an ``images`` rows frame."""
    from PIL import Image

    from augment import manifest as mf
    from augment.data.synthfaces.params import sample_identity, sample_shot
    from augment.data.synthfaces.render import BatchRender

    (root / "train").mkdir(parents=True, exist_ok=True)
    rows, per_id = [], 8
    for ident_k in range((n + per_id - 1) // per_id):
        ident = sample_identity(0, "celeba", ident_k)
        k = min(per_id, n - ident_k * per_id)
        shots = [(ident, sample_shot(0, "celeba", ident, ident_k, j, (size, size), 0.85)) for j in range(k)]
        for j, img in enumerate(BatchRender(shots, size, size).images()):
            rel = f"train/{ident_k:04d}_{j:02d}.png"
            Image.fromarray(np.ascontiguousarray(img[..., :3])).save(root / rel)
            rows.append({"sample_id": mf.sample_id("bench", rel), "path": rel, "identity": ident_k,
                         "identity_name": str(ident_k), "split": "train", "source": "synthfaces", "attributes": None})
    return mf.frame("images", rows)


def generators(opts: Options):
    """(ours, plain): the paper preset at 128 px, random init (seed 0), eval mode.

    ``plain`` holds the same weights in stock ``nn.InstanceNorm2d`` modules and
    the default memory format, as a plain port would build it.
    """
    import torch
    from torch import nn

    from augment.sagan.model import PRESETS, SaGANGenerator

    torch.manual_seed(0)
    G = SaGANGenerator(PRESETS["paper"]).eval()
    # Random norm affine parameters, so the norms are not identities.
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, nn.InstanceNorm2d):
                m.weight.normal_(1.0, 0.1)
                m.bias.normal_(0.0, 0.1)
    plain = copy.deepcopy(G)
    for m in plain.modules():
        if isinstance(m, nn.InstanceNorm2d):
            m.__class__ = nn.InstanceNorm2d
    ours = G.to(opts.device, memory_format=torch.channels_last)
    return ours, plain.to(opts.device)


def edit_models(G, opts: Options):
    from augment.sagan.apply import EditModels, TunedGenerator

    gen = TunedGenerator(G, opts.compile, opts.device if opts.bf16 else None) if (opts.bf16 or opts.compile) else G
    return EditModels(ATTRIBUTE, "bench", gen, 128)


def run_ours(models, rows, root: Path, opts: Options) -> tuple[float, Path]:
    """Seconds for the stage's ``edit_rows`` on every row (both values); returns the output folder too."""
    import torch

    from augment.config import EditConfig
    from augment.edit import edit_rows
    from augment.runtime import workers

    device = torch.device(opts.device)
    # The stage's decode workers: one on a CPU, one per core on a GPU box.
    n_workers = workers(0) if device.type == "cuda" else min(1, workers(0) - 1)
    edit_cfg = EditConfig(directions="both", batch_size=opts.batch or EditConfig.batch_size)
    out = Path(tempfile.mkdtemp(prefix="edit-ours-"))
    t0 = time.perf_counter()
    merged, _ = edit_rows([models], rows, root, out, edit_cfg, device, n_workers)
    sync(opts.device)
    seconds = time.perf_counter() - t0
    assert len(merged) == 2 * len(rows), "every image edited to both values"
    (out / "rows.json").write_text(merged[["parent_id", "target_value", "path"]].to_json(orient="records"))
    return seconds, out


def _decode(path: Path):
    import torch
    from PIL import Image

    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(a).permute(2, 0, 1) / 127.5 - 1


def run_reference(G, paths: list[Path], device: str = "cpu") -> tuple[float, Path]:
    """The plain loop: decode 16 images, G(x, 1) and G(x, 0), save each edit as a PNG."""
    import torch
    from PIL import Image

    out = Path(tempfile.mkdtemp(prefix="edit-ref-"))
    t0 = time.perf_counter()
    with torch.no_grad():
        for b in range(0, len(paths), REF_BATCH):
            x = torch.stack([_decode(p) for p in paths[b : b + REF_BATCH]]).to(device)
            for v in (1, 0):
                x_edit, _mask = G(x, torch.full((len(x),), float(v), device=device))
                pixels = ((x_edit.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
                for k, arr in enumerate(pixels):
                    Image.fromarray(arr).save(out / f"{b + k:06d}_{v}.png")
    sync(device)
    return time.perf_counter() - t0, out


def compare_outputs(models, plain, paths: list[Path], opts: Options) -> float:
    """Max |ours - reference| over every image's two edits and its mask (float tensors)."""
    import torch

    from augment.sagan.apply import edit_batch

    worst = 0.0
    with torch.inference_mode():
        for b in range(0, len(paths), REF_BATCH):
            x = torch.stack([_decode(p) for p in paths[b : b + REF_BATCH]])
            x = x.to(opts.device)
            masks, edits = edit_batch(models, x.contiguous(memory_format=torch.channels_last), [1, 0])
            for v in (1, 0):
                ref_edit, ref_mask = plain(x, torch.full((len(x),), float(v), device=x.device))
                worst = max(worst, (edits[v].float() - ref_edit).abs().max().item(),
                            (masks[v].float() - ref_mask).abs().max().item())
    return worst


def compare_pngs(ours_dir: Path, ref_dir: Path, rows) -> int:
    """Max difference in 8-bit levels between the two sides' PNGs of the same edit."""
    import json

    from PIL import Image

    index = {sid: i for i, sid in enumerate(rows["sample_id"])}
    worst = 0
    for r in json.loads((ours_dir / "rows.json").read_text()):
        with Image.open(ours_dir / r["path"]) as a, \
                Image.open(ref_dir / f"{index[r['parent_id']]:06d}_{r['target_value']}.png") as b:
            d = np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max()
        worst = max(worst, int(d))
    return worst


def flop_efficiency(models, opts: Options, runs: int) -> dict:
    """Generator GFLOP/s against fp32 matmul GFLOP/s, interleaved ``runs`` times.

    The generator: G(x, 1) = blend(x, F_m(x, 1), F_a(x)) on a batch of 16, run
    the way the stage runs it (on a CPU: split across one-thread compute
    threads, channels_last, inference_mode)."""
    import torch

    from augment.sagan.apply import Compute
    from augment.sagan.model import conv_macs

    G = getattr(models.generator, "G", models.generator)
    x = (torch.rand(16, 3, 128, 128, generator=torch.Generator().manual_seed(1)) * 2 - 1).to(opts.device)
    x = x.contiguous(memory_format=torch.channels_last)
    flops = 2 * conv_macs(G, x, torch.ones(16, device=x.device))
    compute = Compute(torch.device(opts.device))

    def forward() -> None:
        compute(models, x, [1])  # one attention pass + one manipulation + blend = G(x, 1)
        sync(opts.device)

    gen, mat = [], []
    try:
        forward()  # warm-up
        for _ in range(runs):
            t0 = time.perf_counter()
            forward()
            gen.append(flops / (time.perf_counter() - t0) / 1e9)
            mat += matmul_gflops(2048, 1)
    finally:
        compute.close()
    g, m = summary(gen, "GFLOP/s"), summary(mat, "GFLOP/s")
    return {"generator_gflops": g, "matmul_gflops": m, "flop_efficiency": g["median"] / m["median"],
            "generator_gflop_per_image": flops / 16 / 1e9}


def main(opts: Options, images: int = 32, runs: int = 3) -> dict:
    import torch

    work = Path(tempfile.mkdtemp(prefix="edit-bench-"))
    try:
        root = work / "align"
        rows = render_images(root, images)
        paths = [root / p for p in rows["path"]]
        ours_G, plain = generators(opts)
        models = edit_models(ours_G, opts)
        print(f"edit: {images} images, 128 px, paper preset (random init); {runs} runs each; "
              f"torch threads {torch.get_num_threads()}", flush=True)

        # Warm-ups, untimed (a few images): worker start-up, allocator, conv primitives.
        warm = rows.iloc[:REF_BATCH]
        s, d = run_ours(models, warm, root, opts)
        shutil.rmtree(d)
        s, d = run_reference(plain, paths[:REF_BATCH], opts.device)
        shutil.rmtree(d)

        # Without --compile, the stage's edit.compile: true is timed as a third side.
        compiled = None
        if not opts.compile and not opts.bf16:
            compiled = edit_models(ours_G, dataclasses.replace(opts, compile=True))
            t0 = time.perf_counter()
            s, d = run_ours(compiled, warm, root, opts)
            shutil.rmtree(d)
            compile_seconds = time.perf_counter() - t0
        ours, ref, comp, png_diff = [], [], [], 0
        for k in range(runs):  # interleaved, so a change in load hits both sides
            s_o, d_o = run_ours(models, rows, root, opts)
            if compiled is not None:
                s_c, d_c = run_ours(compiled, rows, root, opts)
                shutil.rmtree(d_c)
                comp.append(images / s_c)
            s_r, d_r = run_reference(plain, paths, opts.device)
            if k == 0:
                png_diff = compare_pngs(d_o, d_r, rows)
            shutil.rmtree(d_o)
            shutil.rmtree(d_r)
            ours.append(images / s_o)
            ref.append(images / s_r)
            print(f"  run {k + 1}: ours {ours[-1]:.2f} img/s, reference {ref[-1]:.2f} img/s", flush=True)
        result = comparison(ours, ref, "img/s")
        result["max_abs_diff"] = compare_outputs(models, plain, paths, opts)
        result["png_max_abs_diff"] = png_diff
        if compiled is not None:
            result["compiled"] = {**comparison(comp, ref, "img/s"), "compile_seconds": compile_seconds,
                                  "max_abs_diff": compare_outputs(compiled, plain, paths, opts)}
            print(f"edit (edit.compile: true): {result['compiled']['ours']['median']:.2f} img/s, "
                  f"ratio {result['compiled']['ratio']:.2f}x, max_abs_diff {result['compiled']['max_abs_diff']:.2e}",
                  flush=True)

        result.update(flop_efficiency(models, opts, runs))
        result.update(images=images, image_size=128, preset="paper", reference_batch=REF_BATCH,
                      device=opts.device, bf16=opts.bf16, compile=opts.compile,
                      note="img/s = source images per second, each edited to both values and written as PNG")
        print(f"edit: ours {result['ours']['median']:.2f} img/s, reference {result['reference']['median']:.2f} "
              f"img/s, ratio {result['ratio']:.2f}x, max_abs_diff {result['max_abs_diff']:.2e}, "
              f"png diff {png_diff} level(s); generator {result['generator_gflops']['median']:.1f} GFLOP/s, "
              f"matmul {result['matmul_gflops']['median']:.1f} GFLOP/s, "
              f"efficiency {result['flop_efficiency']:.2f}", flush=True)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)
