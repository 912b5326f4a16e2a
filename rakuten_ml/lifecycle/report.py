"""The life cycle's record for people: a console timeline and one self-contained HTML report.

:func:`timeline_text` is what ``make demo`` prints; :func:`write_html_report` is the page a reviewer opens
afterwards. The page needs nothing beside itself (plots are inline PNG, styles inline, no script, no
network), so it can be mailed or attached to a CI run. Every section renders, with a "no data yet" line,
when its data is empty: a report of a demo that failed on day 2 is the one most worth reading.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import matplotlib.dates as mdates  # importing it registers the date converters the drift plot's axis needs
import sqlalchemy as sa
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from rakuten_ml.lifecycle.timeline import TRIGGER_REST, Step, Timeline
from rakuten_ml.monitoring import (
    METRIC_CONCEPT,
    METRIC_CONFIDENCE,
    METRIC_DATA,
    METRIC_ESTIMATED,
    METRIC_PREDICTION,
    RULE_METRICS,
    STATUS_ALERT,
    STATUS_DRIFT,
)
from rakuten_ml.promotion.aliases import PREVIOUS_CHAMPION
from rakuten_ml.promotion.routing import CHALLENGER, CHAMPION
from rakuten_ml.storage.database import drift_checks, promotion_events

log = logging.getLogger(__name__)

CONSOLE_WIDTH = 140
ELLIPSIS = "…"
NO_DATA = "no data yet"
AB_DAG_ID = "evaluate_ab_test"
AB_TASK_ID = "evaluate_ab"
PREVIOUS = PREVIOUS_CHAMPION
CHAMPION_ACTIONS = frozenset({"promote", "rollback"})  # the audit actions whose to_version becomes champion
ACTION_COLOURS = {"promote": "#1a7f37", "reject": "#cf222e", "keep_testing": "#57606a"}

# --------------------------------------------------------------------------------------------- shared


def _version(value: Any) -> str:
    """'v3' for a version, '-' for an alias that points nowhere."""
    return "-" if value in (None, "") else f"v{value}"


def alias_text(aliases: Mapping[str, str | None]) -> str:
    """'champion v2, challenger -' (and ', previous v1' once a previous champion exists)."""
    parts = [f"champion {_version(aliases.get(CHAMPION))}", f"challenger {_version(aliases.get(CHALLENGER))}"]
    if aliases.get(PREVIOUS):
        parts.append(f"previous {_version(aliases.get(PREVIOUS))}")
    return ", ".join(parts)


def short_trigger(trigger: str) -> str:
    """The trigger as a console cell: the REST form's long label and asset URIs shortened."""
    if trigger == TRIGGER_REST:
        return "REST API"
    if trigger.startswith("asset event "):
        return "asset " + trigger.removeprefix("asset event ").split("://", 1)[-1]
    return trigger


def truncate(text: Any, width: int) -> str:
    """One line of at most ``width`` characters; a cut ends in an ellipsis so the reader knows."""
    line = re.sub(r"\s+", " ", str(text)).strip()
    if len(line) <= width:
        return line
    return line[: max(width - 1, 0)] + ELLIPSIS


def _number(value: Any) -> float | None:
    """A finite float, or None: XCom JSON and database rows carry None (and the odd NaN) for "unknown"."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _fmt(value: Any, digits: int = 3) -> str:
    number = _number(value)
    return "-" if number is None else f"{number:.{digits}f}"


# --------------------------------------------------------------------------------------------- console

# (header, cap on the column's width, right-aligned); the outcome column takes what is left of the line.
_CONSOLE_COLUMNS: tuple[tuple[str, int, bool], ...] = (
    ("day", 4, True),
    ("DAG", 20, False),
    ("trigger", 22, False),
    ("state", 8, False),
    ("champ/chall/prev", 17, False),
    ("outcome", 0, False),  # last: it wraps
)
_OUTCOME_MIN = 24


def _console_cells(step: Step) -> list[str]:
    return [str(step.day), step.dag_id, short_trigger(step.trigger), step.state, compact_aliases(step.aliases), step.outcome]


def compact_aliases(aliases: Mapping[str, str | None]) -> str:
    """'v2 / v3 / v1': champion / challenger / previous-champion, so the outcome keeps the line's width."""
    return " / ".join(_version(aliases.get(alias)) for alias in (CHAMPION, CHALLENGER, PREVIOUS))


