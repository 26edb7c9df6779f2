"""How the report writes its numbers: p-values, spreads over seeds, ratios that
may be undefined (``n/a`` with the reason), deltas."""

from __future__ import annotations

from typing import Any

P_FLOOR = 1e-3  # below this a p-value is written "< 1e-3" (a 1000-resample bootstrap cannot say more)


def pvalue(p: float | None) -> str:
    """``< 1e-3`` when small, else three decimals (four under 0.01); a dash when absent."""
    if p is None:
        return "—"
    if p < P_FLOOR:
        return "< 1e-3"
    return f"{p:.4f}" if p < 0.01 else f"{p:.3f}"


def spread(s: dict | None, signed: bool = False, digits: int = 4) -> str:
    """``{"mean", "std"}`` (over seeds) as ``mean ± std``; empty when absent."""
    if not s or s.get("mean") is None:
        return ""
    sign = "+" if signed else ""
    std = s.get("std")
    return f"{s['mean']:{sign}.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


def higher(s: dict | None) -> str:
    """``"3 of 3"``: the seeds where a model beat its same-seed baseline; empty when not counted."""
    if not s or "higher" not in s:
        return ""
    return f"{s['higher']} of {s.get('n', '?')}"


def fraction(value: float | None, oracle_gain: float | None, digits: int = 2) -> str:
    """The SaGAN gain as a fraction of the oracle's, or ``n/a`` with why it is undefined."""
    if value is not None:
        return f"{value:.{digits}f}"
    if oracle_gain is None:
        return "n/a (no oracle model)"
    if oracle_gain <= 0:
        return "n/a (oracle gain ≤ 0)"
    return "n/a"


def seed_fractions(entry: dict, key: str) -> str:
    """Mean ± std of the per-seed fractions, saying how many seeds had one
    (a seed whose oracle gain is not positive has none)."""
    seeds = [s[key] for s in (entry.get("seeds") or {}).values() if key in s]
    defined = [s for s in seeds if s.get("fraction") is not None]
    block = entry.get(key) or {}
    if not defined:
        return "n/a (oracle gain ≤ 0 in every seed)" if seeds else "n/a"
    text = f"{block['fraction_mean']:.2f}"
    if len(defined) > 1:
        text += f" ± {block['fraction_std']:.2f}"
    if len(defined) < len(seeds):
        text += f" ({len(defined)} of {len(seeds)} seeds; n/a in the rest: oracle gain ≤ 0)"
    return text


def signed(v: Any, digits: int = 4) -> str:
    """A delta with its sign; a dash when absent."""
    return "—" if v is None else f"{v:+.{digits}f}"
