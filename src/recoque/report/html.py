"""One self-contained HTML file: inline CSS, plots as base64 PNG, no script, nothing fetched.

Every piece of text from a results or planner file goes through html.escape (quote=True).
"""
from __future__ import annotations

import base64
from html import escape

from recoque.report.model import Report, Section, Table

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1200px;
color:#1d2330;padding:0 1em;line-height:1.4}
h1{font-size:1.6em;border-bottom:2px solid #4c72b0;padding-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em;color:#2b4a80}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.85em}caption{text-align:left;font-weight:600;padding:.3em 0}
th,td{border:1px solid #d0d5de;padding:.25em .6em;vertical-align:top}th{background:#eef1f6;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}tr:nth-child(even) td{background:#f8f9fb}
figure{margin:1em 0}figcaption{font-size:.85em;color:#555}img{max-width:100%;height:auto;border:1px solid #e3e6ec}
.note{font-size:.8em;color:#666}.meta{color:#555;font-size:.9em}
"""


def _is_num(s: str) -> bool:
    t = s.replace(",", "").replace("%", "").strip()
    try:
        float(t)
        return True
    except ValueError:
        return False


def table(t: Table) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in t.columns)
    body = "".join("<tr>" + "".join(f'<td class="n">{escape(v)}</td>' if _is_num(v) else f"<td>{escape(v)}</td>"
                                    for v in row) + "</tr>\n" for row in t.rows)
    note = f'<p class="note">{escape(t.note)}</p>' if t.note else ""
    return (f"<table><caption>{escape(t.title)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>\n{body}</tbody></table>{note}\n")


def section(s: Section) -> str:
    parts = [f"<section><h2>{escape(s.title)}</h2>"]
    parts += [f"<p>{escape(p)}</p>" for p in s.paragraphs]
    parts += [table(t) for t in s.tables]
    if s.items:
        parts.append("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in s.items) + "</ul>")
    for p in s.plots:
        data = base64.b64encode(p.png).decode("ascii")
        parts.append(f'<figure><img alt="{escape(p.title)}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{escape(p.title)}</figcaption></figure>")
    parts.append("</section>")
    return "\n".join(parts)


def render(report: Report) -> str:
    from recoque import __version__

    body = "\n".join(section(s) for s in report.sections)
    files = ", ".join(report.sources)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{escape(report.title)}</title>"
            f"<style>{CSS}</style></head><body>\n<h1>{escape(report.title)}</h1>"
            f"<p class=\"meta\">recoque {escape(__version__)}; from {escape(files)}</p>\n{body}\n</body></html>\n")