def _console_widths(rows: Sequence[Sequence[str]]) -> list[int]:
    """Each column as wide as its widest cell (capped); the outcome gets the rest of the 140 columns."""
    widths = []
    for index, (header, cap, _) in enumerate(_CONSOLE_COLUMNS):
        natural = max([len(header)] + [len(truncate(row[index], 10_000)) for row in rows])
        widths.append(min(natural, cap) if cap else natural)
    outcome = len(_CONSOLE_COLUMNS) - 1  # the last column, so its continuation lines need no padding after
    budget = CONSOLE_WIDTH - sum(w for i, w in enumerate(widths) if i != outcome) - 2 * (len(widths) - 1)
    widths[outcome] = max(_OUTCOME_MIN, min(widths[outcome], budget))
    return widths


def _console_line(cells: Sequence[str], widths: Sequence[int]) -> str:
    parts = []
    for cell, width, (_, _, right) in zip(cells, widths, _CONSOLE_COLUMNS, strict=True):
        text = truncate(cell, width)
        parts.append(text.rjust(width) if right else text.ljust(width))
    return "  ".join(parts).rstrip()


def timeline_text(timeline: Timeline) -> str:
    """The story as a fixed-width table, one DAG run per row, at most 140 columns wide; a long outcome wraps
    onto continuation lines under its column (aliases: champion / challenger / previous-champion)."""
    rows = [_console_cells(step) for step in timeline.steps]
    widths = _console_widths(rows)
    lines = [_console_line([h for h, _, _ in _CONSOLE_COLUMNS], widths), "  ".join("-" * w for w in widths)]
    for row in rows:
        first, *rest = textwrap.wrap(re.sub(r"\s+", " ", row[-1]).strip(), widths[-1]) or [""]
        lines.append(_console_line([*row[:-1], first], widths))
        lines += [" " * (sum(widths[:-1]) + 2 * (len(widths) - 1)) + more for more in rest]
    if not rows:
        lines.append(f"({NO_DATA}: no DAG runs)")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- html helpers


def _esc(value: Any) -> str:
    return html.escape("-" if value is None else str(value))


def _table(headers: Sequence[str], rows: Iterable[tuple[Sequence[Any], str]], css: str = "") -> str:
    """An HTML table; each row comes with its CSS class ('' for none). Cells are escaped here."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = []
    for cells, row_css in rows:
        attr = f' class="{row_css}"' if row_css else ""
        body.append(f"<tr{attr}>" + "".join(f"<td>{_esc(c)}</td>" for c in cells) + "</tr>")
    table_attr = f' class="{css}"' if css else ""
    return f"<table{table_attr}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _no_data(what: str = "") -> str:
    return f'<p class="empty">{_esc(NO_DATA + (f": {what}" if what else ""))}</p>'


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{_esc(title)}</h2>{body}</section>'


def _figure(width: float = 12.0, height: float = 4.0) -> Figure:
    """A figure on its own Agg canvas: no pyplot, so no global backend switch and no GUI in a worker."""
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure, alt: str) -> str:
    """The figure as an inline base64 PNG ``<img>``: the page stays one file."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}" alt="{_esc(alt)}">'


def _version_key(version: Any) -> tuple[int, float, str]:
    """Numeric versions in numeric order ('10' after '9'), anything else after them by name."""
    number = _number(version)
    return (0, number, "") if number is not None else (1, 0.0, str(version))


def _read(engine: Engine, statement: sa.Select[Any], what: str) -> tuple[list[dict[str, Any]], str | None]:
    """The rows, or none and why: a missing or unreachable table must cost its section, not the report."""
    try:
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(statement)], None
    except SQLAlchemyError as exc:
        log.warning("report: cannot read %s: %s", what, exc)
        return [], f"cannot read {what}: {type(exc).__name__}"


# --------------------------------------------------------------------------------------------- timeline


