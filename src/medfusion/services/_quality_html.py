"""Self-contained HTML quality reports (a bar chart inlined as a base64 PNG; no scripts, no links).

One page for a table (findings per check and column with example rows) and one for record
checks (a row per finding): the record store, images and series.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence

from medfusion.quality import CheckResult, Finding, ItemReport, QualityReport, RecordFinding, StoreReport

__all__ = ["render_html", "render_items_html", "render_store_html"]

HTML_FINDINGS = 500
_STYLE = """body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"""


def _chart(checks: Sequence[CheckResult]) -> bytes:
    """PNG bar chart of the failing share per check (red for errors, amber for warnings)."""
    import matplotlib

    matplotlib.use("Agg", force=True)  # no display on servers and in CI
    from matplotlib import pyplot as plt

    names = [c.name for c in checks]
    shares = [100.0 * c.failed / c.checked if c.checked else 0.0 for c in checks]
    colours = [
        "#c0392b" if not c.passed and c.severity == "error" else "#e67e22" if not c.passed else "#7f8c8d"
        for c in checks
    ]
    fig, ax = plt.subplots(figsize=(7.0, 0.45 * len(names) + 1.2), dpi=100)
    try:
        ax.barh(names[::-1], shares[::-1], color=colours[::-1])
        ax.set_xlabel("failing cells or rows (% of checked)")
        ax.set_title("data quality by check")
        buffer = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def _check_table(checks: Sequence[CheckResult]) -> str:
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(c.name)}</td><td>{c.category}</td><td>{c.severity}</td><td>{c.threshold:g}</td>"
        f"<td>{c.failed:,}</td><td>{c.checked:,}</td><td>{'pass' if c.passed else 'FAIL'}</td></tr>"
        for c in checks
    )
    return (
        "<h2>Checks</h2><table><tr><th>check</th><th>category</th><th>severity</th><th>threshold</th>"
        f"<th>failed</th><th>checked</th><th>result</th></tr>{rows}</table>"
    )


def render_html(report: QualityReport, *, title: str) -> str:
    """A self-contained HTML report of a table check (chart inlined as a base64 PNG)."""
    image = base64.b64encode(_chart(report.checks)).decode("ascii")
    esc = html.escape

    def examples(finding: Finding) -> str:
        pairs = zip(finding.rows[:5], finding.values[:5], strict=True)
        return esc(", ".join(f"row {row}: {value!r}" for row, value in pairs))

    finding_rows = "".join(
        f"<tr><td>{esc(f.check)}</td><td>{f.severity}</td><td>{esc(str(f.column or ''))}</td>"
        f"<td>{f.count:,}</td><td>{esc(f.message)}</td>"
        f"<td>{examples(f)}</td></tr>"
        for f in report.findings
    )
    verdict = "passed" if report.passed else "FAILED (error-severity checks failed)"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>{_STYLE}</style></head><body>
<h1>{esc(title)}</h1>
<p>catalogue {esc(report.catalogue_version)}; {report.rows:,} rows, {report.columns} columns; {verdict}</p>
<img alt="failing share per check" src="data:image/png;base64,{image}">
{_check_table(report.checks)}
<h2>Findings</h2><table><tr><th>check</th><th>severity</th><th>column</th><th>count</th>
<th>message</th><th>examples</th></tr>{finding_rows}</table>
</body></html>
"""


def _records_page(
    *,
    title: str,
    subtitle: str,
    passed: bool,
    checks: Sequence[CheckResult],
    findings: Sequence[RecordFinding],
    headers: tuple[str, str],
    extra: str = "",
) -> str:
    image = base64.b64encode(_chart(checks)).decode("ascii")
    esc = html.escape
    shown = findings[:HTML_FINDINGS]
    finding_rows = "".join(
        f"<tr><td>{esc(f.check)}</td><td>{f.severity}</td><td>{esc(str(f.row))}</td>"
        f"<td>{esc(f.column or '')}</td>"
        f"<td>{esc(repr(f.value)) if f.value is not None else ''}</td><td>{esc(f.message)}</td></tr>"
        for f in shown
    )
    more = (
        f"<p>{len(findings) - len(shown):,} more findings are in quality.json.</p>"
        if len(findings) > len(shown)
        else ""
    )
    verdict = "passed" if passed else "FAILED (error-severity checks failed)"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>{_STYLE}</style></head><body>
<h1>{esc(title)}</h1>
<p>{esc(subtitle)}; {verdict}</p>
<img alt="failing share per check" src="data:image/png;base64,{image}">
{_check_table(checks)}{extra}
<h2>Findings</h2><table><tr><th>check</th><th>severity</th><th>{headers[0]}</th><th>{headers[1]}</th>
<th>value</th><th>message</th></tr>{finding_rows}</table>{more}
</body></html>
"""


def render_store_html(report: StoreReport, *, title: str) -> str:
    """A self-contained HTML report of a store check (chart inlined as a base64 PNG)."""
    return _records_page(
        title=title,
        subtitle=f"catalogue {report.catalogue_version}; {report.resources:,} resources",
        passed=report.passed,
        checks=report.checks,
        findings=report.findings,
        headers=("resource", "element"),
    )


def _labels_table(labels: dict[str, dict[str, int]]) -> str:
    """Class counts per split, with shares."""
    if not labels:
        return ""
    esc = html.escape
    classes = sorted({c for counts in labels.values() for c in counts})
    head = "".join(f"<th>{esc(c)}</th>" for c in classes)
    rows = ""
    for split, counts in labels.items():
        total = sum(counts.values()) or 1
        cells = "".join(
            f"<td>{counts.get(c, 0):,} ({100 * counts.get(c, 0) / total:.1f} %)</td>" for c in classes
        )
        rows += f"<tr><td>{esc(split or 'all')}</td>{cells}<td>{sum(counts.values()):,}</td></tr>"
    return f"<h2>Class balance</h2><table><tr><th>split</th>{head}<th>total</th></tr>{rows}</table>"


def render_items_html(report: ItemReport, *, title: str) -> str:
    """A self-contained HTML report of an image or series check, with the class balance."""
    noun = {"image": "images", "series": "series"}.get(report.kind, "items")
    details = ", ".join(
        f"{k} {v}" for k, v in report.summary.items() if k != "labels" and not isinstance(v, dict)
    )
    subtitle = f"catalogue {report.catalogue_version}; {report.items:,} {noun}" + (
        f" ({details})" if details else ""
    )
    where = ("image", "column") if report.kind == "image" else ("series / stay", "variable")
    return _records_page(
        title=title,
        subtitle=subtitle,
        passed=report.passed,
        checks=report.checks,
        findings=report.findings,
        headers=where,
        extra=_labels_table(report.summary.get("labels", {})),
    )
