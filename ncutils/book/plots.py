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
    x: str = "depth",
    xlabel: str | None = None,
    logx: bool = False,
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
        Axis label (default the metric), figure title, provenance footer.
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


def relative_traces_by_layer(sweeps: pd.DataFrame, epochs: Sequence[int], *, nc_layer: str | None = None,
                             title: str | None = None, caption: str | None = None) -> Figure:
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
    return add_caption(figure, caption)


def alignment_by_layer(alignments: pd.DataFrame, *, baseline: pd.DataFrame | None = None,
                       title: str | None = None, caption: str | None = None) -> Figure:
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
    return add_caption(figure, caption)


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
    return add_caption(figure, caption)


def phase_diagram_plot(
    grid: pd.DataFrame,
    *,
    value: str = "separated",
    points: pd.DataFrame | None = None,
    title: str | None = None,
    caption: str | None = None,
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
    return add_caption(figure, caption)


__all__ += ["metric_panels", "phase_diagram_plot"]
