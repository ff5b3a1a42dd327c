"""Tests of ncutils.book.plots: captions outside the image, alt text, numbering, blank table cells."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest

from ncutils.book import plots

FRAME = pd.DataFrame({"noise": [0.0, 0.1, 1.0] * 2, "nc1": [1e-3, 0.1, 10.0, 2e-3, 0.2, 5.0],
                      "metric": ["a"] * 3 + ["b"] * 3})


def _image(html: str) -> bytes:
    return base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', html).group(1))


def test_provenance_is_not_drawn_into_the_figure_but_folded_under_it():
    figure = plots.line_plot(FRAME, "noise", "nc1", hue="metric", logy=True,
                             caption="profile smoke · seed 0 · cpu · commit abc1234 · {'epochs': 3}")
    assert figure._supxlabel is None  # nothing burnt into the image
    html = plots.figure_html(figure)
    assert re.search(r'<details class="nc-figure-provenance"><summary>Provenance</summary><p>profile smoke', html)
    assert "{&#x27;epochs&#x27;: 3}" in html  # escaped, inside the folded block only
    assert html.index("<figcaption>") > html.index("<img")


def test_caption_is_numbered_and_uses_the_takeaway_else_the_title():
    with_takeaway = plots.line_plot(FRAME, "noise", "nc1", title="NC1 against noise",
                                    takeaway="NC1 grows with the noise.")
    without = plots.line_plot(FRAME, "noise", "nc1", title="NC1 against noise")
    first, second = plots.figure_html(with_takeaway), plots.figure_html(without)
    numbers = [int(re.search(r"Figure (\d+)\.", html).group(1)) for html in (first, second)]
    assert numbers[1] == numbers[0] + 1
    assert "NC1 grows with the noise.</figcaption>" in first
    assert "NC1 against noise</figcaption>" in second
    assert plots.figure_html(with_takeaway).count(f"Figure {numbers[0]}.") == 1  # shown again: same number
    assert "<details" not in second  # no provenance given, none shown


def test_callers_without_takeaway_still_work_and_add_caption_keeps_its_signature():
    figure, (axis,) = plots.new_figure()
    axis.plot([0, 1], [1, 0])
    assert plots.add_caption(figure, None) is figure
    assert plots.add_caption(figure, "profile cpu") is figure
    assert "profile cpu" in plots.figure_html(figure)


def test_alt_text_says_what_the_figure_shows_not_a_file_path():
    figure = plots.line_plot(FRAME, "noise", "nc1", hue="metric", logy=True, title="collapse")
    alt = re.search(r'alt="([^"]*)"', plots.figure_html(figure)).group(1)
    assert alt == "Plot of nc1 (log scale) against noise; lines: a, b (collapse)."
    heatmap = plots.epoch_layer_heatmaps(
        pd.DataFrame({"architecture": "mlp", "dataset": "a", "epoch": [0, 0, 5, 5],
                      "name": ["input", "fc1"] * 2, "depth": [0.0, 1.0] * 2, "nc1": [9.0, 8.0, 9.0, 0.1]}),
        "nc1", title="over training")
    assert plots.describe(heatmap).startswith("Heat map of epoch by layer (input to penultimate)")


def test_several_panels_are_described_one_by_one():
    figure = plots.depth_panels(pd.DataFrame({"architecture": ["mlp", "mlp", "cnn", "cnn"], "dataset": "a",
                                              "depth": [0.0, 1.0] * 2, "nc1": [10.0, 0.1, 5.0, 0.5]}),
                                "nc1", title="NC1 at every layer")
    text = plots.describe(figure)
    assert text.startswith("2 panels: NC1 at every layer.")
    assert "Panel 1 (architecture: mlp)" in text and "Panel 2 (architecture: cnn)" in text


def test_image_is_sharp_and_shown_at_its_css_size():
    figure = plots.line_plot(FRAME, "noise", "nc1")
    html = plots.figure_html(figure)
    png = _image(html)
    pixels = int.from_bytes(png[16:20], "big")
    css = int(re.search(r'width="(\d+)"', html).group(1))
    assert plots.DPI >= 150
    assert pixels / css == pytest.approx(plots.DPI / 96, rel=0.02)
    assert "max-width: 100%" in html


def test_tables_show_blank_cells_and_a_note_instead_of_nan():
    frame = pd.DataFrame({"run": ["a", "b"], "value": [1.5, np.nan], "label": ["x", None]})
    html = plots.table_html(frame)
    cells = re.findall(r"<td>([^<]*)</td>", html)
    assert cells == ["a", "1.5", "x", "b", "", ""]
    assert plots.BLANK_NOTE in html
    assert plots.BLANK_NOTE not in plots.table_html(frame.fillna(0))


def test_tables_show_settings_dicts_as_text_not_python():
    frame = pd.DataFrame({"arch": ["mlp", "vgg"], "arch_kwargs": [{"depth": 7, "width": 128}, None]})
    cells = re.findall(r"<td>([^<]*)</td>", plots.table_html(frame))
    assert cells == ["mlp", "depth=7, width=128", "vgg", ""]


class _Formatter:
    def __init__(self):
        self.type_printers = {}

    def for_type(self, kind, function):
        self.type_printers[kind] = function


class _Shell:
    def __init__(self):
        mimes = ("text/html", "image/png", "image/svg+xml", "image/jpeg", "application/pdf")
        self.display_formatter = type("F", (), {"formatters": {mime: _Formatter() for mime in mimes}})()


def test_in_ipython_figures_and_tables_display_through_the_html_formatters(monkeypatch):
    import IPython
    from matplotlib.figure import Figure

    shell = _Shell()
    shell.display_formatter.formatters["image/png"].for_type(Figure, lambda figure: b"png")
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    plots._enable_notebook_display()
    formatters = shell.display_formatter.formatters
    assert formatters["text/html"].type_printers[Figure] is plots.figure_html
    assert formatters["text/html"].type_printers[pd.DataFrame] is plots.table_html
    assert Figure not in formatters["image/png"].type_printers  # the figure is stored once, with its caption
