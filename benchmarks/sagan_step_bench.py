"""SaGAN training step: ours (``augment.sagan.steps``) against a plain eager step.

One step = ``n_critic`` (3) critic updates + 1 generator update, on random
images and labels, both sides starting from the same weights:

- ours: ``train_step`` as the ``train_sagan`` stage calls it (real and fake
  images through D as one batch; the edit and the identity edit through G as
  one call sharing one attention pass; the last critic update reuses the
  generator update's edits instead of a separate no-grad pass; loss terms
  stay on the device; on CUDA channels_last and bf16 autocast);
- plain: the same losses written the way a straightforward port writes
  them, in stock PyTorch modules (``nn.InstanceNorm2d``): D on the real and
  on the fake images separately, G called separately for the edit, the
  identity edit and the dual reconstruction, a no-grad G pass for every
  critic update's fakes, ``.item()`` per term, fp32, default memory format.

Reported per preset: seconds per step (median, min, max), the ratio, the
achieved GFLOP/s (FLOPs of one step counted by ``torch.utils.flop_counter``:
convolutions and matmuls, forward, backward and the gradient penalty's double
backward) and ``first_step_loss_diff``: the largest difference between the
two sides' loss terms on the first critic and generator updates (same math).
The paper preset is also timed with the generator under ``torch.compile``
(``train_sagan.compile: true``): ``compiled`` holds its ratio to the same plain
step, the compile time and ``output_max_abs_diff``, the largest difference
between the compiled and eager generator's outputs on one batch.
"""

from __future__ import annotations

import copy
import time

from benchmarks.common import Options, comparison, matmul_gflops, summary, sync


def plain_d_step(G, D, opt_D, x_real, c_org, alpha, sagan_cfg) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    c_trg = 1 - c_org
    with torch.no_grad():
        x_fake, _ = G(x_real, c_trg)
    critic_real, logit_real = D(x_real)
    critic_fake, _ = D(x_fake)
    a = alpha.reshape(-1, 1, 1, 1)
    x_hat = (a * x_real + (1 - a) * x_fake).requires_grad_(True)
    critic_hat, _ = D(x_hat)
    (grad,) = torch.autograd.grad(critic_hat.sum(), x_hat, create_graph=True)
    gp = ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
    d_cls = F.binary_cross_entropy_with_logits(logit_real, c_org)
    loss = critic_fake.mean() - critic_real.mean() + sagan_cfg.lambda_gp * gp + sagan_cfg.lambda_cls * d_cls
    opt_D.zero_grad()
    loss.backward()
    opt_D.step()
    return {"d_loss": loss.item(), "d_gp": gp.item(), "d_cls": d_cls.item()}


def plain_g_step(G, D, opt_G, x_real, c_org, sagan_cfg) -> dict[str, float]:
    import torch.nn.functional as F

    c_trg = 1 - c_org
    for p in D.parameters():
        p.requires_grad_(False)
    x_fake, _ = G(x_real, c_trg)
    critic_fake, logit_fake = D(x_fake)
    x_rec, _ = G(x_fake, c_org)
    x_id, _ = G(x_real, c_org)
    g_cls = F.binary_cross_entropy_with_logits(logit_fake, c_trg)
    loss = (-critic_fake.mean() + sagan_cfg.lambda_cls * g_cls + sagan_cfg.lambda1 * (x_real - x_rec).abs().mean()
            + sagan_cfg.lambda2 * (x_real - x_id).abs().mean())
    opt_G.zero_grad()
    loss.backward()
    opt_G.step()
    for p in D.parameters():
        p.requires_grad_(True)
    return {"g_loss": loss.item(), "g_cls": g_cls.item()}


