"""Tests of ncutils.grid: generic grids of TrainConfigs, seeds as an axis (tiny runs)."""

import pandas as pd
import pytest

from ncutils.grid import Grid, GridEntry, run_grid, sweep_schedule
from ncutils.train import TrainConfig


def tiny_config(**overrides) -> TrainConfig:
    options = dict(dataset="digits", arch="mlp", arch_kwargs={"depth": 3, "width": 16}, epochs=1,
                   batch_size=32, limit_train=60, limit_test=30, device="cpu", sweep_epochs=(0, 1),
                   optimizer="sgd", lr=0.05, schedule="constant")
    return TrainConfig(**{**options, **overrides})


def test_sweep_schedule_spans_training():
    assert sweep_schedule(30, 5) == (0, 8, 15, 23, 30)
    assert sweep_schedule(1, 2) == (0, 1)
    assert sweep_schedule(3, 10) == (0, 1, 2, 3)  # more points than epochs: merged, still 0..3
    with pytest.raises(ValueError, match="sweep count"):
        sweep_schedule(10, 1)
    with pytest.raises(ValueError, match="epochs"):
        sweep_schedule(0, 3)


def test_run_grid_takes_plain_configs_and_seeds_as_an_axis(tmp_path):
    configs = [tiny_config(), tiny_config(loss="mse")]
    result = run_grid(configs, seeds=[0, 1], runs_dir=tmp_path, progress=False)
    assert result.label_names == ["run", "seed"]
    assert list(result.runs[["run", "seed"]].itertuples(index=False, name=None)) == [
        (0, 0), (0, 1), (1, 0), (1, 1)]
    assert set(result.results) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert result.results[(1, 1)].config.seed == 1 and result.results[(1, 1)].config.loss == "mse"
    # another seed is another network; data subsets stay those of data_seed
    first, second = result.results[(0, 0)], result.results[(0, 1)]
    assert first.key != second.key
    assert first.config.data_seed == second.config.data_seed
    first_weights, second_weights = (next(iter(r.model.state_dict().values())) for r in (first, second))
    assert not first_weights.equal(second_weights)
    assert list(result.sweeps.columns[:2]) == ["run", "seed"]
    again = run_grid(configs, seeds=[0, 1], runs_dir=tmp_path, progress=False)
    assert again.runs["from_cache"].all() and again.sweeps.equals(result.sweeps)


def test_run_grid_without_seeds_keeps_each_configs_seed(tmp_path):
    grid = Grid((GridEntry({"name": "a"}, tiny_config(seed=3)),))
    result = run_grid(grid, runs_dir=tmp_path, progress=False)
    assert list(result.runs["seed"]) == [3] and list(result.runs["name"]) == ["a"]
    assert result.skipped.empty and list(result.skipped.columns) == ["name", "reason"]


def test_grid_rejects_bad_input():
    entry = GridEntry({"name": "a"}, tiny_config())
    with pytest.raises(ValueError, match="no runs"):
        run_grid(Grid(()))
    with pytest.raises(ValueError, match="repeat"):
        run_grid(Grid((entry, entry)))
    with pytest.raises(ValueError, match="seeds repeat"):
        run_grid(Grid((entry,)), seeds=[1, 1])
    with pytest.raises(ValueError, match="integers"):
        run_grid(Grid((entry,)), seeds=[-1])
    with pytest.raises(ValueError, match="seed"):
        GridEntry({"seed": 1}, tiny_config())
    with pytest.raises(ValueError, match="TrainConfig"):
        GridEntry({"name": "a"}, {"dataset": "digits"})
    with pytest.raises(ValueError, match="different label names"):
        Grid((entry, GridEntry({"other": "b"}, tiny_config())))
    with pytest.raises(ValueError, match="label sets"):
        Grid.from_configs([tiny_config()], labels=[])


def test_parallel_workers_give_the_same_numbers_as_one_process(tmp_path):
    """Runs trained side by side (spawned workers, one thread each) equal runs trained in turn."""
    configs = [tiny_config(), tiny_config(loss="mse")]
    parallel = run_grid(configs, seeds=[0], runs_dir=tmp_path / "parallel", progress=False, workers=2)
    serial = run_grid(configs, seeds=[0], runs_dir=tmp_path / "serial", progress=False, workers=1)
    assert not parallel.runs["from_cache"].any() and not serial.runs["from_cache"].any()
    pd.testing.assert_frame_equal(parallel.history, serial.history)
    pd.testing.assert_frame_equal(parallel.sweeps, serial.sweeps)
    assert list(parallel.runs["key"]) == list(serial.runs["key"])
    with pytest.raises(ValueError, match="workers"):
        run_grid(configs, runs_dir=tmp_path, workers=0)
