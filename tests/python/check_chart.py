#!/usr/bin/env python3
"""Checks a chart written by `ssmhost plot` (used by tests/test_plot.cpp).

    check_chart.py svg FILE N_SERIES     the SVG parses as XML, has exactly N <path> elements
                                         (one per series) and axis labels
    check_chart.py png FILE WIDTH HEIGHT a PNG of that size that is not blank: several colours,
                                         and a fair share of pixels that are not background
Exit status 0 when it holds; the reason on stderr otherwise.
"""
import struct
import sys
import xml.etree.ElementTree as ET
import zlib

SVG = "{http://www.w3.org/2000/svg}"


def check_svg(path, n):
    root = ET.parse(path).getroot()
    assert root.tag == SVG + "svg", f"root element is {root.tag}"
    paths = root.findall(f".//{SVG}path")
    assert len(paths) == n, f"{len(paths)} <path> elements, expected {n}"
    for p in paths:
        assert p.get("d", "").startswith("M"), "a path without data"
    texts = {t.get("class"): "".join(t.itertext()) for t in root.iter(SVG + "text") if t.get("class")}
    assert texts.get("x-label"), "no x axis label"
    assert texts.get("y-label"), "no y axis label"
    legend = root.find(f".//{SVG}g[@class='legend']")
    assert legend is not None and len(legend.findall(f"{SVG}text")) == n, "the legend does not name every series"


def png_pixels(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, ctype, _, _, interlace = ihdr
    assert depth == 8 and interlace == 0, f"unexpected PNG depth {depth} / interlace {interlace}"
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 255
        elif f == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 255
        elif f == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b = prev[i]
                c = prev[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, channels, rows


def check_png(path, w, h):
    width, height, channels, rows = png_pixels(path)
    assert (width, height) == (w, h), f"size {width}x{height}, expected {w}x{h}"
    counts = {}
    for line in rows:
        for x in range(0, len(line), channels):
            px = line[x:x + channels]
            counts[px] = counts.get(px, 0) + 1
    background = max(counts, key=counts.get)
    other = width * height - counts[background]
    assert len(counts) >= 4, f"only {len(counts)} colours: blank?"
    assert other >= 0.005 * width * height, f"only {other} pixels differ from the background: blank?"


if __name__ == "__main__":
    try:
        if sys.argv[1] == "svg":
            check_svg(sys.argv[2], int(sys.argv[3]))
        else:
            check_png(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    except AssertionError as e:
        print(f"check_chart: {sys.argv[2]}: {e}", file=sys.stderr)
        sys.exit(1)
