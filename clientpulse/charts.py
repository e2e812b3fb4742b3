"""Inline SVG charts and number formats shared by the dashboard and the management report. Pure.

Charts are rendered on the server as plain SVG strings, so a page or a mailed report shows them with
no script, no CDN and no web font: whatever renders the HTML renders the charts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape

Number = float | int | Decimal

INK, MUTED, GRID = "#1e293b", "#64748b", "#e2e8f0"
BLUE, TEAL, VIOLET, AMBER, RED, GREEN, SLATE = (
    "#2563eb", "#0d9488", "#7c3aed", "#d97706", "#dc2626", "#16a34a", "#94a3b8",
)  # fmt: skip
TIER_COLORS = {"key": VIOLET, "stable": BLUE, "potential": TEAL}
ABC_COLORS = {"A": VIOLET, "B": BLUE, "C": SLATE}
FONT = "font-family=\"system-ui,-apple-system,'Segoe UI','PingFang SC','Noto Sans CJK SC',sans-serif\""


# ------------------------------------------------------------------ numbers


def num(value: Number | None) -> float | None:
    return None if value is None else float(value)


def fmt_int(value: Number | None) -> str:
    return "–" if value is None else f"{round(float(value)):,}"


def fmt_money(value: Number | None) -> str:
    """Compact yuan: ¥950, ¥12.3k, ¥4.56M."""
    if value is None:
        return "–"
    v = float(value)
    for limit, suffix, digits in ((1e9, "B", 2), (1e6, "M", 2), (1e3, "k", 1)):
        if abs(v) >= limit:
            return f"¥{v / limit:,.{digits}f}{suffix}"
    return f"¥{v:,.0f}"


def fmt_pct(value: Number | None, digits: int = 1) -> str:
    """A share (0..1) as a percentage."""
    return "–" if value is None else f"{float(value) * 100:.{digits}f}%"


def fmt_num(value: Number | None, digits: int = 1) -> str:
    return "–" if value is None else f"{float(value):,.{digits}f}"


def fmt_hours(value: Number | None) -> str:
    if value is None:
        return "–"
    v = float(value)
    return f"{v:.1f} h" if v < 48 else f"{v / 24:.1f} d"


# ------------------------------------------------------------------ scales


def nice_ticks(lo: float, hi: float, count: int = 4, integer: bool = False) -> list[float]:
    """Round tick values covering [lo, hi] (1-2-5 steps), starting at or below lo; whole steps for counts."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if integer:
        step = max(1.0, math.ceil(step))
    start = math.floor(lo / step) * step
    ticks = [start]
    while ticks[-1] < hi - 1e-9 * step:
        ticks.append(ticks[-1] + step)
    return ticks


def _label_every(n: int, room: int) -> int:
    return max(1, math.ceil(n / max(room, 1)))


# ------------------------------------------------------------------ charts


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[Number | None]
    color: str = BLUE
    kind: str = "line"  # line | area | bars | step
    dashed: bool = False


