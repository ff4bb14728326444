"""Reading a model: load it (`load`), describe it without a forward pass (`card`), trace its
internals on prompts (`trace`) and score its greedy answers (`evaluate`).

Knows nothing about runs, predictors' worker, scores or run folders. May import `tasks`,
the `predictors.Trace` record, `bench.errors` and `bench.io`; torch only inside functions.
"""
