"""What drives many runs: the zoo's runs (`zoo_runs`), the leaderboard built from verified
run folders and submissions (`board`), a run at every checkpoint of a model
(`over_training`: predictability over training), and a grid of runs spread over processes
or a Ray cluster (`sweep`: `brittlebench sweep`).

May import `bench.protocol`, `bench.scoring` and `bench.model`.
"""
