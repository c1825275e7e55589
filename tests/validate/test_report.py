"""The validation report presents checks faithfully and fails when any check failed."""

from __future__ import annotations

import json
from pathlib import Path

from omega_tui.validate.report import Check, LatencySeries, ValidationReport, histogram_svg


def make(checks: list[Check]) -> ValidationReport:
    return ValidationReport(
        title="Paper-trading validation",
        started_utc="2026-11-25T14:30:00+00:00",
        finished_utc="2026-11-25T15:00:00+00:00",
        mode="SIM",
        minutes=30,
        checks=checks,
        latencies=[LatencySeries("submit → acknowledged", [1.0, 2.0, 3.0, 50.0])],
        pnl_curve=[(0.0, 0.0), (10.0, -20.0), (30.0, 15.5)],
    )


def test_report_passes_only_when_every_check_passed(tmp_path: Path) -> None:
    good = make([Check("Order fills & partials", True, "ok"), Check("probe: market order", True, "denied")])
    bad = make([Check("Order fills & partials", True, "ok"), Check("PnL calculation accuracy", False, "off by 2.00")])
    assert good.passed and not bad.passed
    assert not make([]).passed  # no checks is not a pass
    paths = bad.write(tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["passed"] is False
    assert {
        "name": "PnL calculation accuracy",
        "passed": False,
        "detail": "off by 2.00",
        "section": "checklist",
    } in data["checks"]
    assert "✗ | PnL calculation accuracy" in paths["md"].read_text()
    html = paths["html"].read_text()
    assert "<svg" in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "FAILED" in html


def test_latency_percentiles_are_nearest_rank() -> None:
    series = LatencySeries("x", [float(v) for v in range(1, 101)])
    assert series.summary() == {"n": 100, "p50_ms": 50.0, "p95_ms": 95.0, "p99_ms": 99.0, "max_ms": 100.0}


def test_histogram_marks_the_latency_budget_lines() -> None:
    svg = histogram_svg(LatencySeries("fill", [1.0, 5.0, 20.0, 120.0]))
    assert svg.count('class="budget"') == 2 and svg.count('class="bar"') == 20
