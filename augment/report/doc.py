"""The report page as HTML and Markdown side by side (``Doc``), and its small helpers."""

from __future__ import annotations

import base64
import html
import io
import re
from typing import Any, Iterable

import numpy as np
from PIL import Image

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em} h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
.scroll{overflow-x:auto;margin:.6em 0} table{border-collapse:collapse;font-size:.9em} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
img{max-width:100%} .muted{color:#777;font-size:.9em} pre{background:#f7f7f7;padding:.6em;overflow:auto}
"""


class Doc:
    """Accumulates the same content as HTML and Markdown."""

    def __init__(self, title: str):
        self.title = title
        self.html: list[str] = []
        self.md: list[str] = [f"# {title}", ""]

    def h2(self, text: str) -> None:
        self.html.append(f"<h2>{html.escape(text)}</h2>")
        self.md += [f"## {text}", ""]

    def p(self, text: str, muted: bool = False) -> None:
        cls = ' class="muted"' if muted else ""
        self.html.append(f"<p{cls}>{html.escape(text)}</p>")
        self.md += [text, ""]

    def table(self, header: list[str], rows: Iterable[list[Any]]) -> None:
        rows = [[fmt(c) for c in r] for r in rows]
        h = "".join(f"<th>{html.escape(c)}</th>" for c in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        # wide tables (the edit-quality one has 17 columns) scroll inside the page
        self.html.append(f'<div class="scroll"><table><tr>{h}</tr>{body}</table></div>')
        esc = [lambda s: s.replace("|", "\\|")][0]
        self.md += ["| " + " | ".join(esc(c) for c in header) + " |", "|" + "---|" * len(header)]
        self.md += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
        self.md.append("")

    def image(self, png: bytes, alt: str, md_path: str) -> None:
        b64 = base64.b64encode(png).decode()
        self.html.append(f'<img alt="{html.escape(alt, quote=True)}" src="data:image/png;base64,{b64}">')
        self.md += [f"![{alt}]({md_path})", ""]

    def render_html(self) -> str:
        body = "\n".join(self.html)
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{CSS}</style></head><body><h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n")

    def render_md(self) -> str:
        return "\n".join(self.md) + "\n"


def fmt(v: Any) -> str:
    """A table cell: None and NaN as a dash, floats with four decimals (one from 100 up)."""
    if v is None:
        return "—"
    if isinstance(v, float):
        if np.isnan(v):
            return "—"
        return f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def file_part(text: str) -> str:
    """``text`` as one safe file-name part: attribute names come from manifests,
    and a ``/`` or ``..`` in one must not place a file outside the report folder."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def png(img: Image.Image) -> bytes:
    """``img`` as optimized PNG bytes (what the page embeds)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
