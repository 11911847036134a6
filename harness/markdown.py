"""The Markdown that harness writes (docs/fidelity.md, a report's notes) as HTML, for ``harness site``.

Written here because no Markdown library is in requirements.lock (Python-Markdown, mistune and
markdown-it-py are not dependencies of anything harness installs) and the site must build from the
locked environment. It covers what those texts use: ATX headings (each given an id), paragraphs,
``-``/``*``/``1.`` lists, fenced code, pipe tables, block quotes, inline code, ``**bold**``, ``*em*``,
links, and the raw ``<a id="..."></a>`` anchors docs/fidelity.md puts before its sections. Every
other character is escaped.
"""
from __future__ import annotations

import html
import re
from typing import Callable, Optional

ANCHOR = re.compile(r'\s*<a id="([\w.-]+)"></a>\s*')
INLINE = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*|(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])|\[([^\]]+)\]\(([^)\s]+)\)")
LIST_ITEM = re.compile(r"(\s*)(?:[-*]|\d+\.)\s+(.*)")


def slug(text: str) -> str:
    """A heading's id, as GitHub makes it: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", text.lower().replace("`", ""))
    return text.strip().replace(" ", "-")


def inline(text: str, link: Optional[Callable[[str], str]] = None) -> str:
    """One line's inline Markdown as HTML; ``link`` rewrites a link's target (e.g. a .md file to its page),
    or returns None for a target the site does not hold (the label is then kept, unlinked)."""
    out, last = [], 0
    for m in INLINE.finditer(text):
        out.append(html.escape(text[last:m.start()], quote=False))
        code, bold, em, label, target = m.groups()
        if code is not None:
            out.append(f"<code>{html.escape(code, quote=False)}</code>")
        elif bold is not None:
            out.append(f"<strong>{inline(bold, link)}</strong>")
        elif em is not None:
            out.append(f"<em>{inline(em, link)}</em>")
        else:
            href = link(target) if link else target
            # a target outside the rendered pages (a file of the repository): its label, unlinked
            out.append(inline(label, link) if href is None else f'<a href="{html.escape(href)}">{inline(label, link)}</a>')
        last = m.end()
    out.append(html.escape(text[last:], quote=False))
    return "".join(out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def render(text: str, link: Optional[Callable[[str], str]] = None) -> str:
    """A Markdown document as an HTML fragment."""
    lines, out, i = text.splitlines(), [], 0
    para: list[str] = []

    def flush():
        if para:
            out.append(f"<p>{inline(' '.join(para), link)}</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            flush()
        elif ANCHOR.fullmatch(line):
            flush()
            out.append(f'<a id="{ANCHOR.fullmatch(line).group(1)}"></a>')
        elif stripped.startswith("```"):
            flush()
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                body.append(lines[i])
                i += 1
            out.append(f"<pre><code>{html.escape(chr(10).join(body), quote=False)}</code></pre>")
        elif re.match(r"#{1,6} ", stripped):
            flush()
            level = len(stripped) - len(stripped.lstrip("#"))
            title = stripped[level:].strip()
            out.append(f'<h{level} id="{slug(title)}">{inline(title, link)}</h{level}>')
        elif stripped.startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|?[\s:|-]+\|?", lines[i + 1].strip()):
            flush()
            head = "".join(f"<th>{inline(c, link)}</th>" for c in _cells(line))
            rows = []
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append("<tr>" + "".join(f"<td>{inline(c, link)}</td>" for c in _cells(lines[i])) + "</tr>")
                i += 1
            out.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
                       "</table></div>")
            continue
        elif LIST_ITEM.fullmatch(line) and not para:
            ordered = bool(re.match(r"\s*\d+\.", line))
            items = []
            while i < len(lines) and lines[i].strip():
                m = LIST_ITEM.fullmatch(lines[i])
                if m and len(m.group(1)) <= 1:
                    items.append(m.group(2))
                else:  # a continuation line (or a nested item) joins the item above
                    items[-1] += " " + lines[i].strip()
                i += 1
            tag = "ol" if ordered else "ul"
            out.append(f"<{tag}>" + "".join(f"<li>{inline(t, link)}</li>" for t in items) + f"</{tag}>")
            continue
        elif stripped.startswith(">"):
            flush()
            quoted = []
            while i < len(lines) and lines[i].strip().startswith(">"):
                quoted.append(lines[i].strip()[1:].strip())
                i += 1
            out.append(f"<blockquote>{render(chr(10).join(quoted), link)}</blockquote>")
            continue
        else:
            para.append(stripped)
        i += 1
    flush()
    return "\n".join(out)