def line_chart(
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    y_format: Callable[[float], str] = lambda v: f"{v:,.0f}",
    y_min: float | None = None,
    y_max: float | None = None,
    target: tuple[float, str] | None = None,
    integer: bool = False,
    width: int = 560,
    height: int = 210,
) -> str:
    """Lines, areas and bars over one shared x axis (categories, evenly spaced); `integer` for counts."""
    n = len(x_labels)
    left, right, top, bottom = 52, 12, 30, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [float(v) for s in series for v in s.values if v is not None]
    if target is not None:
        values.append(target[0])
    lo = y_min if y_min is not None else min([0.0, *values])
    hi = y_max if y_max is not None else max([lo + 1e-9, *values])
    ticks = nice_ticks(lo, hi, integer=integer)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    span = (hi - lo) or 1.0
    slot = plot_w / max(n, 1)

    def x_at(i: int) -> float:
        return left + slot * (i + 0.5)

    def y_at(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / span)

    out = [_svg_open(width, height, title)]
    for t in ticks:
        y = y_at(t)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        out.append(_text(left - 6, y + 4, y_format(t), anchor="end"))
    every = _label_every(n, plot_w // 64)
    for i in range(0, n, every):
        out.append(_text(x_at(i), height - 8, x_labels[i], anchor="middle"))
    if target is not None:
        y = y_at(target[0])
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{RED}" '
            f'stroke-dasharray="4 3" stroke-width="1"/>'
        )
        out.append(_text(width - right - 2, y - 4, target[1], anchor="end", color=RED))
    bar_series = [s for s in series if s.kind == "bars"]
    for k, s in enumerate(bar_series):
        bw = max(1.0, slot * 0.8 / len(bar_series))
        for i, v in enumerate(s.values):
            if v is None:
                continue
            y0, y1 = y_at(max(lo, 0.0)), y_at(float(v))
            x = x_at(i) - slot * 0.4 + k * bw
            out.append(
                f'<rect class="bar" x="{x:.1f}" y="{min(y0, y1):.1f}" width="{bw:.1f}" '
                f'height="{max(abs(y0 - y1), 0.5):.1f}" fill="{s.color}" opacity="0.75">'
                f"<title>{escape(x_labels[i])}: {escape(y_format(float(v)))}</title></rect>"
            )
    for s in series:
        if s.kind == "bars":
            continue
        points = [(x_at(i), y_at(float(v))) for i, v in enumerate(s.values) if v is not None]
        out.append(_series_path(s, [(i, v) for i, v in enumerate(s.values)], x_at, y_at, y_at(max(lo, 0.0)), slot))
        if len(points) <= 60:
            for i, v in enumerate(s.values):
                if v is not None:
                    out.append(
                        f'<circle cx="{x_at(i):.1f}" cy="{y_at(float(v)):.1f}" r="2.4" fill="{s.color}">'
                        f"<title>{escape(x_labels[i])}: {escape(y_format(float(v)))}</title></circle>"
                    )
    out.append(_legend(series, left, 14))
    out.append("</svg>")
    return "".join(out)


