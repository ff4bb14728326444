"""`brittlebench sweep`: a grid of ordinary runs, spread over local processes or a Ray cluster.

    grid.py       the grid (models x checkpoints or revisions x seeds x suites) from flags or a
                  TOML file, planned into runs: each a RunSpec, an id and a run folder
    executors.py  where runs execute: a local pool of processes, or Ray tasks; either way each
                  run is `python -m bench.runs.sweep.child` in a process of its own
    child.py      that process: one run under a lock, ended when the process that started it dies
    summaries.py  the leaderboard, leave-one-model-out and predictability over training, built
                  from the finished runs where the grid makes them meaningful
    driver.py     plan, skip what is finished, run the rest, record each in sweep.json (its
                  parameters, folder, status, reason and wall time), summarize

What a sweep's folder holds: docs/sweeps.md. Nothing is imported here: a Ray worker imports
`executors` alone, and a run's process `child`.
"""