def count_flops(fn) -> int:
    """FLOPs of the convolutions and matmuls ``fn()`` runs (forward and every
    backward), by torch's own per-op formulas. (``FlopCounterMode`` itself
    cannot track modules through the gradient penalty's ``autograd.grad``.)"""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Count(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                Count.total += formula(*args, **kwargs, out_val=out)
            return out

    with Count():
        fn()
    return Count.total


def _plain_modules(module):
    from torch import nn

    module = copy.deepcopy(module)
    for m in module.modules():
        if isinstance(m, nn.InstanceNorm2d):
            m.__class__ = nn.InstanceNorm2d
    return module


def measure(preset: str, batch: int, runs: int, opts: Options, compiled: bool = False) -> dict:
    import torch

    from augment.config import TrainSaganConfig
    from augment.sagan.model import model_config
    from augment.sagan.steps import train_step
    from augment.sagan.trainstate import build

    device = torch.device(opts.device)
    mcfg = model_config(preset)
    sagan_cfg = TrainSaganConfig(preset=preset, batch_size=batch)
    G, D, opt_G, opt_D = build(mcfg, sagan_cfg, 0, device)
    pG, pD = _plain_modules(G).to(device, memory_format=torch.contiguous_format), \
        _plain_modules(D).to(device, memory_format=torch.contiguous_format)
    betas = (sagan_cfg.beta1, sagan_cfg.beta2)
    p_opt_G = torch.optim.Adam(pG.parameters(), lr=sagan_cfg.lr, betas=betas)
    p_opt_D = torch.optim.Adam(pD.parameters(), lr=sagan_cfg.lr, betas=betas)
    gen = torch.Generator().manual_seed(0)
    s = mcfg.image_size
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    batches = [((torch.rand(batch, 3, s, s, generator=gen) * 2 - 1), (torch.rand(batch, generator=gen) < 0.5).float(),
                torch.rand(batch, generator=gen)) for _ in range(sagan_cfg.n_critic)]
    batches = [(x.to(device, memory_format=fmt), c.to(device), a.to(device)) for x, c, a in batches]

    def ours_step() -> dict:
        parts = {}
        for p in train_step(G, D, opt_G, opt_D, [(x, c, a, None) for x, c, a in batches], sagan_cfg):
            parts.update({k: float(v) for k, v in p.items()})
        sync(opts.device)
        return parts

    G_compiled = torch.compile(G) if compiled else None

    def compiled_step() -> dict:
        parts = {}
        for p in train_step(G_compiled, D, opt_G, opt_D, [(x, c, a, None) for x, c, a in batches], sagan_cfg):
            parts.update({k: float(v) for k, v in p.items()})
        sync(opts.device)
        return parts

    def plain_step() -> dict:
        parts = {}
        for x, c, a in batches:
            parts.update(plain_d_step(pG, pD, p_opt_D, x.contiguous(), c, a, sagan_cfg))
        parts.update(plain_g_step(pG, pD, p_opt_G, x.contiguous(), c, sagan_cfg))
        sync(opts.device)
        return parts

    # The first step of each side doubles as the warm-up and the same-math check.
    o, p = ours_step(), plain_step()
    loss_diff = max(abs(o[k] - p[k]) for k in p)
    flops = count_flops(ours_step)
    ref_flops = count_flops(plain_step)

    if compiled:
        t0 = time.perf_counter()
        c0 = compiled_step()  # compiles
        compile_seconds = time.perf_counter() - t0
        compiled_step()  # the first step's recompilations, if any
        with torch.no_grad():
            x0, c0_ = batches[0][0], batches[0][1]
            eager_out = G(x0, (1 - c0_, c0_), with_manipulation=True)
            compiled_out = G_compiled(x0, (1 - c0_, c0_), with_manipulation=True)
            output_diff = max((a - b).abs().max().item() for a, b in zip(eager_out, compiled_out))
    ours, ref, comp = [], [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        ours_step()
        ours.append(time.perf_counter() - t0)
        if compiled:
            t0 = time.perf_counter()
            compiled_step()
            comp.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        plain_step()
        ref.append(time.perf_counter() - t0)
    result = comparison(ours, ref, "s/step", higher_is_better=False)
    if compiled:
        # train_sagan.compile: true; its first step ran on weights two steps on,
        # so its losses are not compared with the plain step's
        result["compiled"] = {**comparison(comp, ref, "s/step", higher_is_better=False),
                              "compile_seconds": compile_seconds, "output_max_abs_diff": output_diff,
                              "gflops": summary([flops / t / 1e9 for t in comp], "GFLOP/s"),
                              "finite_losses": all(v == v and abs(v) < float("inf") for v in c0.values())}
    result["ours_gflops"] = summary([flops / t / 1e9 for t in ours], "GFLOP/s")
    result["reference_gflops"] = summary([ref_flops / t / 1e9 for t in ref], "GFLOP/s")
    # The roofline: a step cannot run faster than its FLOPs at the fp32 matmul rate.
    matmul = summary(matmul_gflops(2048, runs), "GFLOP/s")
    result.update(gflop_per_step=flops / 1e9, reference_gflop_per_step=ref_flops / 1e9,
                  flop_ratio=ref_flops / flops, matmul_gflops=matmul,
                  ratio_at_matmul_peak=result["reference"]["median"] / (flops / 1e9 / matmul["median"]),
                  batch=batch, n_critic=sagan_cfg.n_critic, image_size=s,
                  model_config=mcfg.to_dict(), first_step_loss_diff=loss_diff)
    print(f"sagan_step {preset} ({s} px, batch {batch}): ours {result['ours']['median']:.2f} s/step, "
          f"plain {result['reference']['median']:.2f} s/step, ratio {result['ratio']:.2f}x, "
          f"{result['ours_gflops']['median']:.1f} GFLOP/s ({result['flop_ratio']:.3f}x fewer FLOPs; "
          f"{result['ratio_at_matmul_peak']:.2f}x at the matmul peak); first-step loss diff {loss_diff:.1e}"
          + (f"; compiled {result['compiled']['ours']['median']:.2f} s/step, ratio {result['compiled']['ratio']:.2f}x"
             if compiled else ""), flush=True)
    return result


def main(opts: Options, runs: int = 3, paper_batch: int = 16, fast_batch: int = 16) -> dict:
    import torch

    out = {"threads": torch.get_num_threads(), "device": opts.device}
    out["fast"] = measure("fast", opts.batch or fast_batch, runs, opts)
    out["paper"] = measure("paper", opts.batch or paper_batch, runs, opts, compiled=True)
    return out
