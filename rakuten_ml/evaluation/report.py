"""A Markdown evaluation report a reviewer can read in the MLflow UI."""

from __future__ import annotations

from collections.abc import Mapping

from rakuten_ml.evaluation.metrics import EvaluationReport
from rakuten_ml.labels import CLASS_NAMES, WEAK_CLASSES

HEADLINE_METRICS = (
    "accuracy", "f1_weighted", "f1_macro", "log_loss", "ece", "automation_rate", "accuracy_auto", "accuracy_review",
)


def markdown_report(
    report: EvaluationReport,
    *,
    title: str,
    context: Mapping[str, object],
    modality_reports: Mapping[str, EvaluationReport] | None = None,
    robustness: Mapping[str, float] | None = None,
) -> str:
    """Headline metrics, per-modality comparison, robustness, and per-class scores (weakest first)."""
    lines = [f"# {title}", ""]
    lines += [f"- **{key}**: {value}" for key, value in context.items()]
    lines += ["", "## Headline metrics", "", "| metric | value |", "| --- | --- |"]
    lines += [f"| {name} | {report.metrics[name]:.4f} |" for name in HEADLINE_METRICS if name in report.metrics]
    if modality_reports:
        lines += ["", "## By modality (same evaluation rows)", "", "| model | accuracy | weighted F1 | macro F1 | ECE |", "| --- | --- | --- | --- | --- |"]
        for name, sub in modality_reports.items():
            m = sub.metrics
            lines.append(f"| {name} | {m['accuracy']:.4f} | {m['f1_weighted']:.4f} | {m['f1_macro']:.4f} | {m['ece']:.4f} |")
    if robustness:
        lines += ["", "## Robustness (image perturbations, weighted F1)", "", "| perturbation | weighted F1 |", "| --- | --- |"]
        lines += [f"| {name} | {value:.4f} |" for name, value in robustness.items()]
    lines += ["", "## Per class (weakest F1 first; * = weak in the seed report)", "", "| code | name | precision | recall | F1 | support |", "| --- | --- | --- | --- | --- | --- |"]
    for code, scores in sorted(report.per_class.items(), key=lambda item: item[1]["f1"]):
        if scores["support"] == 0:
            continue
        mark = "*" if code in WEAK_CLASSES else ""
        lines.append(
            f"| {code}{mark} | {CLASS_NAMES[code]} | {scores['precision']:.3f} | {scores['recall']:.3f} | {scores['f1']:.3f} | {int(scores['support'])} |"
        )
    return "\n".join(lines) + "\n"
