"""Seaborn figures shared by the chapters.

Why one module of this size: it is one concept, the book's house style for figures and data
tables (numbered captions, provenance folded under the figure, alt text, blank missing values),
which every figure function shares.

Every function takes a tidy :class:`pandas.DataFrame` of numbers that were
computed elsewhere and returns a :class:`matplotlib.figure.Figure`; nothing
here computes a metric. Figures are created outside ``pyplot`` so a notebook
shows each one exactly once: when it is the value of the cell (or passed to
``display``).

A figure can carry its provenance (see :func:`ncutils.book.provenance.caption`) via the
``caption`` argument and the sentence a reader should take from it via ``takeaway``. Neither is
drawn into the image: in a notebook a figure is shown as HTML (:func:`figure_html`), a numbered
caption ("Figure 3. <takeaway>") under the image, with the provenance folded into a
``<details>`` block, and alt text that says what the figure shows (:func:`describe`).

Data tables (:class:`pandas.DataFrame`) shown in a notebook that imported this module render
missing values as blank cells with a note under the table (:func:`table_html`), never ``NaN``.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import sys
from typing import Mapping, Sequence

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = [
    "DPI", "FIGSIZE", "add_caption", "describe", "figure_html", "line_plot", "new_figure",
    "scaling_plot", "spectrum_evolution", "table_html",
    # Parker chapters
    "depth_panels", "difficulty_scatter", "epoch_layer_heatmaps",
]

#: Default figure size in inches (width, height): readable on a book page.
FIGSIZE = (6.4, 4.0)


#: Resolution of the figures' PNG images (dots per inch): sharp on high-density screens.
DPI = 150

#: Number of the next figure shown in this process (one kernel per chapter: figures count from 1).
_numbers = itertools.count(1)

#: The note under a data table that had missing values.
BLANK_NOTE = "Blank cells: no value (not measured, or not defined for that row)."


def _style() -> None:
    import seaborn as sns

    # larger type than seaborn's "notebook" context: multi-panel figures are shrunk to the column
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind", font_scale=1.2)
    _enable_notebook_display()


def _enable_notebook_display() -> None:
    """Let IPython show a Figure as :func:`figure_html` and a DataFrame as :func:`table_html`.

    IPython registers its PNG figure formatter only when pyplot's inline backend starts (seaborn
    imports pyplot); the HTML one replaces it, so a figure is stored once, with its caption. A
    no-op outside IPython.
    """
    if "IPython" not in sys.modules:  # never import IPython into a plain Python process
        return
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    formatters = shell.display_formatter.formatters
    formatters["text/html"].for_type(Figure, figure_html)
    formatters["text/html"].for_type(pd.DataFrame, table_html)
    for mime in ("image/png", "image/svg+xml", "image/jpeg", "application/pdf"):
        formatters[mime].type_printers.pop(Figure, None)


def _figure_axes(figure: Figure) -> list[Axes]:
    """The visible data panels of a figure (colour bars left out)."""
    return [ax for ax in figure.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def _legend_labels(ax: Axes) -> tuple[str, list[str]]:
    legend = ax.get_legend()
    if legend is None:
        return "", []
    return legend.get_title().get_text(), [text.get_text() for text in legend.get_texts() if text.get_text()]


def describe(figure: Figure) -> str:
    """Alt text for a figure: what each panel plots, read off its axes (titles, labels, legends).

    Parameters
    ----------
    figure : matplotlib.figure.Figure

    Returns
    -------
    str
        e.g. ``"Plot of nc1 (log scale) against noise; lines: NC1, NC2."``; with several
        panels, one sentence per panel after the figure's title.

    Example
    -------
    >>> frame = pd.DataFrame({"noise": [0.0, 1.0], "nc1": [0.1, 1.0]})
    >>> describe(line_plot(frame, "noise", "nc1", title="NC1 grows with noise"))
    'Plot of nc1 against noise (NC1 grows with noise).'
    """
    from matplotlib.collections import QuadMesh

    sentences = []
    title = figure._suptitle.get_text() if getattr(figure, "_suptitle", None) is not None else ""
    panels = _figure_axes(figure)
    if len(panels) > 1:
        sentences.append(f"{len(panels)} panels" + (f": {title}" if title else "") + ".")
    for position, ax in enumerate(panels, 1):
        x, y = ax.get_xlabel() or "x", ax.get_ylabel() or "y"
        heatmap = any(isinstance(item, QuadMesh) for item in ax.collections)
        if ax.get_yscale() == "log" and "log" not in y:
            y += " (log scale)"
        if ax.get_xscale() == "log" and "log" not in x:
            x += " (log scale)"
        text = f"Heat map of {y} by {x}" if heatmap else f"Plot of {y} against {x}"
        legend_title, labels = _legend_labels(ax)
        if labels:
            shown = ", ".join(labels[:8]) + (f" and {len(labels) - 8} more" if len(labels) > 8 else "")
            text += f"; {legend_title or 'lines'}: {shown}"
        panel_title = ax.get_title()
        if len(panels) > 1:
            text = f"Panel {position}{f' ({panel_title})' if panel_title else ''}: {text[0].lower()}{text[1:]}"
        elif panel_title or title:
            text += f" ({panel_title or title})"
        sentences.append(text + ".")
    return " ".join(sentences) if sentences else "An empty figure."


def _png(figure: Figure) -> tuple[str, int, int]:
    """The figure as a base64 PNG at :data:`DPI`, with its width and height in CSS pixels."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    data = buffer.getvalue()
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    # shown at 96 CSS pixels per inch of the figure; the image holds DPI dots per inch
    return base64.b64encode(data).decode("ascii"), round(width * 96 / DPI), round(height * 96 / DPI)


