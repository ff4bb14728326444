"""What drives many runs: the zoo's runs (`zoo_runs`), a run at every checkpoint of a model
(`over_training`: predictability over training), leave-one-model-out over finished runs (`lomo`),
and a grid of runs spread over processes or a Ray cluster (`sweep`: `brittlebench sweep`).

May import `bench.leaderboard`, `bench.protocol`, `bench.scoring` and `bench.model`.
"""
