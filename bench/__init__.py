"""The harness: model loading, tracing, evaluation, the run protocol, scoring, the CLI."""