def figure_html(figure: Figure) -> str:
    """A figure as HTML: the image, a numbered caption, the provenance folded away.

    The number is given the first time the figure is shown and kept (figures count from 1 in
    each kernel, that is per chapter). The caption is the figure's takeaway
    (:func:`add_caption`), else its title.

    Parameters
    ----------
    figure : matplotlib.figure.Figure

    Returns
    -------
    str
        ``<figure class="nc-figure">`` with an ``<img>`` (PNG at :data:`DPI`, alt text from
        :func:`describe`) and a ``<figcaption>`` ("Figure N. ..." and a ``<details>`` block
        with the provenance, when the figure has one).
    """
    escape = html.escape
    number = getattr(figure, "_nc_number", None)
    if number is None:
        number = figure._nc_number = next(_numbers)
    data, width, height = _png(figure)
    takeaway = getattr(figure, "_nc_takeaway", None)
    if not takeaway:
        titles = [figure._suptitle.get_text()] if getattr(figure, "_suptitle", None) is not None else []
        titles += [ax.get_title() for ax in _figure_axes(figure)]
        takeaway = next((text for text in titles if text), "")
    caption = f'<span class="nc-figure-number">Figure {number}.</span> {escape(takeaway)}'.rstrip()
    provenance = getattr(figure, "_nc_provenance", None)
    if provenance:
        caption += (f'<details class="nc-figure-provenance"><summary>Provenance</summary>'
                    f"<p>{escape(provenance)}</p></details>")
    return (
        f'<figure class="nc-figure" id="nc-figure-{number}">'
        f'<img src="data:image/png;base64,{data}" width="{width}" height="{height}" '
        f'alt="{escape(describe(figure))}" style="max-width: 100%; height: auto;">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _mapping_text(value):
    if not isinstance(value, Mapping):
        return value
    return ", ".join(f"{key}={_mapping_text(item) if isinstance(item, Mapping) else item}" for key, item in value.items())


def table_html(frame: pd.DataFrame) -> str:
    """A data table as HTML with missing values as blank cells and a note saying so.

    Parameters
    ----------
    frame : pandas.DataFrame

    Returns
    -------
    str
        pandas' own HTML (same row and column limits as its notebook display) with ``NaN``,
        ``None`` and ``NaT`` written as empty cells, then :data:`BLANK_NOTE` when there were any;
        a cell holding a dict (e.g. an architecture's settings) reads ``depth=7, width=128``.

    Example
    -------
    >>> "NaN" in table_html(pd.DataFrame({"a": [1.0, float("nan")]}))
    False
    """
    missing = frame.isna()
    mappings = [position for position in range(frame.shape[1]) if frame.dtypes.iloc[position] == object
                and frame.iloc[:, position].map(lambda value: isinstance(value, Mapping)).any()]
    if mappings:  # a dict of settings reads as "depth=7, width=128", not as Python
        frame = frame.copy()
        for position in mappings:
            frame.isetitem(position, frame.iloc[:, position].map(_mapping_text))
    if missing.to_numpy().any():
        # to_html's na_rep covers NaN but writes None in object columns as "None"; numeric
        # columns keep their dtype (and pandas' number format)
        frame = frame.copy()
        for position, column in enumerate(frame.columns):
            if frame.dtypes.iloc[position] == object and missing.iloc[:, position].any():
                frame.isetitem(position, frame.iloc[:, position].mask(missing.iloc[:, position], ""))
    table = frame.to_html(
        na_rep="",
        max_rows=pd.get_option("display.max_rows"),
        max_cols=pd.get_option("display.max_columns"),
        show_dimensions=pd.get_option("display.show_dimensions") is True,
        classes="nc-table",
        border=0,
    )
    note = f'<p class="nc-table-note">{html.escape(BLANK_NOTE)}</p>' if missing.to_numpy().any() else ""
    return f'<div class="nc-table-scroll">{table}</div>{note}'


def new_figure(ncols: int = 1, *, figsize: tuple[float, float] | None = None) -> tuple[Figure, list[Axes]]:
    """Create a figure with ``ncols`` side-by-side axes, in the book's style.

    Parameters
    ----------
    ncols : int, default 1
        Number of panels.
    figsize : tuple of float, optional
        Size in inches; defaults to :data:`FIGSIZE` widened per panel.

    Returns
    -------
    figure : matplotlib.figure.Figure
    axes : list of matplotlib.axes.Axes

    Example
    -------
    >>> figure, (axis,) = new_figure()
    """
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols}")
    _style()
    if figsize is None:
        figsize = (FIGSIZE[0] * (1 + 0.75 * (ncols - 1)), FIGSIZE[1])
    figure = Figure(figsize=figsize, layout="constrained")
    axes = figure.subplots(1, ncols, squeeze=False)[0]
    return figure, list(axes)


