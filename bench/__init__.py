"""brittlebench's runner, in sub-packages by concern; arrows point one way, lower never imports higher:

    cli.py          the command line, on top of everything
    leaderboard/    what drives many runs: the zoo's runs, the leaderboard          (imports protocol, scoring, model)
    protocol/       the sealed protocol: run spec, stages, worker, run folder,
                    resume, verify, leave-one-model-out                           (imports model, scoring)
    zoo/            the zoo trainer: recipes and presets, sampler, tokenizer       (imports model)
    model/          reading a model: load, architecture card, trace, evaluate     (imports nothing above)
    scoring/        judging: metrics, compare, report                             (imports nothing above)
    errors.py, io.py   shared by all: the user-error type and atomic run-folder files

Each sub-package's docstring says what it owns. Outside `bench/`, `tasks/` and `predictors/`
never import it (predictors read the `predictors.Trace` record, built here).
"""

_API = {"run": "bench.protocol.stages", "RunSpec": "bench.protocol.spec", "ModelSpec": "bench.model.load",
        "load_model": "bench.model.load"}


def __getattr__(name: str):
    """The Python API, imported on first use (`bench.run(bench.RunSpec(...))`), so that importing
    `bench` (as the predictors' worker does) loads nothing."""
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
