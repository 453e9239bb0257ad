"""Research at scale: parameter sweeps, walk-forward and Monte Carlo.

Each sweep job is one deterministic replay (`daemon.backtest.run_replay`, the code
`tapeloop replay` runs) of the config with some strategy parameters overridden, over
some window of days. Jobs run on Dask distributed (`cluster`), a `LocalCluster` by
default or an existing cluster by address.

- `grid`: the grid file (parameters, sampling, the dates as a dimension, walk-forward).
- `data`: the store's days and each window's fingerprint, listed before any job runs.
- `job`: one job, run in a worker: overrides applied, replayed, its result row.
- `cluster`: the Dask side (submission grouped by data, streaming, lost workers).
- `sweep`: a sweep from start to end (reuse, progress, results, summary).
- `results`: a sweep's results directory (one file per finished job, resumable;
  `results.parquet`).
- `walkforward`: train/test windows, the best in-sample parameters run out of sample.
- `montecarlo`: bootstrap of a run's closed-trade PnLs.
- `summary_html`: the sweep's HTML summary.
"""