def add_caption(figure: Figure, text: str | None, *, takeaway: str | None = None) -> Figure:
    """Attach a provenance line (and the figure's takeaway) to a figure; returns it.

    Nothing is drawn into the image: :func:`figure_html` shows the takeaway as the numbered
    caption under the figure and the provenance in a collapsed ``<details>`` block.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
    text : str or None
        The provenance, usually :func:`ncutils.book.provenance.caption`; ``None`` or empty
        leaves the figure's provenance as it was.
    takeaway : str, optional
        What the reader should see in the figure, in one sentence (the caption); without one
        the caption is the figure's title.

    Returns
    -------
    matplotlib.figure.Figure
        The same figure.

    Example
    -------
    >>> figure, _ = new_figure()
    >>> add_caption(figure, "profile smoke · seed 0", takeaway="NC1 falls with depth.")._nc_takeaway
    'NC1 falls with depth.'
    """
    if text:
        figure._nc_provenance = str(text)
    if takeaway:
        figure._nc_takeaway = str(takeaway)
    return figure


def _check_columns(frame: pd.DataFrame, columns: Sequence[str | None]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    missing = [column for column in columns if column is not None and column not in frame.columns]
    if missing:
        raise ValueError(f"missing columns {missing}; the frame has {list(frame.columns)}")
    if frame.empty:
        raise ValueError("nothing to plot: the frame is empty")


def _label(name: str) -> str:
    return name.replace("_", " ")


def line_plot(
    frame: pd.DataFrame,
    x: str,
    y: str,
    *,
    hue: str | None = None,
    style: str | None = None,
    logx: bool = False,
    logy: bool = False,
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    references: Mapping[str, float] | None = None,
    caption: str | None = None,
    ax: Axes | None = None,
    takeaway: str | None = None,
) -> Figure:
    """Line plot of ``y`` against ``x`` with markers, one line per ``hue`` value.

    Repeated ``x`` values within a line (e.g. several seeds) are shown as their
    mean with a 95% interval, seaborn's default.

    Parameters
    ----------
    frame : pandas.DataFrame
        Tidy data: one row per point.
    x, y : str
        Column names.
    hue, style : str, optional
        Columns that split the data into lines (colour, dashes and markers).
    logx, logy : bool
        Logarithmic axes.
    xlabel, ylabel, title : str, optional
        Labels; default to the column names.
    references : dict, optional
        ``{label: value}`` horizontal reference lines (e.g. a theoretical value).
    caption : str, optional
        Provenance, usually :func:`ncutils.book.provenance.caption`: shown folded under the
        figure, never drawn into it (:func:`add_caption`).
    ax : matplotlib.axes.Axes, optional
        Draw into this axes (of a figure from :func:`new_figure`).
    takeaway : str, optional
        The figure's caption: what to see in it, in one sentence (:func:`add_caption`).

    Returns
    -------
    matplotlib.figure.Figure

    Example
    -------
    >>> frame = pd.DataFrame({"noise": [0.0, 0.1, 1.0], "nc1": [1e-9, 0.1, 10.0]})
    >>> figure = line_plot(frame, "noise", "nc1", logy=True)
    """
    import seaborn as sns

    _check_columns(frame, [x, y, hue, style])
    if ax is None:
        figure, (ax,) = new_figure()
    else:
        figure = ax.figure
    if style is None:
        sns.lineplot(data=frame, x=x, y=y, hue=hue, marker="o", ax=ax)
    else:
        sns.lineplot(data=frame, x=x, y=y, hue=hue, style=style, markers=True, ax=ax)
    for label, value in (references or {}).items():
        ax.axhline(value, color="0.3", linestyle=":", linewidth=1.2, label=label, zorder=0)
    if references or hue or style:
        ax.legend()
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel or _label(x))
    ax.set_ylabel(ylabel or _label(y))
    if title:
        ax.set_title(title)
    return add_caption(figure, caption, takeaway=takeaway)


