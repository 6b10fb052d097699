"""The run report (self-contained HTML) and the TRIPOD-style model card (Markdown and HTML).

Both are built from the run's metadata, so a card can be regenerated from a saved
model. Cards describe data in aggregate only (counts, names of columns), never rows.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["model_card", "report_files", "run_report"]

Block = str | tuple[Sequence[str], Sequence[Sequence[str]]]
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}"
    "img{max-width:100%;margin:.5rem}"
)
_INTENDED_USE = (
    "Research and development of clinical prediction models, and internal validation of such a model "
    "on data like its training data. It is not validated for clinical decision-making on individual "
    "patients; external validation on the target population is required before any clinical use."
)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _metric_rows(metrics: Mapping[str, Mapping[str, float]]) -> list[list[str]]:
    return [[n, _fmt(m["value"]), f"{_fmt(m['ci_low'])} to {_fmt(m['ci_high'])}"] for n, m in metrics.items()]


def _sections(meta: Mapping[str, Any]) -> list[tuple[str, list[Block]]]:
    data, task = meta["data"], meta["task"]
    metric_head = ["metric", "value", "95% CI (bootstrap)"]
    performance: list[Block] = [
        f"Evaluated on {data['n_test']} held-out rows ({data['split']}); "
        f"confidence intervals from {meta['n_bootstrap']} bootstrap resamples (seed {meta['seed']}).",
        (metric_head, _metric_rows(meta["metrics"])),
    ]
    if meta.get("cv_metrics"):
        performance += [
            f"{meta['cv_folds']}-fold cross-validation on the training rows (pooled out-of-fold):"
        ]
        performance += [(metric_head, _metric_rows(meta["cv_metrics"]))]
    calibration: list[Block]
    m = meta["metrics"]
    how = (
        f"calibrated ({meta.get('calibration')}, cross-validated)"
        if meta.get("calibrated")
        else "not recalibrated"
    )
    if task == "binary":
        calibration = [
            f"Probabilities are {how}. "
            f"Calibration slope {_fmt(m['calibration_slope']['value'])} (ideal 1), calibration-in-the-large "
            f"{_fmt(m['calibration_intercept']['value'])} (ideal 0), ECE {_fmt(m['ece']['value'])}, "
            f"Brier {_fmt(m['brier']['value'])}. See the calibration plot in the run report."
        ]
    elif task == "multiclass":
        calibration = [
            f"Probabilities calibrated: {bool(meta.get('calibrated'))} ({meta.get('calibration')})."
        ]
    elif task == "survival":
        calibration = [
            f"Integrated Brier score {_fmt(m['ibs']['value'])} "
            "(lower is better; 0.25 is an uninformative model)."
        ]
    else:
        calibration = ["See the residual and predicted-vs-observed plots in the run report."]
    limitations = list(meta.get("limitations") or []) or [
        "Validated internally on a random split of one data set only; performance on other sites, "
        "periods or populations is unknown.",
        "Linear effects on the scaled predictors; no interactions or non-linear terms were searched.",
        "Missing predictor values are imputed (median / most frequent) from the training rows.",
    ]
    violated = [name for name, row in meta.get("ph_test", {}).items() if row["p"] < 0.05]
    if violated:
        limitations.append(
            f"Proportional hazards questionable (Schoenfeld test p < 0.05) for: {', '.join(violated)}."
        )
    spec: list[Block] = [f"{meta['model']} ({meta['estimator']}), parameters: {meta['params']}."]
    if meta.get("hazard_ratios"):
        rows = [
            [k, _fmt(v["hazard_ratio"]), f"{_fmt(v['ci_low'])} to {_fmt(v['ci_high'])}", _fmt(v["p"])]
            for k, v in meta["hazard_ratios"].items()
        ]
        spec.append((["predictor (per SD)", "hazard ratio", "95% CI", "p"], rows))
    if meta.get("ph_test"):
        rows = [[k, _fmt(v["statistic"]), _fmt(v["p"])] for k, v in meta["ph_test"].items()]
        spec += [
            "Proportional-hazards check (Schoenfeld residuals, rank time):",
            (["predictor", "statistic", "p"], rows),
        ]
    if meta.get("architecture"):
        spec.append(f"Architecture: {meta['architecture']}.")
    for index, run in enumerate(meta.get("training", [])):
        kept = run["epochs"][run["best_epoch"] - 1] if run["best_epoch"] else None
        spec.append(
            f"Network {index + 1}: {len(run['epochs'])} epochs"
            + (" (stopped early)" if run["stopped_early"] else "")
            + (
                f", kept epoch {run['best_epoch']} (validation {run['score_name']} {_fmt(kept['val_score'])})"
                if kept and kept["val_score"] is not None
                else ""
            )
            + "."
        )
    if meta.get("network"):
        network = meta["network"]
        spec.append(
            f"Ensemble members kept on validation: {', '.join(network['members'])}; "
            f"epochs per network {network['epochs']}; validation scores {network['validation_scores']}."
        )
    if meta.get("explanation_note"):
        spec.append(str(meta["explanation_note"]))
    if meta.get("coefficients"):
        spec.append(
            (["feature (scaled)", "coefficient"], [[k, _fmt(v)] for k, v in meta["coefficients"].items()])
        )
    return [
        ("Intended use", [meta.get("intended_use") or _INTENDED_USE]),
        (
            "Data",
            [
                f"Source file `{data['file']}` (sha256 `{data['fingerprint']}`), {data['n_rows']} rows: "
                f"{data['n_train']} for training, {data['n_test']} for testing ({data['split']})."
            ],
        ),
        (
            "Predictors",
            [
                f"{len(data['predictors'])} column{'' if len(data['predictors']) == 1 else 's'}: "
                f"{', '.join(data['predictors'])}. "
                + (
                    meta.get("predictors_note")
                    or "Numeric ones are median-imputed and standardised; text ones one-hot encoded."
                )
            ],
        ),
        ("Outcome", [f"{', '.join(data['outcome'])} ({task}). {data.get('outcome_summary', '')}"]),
        ("Model", spec),
        ("Performance", performance),
        ("Calibration", calibration),
        ("Limitations", [" ".join(limitations)]),
        (
            "Provenance",
            [
                f"Created {meta['created']} in {meta['seconds']:.2f} s; libraries: "
                + ", ".join(f"{k} {v}" for k, v in meta["libraries"].items())
            ],
        ),
        *_quality_section(meta.get("quality")),
    ]


def _quality_section(quality: Mapping[str, Any] | None) -> list[tuple[str, list[Block]]]:
    """The data-quality findings of the training table (``--quality warn``); rows, never values."""
    if not quality or quality.get("mode") == "off":
        return []
    findings = quality.get("findings", [])
    head = f"Checked with catalogue {quality['catalogue_version']} ({quality['mode']} mode): "
    if not findings:
        return [("Data quality", [head + "no check failed."])]
    rows = [
        [
            f["check"],
            f["severity"],
            str(f["column"] or "-"),
            str(f["count"]),
            ", ".join(str(e["row"]) for e in f["examples"]),
        ]
        for f in findings
    ]
    return [
        (
            "Data quality",
            [
                head + f"{len(findings)} failed.",
                (["check", "severity", "column", "count", "example rows"], rows),
            ],
        )
    ]


def _markdown(blocks: list[Block]) -> str:
    out = []
    for block in blocks:
        if isinstance(block, str):
            out.append(block)
        else:
            head, rows = block
            lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            out.append("\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]))
    return "\n\n".join(out)


def _html_blocks(blocks: list[Block]) -> str:
    out = []
    for block in blocks:
        if isinstance(block, str):
            out.append(f"<p>{html.escape(block)}</p>")
        else:
            head, rows = block
            cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
            out.append(f"<table><tr>{cells}</tr>{body}</table>")
    return "\n".join(out)


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )


def model_card(meta: Mapping[str, Any]) -> tuple[str, str]:
    """The model card as ``(markdown, html)``, sections after the TRIPOD checklist."""
    title = f"Model card: {meta['model_id']}"
    sections = _sections(meta)
    markdown = f"# {title}\n\n" + "\n\n".join(f"## {name}\n\n{_markdown(b)}" for name, b in sections) + "\n"
    body = "".join(f"<h2>{html.escape(name)}</h2>{_html_blocks(b)}" for name, b in sections)
    return markdown, _page(title, body)


def run_report(meta: Mapping[str, Any], plots: Mapping[str, bytes]) -> str:
    """One self-contained HTML page: summary, metrics, model details and inlined plots."""
    images = "".join(
        f"<figure><img alt='{html.escape(name)}' "
        f"src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        f"<figcaption>{html.escape(name.replace('_', ' '))}</figcaption></figure>"
        for name, png in plots.items()
    )
    body = "".join(f"<h2>{html.escape(n)}</h2>{_html_blocks(b)}" for n, b in _sections(meta)[1:7])
    if meta.get("explanation"):
        body += f"<h2>Explanations</h2>{_html_blocks(_explanation_blocks(meta['explanation']))}"
    return _page(f"Training report: {meta['model_id']}", body + "<h2>Plots</h2>" + images)


def _explanation_blocks(summary: Mapping[str, Any]) -> list[Block]:
    """Global importance and example cases from the ``explanation`` metadata entry."""
    if summary.get("method") == "grad_cam":
        cases = [
            [str(r["row"]), _fmt(r["prediction"]), f"row {r['peak'][0]}, column {r['peak'][1]}"]
            for r in summary["rows"]
        ]
        return [
            f"Grad-CAM on the first {summary['n_rows']} test images (`medfusion explain` draws the maps).",
            (["test image", "probability of the predicted class", "Grad-CAM peak (pixel)"], cases),
        ]
    importance = sorted(summary["global_importance"].items(), key=lambda item: -item[1])
    blocks: list[Block] = [
        f"{summary['method']} on {summary['n_rows']} test rows, in {summary['output']} units; "
        f"base value (the output at the training mean) {_fmt(summary['base_value'])}. "
        "Each row's contributions sum to its prediction minus the base value.",
        (["feature", "mean |contribution|"], [[name, _fmt(value)] for name, value in importance]),
    ]
    cases = []
    for row in summary["rows"]:
        top = sorted(row["contributions"].items(), key=lambda item: -abs(item[1]))[:3]
        drivers = ", ".join(f"{name} {value:+.3g}" for name, value in top)
        cases.append([str(row["row"]), _fmt(row["prediction"]), drivers])
    if cases:
        blocks += ["Example test rows (largest contributions first):"]
        blocks.append((["test row", "prediction", "top contributions"], cases))
    return blocks


def report_files(plots: Mapping[str, bytes]) -> Callable[[Mapping[str, Any]], dict[str, bytes]]:
    """The files a training run saves beside its model: PNG plots, model card, HTML report.

    Returns a function of the saved record (the registry fills in id and version first).
    """

    def files(record: Mapping[str, Any]) -> dict[str, bytes]:
        markdown, card_html = model_card(record)
        out = {f"plots/{name}.png": png for name, png in plots.items()}
        out["model_card.md"] = markdown.encode()
        out["model_card.html"] = card_html.encode()
        out["report.html"] = run_report(record, plots).encode()
        return out

    return files
