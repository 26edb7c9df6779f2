"""The claim the run tests, and its answer, from the evaluate stage's ``metrics.json``.

The claim (the SaGAN paper's): adding SaGAN-edited copies of the training
faces makes a recognizer better at telling people apart across the edited
attribute. The protocol that asks exactly that is ``attr-shift:<A>`` (genuine
pairs: one person with and without A; impostors: two people alike in A); a run
without one is answered on its first protocol, and the page says so. The
figure is verification (or rank-1) accuracy; per augmented model ``+X``: its
gain over the same-seed baseline (mean ± std over seeds, how many seeds it is
higher in, each seed's McNemar p), the same for its perfect-edit twin
``+X:oracle``, and the SaGAN gain as a fraction of the oracle's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from augment.report.text import fraction, pvalue, seed_fractions
from recognition.scoring import ORACLE
from recognition.scoring import split_repeat as seed_of

SIGNIFICANT = 0.05  # "yes" needs p below this in every seed, and a gain in every seed
CLAIM = ("Adding SaGAN-edited copies of the training faces makes a face recognizer better at telling people "
         "apart across the edited attribute (the SaGAN paper's claim).")


@dataclass
class Answer:
    """One augmented model's answer to the claim on one protocol."""

    protocol: str
    model: str
    baseline: dict | None  # accuracy of the baseline: {"mean", "std"} over seeds (std absent for one)
    gain: dict | None  # {"mean", "std", "n", "higher"} over seeds, or {"mean"} for one seed
    oracle_gain: dict | None
    fraction: str  # the SaGAN gain / the oracle's, ratio of the mean gains; "n/a (...)" when undefined
    fraction_seeds: str  # mean ± std of the per-seed fractions
    pvalues: list[float | None] = field(default_factory=list)  # per seed, McNemar on accuracy

    @property
    def label(self) -> str:
        """The protocol, and the model when the protocol does not name it (attr-shift:<A> names +A)."""
        own = self.protocol == f"attr-shift:{self.model.lstrip('+')}"
        return self.protocol if own else f"{self.model} on {self.protocol}"

    @property
    def verdict(self) -> str:
        if not self.gain:
            return "not measured"
        n = self.gain.get("n", 1)
        every_seed = self.gain.get("higher", n if self.gain["mean"] > 0 else 0) == n
        significant = bool(self.pvalues) and all(p is not None and p < SIGNIFICANT for p in self.pvalues)
        if self.gain["mean"] > 0 and every_seed and significant:
            return "yes"
        return "not settled" if self.gain["mean"] > 0 else "no"

    def pvalues_text(self) -> str:
        return ", ".join(pvalue(p) for p in self.pvalues) if self.pvalues else "—"


def load(path: Path | None) -> dict | None:
    """The metrics file's content, or None when the stage did not run."""
    if path is None or not Path(path).is_file():
        return None
    return json.loads(Path(path).read_text())


def protocols(metrics: dict) -> dict[str, dict]:
    """{protocol name: its block}; a file of one protocol (older runs) is its own block."""
    return metrics.get("protocols") or {metrics.get("protocol", ""): metrics}


def answers(metrics: dict | None) -> tuple[list[Answer], str | None]:
    """The claim's answers, and a note when no attr-shift protocol was run (None otherwise)."""
    if not metrics:
        return [], None
    blocks = protocols(metrics)
    out, fallback = [], None
    for name, block in blocks.items():
        for model in _augmented(block):
            if name == f"attr-shift:{model.lstrip('+')}":
                out.append(_answer(name, model, block))
    if not out and blocks:
        name, block = next(iter(blocks.items()))
        out = [_answer(name, m, block) for m in _augmented(block)]
        fallback = (f"This run evaluated no attr-shift protocol (evaluate.protocols), which asks the claim exactly: "
                    f"the answer below is on {name}.")
    return out, fallback


def _augmented(block: dict) -> list[str]:
    """The augmented models of a protocol (seed 0's names), oracle twins and the baseline left out."""
    base = block.get("baseline", "baseline")
    names = list(block.get("repeats") or block.get("models") or {})
    return [n for n in names if seed_of(n)[1] == 0 and n != base and not n.endswith(ORACLE)]


def _answer(protocol: str, model: str, block: dict) -> Answer:
    repeats, deltas = block.get("repeats") or {}, block.get("deltas") or {}
    base = block.get("baseline", "baseline")
    twin = model + ORACLE
    if repeats:
        baseline = (repeats.get(base) or {}).get("accuracy")
        gain = ((repeats.get(model) or {}).get("deltas") or {}).get("accuracy")
        oracle_gain = ((repeats.get(twin) or {}).get("deltas") or {}).get("accuracy")
    else:
        m = (block.get("models") or {}).get(base) or {}
        baseline = {"mean": m["accuracy_mean"]} if "accuracy_mean" in m else None
        gain, oracle_gain = _one(deltas.get(model)), _one(deltas.get(twin))
    entry = (block.get("oracle_fraction") or {}).get(model) or {}
    acc = entry.get("accuracy") or {}
    og = acc.get("oracle_gain_mean", oracle_gain["mean"] if oracle_gain else None)
    pvals = sorted((seed_of(n)[1], (d.get("accuracy") or {}).get("p_value")) for n, d in deltas.items()
                   if seed_of(n)[0] == model and isinstance(d.get("accuracy"), dict))
    return Answer(protocol, model, baseline, gain, oracle_gain, fraction(acc.get("fraction_of_mean_gains"), og),
                  seed_fractions(entry, "accuracy") if entry else fraction(None, og), [p for _, p in pvals])


def _one(delta: dict | None) -> dict | None:
    acc = (delta or {}).get("accuracy")
    if isinstance(acc, dict) and "delta" in acc:
        return {"mean": acc["delta"]}
    return {"mean": acc} if isinstance(acc, (int, float)) else None