def scaling_plot(
    frame: pd.DataFrame,
    size: str,
    seconds: str,
    method: str,
    *,
    xlabel: str | None = None,
    title: str | None = None,
    caption: str | None = None,
    ax: Axes | None = None,
    takeaway: str | None = None,
) -> Figure:
    """Log-log plot of run time against problem size, one line per method.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per timing.
    size, seconds, method : str
        Columns: problem size (e.g. the dimension D), time in seconds, method name.
    xlabel, title, caption, ax, takeaway
        As for :func:`line_plot`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    return line_plot(
        frame,
        size,
        seconds,
        hue=method,
        style=method,
        logx=True,
        logy=True,
        xlabel=xlabel or _label(size),
        ylabel="time (seconds)",
        title=title,
        caption=caption,
        ax=ax,
        takeaway=takeaway,
    )


# --------------------------------------------------------------------------- UFM chapter (Garrod & Keating)
def spectrum_evolution(
    frame: pd.DataFrame,
    *,
    step: str = "step",
    eigenvalue: str = "eigenvalue",
    index: str = "index",
    group: str = "group",
    logx: bool = True,
    logy: bool = True,
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    caption: str | None = None,
    ax: Axes | None = None,
    takeaway: str | None = None,
) -> Figure:
    """Eigenvalues over training, one line per eigenvalue index, coloured by group.

    Used for Hessian spectra (e.g. the ``K^2`` outliers against the bulk):
    unlike :func:`line_plot`, lines are never averaged.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per (snapshot, eigenvalue): columns ``step``, ``eigenvalue``,
        ``index`` (rank of the eigenvalue, 1 = largest) and ``group``.
    step, eigenvalue, index, group : str
        Column names.
    logx, logy : bool, default True
        Logarithmic axes (use a ``step`` column that starts at 1 for ``logx``).
    xlabel, ylabel, title, caption, ax
        As for :func:`line_plot`.

    Returns
    -------
    matplotlib.figure.Figure

    Example
    -------
    >>> frame = pd.DataFrame({"step": [1, 10, 1, 10], "eigenvalue": [2.0, 3.0, 1.0, 0.5],
    ...                       "index": [1, 1, 2, 2], "group": ["outlier"] * 2 + ["bulk"] * 2})
    >>> figure = spectrum_evolution(frame)
    """
    import seaborn as sns

    _check_columns(frame, [step, eigenvalue, index, group])
    if ax is None:
        figure, (ax,) = new_figure()
    else:
        figure = ax.figure
    sns.lineplot(data=frame, x=step, y=eigenvalue, hue=group, units=index, estimator=None,
                 linewidth=1.0, alpha=0.8, ax=ax)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel or _label(step))
    ax.set_ylabel(ylabel or _label(eigenvalue))
    if title:
        ax.set_title(title)
    return add_caption(figure, caption, takeaway=takeaway)


# --------------------------------------------------------------------------------------------
# Parker et al. 2023 chapters (P1-P4): per-layer profiles, epoch x layer heatmaps, P4 scatter.
# Owned by the Parker chapters; the frames are the tables of ncutils.grid.run_grid.


def _panel_grid(count: int, ncols: int, panel_size: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    """A figure with ``count`` panels on rows of ``ncols``; unused cells are hidden."""
    _style()
    ncols = max(1, min(ncols, count))
    nrows = -(-count // ncols)
    figure = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    axes = list(figure.subplots(nrows, ncols, squeeze=False).ravel())
    for spare in axes[count:]:
        spare.set_visible(False)
    return figure, axes[:count]


def depth_panels(
    frame: pd.DataFrame,
    metric: str,
    *,
    panel: str = "architecture",
    hue: str = "dataset",
    logy: bool = True,
    references: Mapping[str, float] | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    caption: str | None = None,
    ncols: int = 3,
    x: str = "depth",
    xlabel: str | None = None,
    logx: bool = False,
    takeaway: str | None = None,
) -> Figure:
    """One panel per value of ``panel``: ``metric`` against relative depth, a line per ``hue``.

    With ``x="epoch"`` (and ``hue`` a layer column) it draws the other view: each layer's
    metric over training, as Parker et al.'s figures do.

    Parameters
    ----------
    frame : pandas.DataFrame
        Layer-sweep rows with a ``depth`` column (0 = input, 1 = penultimate), one epoch per
        line (filter the epoch first, e.g. with :func:`ncutils.papers.parker.last_epoch`).
    metric : str
        Column to plot, e.g. ``"nc1"``.
    panel, hue : str
        Columns splitting the data into panels and into lines.
    logy : bool, default True
        Logarithmic y axis.
    references : dict, optional
        ``{label: value}`` horizontal reference lines in every panel.
    ylabel, title, caption : str, optional
        Axis label (default the metric), figure title, provenance (:func:`add_caption`).
    ncols : int, default 3
        Panels per row.
    x, xlabel : str
        The x column (default ``depth``) and its label.
    logx : bool, default False
        Logarithmic x axis.

    Returns
    -------
    matplotlib.figure.Figure

    Example
    -------
    >>> frame = pd.DataFrame({"architecture": ["mlp"] * 4, "dataset": ["a", "a", "b", "b"],
    ...                       "depth": [0.0, 1.0, 0.0, 1.0], "nc1": [10.0, 0.1, 5.0, 0.5]})
    >>> figure = depth_panels(frame, "nc1")
    """
    _check_columns(frame, [x, metric, panel, hue])
    values = list(dict.fromkeys(frame[panel]))
    figure, axes = _panel_grid(len(values), ncols, FIGSIZE)
    if xlabel is None:
        xlabel = "relative depth (0 = input, 1 = penultimate)" if x == "depth" else _label(x)
    for value, ax in zip(values, axes):
        line_plot(frame[frame[panel] == value], x, metric, hue=hue, logy=logy, logx=logx,
                  references=references, xlabel=xlabel,
                  ylabel=ylabel or _label(metric), title=f"{_label(panel)}: {value}", ax=ax)
    if title:
        figure.suptitle(title)
    return add_caption(figure, caption, takeaway=takeaway)


def epoch_layer_heatmaps(
    frame: pd.DataFrame,
    metric: str,
    *,
    panels: Sequence[str] = ("architecture", "dataset"),
    epoch: str = "epoch",
    layer: str = "name",
    log: bool = True,
    ncols: int = 3,
    title: str | None = None,
    caption: str | None = None,
    takeaway: str | None = None,
) -> Figure:
    """Heatmaps of ``metric`` over (epoch, layer), one panel per run, one shared colour scale.

    Parameters
    ----------
    frame : pandas.DataFrame
        Layer sweeps of several runs over several epochs, with a ``depth`` column that
        orders the layers.
    metric : str
        Column to show, e.g. ``"nc1"``.
    panels : sequence of str
        Columns identifying a run (one panel each).
    epoch, layer : str
        Row and column variables of each heatmap (layers in depth order).
    log : bool, default True
        Colour by ``log10(metric)`` (the metric must then be positive).
    ncols : int, default 3
        Panels per row.
    title, caption : str, optional
        Figure title and provenance (:func:`add_caption`).

    Returns
    -------
    matplotlib.figure.Figure

    Example
    -------
    >>> frame = pd.DataFrame({"architecture": "mlp", "dataset": "a", "epoch": [0, 0, 5, 5],
    ...                       "name": ["input", "fc1"] * 2, "depth": [0.0, 1.0] * 2,
    ...                       "nc1": [9.0, 8.0, 9.0, 0.1]})
    >>> figure = epoch_layer_heatmaps(frame, "nc1")
    """
    import numpy as np
    import seaborn as sns

    panels = list(panels)
    _check_columns(frame, [*panels, epoch, layer, "depth", metric])
    if log and not (frame[metric] > 0).all():
        raise ValueError(f"log colour scale needs a positive {metric!r}; pass log=False")
    colour = np.log10(frame[metric]) if log else frame[metric]
    limits = (float(colour.min()), float(colour.max()))
    runs = list(frame.groupby(panels, sort=False))
    figure, axes = _panel_grid(len(runs), ncols, (FIGSIZE[0] * 0.8, FIGSIZE[1] * 0.8))
    for (values, run), ax in zip(runs, axes):
        order = run.drop_duplicates(layer).sort_values("depth")[layer].tolist()
        grid = (run.assign(_colour=colour.loc[run.index])
                .pivot_table(index=epoch, columns=layer, values="_colour")[order])
        sns.heatmap(grid, ax=ax, cmap="viridis", vmin=limits[0], vmax=limits[1],
                    cbar_kws={"label": f"log10 {_label(metric)}" if log else _label(metric)})
        ax.set_title(" / ".join(str(value) for value in np.atleast_1d(values)))
        ax.set_xlabel("layer (input to penultimate)")
        ax.set_ylabel(_label(epoch))
        ax.tick_params(axis="x", labelrotation=90)
    if title:
        figure.suptitle(title)
    return add_caption(figure, caption, takeaway=takeaway)


def difficulty_scatter(
    table: pd.DataFrame,
    *,
    x: str = "difficulty",
    y: str = "depth_needed",
    hue: str = "architecture",
    label: str = "dataset",
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    caption: str | None = None,
    takeaway: str | None = None,
) -> Figure:
    """Points ``(x, y)`` joined per ``hue`` in order of ``x``, each annotated with its ``label``.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per run, e.g. difficulty (1 - test accuracy) and depth-needed (chapter P4).
    x, y, hue, label : str
        Column names.
    xlabel, ylabel, title, caption : str, optional
        Labels, title and provenance (:func:`add_caption`).

    Returns
    -------
    matplotlib.figure.Figure

    Example
    -------
    >>> table = pd.DataFrame({"architecture": ["mlp"] * 3, "dataset": ["a", "b", "c"],
    ...                       "difficulty": [0.01, 0.05, 0.3], "depth_needed": [0.2, 0.5, 1.0]})
    >>> figure = difficulty_scatter(table)
    """
    import seaborn as sns

    _check_columns(table, [x, y, hue, label])
    figure, (ax,) = new_figure()
    ordered = table.sort_values([hue, x])
    sns.lineplot(data=ordered, x=x, y=y, hue=hue, style=hue, markers=True, markersize=9,
                 sort=False, estimator=None, ax=ax)
    for row in ordered.itertuples(index=False):
        ax.annotate(str(getattr(row, label)), (getattr(row, x), getattr(row, y)),
                    textcoords="offset points", xytext=(5, 5), fontsize="small")
    ax.set_xlabel(xlabel or _label(x))
    ax.set_ylabel(ylabel or _label(y))
    if title:
        ax.set_title(title)
    return add_caption(figure, caption, takeaway=takeaway)


def relative_traces_by_layer(sweeps: pd.DataFrame, epochs: Sequence[int], *, nc_layer: str | None = None,
                             title: str | None = None, caption: str | None = None,
                             takeaway: str | None = None) -> Figure:
    """Rangamani et al.'s relative traces (``src/Plotting.py``): within/sum and between/sum
    against layer on a log scale, one line per epoch; the "NC layer" marked.

    ``sweeps``: one run's layer sweeps with ``epoch``, ``layer``, ``name`` and
    ``relative_within_trace`` (between/sum is one minus it). Only plots.
    """
    import seaborn as sns

    _check_columns(sweeps, ["epoch", "layer", "name", "relative_within_trace"])
    figure, axes = new_figure(2)
    frame = sweeps[sweeps["epoch"].isin(list(epochs))].sort_values(["epoch", "layer"])
    names = frame.drop_duplicates("layer").sort_values("layer")["name"].tolist()
    for axis, (label, values) in zip(axes, (("within / (within + between)", frame["relative_within_trace"]),
                                            ("between / (within + between)", 1 - frame["relative_within_trace"]))):
        data = frame.assign(value=values.to_numpy(), epoch_label=frame["epoch"].map(lambda e: f"epoch {e}"))
        sns.lineplot(data=data, x="layer", y="value", hue="epoch_label", marker="o", ax=axis)
        axis.set_yscale("log")
        axis.set_ylabel(label)
        axis.set_xticks(range(len(names)), names, rotation=90, fontsize="x-small")
        if nc_layer is not None and nc_layer in names:
            axis.axvline(names.index(nc_layer), color="0.3", linestyle="--", label=f"NC layer ({nc_layer})")
        axis.legend(fontsize="x-small")
    if title:
        figure.suptitle(title)
    return add_caption(figure, caption, takeaway=takeaway)


def alignment_by_layer(alignments: pd.DataFrame, *, baseline: pd.DataFrame | None = None,
                       title: str | None = None, caption: str | None = None,
                       takeaway: str | None = None) -> Figure:
    """Alignment ("PABS") by layer, one panel per rank, one line per epoch, the random-matrix
    baseline dashed (Rangamani et al.'s plot: rank 10, epochs 0 and last, y up to 1.04).

    ``alignments``: ``rank``, ``epoch``, ``layer``, ``name``, ``alignment``; ``baseline``:
    ``rank``, ``layer``, ``random``. Only plots.
    """
    import seaborn as sns

    _check_columns(alignments, ["rank", "epoch", "layer", "name", "alignment"])
    ranks = sorted(alignments["rank"].unique())
    figure, axes = new_figure(len(ranks))
    for axis, rank in zip(axes, ranks):
        frame = alignments[alignments["rank"] == rank].sort_values(["epoch", "layer"])
        names = frame.drop_duplicates("layer").sort_values("layer")["name"].tolist()
        data = frame.assign(epoch_label=frame["epoch"].map(lambda e: f"epoch {e}"))
        sns.lineplot(data=data, x="layer", y="alignment", hue="epoch_label", marker="o", ax=axis)
        if baseline is not None:
            base = baseline[baseline["rank"] == rank].sort_values("layer")
            axis.plot(base["layer"], base["random"], linestyle="--", color="0.4", label="random matrix")
        axis.set_ylim(0, 1.04)
        axis.set_title(f"rank {rank}")
        axis.set_xticks(range(len(names)), names, rotation=90, fontsize="x-small")
        axis.legend(fontsize="x-small")
    if title:
        figure.suptitle(title)
    return add_caption(figure, caption, takeaway=takeaway)


__all__ += ["alignment_by_layer", "relative_traces_by_layer"]


def metric_panels(
    frame: pd.DataFrame,
    *,
    x: str,
    y: str,
    panel: str,
    hue: str | None = None,
    logy: bool = False,
    logx: bool = False,
    vlines: Mapping[str, float] | None = None,
    hlines: Mapping[str, float] | None = None,
    title: str | None = None,
    caption: str | None = None,
    ncols: int = 2,
    sharey: bool = False,
    takeaway: str | None = None,
) -> Figure:
    """One panel per value of ``panel`` (e.g. a metric), ``y`` against ``x``, a line per ``hue``.

    ``vlines`` maps hue values to an x (e.g. each run's terminal-phase onset), drawn dotted
    in the line's colour; ``hlines`` maps labels to horizontal reference values. Never
    computes anything (Kothapalli K1/K2 chapters).
    """
    import seaborn as sns

    _check_columns(frame, [x, y, panel, hue])
    names = list(dict.fromkeys(frame[panel]))
    figure, axes = _panel_grid(len(names), min(ncols, len(names)), (4.6, 3.3))
    hue_order = list(dict.fromkeys(frame[hue])) if hue else None
    palette = dict(zip(hue_order, sns.color_palette(n_colors=len(hue_order)))) if hue else None
    for ax, name in zip(axes, names):
        part = frame[frame[panel] == name]
        sns.lineplot(data=part, x=x, y=y, hue=hue, hue_order=hue_order, palette=palette, ax=ax,
                     marker="o", markersize=3, legend=ax is axes[0])
        for key, value in (vlines or {}).items():
            if value is not None and value == value:
                ax.axvline(value, color=palette.get(key, "0.3") if palette else "0.3", linestyle=":",
                           linewidth=1.2)
        for label, value in (hlines or {}).items():
            ax.axhline(value, color="0.3", linestyle="--", linewidth=1.0, label=label)
        if logy and (part[y] > 0).any():
            ax.set_yscale("log")
        if logx:
            ax.set_xscale("log")
        ax.set_title(_label(str(name)))
        ax.set_xlabel(_label(x))
        ax.set_ylabel(_label(y))
    for ax in axes[len(names):]:
        ax.set_visible(False)
    if title:
        figure.suptitle(title)
    return add_caption(figure, caption, takeaway=takeaway)


def phase_diagram_plot(
    grid: pd.DataFrame,
    *,
    value: str = "separated",
    points: pd.DataFrame | None = None,
    title: str | None = None,
    caption: str | None = None,
    takeaway: str | None = None,
) -> Figure:
    """Heat map of ``value`` (mean over trials) on the (beta, alpha) grid with the line alpha = beta;
    ``points`` (columns ``beta``, ``alpha``, ``label``) are drawn on top (e.g. estimates from
    trained networks). Never computes anything."""
    import numpy as np
    import seaborn as sns

    _check_columns(grid, ["alpha", "beta", value])
    table = grid.groupby(["alpha", "beta"])[value].mean().unstack("beta").sort_index(ascending=True)
    figure, (ax,) = new_figure(figsize=(5.6, 4.6))
    betas, alphas = table.columns.to_numpy(float), table.index.to_numpy(float)
    mesh = ax.pcolormesh(betas, alphas, table.to_numpy(float), shading="nearest", cmap="viridis",
                         vmin=0, vmax=1)
    figure.colorbar(mesh, ax=ax, label=_label(value))
    line = np.array([max(betas.min(), alphas.min()), min(betas.max(), alphas.max())])
    ax.plot(line, line, color="white", linestyle="--", linewidth=1.2, label="alpha = beta")
    if points is not None and len(points):
        sns.scatterplot(data=points, x="beta", y="alpha", hue="label", ax=ax, s=40, edgecolor="black")
    ax.legend(loc="lower right", fontsize="small")
    ax.set_xlabel("beta (cross-class)")
    ax.set_ylabel("alpha (same class)")
    if title:
        ax.set_title(title)
    return add_caption(figure, caption, takeaway=takeaway)


__all__ += ["metric_panels", "phase_diagram_plot"]


# A notebook that imports this module shows its data tables without NaN (and its figures with
# their captions) from the first table on, not only once it has drawn a figure.
_enable_notebook_display()
