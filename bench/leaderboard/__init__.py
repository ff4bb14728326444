"""The leaderboard (`board`): built from verified run folders and submissions, per track.

May import `bench.protocol`, `bench.scoring` and `bench.model`.
"""
