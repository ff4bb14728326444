"""The sealed protocol: the run spec (`spec`), the stages of a run in order (`stages`), the
predictors' worker process and how it is driven (`worker`, `predict`), the run folder and
resume (`folder`), `verify`, and leave-one-model-out over finished runs (`lomo`).

May import `bench.model`, `bench.scoring`, `tasks` and `predictors`; never `bench.leaderboard`,
`bench.zoo` or the CLI. The worker (`python -m bench.protocol.worker`) imports only the
records it needs, so this package's `__init__` imports nothing.
"""
