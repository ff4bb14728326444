"""The zoo trainer: recipes and the presets file (`recipe`, `presets.toml`), which items each
batch holds (`sampler`), the character tokenizer (`tokenizer`) and training (`trainer`).

May import `bench.model` (to load and evaluate what it trained) and `tasks`.
"""
