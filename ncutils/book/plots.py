"""Seaborn figures shared by the chapters.

Every function takes a tidy :class:`pandas.DataFrame` of numbers that were
computed elsewhere and returns a :class:`matplotlib.figure.Figure`; nothing
here computes a metric. Figures are created outside ``pyplot`` so a notebook
shows each one exactly once: when it is the value of the cell (or passed to
``display``).

A figure can carry its provenance (see :func:`ncutils.book.provenance.caption`) as
a small footer line via the ``caption`` argument.
"""

from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = [
    "FIGSIZE", "add_caption", "line_plot", "new_figure", "scaling_plot",
    "spectrum_evolution",
    # Parker chapters
    "depth_panels", "difficulty_scatter", "epoch_layer_heatmaps",
]

#: Default figure size in inches (width, height): readable on a book page.
FIGSIZE = (6.4, 4.0)


def _style() -> None:
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    _enable_notebook_display()


def _enable_notebook_display() -> None:
    """Let IPython show a bare Figure as a PNG.

    IPython registers its figure formatter only when pyplot's inline backend starts; the
    figures here never touch pyplot, so register it ourselves (a no-op outside IPython).
    """
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import select_figure_formats
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        select_figure_formats(shell, {"png"}, bbox_inches="tight")


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


def add_caption(figure: Figure, text: str | None) -> Figure:
    """Add a one-line footer (e.g. provenance) under the figure; returns it.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
    text : str or None
        The footer; ``None`` or empty leaves the figure unchanged.

    Returns
    -------
    matplotlib.figure.Figure
        The same figure.
    """
    if text:
        # about 16 x-small characters per inch: wrap rather than widen the figure
        wrapped = textwrap.fill(text, width=max(40, int(16 * figure.get_figwidth())))
        figure.supxlabel(wrapped, fontsize="x-small", color="0.35")
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
        Footer line, usually :func:`ncutils.book.provenance.caption`.
    ax : matplotlib.axes.Axes, optional
        Draw into this axes (of a figure from :func:`new_figure`).

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
    return add_caption(figure, caption)


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
) -> Figure:
    """Log-log plot of run time against problem size, one line per method.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per timing.
    size, seconds, method : str
        Columns: problem size (e.g. the dimension D), time in seconds, method name.
    xlabel, title, caption, ax
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
    return add_caption(figure, caption)


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
) -> Figure:
    """One panel per value of ``panel``: ``metric`` against relative depth, a line per ``hue``.

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
        Axis label (default the metric), figure title, provenance footer.
    ncols : int, default 3
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure

    Example
    -------
    >>> frame = pd.DataFrame({"architecture": ["mlp"] * 4, "dataset": ["a", "a", "b", "b"],
    ...                       "depth": [0.0, 1.0, 0.0, 1.0], "nc1": [10.0, 0.1, 5.0, 0.5]})
    >>> figure = depth_panels(frame, "nc1")
    """
    _check_columns(frame, ["depth", metric, panel, hue])
    values = list(dict.fromkeys(frame[panel]))
    figure, axes = _panel_grid(len(values), ncols, FIGSIZE)
    for value, ax in zip(values, axes):
        line_plot(frame[frame[panel] == value], "depth", metric, hue=hue, logy=logy,
                  references=references, xlabel="relative depth (0 = input, 1 = penultimate)",
                  ylabel=ylabel or _label(metric), title=f"{_label(panel)}: {value}", ax=ax)
    if title:
        figure.suptitle(title)
    return add_caption(figure, caption)


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
        Figure title and provenance footer.

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
    return add_caption(figure, caption)


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
) -> Figure:
    """Points ``(x, y)`` joined per ``hue`` in order of ``x``, each annotated with its ``label``.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per run, e.g. difficulty (1 - test accuracy) and depth-needed (chapter P4).
    x, y, hue, label : str
        Column names.
    xlabel, ylabel, title, caption : str, optional
        Labels, title and provenance footer.

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
    return add_caption(figure, caption)
