"""The report page as HTML and Markdown side by side (``Doc``), and its small helpers.

Layout blocks (``open``/``close``: a flex row for the summary, its columns)
exist in the HTML only; ``details`` folds a part away in both (GitHub renders
``<details>`` in Markdown). Every string that comes from data is escaped here.
"""

from __future__ import annotations

import base64
import html
import io
import re
from typing import Any, Iterable

import numpy as np
from PIL import Image

# The page is read at 1280 px: the body is at most 1180 px wide, and every
# table is narrow enough to fit it (wide ones are split, long cells wrap).
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1180px;margin:1em auto;padding:0 1em;color:#222;
line-height:1.35}
h1{font-size:1.5em;margin:.3em 0} h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
h3{font-size:1.05em;margin:1em 0 .3em}
.scroll{overflow-x:auto;margin:.5em 0} table{border-collapse:collapse;font-size:.88em;font-variant-numeric:tabular-nums}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right;vertical-align:top}
th{background:#f4f4f4;font-weight:600}
td:first-child,th:first-child,td.l,th.l{text-align:left} td.n{white-space:nowrap} th{max-width:11em}
img{max-width:100%} .muted{color:#666;font-size:.88em} pre{background:#f7f7f7;padding:.6em;overflow:auto}
.summary{display:flex;gap:1.5em;align-items:flex-start} .summary-text{flex:1 1 0;min-width:0}
.summary.stacked{display:block} .summary-figs{display:flex;flex-wrap:wrap;gap:.8em}
.summary-figs figure{margin:0;width:232px} .summary-figs img{width:232px;display:block}
.summary-figs-col h3{margin-top:0}
.cols{display:grid;grid-template-columns:repeat(4,1fr);font-size:.72em;color:#555;text-align:center}
figcaption{font-size:.8em;color:#555;text-align:center}
.answer{background:#f3f8f3;border-left:4px solid #5a5;padding:.4em .7em;margin:.5em 0}
details{margin:1.5em 0} summary{cursor:pointer;font-weight:600;font-size:1.1em}
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

    def h3(self, text: str) -> None:
        self.html.append(f"<h3>{html.escape(text)}</h3>")
        self.md += [f"### {text}", ""]

    def p(self, text: str, muted: bool = False, lead: str | None = None, cls: str | None = None) -> None:
        """A paragraph; ``lead``: a bold start; ``cls``: its HTML class (``muted``: small and grey)."""
        cls = cls or ("muted" if muted else None)
        attr = f' class="{cls}"' if cls else ""
        bold = f"<b>{html.escape(lead)}</b> " if lead else ""
        self.html.append(f"<p{attr}>{bold}{html.escape(text)}</p>")
        self.md += [(f"**{lead}** " if lead else "") + text, ""]

    def table(self, header: list[str], rows: Iterable[list[Any]]) -> None:
        """A table; columns of numbers right-aligned (short cells kept on one line), columns of words left."""
        rows = [[fmt(c) for c in r] for r in rows]
        words = [i > 0 and _words([r[i] for r in rows if i < len(r)]) for i in range(len(header))]
        h = "".join(f"<th{LEFT if words[i] else ''}>{html.escape(c)}</th>" for i, c in enumerate(header))
        body = "".join("<tr>" + "".join(_td(c, i, i < len(words) and words[i]) for i, c in enumerate(r)) + "</tr>"
                       for r in rows)
        # every table is made to fit the page; the wrapper only guards a narrow window
        self.html.append(f'<div class="scroll"><table><tr>{h}</tr>{body}</table></div>')

        def esc(s: str) -> str:
            return s.replace("|", "\\|")

        self.md += ["| " + " | ".join(esc(c) for c in header) + " |", "|" + "---|" * len(header)]
        self.md += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
        self.md.append("")

    def image(self, png: bytes, alt: str, md_path: str) -> None:
        b64 = base64.b64encode(png).decode()
        self.html.append(f'<img alt="{html.escape(alt, quote=True)}" src="data:image/png;base64,{b64}">')
        self.md += [f"![{alt}]({md_path})", ""]

    def figure(self, png: bytes, alt: str, md_path: str, caption: str, columns: list[str] | None = None) -> None:
        """An image with a caption under it (in Markdown: the image, then the caption);
        ``columns``: labels over its equal-width columns (HTML only: say them in the caption too)."""
        self.html.append("<figure>")
        if columns:
            self.html.append('<div class="cols">' + "".join(f"<span>{html.escape(c)}</span>" for c in columns)
                             + "</div>")
        self.image(png, alt, md_path)
        self.html.append(f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        self.md += [f"*{caption}*" + (f" (columns: {', '.join(columns)})" if columns else ""), ""]

    def raw(self, markup: str) -> None:
        """HTML the report made itself (an inline SVG), with no Markdown twin; data in it must be escaped."""
        self.html.append(markup)

    def open(self, cls: str) -> None:
        """Start an HTML layout block of class ``cls`` (nothing in Markdown)."""
        self.html.append(f'<div class="{cls}">')

    def close(self) -> None:
        self.html.append("</div>")

    def details(self, summary: str) -> None:
        """Start a folded part, closed by ``end_details``."""
        self.html.append(f"<details><summary>{html.escape(summary)}</summary>")
        self.md += [f"<details><summary>{html.escape(summary)}</summary>", ""]

    def end_details(self) -> None:
        self.html.append("</details>")
        self.md += ["</details>", ""]

    def render_html(self) -> str:
        body = "\n".join(self.html)
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{CSS}</style></head><body><h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n")

    def render_md(self) -> str:
        return "\n".join(self.md) + "\n"


LEFT = ' class="l"'
NUMERIC = re.compile(r"^(?:[<>+\-−]\s?)?\d|^—$|^n/a")


def _words(cells: list[str]) -> bool:
    """A column of words: most of its filled cells are not numbers."""
    filled = [c for c in cells if c]
    return sum(not NUMERIC.match(c) for c in filled) > len(filled) / 2


def _td(cell: str, column: int, words: bool) -> str:
    """A body cell: in a column of words left-aligned; a row name, or a number
    short and no list, on one line."""
    if column == 0:
        cls = "n" if len(cell) <= 24 else ""
    elif words:
        cls = "l"
    else:
        cls = "n" if len(cell) <= 30 and ", " not in cell else ""
    attr = f' class="{cls}"' if cls else ""
    return f"<td{attr}>{html.escape(cell)}</td>"


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
