"""What drives many runs: the zoo's runs (`zoo_runs`), the leaderboard built from verified
run folders and submissions (`board`), and a run at every checkpoint of a model
(`over_training`: predictability over training).

May import `bench.protocol`, `bench.scoring` and `bench.model`.
"""
