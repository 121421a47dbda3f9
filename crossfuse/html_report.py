"""``RUN_DIR/report.html``: one self-contained page about a run, readable from disk with no network.

It shows the task, backbone and status, the metrics of every split (the main metric highlighted,
per-class tables, the baseline), curves drawn from metrics.jsonl as inline SVG (training loss and
learning rate per step, validation metrics per epoch), the task's pictures embedded as base64
data URIs, the data summary and the resolved config. No scripts, fonts or stylesheets are
fetched: everything is in the file. Every value from the run is escaped with :func:`html.escape`.

>>> from crossfuse.html_report import write_html_report
>>> write_html_report("runs/finance-sentiment/20261128-101500")          # doctest: +SKIP
PosixPath('runs/finance-sentiment/20261128-101500/report.html')
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any, Sequence

from .runs import RunDir, atomic_write

HTML_FILE = "report.html"
MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".svg": "image/svg+xml",
        ".webp": "image/webp"}
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
RECORD_KEYS = ("step", "epoch", "split", "time")  # bookkeeping of a metrics.jsonl record, not a metric
MAX_TABLE_ROWS = 50  # lists of records (confident errors ...): the rest stays in report.json


def write_html_report(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write the report of ``run_dir`` to ``output`` (default ``RUN_DIR/report.html``), atomically."""
    run = RunDir.open(run_dir)
    target = Path(output) if output is not None else run.path / HTML_FILE
    return atomic_write(target, render(run))


def render(run: RunDir) -> str:
    """The whole page for ``run`` as a string."""
    from .history import run_status

    config, report, log = run.read_config(), run.read_report() or {}, run.read_log()
    status = run_status(run.path)
    task = report.get("task") or config.get("task", "")
    sections = [_summary(run, config, report, status), _metrics(report), _curves(log, report.get("main_metric")),
                _pictures(run, report), _split_details(report), _data(report), _other(report), _config(run)]
    title = f"{task} — {run.path.name}"
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{_e(task)} <small>{_e(run.path.name)}</small></h1>\n"
            + "\n".join(s for s in sections if s) + "\n</body>\n</html>\n")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return _e("-" if value is None else value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
    return _e(value)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (int, float, str, bool))


# -- sections ------------------------------------------------------------------------------------


def _summary(run: RunDir, config: dict[str, Any], report: dict[str, Any], status: str) -> str:
    backbone = report.get("backbone") or (config.get("backbone") or {}).get("name") or \
        {k: (v or {}).get("name") for k, v in (config.get("backbones") or {}).items()}
    if isinstance(backbone, dict):
        backbone = ", ".join(f"{k}: {v}" for k, v in backbone.items())
    rows = [("task", report.get("task") or config.get("task")), ("backbone", backbone),
            ("status", status), ("run directory", str(run.path.resolve())), ("seed", report.get("seed", config.get("seed"))),
            ("main metric", report.get("main_metric")),
            ("best epoch", None if report.get("best_epoch") is None else report["best_epoch"] + 1),
            ("optimizer steps", report.get("steps")), ("checkpoint", report.get("checkpoint")),
            ("wall time", f"{report['wall_time_s']} s" if "wall_time_s" in report else None)]
    sizes = report.get("sizes")
    if isinstance(sizes, dict):
        rows.append(("samples", ", ".join(f"{k} {v}" for k, v in sizes.items())))
    body = "".join(f"<tr><th>{_e(k)}</th><td class=\"status-{_e(v)}\">{_e(v)}</td></tr>" if k == "status" else
                   f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows if v not in (None, ""))
    note = "" if report else "<p class=\"note\">This run has no report.json yet: it has not finished.</p>"
    return f"<section><h2>Run</h2><table class=\"summary\">{body}</table>{note}</section>"


