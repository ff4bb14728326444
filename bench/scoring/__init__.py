"""Judging a run: metrics with bootstrap intervals (`metrics`), a run's results.json figures (`run`),
the CI regression gate (`compare`) and the HTML report (`report`).

Works on numbers, results dicts and run-folder files; never loads a model or runs predictors.
May import `bench.errors` and `bench.io` only.
"""
