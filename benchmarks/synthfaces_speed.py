"""SynthFaces rendering speed on one core.

    taskset -c 0 python -m benchmarks.synthfaces_speed [--size 128] [--runs 3]

The headline figure, ``photos_per_s``, is the one the speed requirement
("images/s at 128 px on one core") refers to: CelebA-part photos rendered per
second, everything from the random parameters to the final 8-bit RGB array
(identity and shot sampling, every layer, light, sensor noise, landmarks), in
batches cut as the dataset writer cuts them. Not counted in it, and reported
apart:

- ``counterfactuals_per_s``: counterfactual renders (one attribute toggled) of
  photos whose layers are drawn already, as the ground truth needs them;
- ``png_per_s``: PNG encoding of rendered photos (the writer's settings);
- ``written_per_s``: ``synthesize`` end to end, one worker: photos rendered,
  encoded and written, with the ground truth of the test split (five
  counterfactuals and masks per photo) and a small LFW part, per CelebA-part
  photo written.

Each figure is measured in CPU time (``time.process_time``: this process only,
one thread) and in wall time; on a machine shared with other jobs the CPU-time
rate is the closer estimate of what one idle core does (both are still slowed
by other jobs competing for caches and memory).
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

from benchmarks.common import HERE, save_result, summary  # noqa: E402

COUNTED = {
    "photos_per_s": "CelebA-part photos rendered: sampling, all layers, light, noise, landmarks -> uint8 RGB",
    "counterfactuals_per_s": "counterfactual renders (one attribute toggled) of photos already drawn",
    "png_per_s": "PNG encodings of rendered photos (the dataset writer's settings)",
    "written_per_s": "synthesize() end to end per CelebA-part photo written (PNG, files, test-split ground truth, "
                     "a 10-photo LFW part)",
}


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

    from augment.data.synthfaces import Settings, layout, synthesize
    from augment.data.synthfaces.dataset import CHUNK, batch_size
    from augment.data.synthfaces.params import ATTRIBUTES, sample_identity, sample_shot
    from augment.data.synthfaces.render import BatchRender

    size, per_id = args.size, 12
    batch = batch_size(size)

    def photos() -> int:
        """As ``dataset.render_chunk`` draws photos without ground truth."""
        n = 0
        for first in range(0, args.identities, CHUNK):
            todo = []
            for k in range(first, min(first + CHUNK, args.identities)):
                ident = sample_identity(0, "celeba", k)
                todo += [(ident, sample_shot(0, "celeba", ident, k, j, (size, size), 0.85)) for j in range(per_id)]
            for b in range(0, len(todo), batch):
                render = BatchRender(todo[b:b + batch], size, size)
                render.images(last=True)
                render.landmarks()
                n += len(todo[b:b + batch])
        return n

    renders, rendered = [], []
    for k in range(8):
        ident = sample_identity(1, "celeba", k)
        shots = [sample_shot(1, "celeba", ident, k, j, (size, size), 0.85) for j in range(batch)]
        r = BatchRender([(ident, s) for s in shots], size, size)
        rendered.extend(r.images())
        renders.append(r)

    def counterfactuals() -> int:
        for r in renders:
            for a in ATTRIBUTES:
                r.images(r.toggled(a))
        return len(renders) * batch * len(ATTRIBUTES)

    def png() -> int:
        for img in rendered:
            layout.encode(img, 0)
        return len(rendered)

    def written() -> int:
        out = tempfile.mkdtemp(prefix="synthbench-")
        try:
            s = Settings(identities=args.identities, images_per_identity=per_id, lfw_identities=2,
                         lfw_images_per_identity=5, size=size, seed=0)
            synthesize(out, s, workers=1, progress=False)
            return args.identities * per_id
        finally:
            shutil.rmtree(out, ignore_errors=True)

    photos()  # warm-up (textures, tables)
    result = {"size": size, "batch": batch, "counted": COUNTED,
              "command": f"taskset -c 0 python -m benchmarks.synthfaces_speed --size {size} --runs {args.runs}"}
    for name, fn in (("photos_per_s", photos), ("counterfactuals_per_s", counterfactuals), ("png_per_s", png),
                     ("written_per_s", written)):
        runs = [_timed(fn) for _ in range(args.runs)]
        result[name] = {"wall": summary([r[0] for r in runs], "1/s"), "cpu": summary([r[1] for r in runs], "1/s")}
        cpu, wall = result[name]["cpu"], result[name]["wall"]
        print(f"{name:>22}: cpu-time {cpu['median']:.0f}/s (min {cpu['min']:.0f}, max {cpu['max']:.0f}), "
              f"wall {wall['median']:.0f}/s (min {wall['min']:.0f}, max {wall['max']:.0f})  [{COUNTED[name]}]")
    result["load_average"] = os.getloadavg()[0]
    print(f"load average {result['load_average']:.1f} on {os.cpu_count()} CPUs")
    # Kept apart from results.json, whose sections are the pipeline's heavy stages.
    save_result(f"synthfaces_{size}px", result, HERE / "synthfaces.json")


if __name__ == "__main__":
    main()
