"""The HTML report opens in headless Chromium and shows its charts (skipped only where Chromium is missing)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from omega_tui.validate.report import Check, LatencySeries, ValidationReport

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def png_pixels(path: Path) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Width, height and RGB pixels of an 8-bit RGB/RGBA PNG (what Chromium writes), without an image library."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and color in (2, 6)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytearray] = []
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(line)
        prev = line
    pixels = [(r[x], r[x + 1], r[x + 2]) for r in rows for x in range(0, stride, channels)]
    return width, height, pixels


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_html_renders_its_charts_in_headless_chromium(tmp_path: Path) -> None:
    report = ValidationReport(
        title="Paper-trading validation",
        started_utc="2026-11-25T14:30:00+00:00",
        finished_utc="2026-11-25T21:00:00+00:00",
        mode="SIM",
        minutes=390,
        checks=[Check("Order fills & partials", True, "ok"), Check("PnL calculation accuracy", False, "off")],
        latencies=[LatencySeries("submit → acknowledged", [float(i % 150) for i in range(300)])],
        pnl_curve=[(float(m), (m % 60) * 3.0 - 50.0) for m in range(0, 391, 5)],
    )
    html = report.write(tmp_path)["html"]
    shot = tmp_path / "shot.png"
    assert CHROMIUM is not None
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1000,1400",
            f"--screenshot={shot}",
            html.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    width, height, pixels = png_pixels(shot)
    assert (width, height) == (1000, 1400)
    # The charts are drawn: the histogram bars and the P&L line put the report's blue (#3a6ea5) on screen;
    # the FAILED verdict, the ✗ and the budget lines are its red (#b3261e).
    blue = sum(1 for r, g, b in pixels if abs(r - 0x3A) < 12 and abs(g - 0x6E) < 12 and abs(b - 0xA5) < 12)
    red = sum(1 for r, g, b in pixels if abs(r - 0xB3) < 16 and abs(g - 0x26) < 16 and abs(b - 0x1E) < 16)
    assert blue > 2000 and red > 20
