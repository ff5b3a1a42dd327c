"""The last hidden layer measured after every epoch of training: statistics online, metrics later.

K1's terminal phase needs NC1-NC4 of the last hidden layer at every epoch (the results store's statistics level:
cheap series over every epoch are measured online and stored with the history), but
weights are stored only at a few epochs. So :func:`last_layer_statistics` (of :mod:`ncutils.layer_stats`) runs during
training (``TrainConfig(track_last_layer=True)``) and keeps the *statistics* of the
penultimate probe point (:func:`ncutils.sweep.sweep_statistics` on the training set with
the test set's NCC counts, and on the test set with its own class means); the results
store keeps them beside the history, and :func:`series_table` computes the metrics from
them with the current code of :mod:`ncutils.metrics`. An edit to a metric recomputes the
series (milliseconds an epoch) and retrains nothing; an edit to the statistics code
(``stats``, ``probe``, ``layer_stats``) retrains the runs that track it.

References
----------
Papyan, Han, Donoho (2020), "Prevalence of neural collapse during the terminal phase of
deep learning training", PNAS: NC1-NC4 over the epochs of training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
from torch import nn

# the statistics made while training live with the sweep statistics (no metric there: the
# training key does not follow the metrics); re-exported as part of this module's API
from ncutils.layer_stats import EVAL_BATCH_SIZE, SweepStatistics, last_layer_statistics
from ncutils.sweep import sweep_table

if TYPE_CHECKING:  # annotations only: the series' keys do not follow the data code
    from ncutils.data import Dataset

__all__ = ["LAST_LAYER_COLUMNS", "last_layer_metrics", "last_layer_statistics", "series_table"]

#: History columns added by ``TrainConfig(track_last_layer=True)``: the last hidden layer
#: (penultimate probe point) on the training set (``ll_*``, training class means) and on
#: the test set (``ll_test_*``: NC1, NC2 and NC3 with the test class means; NCC accuracy
#: and mismatch with the *training* class means).
LAST_LAYER_COLUMNS: tuple[str, ...] = (
    "ll_nc1", "ll_equinorm", "ll_equiangularity", "ll_etf_error", "ll_self_duality",
    "ll_ncc_mismatch", "ll_ncc_train_acc",
    "ll_test_nc1", "ll_test_equinorm", "ll_test_equiangularity", "ll_test_etf_error",
    "ll_test_self_duality", "ll_test_ncc_mismatch", "ll_ncc_test_acc",
)
# sweep-table column -> series column, for the training-side and the test-side statistics
_TRAIN_COLUMNS = {"nc1": "ll_nc1", "equinorm": "ll_equinorm", "equiangularity": "ll_equiangularity",
                  "etf_error": "ll_etf_error", "self_duality": "ll_self_duality",
                  "ncc_mismatch": "ll_ncc_mismatch", "ncc_train_acc": "ll_ncc_train_acc",
                  "ncc_test_mismatch": "ll_test_ncc_mismatch", "ncc_test_acc": "ll_ncc_test_acc"}
_TEST_COLUMNS = {"nc1": "ll_test_nc1", "equinorm": "ll_test_equinorm",
                 "equiangularity": "ll_test_equiangularity", "etf_error": "ll_test_etf_error",
                 "self_duality": "ll_test_self_duality"}


def _metrics_row(state: dict[str, Any]) -> dict[str, float]:
    row: dict[str, float] = {}
    for side, columns in (("train", _TRAIN_COLUMNS), ("test", _TEST_COLUMNS)):
        table = sweep_table(SweepStatistics.from_state(state[side]))
        for column, name in columns.items():
            row[name] = float(table[column].iloc[0])
    return {name: row[name] for name in LAST_LAYER_COLUMNS}


def last_layer_metrics(model: nn.Module, train_data: Dataset, test_data: Dataset) -> dict[str, float]:
    """NC1-NC4 of the last hidden layer on the training and the test set (one row of the series).

    The numbers are those of :func:`ncutils.sweep.sweep_table` (NC1, equinorm,
    equiangularity, ETF error, self-duality with the classifier weight, NCC accuracy and
    the mismatch with the network's predictions; conventions of :mod:`ncutils.metrics`,
    book/conventions.md) at the penultimate probe point; on the test set NC1-NC3 use the test class
    means, NCC accuracy and mismatch the training class means.

    Returns
    -------
    dict
        The keys of :data:`LAST_LAYER_COLUMNS`.

    Examples
    --------
    >>> import torch
    >>> from ncutils.models import build_model
    >>> from ncutils.train import TrainConfig, load_data
    >>> train_data, test_data = load_data(TrainConfig(dataset="digits", device="cpu"))
    >>> torch.manual_seed(0) and None
    >>> model = build_model("mlp", input_shape=(1, 8, 8), num_classes=10, depth=3, width=32)
    >>> sorted(last_layer_metrics(model, train_data, test_data)) == sorted(LAST_LAYER_COLUMNS)
    True
    """
    return _metrics_row(last_layer_statistics(model, train_data, test_data))


def series_table(epochs: Sequence[int], states: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The series of stored statistics as a table: ``epoch`` and :data:`LAST_LAYER_COLUMNS`.

    Raises
    ------
    ValueError
        ``epochs`` and ``states`` differ in length.
    """
    if len(epochs) != len(states):
        raise ValueError(f"{len(epochs)} epochs but {len(states)} stored statistics")
    rows = [{"epoch": int(epoch), **_metrics_row(state)} for epoch, state in zip(epochs, states)]
    return pd.DataFrame(rows, columns=["epoch", *LAST_LAYER_COLUMNS])
