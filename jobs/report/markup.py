"""HTML building blocks for the report: escaping, numbers, tables, figures, sections.

Every piece of text that came from a user or from the data (study names, descriptions,
variable names, warnings, reasons) goes through :func:`esc`; markup this module builds is
an :class:`Html` string, which :func:`esc` passes through unchanged. So a cell is escaped
exactly once whether it holds plain text or a badge built here.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

MISSING = "—"


class Html(str):
    """A string of markup built by the report itself: not escaped again."""


def esc(value: Any) -> Html:
    """``value`` as HTML text: escaped, unless it is already :class:`Html`."""
    if isinstance(value, Html):
        return value
    return Html(html.escape("" if value is None else str(value), quote=True))


def number(value: Any, digits: int = 4) -> str:
    """A number as the report prints it: ``digits`` significant digits for a float,
    integers (and integral floats) in full, :data:`MISSING` for None or a value that is
    not finite."""
    if value is None or isinstance(value, bool):
        return MISSING if value is None else ("yes" if value else "no")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return MISSING
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))  # a count stored as a float (n = 20000.0) prints as one
    return f"{float(value):.{digits}g}"


def p_value(value: float | None) -> str:
    """A p-value to three significant digits."""
    return number(value, 3)


def share(value: float | None) -> str:
    """A share as a percentage with one decimal."""
    return MISSING if value is None else f"{100 * value:.1f}%"


def badge(passed: bool | None, yes: str = "passed", no: str = "FAILED") -> Html:
    """A coloured pass / fail / not-judged mark."""
    if passed is None:
        return Html('<span class="badge none">not judged</span>')
    return Html(f'<span class="badge {"pass" if passed else "fail"}">{esc(yes if passed else no)}</span>')


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Iterable[int] = (),
          caption: str | None = None, css: str = "") -> Html:
    """A table; ``numeric`` are the column indices to right-align."""
    right = set(numeric)
    head = "".join(f'<th{" class=num" if i in right else ""}>{esc(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td{" class=num" if i in right else ""}>{esc(c)}</td>'
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return Html(f'<table class="{esc(css)}">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def key_values(pairs: Iterable[tuple[str, Any]]) -> Html:
    """A two-column table of labels and values."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in pairs)
    return Html(f'<table class="kv"><tbody>{rows}</tbody></table>')


def figure(png: bytes, alt: str, caption: str, css: str = "") -> Html:
    """A PNG as an inline ``data:`` image with its caption."""
    data = base64.b64encode(png).decode("ascii")
    return Html(f'<figure class="{esc(css)}"><img src="data:image/png;base64,{data}" alt="{esc(alt)}">'
                f"<figcaption>{esc(caption)}</figcaption></figure>")


def bullet_list(items: Iterable[Any], css: str = "") -> Html:
    return Html(f'<ul class="{esc(css)}">' + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>")


def paragraph(text: Any, css: str = "") -> Html:
    return Html(f'<p class="{esc(css)}">{esc(text)}</p>' if css else f"<p>{esc(text)}</p>")


def heading(text: Any, level: int = 3) -> Html:
    return Html(f"<h{level}>{esc(text)}</h{level}>")


def section(ident: str, title: str, parts: Iterable[str]) -> Html:
    """A report section with an anchor ``ident`` (the table of contents links to it)."""
    return Html(f'<section id="{esc(ident)}"><h2>{esc(title)}</h2>{"".join(map(esc, parts))}</section>')


def plain(value: Any) -> str:
    """A JSON-native value as short text: scalars as they are, lists joined, mappings and
    nested values as compact JSON."""
    if isinstance(value, (float, int)) and not isinstance(value, bool):
        return number(value)
    if value is None or isinstance(value, (str, bool)):
        return number(value) if not isinstance(value, str) else value
    if isinstance(value, Sequence) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(plain(v) for v in value)
    return json.dumps(value, ensure_ascii=False, default=str)