def _task_summary(tasks: Mapping[str, str]) -> str:
    """'5 tasks ok', or the tasks that did not succeed: where to look in the Airflow UI."""
    bad = [f"{task}: {state}" for task, state in tasks.items() if state not in ("success", "skipped")]
    if bad:
        return ", ".join(bad)
    return f"{len(tasks)} tasks ok" if tasks else "-"


def _runs_plot(steps: Sequence[Step]) -> str:
    """Which DAG ran on which simulated day, failures in red: the month at a glance."""
    dags = sorted({s.dag_id for s in steps})
    figure = _figure(12.0, 0.45 * len(dags) + 1.4)
    ax = figure.add_subplot()
    for ok, colour, label in ((True, "#2da44e", "success"), (False, "#cf222e", "not successful")):
        chosen = [s for s in steps if (s.state == "success") == ok]
        if chosen:
            ax.scatter([s.day for s in chosen], [dags.index(s.dag_id) for s in chosen], c=colour, s=60,
                       marker="o" if ok else "X", label=label, zorder=3)
    ax.set_yticks(range(len(dags)), dags)
    ax.set_xlabel("simulated day")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(figure, "DAG runs per simulated day")


def timeline_section(timeline: Timeline) -> str:
    """Every DAG run with its run id, failed ones highlighted."""
    steps = timeline.steps
    if not steps:
        return _section("timeline", "Timeline", _no_data("no DAG runs"))
    failed = timeline.failed()
    summary = f"<p>{len(steps)} DAG runs, {len(failed)} not successful.</p>"
    rows = [
        ((s.day, s.date, s.dag_id, s.run_id, s.trigger, s.state, s.outcome, alias_text(s.aliases), _task_summary(s.tasks)),
         "failed" if s.state != "success" else "")
        for s in steps
    ]
    table = _table(("day", "date", "DAG", "run id", "trigger", "state", "outcome", "aliases after", "tasks"), rows, "timeline")
    return _section("timeline", "Timeline", summary + _runs_plot(steps) + table)


def _notes_section(notes: Sequence[str]) -> str:
    body = "<ul>" + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul>" if notes else _no_data("no notes")
    return _section("notes", "Notes", body)


# --------------------------------------------------------------------------------------------- model quality


