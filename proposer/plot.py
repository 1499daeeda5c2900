"""The staircase plot of a run (``poi propose --log``): a PNG drawn without a plotting library.

x: iteration; y: speed-up over the run's start. Each evaluated experiment is a dot at the
speed-up it measured (green kept, grey discarded, red gate_failed / scope_violation, orange
crash, drawn on the axis when nothing was measured); the green staircase is the running best.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

from protocol.constants import PPM

from .log import CRASH, DISCARD, KEEP, Row, running_best

WIDTH, HEIGHT = 760, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 20, 45
WHITE, BLACK, GRID = (255, 255, 255), (0, 0, 0), (225, 225, 225)
COLOURS = {KEEP: (30, 150, 60), DISCARD: (150, 150, 150), CRASH: (230, 140, 20)}
FAILED = (210, 40, 40)

# 3x5 glyphs, one string of 15 bits (rows top to bottom) per character.
FONT = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111",
    "3": "111001111001111", "4": "101101111001001", "5": "111100111001111",
    "6": "111100111101111", "7": "111001001001001", "8": "111101111101111",
    "9": "111101111001111", ".": "000000000000010", "x": "000101010101000",
    "-": "000000111000000", " ": "000000000000000",
}


class Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(WHITE) * (width * height))

    def dot(self, x: float, y: float, colour, radius: int = 1) -> None:
        cx, cy = round(x), round(y)
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                if dx * dx + dy * dy <= radius * radius + 1:
                    self._set(cx + dx, cy + dy, colour)

    def line(self, x0: float, y0: float, x1: float, y1: float, colour, width: int = 1) -> None:
        steps = max(1, int(max(abs(x1 - x0), abs(y1 - y0))))
        for i in range(steps + 1):
            t = i / steps
            self.dot(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t, colour, width // 2)

    def text(self, x: int, y: int, value: str, colour=BLACK, scale: int = 2) -> None:
        for i, char in enumerate(value):
            glyph = FONT.get(char, FONT[" "])
            for bit, on in enumerate(glyph):
                if on == "1":
                    for sy in range(scale):
                        for sx in range(scale):
                            self._set(x + (i * 4 + bit % 3) * scale + sx,
                                      y + (bit // 3) * scale + sy, colour)

    def _set(self, x: int, y: int, colour) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y * self.width + x) * 3
            self.pixels[i:i + 3] = bytes(colour)

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(self.pixels[y * self.width * 3:(y + 1) * self.width * 3])
                       for y in range(self.height))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return (struct.pack(">I", len(data)) + kind + data
                    + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def staircase_png(rows: list[Row], path: Path) -> Path:
    """Draw the run in ``rows`` to ``path`` (PNG); returns the path."""
    evaluated = [r for r in rows if r.evaluated]
    best = running_best(rows)
    speedup_of: dict[str, float] = {}
    points = []
    for row in evaluated:
        base = speedup_of.get(row.parent, 1.0)
        value = base * PPM / row.ratio_ppm if row.ratio_ppm else None
        if row.status == KEEP and row.commit and value:
            speedup_of[row.commit] = value
        points.append((row.iteration, value, row.status))
    values = [v for _, v, _ in points if v] + [b for _, b in best] + [1.0]
    y_lo = min(1.0, min(values)) * 0.98
    y_hi = max(max(values) * 1.03, y_lo + 0.1)
    x_lo = min((i for i, _, _ in points), default=1)
    x_hi = max(max((i for i, _, _ in points), default=1), x_lo + 1)
    canvas = Canvas(WIDTH, HEIGHT)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(i: float) -> float:
        return LEFT + (i - x_lo) / (x_hi - x_lo) * plot_w

    def py(v: float) -> float:
        return TOP + plot_h - (v - y_lo) / (y_hi - y_lo) * plot_h

    for tick in _ticks(y_lo, y_hi):
        canvas.line(LEFT, py(tick), WIDTH - RIGHT, py(tick), GRID)
        canvas.text(4, int(py(tick)) - 5, f"{tick:.2f}x")
    for tick in _ticks(x_lo, x_hi, integer=True):
        canvas.line(px(tick), TOP + plot_h, px(tick), TOP + plot_h + 5, BLACK)
        label = str(int(tick))
        canvas.text(int(px(tick)) - 4 * len(label), TOP + plot_h + 12, label)
    canvas.line(LEFT, TOP, LEFT, TOP + plot_h, BLACK)
    canvas.line(LEFT, TOP + plot_h, WIDTH - RIGHT, TOP + plot_h, BLACK)
    previous = None
    for iteration, value in best:
        if previous is not None:
            canvas.line(px(previous[0]), py(previous[1]), px(iteration), py(previous[1]),
                        COLOURS[KEEP], 3)
            canvas.line(px(iteration), py(previous[1]), px(iteration), py(value),
                        COLOURS[KEEP], 3)
        previous = (iteration, value)
    for iteration, value, status in points:
        colour = COLOURS.get(status, FAILED)
        canvas.dot(px(iteration), py(value) if value else TOP + plot_h - 4, colour,
                   4 if status == KEEP else 3)
    path = Path(path)
    path.write_bytes(canvas.png())
    return path


def _ticks(lo: float, hi: float, integer: bool = False, count: int = 6) -> list[float]:
    span = hi - lo
    raw = span / count
    step = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for factor in (1, 2, 2.5, 5, 10):
        if span / (step * factor) <= count:
            step *= factor
            break
    if integer:
        step = max(1, round(step))
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step) + 1)]
