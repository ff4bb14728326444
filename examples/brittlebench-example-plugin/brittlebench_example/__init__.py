"""An example brittlebench plugin: see predictor.py and this package's pyproject.toml."""