def live_accuracy(traffic: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """Version -> [(day, live accuracy)], from the days of traffic that labelled its predictions."""
    series: dict[str, list[tuple[int, float]]] = {}
    for record in traffic:
        day = record.get("day")
        for version, accuracy in (record.get("accuracy_by_version") or {}).items():
            value = _number(accuracy)
            if day is not None and value is not None:
                series.setdefault(str(version), []).append((int(day), value))
    return {v: sorted(points) for v, points in series.items()}


def _quality_plot(versions: Sequence[Mapping[str, Any]], live: Mapping[str, list[tuple[int, float]]]) -> str | None:
    """Validation accuracy / weighted F1 where each version was created, live accuracy day by day after."""
    names = sorted({str(v.get("version")) for v in versions} | set(live), key=_version_key)
    offline = [v for v in versions if v.get("created_day") is not None
               and (_number(v.get("accuracy")) is not None or _number(v.get("f1_weighted")) is not None)]
    if not offline and not live:
        return None
    figure = _figure(12.0, 4.5)
    ax = figure.add_subplot()
    colours = {name: f"C{i % 10}" for i, name in enumerate(names)}
    for v in offline:
        name, day = str(v.get("version")), int(v["created_day"])
        for key, marker, label in (("accuracy", "o", "validation accuracy"), ("f1_weighted", "s", "validation weighted F1")):
            value = _number(v.get(key))
            if value is not None:
                ax.scatter([day], [value], color=colours[name], marker=marker, s=70, edgecolors="black", zorder=3,
                           label=f"v{name} {label}")
    for name, points in live.items():
        ax.plot([d for d, _ in points], [a for _, a in points], color=colours[name], marker=".", label=f"v{name} live accuracy")
    ax.set_xlabel("simulated day")
    ax.set_ylabel("accuracy / weighted F1")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return _png(figure, "accuracy and weighted F1 per model version")


def _traffic_rows(traffic: Sequence[Mapping[str, Any]]) -> list[tuple[list[Any], str]]:
    rows = []
    for t in traffic:
        by_version = t.get("by_version") or {}
        accuracy = t.get("accuracy_by_version") or {}
        shares = ", ".join(f"v{v}: {n}" for v, n in sorted(by_version.items(), key=lambda i: _version_key(i[0])))
        accs = ", ".join(f"v{v}: {_fmt(a)}" for v, a in sorted(accuracy.items(), key=lambda i: _version_key(i[0])))
        cells = [t.get("day"), t.get("requests"), t.get("predictions"), t.get("feedback"), t.get("errors"),
                 _fmt(t.get("seconds"), 1), shares or "-", accs or "-"]
        rows.append((cells, "failed" if (t.get("errors") or 0) else ""))
    return rows


def quality_section(versions: Sequence[Mapping[str, Any]], traffic: Sequence[Mapping[str, Any]]) -> str:
    """The registry's validation metrics per version and the live accuracy the traffic measured."""
    if not versions and not traffic:
        return _section("quality", "Model quality", _no_data("no model version and no live traffic"))
    live = live_accuracy(traffic)
    plot = _quality_plot(versions, live) or _no_data("no accuracy to plot")
    ordered = sorted(versions, key=lambda v: _version_key(v.get("version")))
    version_rows = [
        ((f"v{v.get('version')}", v.get("created_day"), _fmt(v.get("accuracy")), _fmt(v.get("f1_weighted")),
          ", ".join(v.get("aliases") or []) or "-", v.get("gate")), "")
        for v in ordered
    ]
    body = [plot, "<h3>Registered versions</h3>"]
    body.append(_table(("version", "created day", "validation accuracy", "weighted F1", "aliases", "gate"), version_rows)
                if version_rows else _no_data("no registered version"))
    body.append("<h3>Live traffic</h3>")
    body.append(_table(("day", "requests", "predictions", "feedback", "errors", "seconds", "predictions per version",
                        "live accuracy per version"), _traffic_rows(traffic)) if traffic else _no_data("no live traffic"))
    return _section("quality", "Model quality", "".join(body))


# --------------------------------------------------------------------------------------------- drift

_DRIFT_TITLES = {
    METRIC_DATA: "data drift: share of drifted features",
    METRIC_PREDICTION: "prediction drift: KL(predicted classes || reference)",
    METRIC_CONFIDENCE: "mean confidence (alert below)",
    METRIC_CONCEPT: "concept drift: accuracy on feedback (alert below)",
    METRIC_ESTIMATED: "label-free estimate of accuracy on the scored catalogue (alert below)",
}


def read_drift_checks(engine: Engine) -> tuple[list[dict[str, Any]], str | None]:
    """The rule rows of ``drift_checks`` (not the per-feature KS rows), oldest day first."""
    statement = (
        sa.select(drift_checks.c.check_date, drift_checks.c.model_version, drift_checks.c.metric, drift_checks.c.feature,
                  drift_checks.c.statistic, drift_checks.c.p_value, drift_checks.c.threshold, drift_checks.c.status,
                  drift_checks.c.details)
        .where(drift_checks.c.metric.in_(RULE_METRICS))  # bound as parameters, like every value here
        .order_by(drift_checks.c.check_date, drift_checks.c.model_version, drift_checks.c.metric)
    )
    return _read(engine, statement, "drift_checks")


def drift_value(row: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(value, threshold) as the rule compares them.

    Under Bonferroni the data-drift row's threshold is the corrected alpha, compared with the smallest KS
    p-value, not with the share of drifted features the statistic column holds.
    """
    details = row.get("details") or {}
    if row.get("metric") == METRIC_DATA and isinstance(details, Mapping) and details.get("method") == "bonferroni":
        return _number(row.get("p_value")), _number(row.get("threshold"))
    return _number(row.get("statistic")), _number(row.get("threshold"))


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def alert_days(rows: Sequence[Mapping[str, Any]]) -> list[date]:
    """The check dates on which any rule raised an alert."""
    return sorted({d for r in rows if r.get("status") == STATUS_ALERT and (d := _as_date(r.get("check_date"))) is not None})


def _drift_axis(ax: Axes, metric: str, rows: Sequence[Mapping[str, Any]], alerts: Sequence[date]) -> None:
    """One rule: its statistic per model version, its threshold dashed, drift orange, alerts red."""
    for n, alert_day in enumerate(alerts):
        day: Any = alert_day  # matplotlib converts dates at run time; its stubs only name floats
        ax.axvline(day, color="#cf222e", alpha=0.18, linewidth=10, label="alert day" if n == 0 else None)
    for i, version in enumerate(sorted({str(r.get("model_version")) for r in rows}, key=_version_key)):
        mine = [r for r in rows if str(r.get("model_version")) == version]
        days: list[Any] = [_as_date(r.get("check_date")) for r in mine]
        values = [drift_value(r) for r in mine]
        ax.plot(days, [v if v is not None else math.nan for v, _ in values], marker="o", color=f"C{i % 10}", label=f"v{version}")
        ax.step(days, [t if t is not None else math.nan for _, t in values], where="mid", linestyle="--", color=f"C{i % 10}",
                alpha=0.7, label=f"v{version} threshold")
        for status, colour, marker in ((STATUS_DRIFT, "#bf8700", "D"), (STATUS_ALERT, "#cf222e", "X")):
            hits = [(d, v) for d, (v, _), r in zip(days, values, mine, strict=True) if r.get("status") == status and v is not None]
            if hits:
                ax.scatter([d for d, _ in hits], [v for _, v in hits], color=colour, marker=marker, s=90, zorder=4, label=status)
    bonferroni = any(isinstance(r.get("details"), Mapping) and r["details"].get("method") == "bonferroni" for r in rows)
    title = "data drift: smallest KS p-value (Bonferroni)" if metric == METRIC_DATA and bonferroni else _DRIFT_TITLES[metric]
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, math.ceil(_span_days(rows) / 10))))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
    ax.tick_params(axis="x", labelrotation=30, labelsize="small")


def _span_days(rows: Sequence[Mapping[str, Any]]) -> int:
    """How many days the checks cover: one tick a day up to ten days, sparser after (never hours)."""
    days = [d for r in rows if (d := _as_date(r.get("check_date"))) is not None]
    return (max(days) - min(days)).days + 1 if days else 1


def _drift_plot(rows: Sequence[Mapping[str, Any]]) -> str | None:
    by_metric = {m: [r for r in rows if r.get("metric") == m] for m in RULE_METRICS}
    shown = [m for m in RULE_METRICS if any(drift_value(r)[0] is not None for r in by_metric[m])]
    if not shown:
        return None
    alerts = alert_days(rows)
    columns = 2 if len(shown) > 1 else 1
    rows_n = math.ceil(len(shown) / columns)
    figure = _figure(12.0, 3.4 * rows_n)
    for index, metric in enumerate(shown):
        _drift_axis(figure.add_subplot(rows_n, columns, index + 1), metric, by_metric[metric], alerts)
    return _png(figure, "drift statistics against their thresholds")


def _drift_cell(row: Mapping[str, Any] | None) -> str:
    if row is None:
        return "-"
    value, threshold = drift_value(row)
    return f"{_fmt(value)} / {_fmt(threshold)} {row.get('status')}"


def _drift_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line per check date and version: each rule's value / threshold and status; alert days highlighted."""
    keyed: dict[tuple[Any, str], dict[str, Mapping[str, Any]]] = {}
    for r in rows:
        keyed.setdefault((r.get("check_date"), str(r.get("model_version"))), {})[str(r.get("metric"))] = r
    lines = []
    for (check_date, version), metrics in keyed.items():
        alert = any(m.get("status") == STATUS_ALERT for m in metrics.values())
        lines.append(([check_date, f"v{version}"] + [_drift_cell(metrics.get(m)) for m in RULE_METRICS], "alert" if alert else ""))
    return _table(("check date", "model version", "data drift", "prediction drift", "confidence", "concept"), lines)


def drift_section(rows: Sequence[Mapping[str, Any]], error: str | None = None) -> str:
    """The daily drift rules against their thresholds, alert days marked."""
    if not rows:
        return _section("drift", "Drift checks", _no_data(error or "no drift check has run"))
    alerts = alert_days(rows)
    summary = (f"<p>Alert days: {_esc(', '.join(d.isoformat() for d in alerts))}.</p>" if alerts
               else "<p>No alert raised.</p>")
    plot = _drift_plot(rows) or _no_data("every check had too little data for a statistic")
    legend = "<p class=\"hint\">Cells: value / threshold, then the status.</p>"
    return _section("drift", "Drift checks", summary + plot + legend + _drift_table(rows))


# --------------------------------------------------------------------------------------------- A/B tests


@dataclass(frozen=True)
class ABRecord:
    """One evaluate_ab_test run: its decision (None when it could not decide) and why."""

    day: int
    run_id: str
    state: str
    action: str | None
    message: str
    champion: Mapping[str, Any] | None
    challenger: Mapping[str, Any] | None
    test: str | None = None  # the test that decided (paired or split, sequential or fixed)
    n_labels: int = 0
    paired: Mapping[str, Any] | None = None  # the shadow-scored labelled products' counts

    @property
    def decided(self) -> bool:
        return self.champion is not None and self.challenger is not None


def ab_records(timeline: Timeline) -> list[ABRecord]:
    """The A/B decisions, from the return value of each evaluate_ab_test run's evaluate_ab task."""
    records = []
    for step in timeline.steps:
        if step.dag_id != AB_DAG_ID:
            continue
        result = step.results.get(AB_TASK_ID)
        result = result if isinstance(result, Mapping) else {}
        decision = result.get("decision")
        decision = decision if isinstance(decision, Mapping) else {}
        champion, challenger, paired = decision.get("champion"), decision.get("challenger"), decision.get("paired")
        records.append(ABRecord(
            step.day, step.run_id, step.state, decision.get("action") or result.get("action"),
            str(decision.get("reason") or result.get("message") or step.outcome),
            champion if isinstance(champion, Mapping) else None, challenger if isinstance(challenger, Mapping) else None,
            test=decision.get("test"), n_labels=int(decision.get("n_labels") or 0),
            paired=paired if isinstance(paired, Mapping) else None,
        ))
    return records


def _arm_bar(ax: Axes, x: float, arm: Mapping[str, Any], colour: str, label: str | None) -> None:
    """The arm's 95% interval; its accuracy as a dot only when it has labels (accuracy None otherwise)."""
    low, high, accuracy = _number(arm.get("ci95_low")), _number(arm.get("ci95_high")), _number(arm.get("accuracy"))
    if low is None or high is None:
        return
    centre = accuracy if accuracy is not None else (low + high) / 2
    ax.errorbar([x], [centre], yerr=[[max(centre - low, 0.0)], [max(high - centre, 0.0)]], fmt="o" if accuracy is not None else "none",
                color=colour, capsize=6, linewidth=2, markersize=7, label=label)
    ax.annotate(f"n={arm.get('n', '-')}", (x, high), textcoords="offset points", xytext=(0, 4), ha="center", fontsize="x-small")


def _ab_label(record: ABRecord) -> str:
    champion, challenger = (record.champion or {}).get("version"), (record.challenger or {}).get("version")
    return f"day {record.day}\n{_version(champion)} vs {_version(challenger)}\n{record.action or '-'}"


def _ab_plot(records: Sequence[ABRecord]) -> str | None:
    decided = [r for r in records if r.decided]
    if not decided:
        return None
    figure = _figure(max(6.0, min(14.0, 1.4 * len(decided) + 3)), 4.2)
    ax = figure.add_subplot()
    for i, record in enumerate(decided):
        _arm_bar(ax, i - 0.15, record.champion or {}, "C0", "champion" if i == 0 else None)
        _arm_bar(ax, i + 0.15, record.challenger or {}, "C1", "challenger" if i == 0 else None)
    labels = [_ab_label(r) for r in decided]
    ax.set_xticks(range(len(decided)), labels, fontsize="small")
    for tick, record in zip(ax.get_xticklabels(), decided, strict=True):
        tick.set_color(ACTION_COLOURS.get(record.action or "", "black"))
    ax.set_xlim(-0.6, len(decided) - 0.4)
    ax.set_ylim(0.0, 1.08)
    ax.set_ylabel("accuracy on labelled predictions (95% interval)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return _png(figure, "A/B test intervals per decision")


def _arm_cell(arm: Mapping[str, Any] | None) -> str:
    if arm is None:
        return "-"
    return (f"{_version(arm.get('version'))}: {_fmt(arm.get('accuracy'))} "
            f"[{_fmt(arm.get('ci95_low'))}, {_fmt(arm.get('ci95_high'))}], n={arm.get('n', '-')}")


def _paired_cell(paired: Mapping[str, Any] | None) -> str:
    if not paired:
        return "-"
    return (f"n={paired.get('n', 0)}: challenger alone right {paired.get('challenger_only', 0)}, "
            f"champion alone right {paired.get('champion_only', 0)}")


def ab_section(records: Sequence[ABRecord]) -> str:
    """Each A/B decision's two intervals and its action; runs without a decision say why."""
    if not records:
        return _section("ab", "A/B tests", _no_data("no evaluate_ab_test run"))
    plot = _ab_plot(records) or _no_data("no A/B decision yet")
    rows = [
        ((r.day, r.run_id, r.action or "no decision", f"{r.test} on {r.n_labels} labels" if r.test else "-",
          _paired_cell(r.paired), _arm_cell(r.champion), _arm_cell(r.challenger), r.message),
         "failed" if r.state != "success" else ("promote" if r.action == "promote" else ""))
        for r in records
    ]
    table = _table(("day", "run id", "action", "decided by", "paired (shadow) labels", "champion arm", "challenger arm", "reason"), rows)
    return _section("ab", "A/B tests", plot + table)


# --------------------------------------------------------------------------------------------- alias history


def read_promotion_events(engine: Engine) -> tuple[list[dict[str, Any]], str | None]:
    """The whole audit trail, oldest first (the event id breaks ties within one timestamp)."""
    statement = sa.select(promotion_events).order_by(promotion_events.c.at, promotion_events.c.event_id)
    return _read(engine, statement, "promotion_events")


def alias_states(events: Sequence[Mapping[str, Any]]) -> list[tuple[str | None, str | None]]:
    """(champion, challenger) after each event of one model, replayed from the audit actions."""
    champion: str | None = None
    challenger: str | None = None
    states = []
    for event in events:
        action, to_version = event.get("action"), event.get("to_version")
        if action in CHAMPION_ACTIONS and to_version is not None:
            champion = str(to_version)
            if challenger == champion:
                challenger = None
        elif action == "challenger_set" and to_version is not None:
            challenger = str(to_version)
        elif action == "reject":
            challenger = None
        states.append((champion, challenger))
    return states


def _alias_plot(events: Sequence[Mapping[str, Any]]) -> str | None:
    """Per model, the champion (solid) and challenger (dashed) version after each event, as steps."""
    models = sorted({str(e.get("model_name")) for e in events})
    numbered = list(enumerate(events, start=1))  # the table's numbers, shared by every model's line
    per_model = {m: [e for _, e in numbered if str(e.get("model_name")) == m] for m in models}
    numbers = {m: [n for n, e in numbered if str(e.get("model_name")) == m] for m in models}
    states = {m: alias_states(per_model[m]) for m in models}
    versions = sorted({v for s in states.values() for pair in s for v in pair if v is not None}, key=_version_key)
    if not versions:
        return None
    position = {v: i for i, v in enumerate(versions)}
    figure = _figure(12.0, 1.6 + 0.45 * len(versions))
    ax = figure.add_subplot()
    for i, model in enumerate(models):
        x = numbers[model]
        for slot, style, label in ((0, "-", "champion"), (1, ":", "challenger")):
            y = [math.nan if (v := s[slot]) is None else position[v] for s in states[model]]
            ax.step(x, y, where="post", linestyle=style, marker="o" if slot == 0 else ".", color=f"C{i % 10}",
                    linewidth=2.2 if slot == 0 else 1.4, label=f"{model} {label}")
    ax.set_yticks(range(len(versions)), [f"v{v}" for v in versions])
    ax.set_xlim(0.5, len(events) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("promotion event # (as in the table below)")
    ax.set_ylabel("version")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return _png(figure, "champion and challenger after each promotion event")


def _event_day(event: Mapping[str, Any], days: Mapping[str, int]) -> Any:
    return days.get(str(event.get("dag_run_id")), "-")


def alias_section(events: Sequence[Mapping[str, Any]], timeline: Timeline, error: str | None = None) -> str:
    """The audit trail of alias moves and verdicts, and which version was champion after each event."""
    if not events:
        return _section("aliases", "Alias history", _no_data(error or "no promotion event"))
    days = {s.run_id: s.day for s in timeline.steps}
    plot = _alias_plot(events) or _no_data("no alias has moved yet")
    rows = [
        ((n, _event_day(e, days), e.get("at"), e.get("model_name"), e.get("action"), _version(e.get("from_version")),
          _version(e.get("to_version")), e.get("actor"), e.get("dag_run_id"), e.get("reason")),
         str(e.get("action")) if e.get("action") in ("promote", "rollback", "gate_fail", "reject") else "")
        for n, e in enumerate(events, start=1)
    ]
    table = _table(("#", "day", "at", "model", "action", "from", "to", "actor", "DAG run", "reason"), rows)
    return _section("aliases", "Alias history", plot + table)


# --------------------------------------------------------------------------------------------- page

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem 2rem; color: #1f2328; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: 0.2rem; margin-top: 2.2rem; }
nav a { margin-right: 1rem; } img { max-width: 100%; display: block; margin: 0.8rem 0; }
table { border-collapse: collapse; font-size: 0.82rem; margin: 0.6rem 0; width: 100%; }
th, td { border: 1px solid #d0d7de; padding: 0.25rem 0.45rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } tr.failed td, tr.alert td, tr.gate_fail td { background: #ffebe9; }
table.timeline tr.failed td:nth-child(6) { color: #cf222e; font-weight: 600; }
table.timeline td:nth-child(2), table.timeline td:nth-child(1) { white-space: nowrap; }
tr.promote td { background: #dafbe1; } tr.rollback td, tr.reject td { background: #fff8c5; }
p.empty { color: #57606a; font-style: italic; } p.hint { color: #57606a; font-size: 0.85rem; }
"""

_SECTIONS = (("timeline", "Timeline"), ("quality", "Model quality"), ("drift", "Drift checks"), ("ab", "A/B tests"),
             ("aliases", "Alias history"), ("notes", "Notes"))


def render_html(timeline: Timeline, versions: Sequence[Mapping[str, Any]], drift_rows: Sequence[Mapping[str, Any]],
                events: Sequence[Mapping[str, Any]], *, drift_error: str | None = None, events_error: str | None = None) -> str:
    """The whole page from data already read: no I/O, so it can be tested and re-rendered alike."""
    first, last = (timeline.steps[0].date, timeline.steps[-1].date) if timeline.steps else ("-", "-")
    nav = "<nav>" + "".join(f'<a href="#{a}">{_esc(t)}</a>' for a, t in _SECTIONS) + "</nav>"
    body = [
        "<h1>Rakuten ML life cycle</h1>",
        f"<p>Simulated days {_esc(first)} to {_esc(last)}: {len(timeline.steps)} DAG runs.</p>",
        nav,
        timeline_section(timeline),
        quality_section(versions, timeline.traffic),
        drift_section(drift_rows, drift_error),
        ab_section(ab_records(timeline)),
        alias_section(events, timeline, events_error),
        _notes_section(timeline.notes),
    ]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Rakuten ML life cycle report</title><style>{_STYLE}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")


def write_html_report(path: Path, timeline: Timeline, engine: Engine, versions: list[dict[str, Any]]) -> Path:
    """Read the drift checks and the promotion audit from ``engine``, and write the one-file report to ``path``."""
    drift_rows, drift_error = read_drift_checks(engine)
    events, events_error = read_promotion_events(engine)
    page = render_html(timeline, versions, drift_rows, events, drift_error=drift_error, events_error=events_error)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    log.info("life-cycle report written to %s (%d KiB)", path, len(page) // 1024)
    return path
