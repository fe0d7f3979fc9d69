"""The report as GitHub-flavoured Markdown, for wikis and tickets. Plots become image links to the
files written with --plots DIR (Markdown cannot embed them portably)."""
from __future__ import annotations

import html

from recoque.report.model import Report, Section, Table


def text(v: str) -> str:
    """User text (device names, results fields) as literal text: Markdown renderers pass raw HTML
    through, so <, > and & become entities (a `<script>` in a device name stays text)."""
    return html.escape(str(v), quote=False)


_INLINE = str.maketrans({c: "\\" + c for c in "[]*_`~"})  # links, emphasis, code, strike-through


def inline(v: str) -> str:
    """User text in a heading, paragraph or bullet: literal, as in a cell (no live link, emphasis or
    code), newlines kept."""
    return text(v).replace("\\", "\\\\").translate(_INLINE)


def _target(path: str) -> str:
    """An image link target: in angle brackets, so a folder with spaces or parentheses still links
    (CommonMark allows neither in a bare target)."""
    return "<" + path.replace("<", "%3C").replace(">", "%3E") + ">"


def cell(v: str) -> str:
    """Escape what would break a table cell (pipes, newlines, a backslash, raw HTML) or turn user
    text into Markdown (a device name `[x](url) **y**` stays text, not a live link in bold)."""
    return (text(v).replace("\\", "\\\\").translate(_INLINE).replace("|", "\\|")
            .replace("\r", " ").replace("\n", " "))


def table(t: Table) -> str:
    lines = [f"**{cell(t.title)}**", "", "| " + " | ".join(cell(c) for c in t.columns) + " |",
             "|" + "|".join("---" for _ in t.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in t.rows]
    if t.note:
        lines += ["", f"_{cell(t.note)}_"]
    return "\n".join(lines) + "\n"


def section(s: Section, plots_dir: str | None) -> str:
    parts = [f"## {inline(s.title)}", ""]
    parts += [inline(p) + "\n" for p in s.paragraphs]
    parts += [table(t) for t in s.tables]
    parts += [f"- {inline(i)}" for i in s.items]
    for p in s.plots:
        if plots_dir:
            parts.append(f"![{inline(p.title)}]({_target(plots_dir.rstrip('/') + '/' + p.name + '.png')})\n")
        else:
            parts.append(f"- plot: {inline(p.title)} (write the images with --plots DIR)")
    return "\n".join(parts) + "\n"


def render(report: Report, plots_dir: str | None = None) -> str:
    from recoque import __version__

    head = f"# {inline(report.title)}\n\nrecoque {__version__}; from {inline(', '.join(report.sources))}\n\n"
    return head + "\n".join(section(s, plots_dir) for s in report.sections)
