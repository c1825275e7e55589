"""The paper-trading validation report: `report.json`, `report.md` and a self-contained `report.html`.

The HTML needs no network: latency histograms and the intraday P&L curve are inline SVG drawn here.
`passed` is true only when every check passed; nothing in this module decides a check, it only presents.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str
    section: str = "checklist"  # "checklist" (one per line of checklist §8) or "probe"


@dataclass
class LatencySeries:
    """One callback latency (e.g. submit → acknowledged), in milliseconds."""

    name: str
    samples_ms: list[float]

    def percentile(self, q: float) -> float:
        if not self.samples_ms:
            return float("nan")
        ordered = sorted(self.samples_ms)
        idx = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
        return ordered[idx]

    def summary(self) -> dict[str, float | int]:
        return {
            "n": len(self.samples_ms),
            "p50_ms": self.percentile(50),
            "p95_ms": self.percentile(95),
            "p99_ms": self.percentile(99),
            "max_ms": max(self.samples_ms) if self.samples_ms else float("nan"),
        }


@dataclass
class ValidationReport:
    title: str
    started_utc: str
    finished_utc: str
    mode: str
    minutes: float
    checks: list[Check] = field(default_factory=list)
    latencies: list[LatencySeries] = field(default_factory=list)
    pnl_curve: list[tuple[float, float]] = field(default_factory=list)  # (minutes since open, day P&L)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "title": self.title,
            "mode": self.mode,
            "minutes": self.minutes,
            "started_utc": self.started_utc,
            "finished_utc": self.finished_utc,
            "checks": [asdict(c) for c in self.checks],
            "latencies": {s.name: s.summary() for s in self.latencies},
            "pnl_curve": self.pnl_curve,
            "facts": self.facts,
        }

    def write(self, out_dir: Path) -> dict[str, Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {"json": out_dir / "report.json", "md": out_dir / "report.md", "html": out_dir / "report.html"}
        paths["json"].write_text(json.dumps(self.to_json(), indent=2, default=_json_default), encoding="utf-8")
        paths["md"].write_text(render_markdown(self), encoding="utf-8")
        paths["html"].write_text(render_html(self), encoding="utf-8")
        return paths

    def console_lines(self) -> list[str]:
        lines = [f"{'✓' if c.passed else '✗'} {c.name}: {c.detail}" for c in self.checks]
        lines.append(
            f"{'PASSED' if self.passed else 'FAILED'}: {sum(c.passed for c in self.checks)}/{len(self.checks)}"
        )
        return lines


def _json_default(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def _fmt(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1f}"


def render_markdown(report: ValidationReport) -> str:
    out = [
        f"# {report.title}",
        "",
        f"**{'PASSED' if report.passed else 'FAILED'}** — {report.mode}, {report.minutes:g} minutes, "
        f"{report.started_utc} → {report.finished_utc}",
        "",
        "## Checks",
        "",
        "| | check | detail |",
        "|---|---|---|",
    ]
    out += [f"| {'✓' if c.passed else '✗'} | {c.name} | {c.detail} |" for c in report.checks]
    out += [
        "",
        "## Callback latencies (ms)",
        "",
        "| latency | n | p50 | p95 | p99 | max |",
        "|---|---|---|---|---|---|",
    ]
    for s in report.latencies:
        m = s.summary()
        out.append(
            f"| {s.name} | {m['n']} | {_fmt(m['p50_ms'])} | {_fmt(m['p95_ms'])} | {_fmt(m['p99_ms'])} | "
            f"{_fmt(m['max_ms'])} |"
        )
    if report.facts:
        out += ["", "## Facts", ""] + [f"- {k}: {v}" for k, v in report.facts.items()]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------------ SVG


def histogram_svg(series: LatencySeries, width: int = 420, height: int = 160, bins: int = 20) -> str:
    """A latency histogram as inline SVG, with the 10 ms and 100 ms budget lines of checklist §1."""
    samples = series.samples_ms
    pad = 28
    if not samples:
        return _svg(width, height, f'<text x="{pad}" y="{height // 2}">no samples</text>')
    hi = max(max(samples), 1e-6)
    step = hi / bins
    counts = [0] * bins
    for v in samples:
        counts[min(bins - 1, int(v / step))] += 1
    top = max(counts)
    plot_w, plot_h = width - 2 * pad, height - 2 * pad
    bar_w = plot_w / bins
    parts = []
    for i, c in enumerate(counts):
        h = plot_h * c / top
        parts.append(
            f'<rect class="bar" x="{pad + i * bar_w:.1f}" y="{pad + plot_h - h:.1f}" width="{bar_w - 1:.1f}" '
            f'height="{h:.1f}"><title>{i * step:.2f}–{(i + 1) * step:.2f} ms: {c}</title></rect>'
        )
    for budget in (10.0, 100.0):
        if budget <= hi:
            x = pad + plot_w * budget / hi
            parts.append(f'<line class="budget" x1="{x:.1f}" y1="{pad}" x2="{x:.1f}" y2="{pad + plot_h}"/>')
            parts.append(f'<text x="{x + 2:.1f}" y="{pad + 10}">{budget:g} ms</text>')
    parts.append(f'<text x="{pad}" y="{height - 6}">0 ms</text>')
    parts.append(f'<text x="{width - pad}" y="{height - 6}" text-anchor="end">{hi:.1f} ms</text>')
    parts.append(f'<text x="{pad}" y="16" class="title">{html.escape(series.name)} (n={len(samples)})</text>')
    return _svg(width, height, "".join(parts))


def line_svg(points: Sequence[tuple[float, float]], width: int = 860, height: int = 220) -> str:
    """The intraday P&L curve as inline SVG, with the zero line."""
    pad = 36
    if len(points) < 2:
        return _svg(width, height, f'<text x="{pad}" y="{height // 2}">not enough points</text>')
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs) or 1.0
    y0, y1 = min(min(ys), 0.0), max(max(ys), 0.0)
    if y1 == y0:
        y1 = y0 + 1.0
    plot_w, plot_h = width - 2 * pad, height - 2 * pad

    def px(x: float) -> float:
        return pad + plot_w * (x - x0) / ((x1 - x0) or 1.0)

    def py(y: float) -> float:
        return pad + plot_h * (1 - (y - y0) / (y1 - y0))

    path = " ".join(f"{'M' if i == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for i, (x, y) in enumerate(points))
    parts = [
        f'<line class="zero" x1="{pad}" y1="{py(0):.1f}" x2="{width - pad}" y2="{py(0):.1f}"/>',
        f'<path class="pnl" d="{path}"/>',
        f'<text x="4" y="{py(y1) + 4:.1f}">{y1:.0f}</text>',
        f'<text x="4" y="{py(y0):.1f}">{y0:.0f}</text>',
        f'<text x="{pad}" y="{height - 6}">{x0:.0f} min</text>',
        f'<text x="{width - pad}" y="{height - 6}" text-anchor="end">{x1:.0f} min</text>',
        '<text x="40" y="16" class="title">Day P&amp;L</text>',
    ]
    return _svg(width, height, "".join(parts))


def _svg(width: int, height: int, body: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">{body}</svg>'
    )


_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#1b1f24;background:#fff}
h1{margin-bottom:4px}.verdict{font-size:20px;font-weight:700}.pass{color:#0a6b3d}.fail{color:#b3261e}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccd;padding:4px 8px;text-align:left}
svg{background:#f7f8fa;border:1px solid #dde;margin:4px 8px 12px 0}svg text{font-size:11px;fill:#333}
svg .title{font-weight:700}.bar{fill:#3a6ea5}.budget{stroke:#b3261e;stroke-dasharray:4 3}
.pnl{fill:none;stroke:#3a6ea5;stroke-width:2}.zero{stroke:#888;stroke-dasharray:2 2}
"""


