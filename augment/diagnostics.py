"""What the runner records about a stage that ran or failed: the file a failed
write was writing, the stage's peak memory, progress bars left open."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

from augment.workdir import TEMPORARY


def file_of(error: BaseException, run_dir: Path) -> Path | None:
    """The file a failed write was writing: the innermost frame of the error's
    traceback holding a path inside ``run_dir``, preferring a final name to a
    hidden temporary (``tmp.write_bytes`` fails in a frame that holds both)."""
    frames, tb = [], error.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    root, temporary = run_dir.resolve(), None
    for frame in reversed(frames):  # innermost first
        for value in list(frame.f_locals.values()):
            if not isinstance(value, Path):
                continue
            path = value.resolve()
            if root not in path.parents:
                continue
            if not TEMPORARY.match(path.name):
                return path
            temporary = temporary or path
    return temporary


def close_progress_bars() -> None:
    """Close the progress bars a stage left open (one that failed part-way), so
    that whatever is printed next, such as the one-line error, starts on a line
    of its own and no bar is redrawn after it."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        bar.close()


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS, so the peak read
    after a stage is that stage's; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """This process's peak RSS in MiB: VmHWM from /proc, else getrusage (the
    process's peak since it started)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
