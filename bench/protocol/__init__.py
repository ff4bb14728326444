"""The sealed protocol: the run spec (`spec`), the stages of a run in order (`stages`), the
predictors' worker process and how it is driven (`worker`, `predict`), the run folder and
resume (`folder`), and `verify`.

May import `bench.model`, `bench.scoring`, `tasks` and `predictors`; never `bench.runs`,
`bench.leaderboard`, `bench.zoo` or the CLI. The worker (`python -m bench.protocol.worker`) imports only the
records it needs, so this package's `__init__` imports nothing.
"""
