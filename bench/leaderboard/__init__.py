"""What drives many runs: the zoo's runs (`zoo_runs`) and the leaderboard built from verified
run folders and submissions (`board`).

May import `bench.protocol`, `bench.scoring` and `bench.model`.
"""