def _series_path(
    s: Series,
    items: list[tuple[int, Number | None]],
    x_at: Callable[[int], float],
    y_at: Callable[[float], float],
    baseline: float,
    slot: float,
) -> str:
    """One <path> per series; a None value breaks the line (no invented data)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for i, v in items:
        if v is None:
            if runs[-1]:
                runs.append([])
            continue
        if s.kind == "step" and runs[-1]:
            runs[-1].append((x_at(i) - slot / 2, runs[-1][-1][1]))
        runs[-1].append((x_at(i), y_at(float(v))))
    runs = [r for r in runs if r]
    d = " ".join("M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in run) for run in runs)
    count = sum(len(r) for r in runs)
    dash = ' stroke-dasharray="5 4"' if s.dashed else ""
    path = (
        f'<path class="series" data-series="{escape(s.label)}" data-points="{count}" d="{d}" fill="none" '
        f'stroke="{s.color}" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"{dash}/>'
    )
    if s.kind == "area" and runs:
        area = " ".join(
            f"M{run[0][0]:.1f},{baseline:.1f} L" + " L".join(f"{x:.1f},{y:.1f}" for x, y in run)
            + f" L{run[-1][0]:.1f},{baseline:.1f} Z"
            for run in runs
        )  # fmt: skip
        path = f'<path d="{area}" fill="{s.color}" opacity="0.12" stroke="none"/>' + path
    return path


def hbar_chart(
    items: Sequence[tuple[str, Number, str]],
    *,
    title: str,
    value_format: Callable[[float], str] = lambda v: f"{v:,.0f}",
    width: int = 560,
    row: int = 24,
) -> str:
    """Horizontal bars (label, value, color), largest first as given."""
    label_w, right = 150, 70
    height = max(row * len(items) + 10, 40)
    top_value = max([float(v) for _, v, _ in items] + [1e-9])
    out = [_svg_open(width, height, title)]
    if not items:
        out.append(_text(width / 2, height / 2 + 4, "no data · 暂无数据", anchor="middle"))
    for i, (label, value, color) in enumerate(items):
        y = 5 + i * row
        w = (width - label_w - right) * float(value) / top_value
        out.append(_text(label_w - 8, y + row * 0.62, label, anchor="end", color=INK))
        out.append(
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{max(w, 1):.1f}" height="{row - 8}" rx="3" '
            f'fill="{color}"><title>{escape(label)}: {escape(value_format(float(value)))}</title></rect>'
        )
        out.append(_text(label_w + w + 6, y + row * 0.62, value_format(float(value)), color=INK))
    out.append("</svg>")
    return "".join(out)


def share_bars(rows: Sequence[tuple[str, Sequence[tuple[str, float, str]]]], *, title: str, width: int = 560) -> str:
    """100% stacked bars, one per row: (row label, [(part label, share 0..1, color)])."""
    label_w, bar_h, gap = 110, 26, 14
    height = len(rows) * (bar_h + gap) + 24
    out = [_svg_open(width, height, title)]
    for r, (row_label, parts) in enumerate(rows):
        y = 6 + r * (bar_h + gap)
        out.append(_text(label_w - 8, y + bar_h * 0.65, row_label, anchor="end", color=INK))
        x = float(label_w)
        total_w = width - label_w - 10
        for label, share, color in parts:
            w = total_w * max(share, 0.0)
            out.append(
                f'<rect class="bar" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}">'
                f"<title>{escape(label)}: {fmt_pct(share)}</title></rect>"
            )
            if w > 44:
                out.append(_text(x + w / 2, y + bar_h * 0.66, fmt_pct(share, 0), anchor="middle", color="#fff"))
            x += w
    legend = [Series(label, [], color) for label, _, color in (rows[0][1] if rows else [])]
    out.append(_legend(legend, label_w, height - 6))
    out.append("</svg>")
    return "".join(out)


def sparkline(values: Sequence[Number | None], *, color: str = BLUE, width: int = 132, height: int = 30) -> str:
    """A small trend line without axes, for KPI cards."""
    present = [float(v) for v in values if v is not None]
    if len(present) < 2:
        return f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}"></svg>'
    lo, hi = min(present), max(present)
    span = (hi - lo) or 1.0
    step = (width - 4) / max(len(values) - 1, 1)
    coords = [
        (2 + i * step, 2 + (height - 4) * (1 - (float(v) - lo) / span)) for i, v in enumerate(values) if v is not None
    ]
    d = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    return (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" aria-hidden="true">'
        f'<path class="series" data-points="{len(coords)}" d="{d}" fill="none" stroke="{color}" stroke-width="1.6"/>'
        "</svg>"
    )


def score_bar(score: Number, *, width: int = 90) -> str:
    """A 0-100 risk score as a small bar: amber from 45, red from 70."""
    s = max(0.0, min(100.0, float(score)))
    color = RED if s >= 70 else AMBER if s >= 45 else GREEN
    return (
        f'<svg class="score" width="{width}" height="10" viewBox="0 0 {width} 10" aria-label="score {s:.0f}">'
        f'<rect width="{width}" height="10" rx="5" fill="{GRID}"/>'
        f'<rect width="{width * s / 100:.1f}" height="10" rx="5" fill="{color}"/></svg>'
    )


BLOCKS = "▁▂▃▄▅▆▇█"


def text_sparkline(values: Sequence[Number | None]) -> str:
    """Unicode sparkline for Markdown and terminals; a gap for missing values."""
    present = [float(v) for v in values if v is not None]
    if not present:
        return ""
    lo, hi = min(present), max(present)
    span = (hi - lo) or 1.0
    return "".join(
        " " if v is None else BLOCKS[min(7, int((float(v) - lo) / span * 7 + 0.5))] for v in values
    )  # fmt: skip


# ------------------------------------------------------------------ svg bits


def _svg_open(width: int, height: int, title: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMidYMid meet" '
        f'role="img" aria-label="{escape(title)}" {FONT} font-size="11"><title>{escape(title)}</title>'
    )


def _text(x: float, y: float, text: str, *, anchor: str = "start", color: str = MUTED) -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{color}">{escape(text)}</text>'


def _legend(series: Sequence[Series], x: float, y: float) -> str:
    out, offset = [], 0.0
    for s in series:
        out.append(f'<rect x="{x + offset:.1f}" y="{y - 8}" width="10" height="10" rx="2" fill="{s.color}"/>')
        out.append(_text(x + offset + 14, y + 1, s.label, color=INK))
        offset += 24 + 6.5 * _text_width(s.label)
    return "".join(out)


def _text_width(text: str) -> float:
    """Approximate width in 'average Latin characters' (CJK glyphs are about twice as wide)."""
    return sum(2.0 if ord(ch) > 0x2E80 else 1.0 for ch in text)
