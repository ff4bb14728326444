"""`brittlebench sweep`: a grid of ordinary runs, spread over local processes or a Ray cluster.

    grid.py       the grid, from flags or a TOML file, planned into runs
    executors.py  where runs execute: local processes or Ray tasks, each run a process of its own
    child.py      that process: one run under a lock
    summaries.py  the leaderboard, leave-one-model-out and over-training summaries of the finished runs
    driver.py     plan, skip what is finished, run the rest, record each in sweep.json, summarize

What a sweep's folder holds: docs/sweeps.md. Nothing is imported here: a Ray worker imports
`executors` alone, and a run's process `child`.
"""
