"""Charts for the moderator console, drawn on the server as inline SVG.

No JavaScript and no charting library, on purpose: the console must work offline and under a
strict Content-Security-Policy (no scripts, no inline styles). Colours, strokes and fonts are
SVG presentation attributes (``fill``, ``stroke``, ``font-size``), which CSP's ``style-src``
does not govern; there is no ``style=`` attribute and no ``<script>``.

Every chart is ``role="img"`` with a ``<title>`` and a ``<desc>`` for screen readers, and the
page shows a ``data_table`` under it as its text alternative. The colours are the Okabe-Ito
colour-blind-safe palette, with its two light colours (orange, sky blue; under 3:1 on white)
left out or darkened, so every bar has at least 3:1 contrast against the white background
(WCAG 1.4.11); a thin white outline separates stacked segments. The white background comes
from the stylesheet (``.charts svg``), one colour the browser test can read: axe-core cannot
judge the contrast of text inside an SVG (it sees an image), so that test does. All text is
escaped: labels and series names come from data.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from markupsafe import Markup, escape

# Okabe-Ito: bluish green, blue, reddish purple, vermillion, black, and orange darkened to
# #9A6A00 (4.7:1 on white). Contrast on white: 3.4, 5.2, 3.1, 3.9, 21, 4.7.
PALETTE = ("#009E73", "#0072B2", "#CC79A7", "#D55E00", "#000000", "#9A6A00")
OTHER_COLOUR = "#767676"  # 4.5:1; for series folded together when there are too many
TEXT_COLOUR = "#1A1A1A"
GRID_COLOUR = "#D9D9D9"
AXIS_COLOUR = "#595959"
NO_DATA = "No data in this period"

WIDTH = 640
_FONT = 'font-family="system-ui, sans-serif"'
_BOLD = ' font-weight="bold"'
_CHAR_WIDTH = 7.0  # a rough average at font-size 12, for laying out labels and the legend
_MAX_LABEL = 24  # longer labels are shortened on the chart (the table has them in full)
_PLOT_HEIGHT = 200
_LEFT = 56
_RIGHT = 16
_ROW = 22  # a horizontal bar's row


def stacked_bars(title: str, x_labels: list[str], series: dict[str, list[int]], *,
                 description: str) -> Markup:
    """A stacked bar per x label; ``series`` maps each name to its counts, one per label.
    With more series than colours, the last ones are folded into one "N more" series."""
    _check_series(x_labels, series)
    if not x_labels or not any(any(counts) for counts in series.values()):
        return _empty(title, description)
    coloured = _colour(series)
    legend, legend_height = _legend([(name, colour) for name, colour, _ in coloured],
                                    top=40)
    top = 40 + legend_height + 12
    totals = [sum(counts[i] for _, _, counts in coloured) for i in range(len(x_labels))]
    step, highest = _ticks(max(totals))
    parts = [legend, _y_axis(top, step, highest)]
    parts += _bars(x_labels, coloured, top, highest)
    parts.append(_x_axis(x_labels, top))
    return _svg(title, description, top + _PLOT_HEIGHT + 34, parts)


def horizontal_bars(title: str, rows: list[tuple[str, float]], *, description: str,
                    value_format: str = "{:.0%}", maximum: float | None = None) -> Markup:
    """A bar per row, e.g. the block rate per jurisdiction. The scale runs to ``maximum``;
    by default 1 (100 %) when every value is at most 1, otherwise the largest value."""
    if not rows:
        return _empty(title, description)
    if any(value < 0 for _, value in rows):
        raise ValueError("bar values must not be negative")
    largest = max(value for _, value in rows)
    scale = maximum or (1.0 if largest <= 1 else largest)
    label_width = min(_MAX_LABEL, max(len(label) for label, _ in rows)) * _CHAR_WIDTH + 12
    left, top = max(label_width, 48.0), 40
    span = WIDTH - left - 72  # room on the right for the value
    parts = [_horizontal_grid(left, top, span, len(rows), scale, value_format)]
    for index, (label, value) in enumerate(rows):
        parts.append(_horizontal_bar(index, label, value, left, top, span / scale,
                                     value_format))
    return _svg(title, description, top + len(rows) * _ROW + 28, parts)


def data_table(caption: str, header: list[str], rows: list[list[str | int | float]]) -> Markup:
    """An accessible table: a caption, column headers, and each row's first cell as its
    header. Shown under a chart as its text alternative."""
    head = "".join(f'<th scope="col">{escape(name)}</th>' for name in header)
    body = "".join(_table_row(row) for row in rows) or (
        f'<tr><td colspan="{max(len(header), 1)}">{escape(NO_DATA)}</td></tr>')
    return Markup(f'<table class="data-table"><caption>{escape(caption)}</caption>'
                  f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _table_row(row: Sequence[str | int | float]) -> str:
    if not row:
        return ""
    first, *rest = row
    cells = "".join(f'<td class="{"num" if _is_number(cell) else "text"}">'
                    f"{escape(_cell(cell))}</td>" for cell in rest)
    return f'<tr><th scope="row">{escape(_cell(first))}</th>{cells}</tr>'


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: str | int | float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _check_series(x_labels: list[str], series: dict[str, list[int]]) -> None:
    for name, counts in series.items():
        if len(counts) != len(x_labels):
            raise ValueError(f"series {name!r} has {len(counts)} values for "
                             f"{len(x_labels)} labels")
        if any(count < 0 for count in counts):
            raise ValueError(f"series {name!r} has a negative value")


def _colour(series: dict[str, list[int]]) -> list[tuple[str, str, list[int]]]:
    """(name, colour, counts) per series drawn; the ones past the palette folded together."""
    names = list(series)
    if len(names) <= len(PALETTE):
        return [(name, colour, series[name])
                for name, colour in zip(names, PALETTE, strict=False)]
    kept, rest = names[:len(PALETTE) - 1], names[len(PALETTE) - 1:]
    folded = [sum(values) for values in zip(*(series[name] for name in rest), strict=True)]
    return [*((name, colour, series[name]) for name, colour in zip(kept, PALETTE, strict=False)),
            (f"{len(rest)} more", OTHER_COLOUR, folded)]


def _ticks(largest: float) -> tuple[float, float]:
    """A round step (1, 2 or 5 times a power of ten; at least 1) and the top of the axis."""
    raw = max(largest, 1) / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if raw <= m * magnitude)
    step = max(step, 1)
    return step, max(step, math.ceil(largest / step) * step)


def _number(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _short(label: str) -> str:
    return label if len(label) <= _MAX_LABEL else label[:_MAX_LABEL - 1] + "\u2026"


def _text(x: float, y: float, content: str, *, anchor: str = "start", size: int = 12,
          extra: str = "") -> str:
    return (f'<text x="{_number(x)}" y="{_number(y)}" text-anchor="{anchor}" '
            f'font-size="{size}" fill="{TEXT_COLOUR}"{extra}>{escape(content)}</text>')


def _legend(items: list[tuple[str, str]], *, top: float) -> tuple[str, float]:
    """Swatches and names, wrapped onto as many lines as they need; (svg, height)."""
    parts, x, y = ['<g class="legend">'], float(_LEFT), top
    for name, colour in items:
        width = 20 + len(_short(name)) * _CHAR_WIDTH + 16
        if x + width > WIDTH - _RIGHT and x > _LEFT:
            x, y = float(_LEFT), y + 18
        parts.append(f'<rect x="{_number(x)}" y="{_number(y)}" width="12" height="12" '
                     f'fill="{colour}"/>')
        parts.append(_text(x + 18, y + 10.5, _short(name)))
        x += width
    parts.append("</g>")
    return "".join(parts), y - top + 18


def _y_axis(top: float, step: float, highest: float) -> str:
    parts = ['<g class="y-axis">']
    for tick in range(int(highest // step) + 1):
        value = tick * step
        y = top + _PLOT_HEIGHT - value / highest * _PLOT_HEIGHT
        colour = AXIS_COLOUR if tick == 0 else GRID_COLOUR
        parts.append(f'<line x1="{_LEFT}" y1="{_number(y)}" x2="{WIDTH - _RIGHT}" '
                     f'y2="{_number(y)}" stroke="{colour}" stroke-width="1"/>')
        parts.append(_text(_LEFT - 6, y + 4, f"{value:,.0f}", anchor="end"))
    parts.append(f'<line x1="{_LEFT}" y1="{top}" x2="{_LEFT}" y2="{top + _PLOT_HEIGHT}" '
                 f'stroke="{AXIS_COLOUR}" stroke-width="1"/></g>')
    return "".join(parts)


def _slot(count: int) -> float:
    return (WIDTH - _LEFT - _RIGHT) / count


def _bars(x_labels: list[str], coloured: list[tuple[str, str, list[int]]], top: float,
          highest: float) -> list[str]:
    slot, parts = _slot(len(x_labels)), ['<g class="bars">']
    for index, label in enumerate(x_labels):
        x, bottom = _LEFT + index * slot + slot * 0.15, top + _PLOT_HEIGHT
        for name, colour, counts in coloured:
            if not counts[index]:
                continue
            height = counts[index] / highest * _PLOT_HEIGHT
            bottom -= height
            parts.append(
                f'<rect x="{_number(x)}" y="{_number(bottom)}" width="{_number(slot * 0.7)}" '
                f'height="{_number(height)}" fill="{colour}" stroke="#FFFFFF" '
                f'stroke-width="1"><title>{escape(f"{label}, {name}: {counts[index]:,}")}'
                f"</title></rect>")
    parts.append("</g>")
    return parts


def _x_axis(x_labels: list[str], top: float) -> str:
    """Every label that fits: every k-th one when they would overlap."""
    slot = _slot(len(x_labels))
    widest = max(len(_short(label)) for label in x_labels) * _CHAR_WIDTH + 6
    every = max(1, math.ceil(widest / slot))
    parts = ['<g class="x-axis">']
    for index in range(0, len(x_labels), every):
        parts.append(_text(_LEFT + (index + 0.5) * slot, top + _PLOT_HEIGHT + 18,
                           _short(x_labels[index]), anchor="middle"))
    parts.append("</g>")
    return "".join(parts)


def _horizontal_grid(left: float, top: float, span: float, rows: int, scale: float,
                     value_format: str) -> str:
    bottom, parts = top + rows * _ROW, ['<g class="x-axis">']
    for quarter in range(5):
        x = left + span * quarter / 4
        colour = AXIS_COLOUR if quarter == 0 else GRID_COLOUR
        parts.append(f'<line x1="{_number(x)}" y1="{top}" x2="{_number(x)}" '
                     f'y2="{_number(bottom)}" stroke="{colour}" stroke-width="1"/>')
        parts.append(_text(x, bottom + 16, value_format.format(scale * quarter / 4),
                           anchor="middle"))
    parts.append("</g>")
    return "".join(parts)


def _horizontal_bar(index: int, label: str, value: float, left: float, top: float,
                    per_unit: float, value_format: str) -> str:
    y, shown = top + index * _ROW, value_format.format(value)
    width = value * per_unit
    return (f'<g class="bar">{_text(left - 6, y + 15, _short(label), anchor="end")}'
            f'<rect x="{_number(left)}" y="{_number(y + 4)}" width="{_number(width)}" '
            f'height="{_ROW - 8}" fill="{PALETTE[1]}">'
            f"<title>{escape(f'{label}: {shown}')}</title></rect>"
            f"{_text(left + width + 6, y + 15, shown)}</g>")


def _ids(title: str, description: str, body: str) -> str:
    """An id prefix for the title and description, the same for the same chart (so a page
    with several charts has distinct ids without a counter)."""
    digest = hashlib.sha256("\0".join((title, description, body)).encode()).hexdigest()
    return f"chart-{digest[:12]}"


def _svg(title: str, description: str, height: float, parts: list[str]) -> Markup:
    body = "".join(parts)
    ids = _ids(title, description, body)
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{WIDTH}" height="{_number(height)}" '
        f'viewBox="0 0 {WIDTH} {_number(height)}" aria-labelledby="{ids}-title" '
        f'aria-describedby="{ids}-desc" {_FONT}>'
        f'<title id="{ids}-title">{escape(title)}</title>'
        f'<desc id="{ids}-desc">{escape(description)}</desc>'
        f"{_text(_LEFT, 22, title, size=14, extra=_BOLD)}{body}</svg>")


def _empty(title: str, description: str) -> Markup:
    return _svg(title, description, 96, [_text(WIDTH / 2, 64, NO_DATA, anchor="middle")])
