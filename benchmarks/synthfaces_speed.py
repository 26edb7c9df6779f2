"""SynthFaces rendering speed on one core.

    taskset -c 0 python -m benchmarks.synthfaces_speed [--size 128] [--runs 3]

Figures (median, min, max of ``--runs``):

- ``photos_per_s``: photos rendered (identity and shot sampling included), in
  batches of an identity's photos as the dataset writer draws them;
- ``counterfactuals_per_s``: counterfactual renders (one attribute toggled),
  given the photo's layers;
- ``written_per_s``: photos rendered, PNG-encoded and written by ``synthesize``
  (CelebA part, no ground truth beyond the test split), one worker.

Both wall-clock and CPU-time rates are recorded: on a shared machine the
CPU-time rate is the closer estimate of what one idle core does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import cv2  # noqa: E402

from benchmarks.common import save_result, summary  # noqa: E402


def _timed(fn) -> tuple[float, float, int]:
    w0, c0 = time.perf_counter(), time.process_time()
    n = fn()
    return n / (time.perf_counter() - w0), n / (time.process_time() - c0), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--identities", type=int, default=40)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    cv2.setNumThreads(1)

    from augment.data.synthfaces import Settings, synthesize
    from augment.data.synthfaces.dataset import batch_size
    from augment.data.synthfaces.params import ATTRIBUTES, sample_identity, sample_shot
    from augment.data.synthfaces.render import BatchRender

    size, per_id = args.size, 12
    BATCH = batch_size(size)

    def photos() -> int:
        n = 0
        for k in range(args.identities):
            ident = sample_identity(0, "celeba", k)
            shots = [sample_shot(0, "celeba", ident, k, j, (size, size), 0.85) for j in range(per_id)]
            for b in range(0, per_id, BATCH):
                BatchRender([(ident, s) for s in shots[b:b + BATCH]], size, size).images(last=True)
                n += len(shots[b:b + BATCH])
        return n

    renders = []
    for k in range(8):
        ident = sample_identity(1, "celeba", k)
        shots = [sample_shot(1, "celeba", ident, k, j, (size, size), 0.85) for j in range(BATCH)]
        r = BatchRender([(ident, s) for s in shots], size, size)
        r.images()
        renders.append(r)

    def counterfactuals() -> int:
        for r in renders:
            for a in ATTRIBUTES:
                r.images(r.toggled(a))
        return len(renders) * BATCH * len(ATTRIBUTES)

    def written() -> int:
        out = tempfile.mkdtemp(prefix="synthbench-")
        try:
            s = Settings(identities=args.identities, images_per_identity=per_id, lfw_identities=2,
                         lfw_images_per_identity=5, size=size, seed=0)
            synthesize(out, s, workers=1, progress=False)
            return args.identities * per_id + 10
        finally:
            shutil.rmtree(out, ignore_errors=True)

    photos()  # warm-up (textures, tables)
    result = {"size": size, "command": f"taskset -c 0 python -m benchmarks.synthfaces_speed --size {size}"}
    for name, fn in (("photos_per_s", photos), ("counterfactuals_per_s", counterfactuals), ("written_per_s", written)):
        runs = [_timed(fn) for _ in range(args.runs)]
        result[name] = {"wall": summary([r[0] for r in runs], "1/s"), "cpu": summary([r[1] for r in runs], "1/s")}
        print(f"{name:>22}: wall {result[name]['wall']['median']:.0f}/s "
              f"(min {result[name]['wall']['min']:.0f}, max {result[name]['wall']['max']:.0f}), "
              f"cpu-time {result[name]['cpu']['median']:.0f}/s")
    result["load_average"] = os.getloadavg()[0]
    save_result(f"synthfaces_{size}px", result)


if __name__ == "__main__":
    main()