def render_html(report: ValidationReport) -> str:
    verdict_cls = "pass" if report.passed else "fail"
    rows = "".join(
        f'<tr><td class="{"pass" if c.passed else "fail"}">{"✓" if c.passed else "✗"}</td>'
        f"<td>{html.escape(c.name)}</td><td>{html.escape(c.detail)}</td></tr>"
        for c in report.checks
    )
    lat_rows = "".join(
        f"<tr><td>{html.escape(s.name)}</td>"
        + "".join(f"<td>{_fmt(float(v)) if k != 'n' else v}</td>" for k, v in s.summary().items())
        + "</tr>"
        for s in report.latencies
    )
    charts = "".join(histogram_svg(s) for s in report.latencies)
    facts = "".join(f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>" for k, v in report.facts.items())
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(report.title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(report.title)}</h1>"
        f'<p class="verdict {verdict_cls}">{"PASSED" if report.passed else "FAILED"}</p>'
        f"<p>{html.escape(report.mode)}, {report.minutes:g} minutes, {html.escape(report.started_utc)} → "
        f"{html.escape(report.finished_utc)}</p>"
        f"<h2>Checks</h2><table><tr><th></th><th>check</th><th>detail</th></tr>{rows}</table>"
        "<h2>Callback latencies (ms)</h2><table><tr><th>latency</th><th>n</th><th>p50</th><th>p95</th>"
        f'<th>p99</th><th>max</th></tr>{lat_rows}</table><div id="histograms">{charts}</div>'
        f'<h2>Intraday P&amp;L</h2><div id="pnl">{line_svg(report.pnl_curve)}</div>'
        f"<h2>Facts</h2><ul>{facts}</ul></body></html>\n"
    )