def _columns(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(heading, metrics) of every split, then of every baseline split."""
    baseline = report.get("baseline") or {}
    columns = [(name, metrics) for name, metrics in (report.get("splits") or {}).items() if isinstance(metrics, dict)]
    columns += [(f"baseline {baseline.get('name', '')} {name}".replace("  ", " "), metrics)
                for name, metrics in (baseline.get("splits") or {}).items() if isinstance(metrics, dict)]
    return columns


def _metrics(report: dict[str, Any]) -> str:
    columns = _columns(report)
    if not columns:
        return ""
    main = report.get("main_metric")
    names = list(dict.fromkeys(k for _, m in columns for k, v in m.items() if _is_scalar(v) and not isinstance(v, str)))
    names.sort(key=lambda n: n != main)  # the main metric first
    head = "".join(f"<th>{_e(c)}</th>" for c, _ in columns)
    body = "".join(f"<tr class=\"{'main' if n == main else ''}\"><th>{_e(n)}</th>" +
                   "".join(f"<td>{_number(m.get(n))}</td>" for _, m in columns) + "</tr>" for n in names)
    return (f"<section><h2>Metrics</h2><p>Main metric: <strong>{_e(main)}</strong> (highlighted).</p>"
            f"<table class=\"metrics\"><tr><th>metric</th>{head}</tr>{body}</table></section>")


def _split_details(report: dict[str, Any]) -> str:
    """Per-class tables, confusion matrices and the other non-scalar metrics of each split."""
    parts = []
    for column, metrics in _columns(report):
        details = [_detail(key, value, metrics) for key, value in metrics.items() if not _is_scalar(value)]
        details = [d for d in details if d]
        if details:
            parts.append(f"<h3>{_e(column)}</h3>" + "".join(details))
    return "<section><h2>Per split</h2>" + "".join(parts) + "</section>" if parts else ""


def _detail(key: str, value: Any, metrics: dict[str, Any]) -> str:
    """A non-scalar metric: a table where it has the shape of one, else its JSON folded away."""
    if key == "labels":
        return ""
    table = _table_of(key, value, metrics)
    if table:
        return f"<h4>{_e(key)}</h4>{table}"
    text = json.dumps(value, indent=1, default=str)
    if len(text) > 20_000:
        text = text[:20_000] + "\n... (cut; the whole value is in report.json)"
    return f"<details><summary>{_e(key)}</summary><pre>{_e(text)}</pre></details>"


def _table_of(key: str, value: Any, metrics: dict[str, Any]) -> str:
    if isinstance(value, dict) and value and all(isinstance(v, dict) and all(map(_is_scalar, v.values()))
                                                 for v in value.values()):
        columns = list(dict.fromkeys(c for row in value.values() for c in row))
        return _grid(["", *columns], [[name, *(row.get(c) for c in columns)] for name, row in value.items()])
    if isinstance(value, dict) and value and all(map(_is_scalar, value.values())):
        return _grid(["", "value"], [[k, v] for k, v in value.items()])
    if isinstance(value, list) and value and all(isinstance(r, list) and all(map(_is_scalar, r)) for r in value):
        labels = metrics.get("labels")
        if isinstance(labels, list) and len(labels) == len(value) and all(len(r) == len(labels) for r in value):
            note = "<p class=\"note\">rows: true label, columns: predicted</p>" if "confusion" in key else ""
            return note + _grid(["", *labels], [[label, *row] for label, row in zip(labels, value)], heat=True)
        return _grid([""] * (1 + max(len(r) for r in value)), [[i, *row] for i, row in enumerate(value)])
    if isinstance(value, list) and value and all(isinstance(r, dict) and all(map(_is_scalar, r.values()))
                                                 for r in value):
        columns = list(dict.fromkeys(c for row in value for c in row))
        rows = [[row.get(c) for c in columns] for row in value[:MAX_TABLE_ROWS]]
        more = f"<p class=\"note\">{len(value) - MAX_TABLE_ROWS} more in report.json</p>" \
            if len(value) > MAX_TABLE_ROWS else ""
        return _grid(columns, rows, row_headers=False) + more
    return ""


def _grid(header: Sequence[Any], rows: Sequence[Sequence[Any]], heat: bool = False, row_headers: bool = True) -> str:
    numbers = [v for row in rows for v in row[1:] if isinstance(v, (int, float)) and not isinstance(v, bool)]
    top = max(numbers, default=0) or 1

    def cell(value: Any) -> str:
        if heat and isinstance(value, (int, float)) and not isinstance(value, bool):
            alpha = 0.08 + 0.6 * max(0.0, float(value)) / top
            return f"<td style=\"background: rgba(31,119,180,{alpha:.2f})\">{_number(value)}</td>"
        return f"<td class=\"text\">{_e(value)}</td>" if isinstance(value, str) else f"<td>{_number(value)}</td>"

    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    first = (lambda v: f"<th>{_e(v)}</th>") if row_headers else cell
    body = "".join("<tr>" + first(row[0]) + "".join(cell(v) for v in row[1:]) + "</tr>" for row in rows)
    return f"<table>{'<tr>' + head + '</tr>' if any(str(h) for h in header) else ''}{body}</table>"


def _curves(log: list[dict[str, Any]], main: str | None) -> str:
    train = [r for r in log if r.get("split") == "train"]
    charts = []
    for key, title in (("loss", "training loss"), ("lr", "learning rate")):
        points = [(r["step"], r[key]) for r in train if _plottable(r.get(key)) and "step" in r]
        if points:
            charts.append(line_chart([(key, points)], title, "optimizer step"))
    evaluated = [r for r in log if r.get("split") not in (None, "train")]
    names = list(dict.fromkeys(k for r in evaluated for k in r if k not in RECORD_KEYS))
    names.sort(key=lambda n: n != main)
    for name in names:
        series = {}
        for record in evaluated:
            if _plottable(record.get(name)) and "epoch" in record:
                series.setdefault(record["split"], []).append((record["epoch"] + 1, record[name]))
        if series:
            title = f"{name} per epoch" + (" (main metric)" if name == main else "")
            charts.append(line_chart(list(series.items()), title, "epoch", integer_x=True))
    if not charts:
        return "<section><h2>Curves</h2><p class=\"note\">No metrics.jsonl records to draw.</p></section>"
    return "<section><h2>Curves</h2><div class=\"charts\">" + "".join(charts) + "</div></section>"


def _plottable(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _pictures(run: RunDir, report: dict[str, Any]) -> str:
    names = report.get("pictures") or []
    if not names:
        return ""
    figures = []
    root = run.path.resolve()
    for name in names:
        path = (run.path / str(name)).resolve()
        mime = MIME.get(path.suffix.lower())
        if root not in path.parents or not path.is_file() or mime is None:  # only the run's own image files
            figures.append(f"<figure><figcaption>{_e(name)} (missing)</figcaption></figure>")
            continue
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        figures.append(f"<figure><img alt=\"{_e(name)}\" src=\"data:{mime};base64,{data}\">"
                       f"<figcaption>{_e(name)}</figcaption></figure>")
    return "<section><h2>Pictures</h2>" + "".join(figures) + "</section>"


def _data(report: dict[str, Any]) -> str:
    info = report.get("data")
    if not info:
        return ""
    if isinstance(info, dict):
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{_value_html(k, v)}</td></tr>" for k, v in info.items())
        return f"<section><h2>Data</h2><table class=\"summary\">{rows}</table></section>"
    return f"<section><h2>Data</h2><pre>{_e(json.dumps(info, indent=1, default=str))}</pre></section>"


def _value_html(key: str, value: Any) -> str:
    if _is_scalar(value):
        return _number(value)
    if isinstance(value, list) and all(_is_scalar(v) for v in value):
        return _e(", ".join(map(str, value)))
    return _table_of(key, value, {}) or f"<pre>{_e(json.dumps(value, indent=1, default=str))}</pre>"


KNOWN_KEYS = {"task", "backbone", "seed", "main_metric", "best_epoch", "steps", "checkpoint", "sizes", "splits",
              "data", "baseline", "wall_time_s", "pictures"}


def _other(report: dict[str, Any]) -> str:
    """What else the report holds (init_from, backbone_weights, a task's extras)."""
    extra = {k: v for k, v in report.items() if k not in KNOWN_KEYS}
    if not extra:
        return ""
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_value_html(k, v)}</td></tr>" for k, v in extra.items())
    return f"<section><h2>More</h2><table class=\"summary\">{rows}</table></section>"


def _config(run: RunDir) -> str:
    text = (run.path / "config.yaml").read_text(encoding="utf-8")
    return f"<section><h2>Resolved config</h2><details open><summary>config.yaml</summary><pre>{_e(text)}</pre>" \
           f"</details></section>"


# -- charts --------------------------------------------------------------------------------------


def line_chart(series: Sequence[tuple[str, Sequence[tuple[float, float]]]], title: str, x_label: str,
               width: int = 370, height: int = 220, integer_x: bool = False) -> str:
    """An inline SVG line chart of ``series`` (name, [(x, y), ...]), with axes, ticks and a legend."""
    left, right, top, bottom = 58, 12, 26, 38
    xs = [x for _, points in series for x, _ in points]
    ys = [y for _, points in series for _, y in points]
    x0, x1 = _span(min(xs), max(xs))
    y0, y1 = _span(min(ys), max(ys))
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    parts = [f"<svg class=\"chart\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" "
             f"role=\"img\" aria-label=\"{_e(title)}\">",
             f"<text x=\"{width / 2:.0f}\" y=\"16\" text-anchor=\"middle\" class=\"title\">{_e(title)}</text>",
             f"<rect x=\"{left}\" y=\"{top}\" width=\"{plot_w}\" height=\"{plot_h}\" class=\"frame\"/>"]
    for tick in _ticks(y0, y1):
        y = sy(tick)
        parts.append(f"<line x1=\"{left}\" x2=\"{left + plot_w}\" y1=\"{y:.1f}\" y2=\"{y:.1f}\" class=\"grid\"/>"
                     f"<text x=\"{left - 4}\" y=\"{y + 4:.1f}\" text-anchor=\"end\">{_e(_tick_label(tick))}</text>")
    for tick in _ticks(x0, x1, integer=integer_x):
        x = sx(tick)
        parts.append(f"<line x1=\"{x:.1f}\" x2=\"{x:.1f}\" y1=\"{top + plot_h}\" y2=\"{top + plot_h + 4}\" "
                     f"class=\"axis\"/><text x=\"{x:.1f}\" y=\"{top + plot_h + 16}\" text-anchor=\"middle\">"
                     f"{_e(_tick_label(tick))}</text>")
    parts.append(f"<text x=\"{left + plot_w / 2:.0f}\" y=\"{height - 6}\" text-anchor=\"middle\">{_e(x_label)}</text>")
    for index, (name, points) in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        parts.append(f"<polyline points=\"{coords}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.8\"/>")
        if len(points) <= 40:  # few points (epochs): mark each one
            parts += [f"<circle cx=\"{sx(x):.1f}\" cy=\"{sy(y):.1f}\" r=\"3\" fill=\"{colour}\"/>" for x, y in points]
        if len(series) > 1:
            ly = top + 12 + 14 * index
            parts.append(f"<rect x=\"{left + plot_w - 96}\" y=\"{ly - 8}\" width=\"10\" height=\"10\" "
                         f"fill=\"{colour}\"/><text x=\"{left + plot_w - 82}\" y=\"{ly + 1}\">{_e(name)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _span(low: float, high: float) -> tuple[float, float]:
    """An axis range around [low, high] that is never empty."""
    if high == low:
        pad = abs(low) * 0.1 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.05
    return low - pad, high + pad


def _ticks(low: float, high: float, count: int = 5, integer: bool = False) -> list[float]:
    """About ``count`` round numbers between ``low`` and ``high`` (1, 2 or 5 times a power of ten)."""
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    if integer:
        step = max(1.0, round(step))
    first = math.ceil(low / step) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _tick_label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.0e}"
    return f"{value:.6g}"


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 24px auto;
       max-width: 1180px; padding: 0 16px; color: #222; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h1 small { color: #777; font-weight: normal; font-size: 0.6em; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: 4px; margin-top: 1.6em; }
h3 { margin-top: 1.2em; } h4 { margin: 0.8em 0 0.3em; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 3px 9px; text-align: right; }
th { background: #f4f4f4; } table.summary th, tr > th:first-child { text-align: left; }
table.summary td, td.text { text-align: left; }
tr.main td, tr.main th { background: #fff3bf; font-weight: bold; }
.status-finished { color: #1b7a2a; font-weight: bold; } .status-resumable { color: #b36b00; font-weight: bold; }
.status-incomplete { color: #b00020; font-weight: bold; }
.note { color: #666; font-size: 0.9em; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
svg.chart { border: 1px solid #e4e4e4; background: #fff; font-size: 11px; }
svg.chart .title { font-size: 13px; font-weight: bold; }
svg.chart .frame { fill: none; stroke: #999; } svg.chart .grid { stroke: #eee; } svg.chart .axis { stroke: #999; }
figure { display: inline-block; margin: 8px; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #e4e4e4; } figcaption { color: #555; font-size: 0.9em; }
pre { background: #f8f8f8; border: 1px solid #e4e4e4; padding: 8px; overflow-x: auto; font-size: 0.85em; }
details summary { cursor: pointer; color: #1f4e79; }
"""

