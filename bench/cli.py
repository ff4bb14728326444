"""`brittlebench`: the command line. Heavy imports happen inside the commands."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

from .errors import UserError
from .process import reproducible_numerics
from .scoring.report.rows import num
from .scoring.report.text import format_results, format_screen, format_view
from .scoring.results import Results, View


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other user mistake
        raise UserError(f"{message} (see '{self.prog} --help')")


def _csv(value: str | None) -> tuple[str, ...] | None:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


def format_over_training(summary: dict) -> str:
    """Per checkpoint: failure rates, the reference, and each track's best predictor by pair AUROC."""
    lines = [f"{'checkpoint':<14} {'step':>7} {'base fail':>9} {'var fail':>8} {'ref':>6}  best blind / best trace (pair AUROC)"]
    for p in summary["points"]:
        best = {}
        for track in ("blind", "trace"):
            scored = [(v["pair_auroc"], n, v["beats"]) for n, v in p["predictors"].items()
                      if v["track"] == track and v["pair_auroc"] is not None]
            best[track] = "%s %.3f%s" % (max(scored)[1], max(scored)[0], "*" if max(scored)[2] else "") if scored else "n/a"
        ref = "n/a" if p["reference"] is None else f"{p['reference']:.3f}"
        lines.append(f"{p['name']:<14} {p['step'] if p['step'] is not None else '?':>7} {p['base_failure_rate']:>9.3f} "
                     f"{p['variant_failure_rate']:>8.3f} {ref:>6}  {best['blind']} / {best['trace']}")
    return "\n".join(lines)


def _number_or(word: str, meaning: Any):
    """An argparse type: a whole number, or `word` standing for `meaning`."""
    def parse(text: str):
        if text == word:
            return meaning
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a positive number or {word}, got {text!r}") from None
    return parse


_batch_size = _number_or("auto", "auto")
_history_n = _number_or("all", None)


def _read_private_seed(path: str) -> str:
    """The secret of a held-out suite, from a file or '-' (standard input)."""
    try:
        secret = sys.stdin.read() if path == "-" else Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read --private-seed-file {path}: {e}") from None
    secret = secret.strip()
    if len(secret) < 16:
        raise UserError(f"--private-seed-file {path} holds {len(secret)} characters; use a secret of at least 16 "
                        "(for example: python -c 'import secrets; print(secrets.token_hex(16))')")
    return secret


def cmd_run(args) -> int:
    from .model.load import ModelSpec
    from .process import settle
    from .protocol.spec import RunSpec
    from .protocol.stages import run

    settle()

    spec = RunSpec(
        model=ModelSpec(args.model, revision=args.revision, dtype=args.dtype, device=args.device,
                        trust_remote_code=args.trust_remote_code, allow_pickle=args.allow_pickle,
                        device_map=args.device_map),
        tasks=_csv(args.tasks), predictors=_csv(args.predictors) or (),
        n=args.n, seed=args.seed, out=Path(args.out) if args.out else None, batch_size=args.batch_size,
        shots=args.shots, shot_mode=args.shot_mode, suite=args.suite, chat=args.chat,
        use_cache=not args.no_cache, protocol=args.protocol, target=args.target,
        predictor_timeout=args.predictor_timeout, resume=args.resume, predict_only=args.predict_only,
        checkpoints=Path(args.checkpoints) if args.checkpoints else None,
        revisions=_csv(args.revisions), history_n=args.history_n, history_traces=args.history_traces,
        private_seed=_read_private_seed(args.private_seed_file) if args.private_seed_file else None)
    if args.at_each_checkpoint:
        from .runs.over_training import at_each_checkpoint

        summary = at_each_checkpoint(spec, log=lambda msg: print(msg, file=sys.stderr))
        print(format_over_training(summary))
        print(f"\nrun folders and the plot: {spec.out}/ (over_training.html, over_training.json)")
        return 0
    results = Results.of(run(spec, log=lambda msg: print(msg, file=sys.stderr)))
    if results.screen is not None:
        print(format_screen(results))
        return 0
    print(format_results(results))
    for protocol, view in results.protocols.items():
        print(f"\nprotocol {protocol}:")
        print(format_view(view))
    for target, view in results.targets.items():
        print(f"\ntarget {target}: {view.n_items} items with every component solved "
              f"(of {view.n_with_components} with components); failure rate {num(view.failure_rate)}")
        if view.predictors:
            print(format_view(view))
    print(f"\nrun folder: {results.run_dir} (results.json, report.html)")
    return 0


def cmd_verify(args) -> int:
    from .protocol.verify import verify

    if args.reevaluate < 0:
        raise UserError(f"--reevaluate takes a number of items (0: none), got {args.reevaluate}")
    ok, lines = verify(Path(args.run), reevaluate=args.reevaluate, sample_seed=args.sample_seed)
    print("\n".join(lines))
    return 0 if ok else 1


def cmd_predictors_list(args) -> int:
    from predictors.registry import describe, registered

    entries = registered()
    width = max([len(n) for n in entries] + [9])
    print(f"{'predictor':<{width}}  {'track':<6} {'reads':<20} {'version':<7} {'provided by':<14} entry point")
    for name in sorted(entries, key=lambda n: (describe(entries[n])["track"] != "blind", n)):
        e = entries[name]
        info = describe(e)
        print(f"{name:<{width}}  {info['track']:<6} {info['reads']:<20} {info['version']:<7} {e.distribution:<14} {e.target}")
    return 0


def cmd_cache(args) -> int:
    """The GGUF files' dequantized weights kept under $BRITTLEBENCH_CACHE (`bench.model.gguf_cache`)."""
    import time

    from .model import gguf_cache

    if args.action == "clear":
        gone = gguf_cache.clear()
        print(f"removed {len(gone)} cached model(s), {sum(e.bytes for e in gone) / 1e6:.1f} MB, from {gguf_cache.cache_root()}")
        return 0
    found = gguf_cache.entries()
    if not found:
        print(f"no cached dequantized models in {gguf_cache.cache_root()}")
        return 0
    width = max(len(e.source) for e in found)
    print(f"{'source':<{width}}  {'dtype':<8} {'size':>10}  {'last used':<19}  folder")
    for e in reversed(found):  # the most recently used first
        used = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.used))
        print(f"{e.source:<{width}}  {e.dtype:<8} {e.bytes / 1e6:>7.1f} MB  {used}  {e.folder}")
    print(f"{len(found)} of at most {gguf_cache.max_entries()} entries ($BRITTLEBENCH_GGUF_ENTRIES), "
          f"{sum(e.bytes for e in found) / 1e6:.1f} MB")
    return 0


GATES = ("predictors", "brittleness")


def cmd_compare(args) -> int:
    from .scoring.compare import Run, brittleness, compare, parse_max_drop, parse_max_rise

    gates = _csv(args.gate)
    if not gates or any(g not in GATES for g in gates):
        raise UserError(f"--gate takes {' and/or '.join(GATES)} (comma-separated); got {args.gate!r}")
    max_drop, max_rise = parse_max_drop(args.max_drop), parse_max_rise(args.max_rise)
    new, base = Run(Path(args.new)), Run(Path(args.baseline))
    regressed, lines = False, []
    if "predictors" in gates:
        if new.screen or base.screen:
            lines.append("predictors: not compared (a predict-only screen observed no variant: nothing to score)")
        else:
            regressed, lines = compare(new.results, base.results, max_drop)
    if "brittleness" in gates:
        worse, more = brittleness(new, base, max_rise, args.screen_predictor, args.against)
        regressed |= worse
        lines += ([""] if lines else []) + more + [("brittleness regressed" if worse else "brittleness: no regression")]
    print("\n".join(lines))
    return 1 if regressed else 0


def cmd_leaderboard_build(args) -> int:
    from .leaderboard.board import build

    board = build(Path(args.root))
    counts = ", ".join(f"{len(table)} {track}" for track, table in board["tracks"].items())
    print(f"predictors by track: {counts}; {len(board['models'])} models: "
          f"{args.root}/leaderboard.json, LEADERBOARD.md, leaderboard.html")
    return 0


def cmd_leaderboard_validate(args) -> int:
    from .leaderboard.board import validate

    results = validate(Path(args.path))
    print(f"valid: {results['submission']['predictor']} on {results.get('model_name') or 'model'} "
          f"(predictions sha256 {results['predictions_sha256'][:16]}…)")
    return 0


def cmd_leaderboard_run_zoo(args) -> int:
    from .runs.zoo_runs import run_zoo

    run_zoo(Path(args.zoo), Path(args.out), args.n, args.seed, log=lambda m: print(m, file=sys.stderr),
            members=_csv(args.members))
    return 0


def cmd_lomo(args) -> int:
    from .runs.lomo import leave_one_model_out

    summary = leave_one_model_out([Path(r) for r in args.runs], log=lambda m: print(m, file=sys.stderr))
    for run, view in summary.items():
        print(f"\n{run} (protocol leave-one-model-out):")
        print(format_view(View.of(view["predictors"], view["n"])))
    return 0


def cmd_sweep(args) -> int:
    from .runs.sweep.driver import run_sweep
    from .runs.sweep.grid import read_config, sweep_options

    config = read_config(Path(args.config)) if args.config else None
    options = sweep_options(vars(args), config)
    try:
        result = run_sweep(options, log=lambda m: print(m, file=sys.stderr, flush=True))
    except KeyboardInterrupt:
        print(f"brittlebench: sweep interrupted: run the same command again to finish it ({options.out}/sweep.json "
              "says how far it got)", file=sys.stderr)
        return 130
    print(format_sweep(result, options.out))
    if result.failed:
        print(f"brittlebench: {len(result.failed)} of {len(result.runs)} runs failed (reasons above and in "
              f"{options.out}/sweep.json, output in {options.out}/logs/): run the same command again to retry them",
              file=sys.stderr)
    elif result.failed_summaries:
        print(f"brittlebench: every run finished, but {len(result.failed_summaries)} summary(ies) failed "
              f"(reasons above and in {options.out}/sweep.json)", file=sys.stderr)
    return result.exit_code


def format_sweep(result, out: Path) -> str:
    width = max([len(r.id) for r in result.runs] + [3])
    lines = [f"{'run':<{width}}  {'status':<8}  {'this time':<9}  {'wall':>8}"]
    for r in result.runs:
        wall = "" if r.wall_s is None else f"{r.wall_s:.1f} s"
        lines.append(f"{r.id:<{width}}  {r.status:<8}  {r.action:<9}  {wall:>8}" + (f"  {r.reason}" if r.reason else ""))
    for s in result.summaries:
        lines.append(f"{s.kind} {s.name}: " + (f"{out}/{s.path}" if s.status == "ok" else f"failed: {s.reason}"))
    finished = sum(r.status == "finished" for r in result.runs)
    skipped = sum(r.action == "skip" for r in result.runs)
    lines.append(f"\n{finished} of {len(result.runs)} runs finished ({skipped} before this time): {result.index}")
    return "\n".join(lines)


def cmd_report(args) -> int:
    from .protocol.verify import check_run_folder
    from .scoring.report import write_report

    check_run_folder(Path(args.run))
    if not (Path(args.run) / "items" / "variants.jsonl").is_file():
        raise UserError(f"{args.run} has no items/: a report needs the full run folder")
    print(write_report(Path(args.run)))
    return 0


def cmd_check_predictor(args) -> int:
    from predictors import load_predictor
    from predictors.testing import check_predictor

    predictor = load_predictor(args.name)
    model = None
    if args.model:
        from .model.load import ModelSpec, load_model
        from .model.trace import TracedModel

        model = TracedModel(load_model(ModelSpec(args.model)), attention="attention" in predictor.reads)
    problems = check_predictor(type(predictor), model)
    for problem in problems:
        print(f"FAIL {problem}")
    print(f"{args.name}: {'conforms' if not problems else f'{len(problems)} check(s) failed'}")
    return 0 if not problems else 1


def cmd_tasks_list(args) -> int:
    from tasks import family_names, get_family

    for name in family_names():
        family = get_family(name)
        print(f"{name}: {family.description}")
        print("  axes: " + "; ".join(f"{k} ({v})" for k, v in family.axes.items()))
        print("  base region: " + ", ".join(c.name for c in family.base_cells))
        for cell in family.cells:
            axes = ", ".join(f"{k}={f'{v[0]}..{v[1]}' if isinstance(v, tuple) else v}" for k, v in cell.axes.items())
            print(f"    {cell.name:<16} {cell.shift:<14} {axes}")
        print()
    return 0


def cmd_tasks_show(args) -> int:
    from tasks import resolve_families

    family = next(iter(resolve_families([args.family]).values()))
    if args.n <= 0:
        raise UserError(f"-n must be a positive number of items, got {args.n}")
    if args.axis and args.axis not in family.axes:
        raise UserError(f"family {family.name!r} has no axis {args.axis!r}; its axes are: {', '.join(family.axes)}")
    cells = [family.cell(args.cell)] if args.cell else list(family.cells)
    if args.axis:
        for cell in cells:
            values = sorted({str(i.axes.get(args.axis)) for i in family.generate(cell.name, args.n, args.seed)})
            print(f"{family.name}/{cell.name} ({cell.shift}): {args.axis} in {{{', '.join(values)}}}")
        return 0
    for cell in cells:
        print(f"{family.name}/{cell.name} ({cell.shift})")
        for item in family.generate(cell.name, args.n, args.seed):
            axes = ", ".join(f"{k}={v}" for k, v in item.axes.items())
            print(f"  {item.prompt!r} -> {item.target!r}   [{axes}]")
    return 0


def cmd_tasks_export(args) -> int:
    from tasks import family_names, resolve_families
    from tasks.export import export
    from tasks.render import few_shot

    families = resolve_families(_csv(args.tasks) if args.tasks else family_names())
    items, shifts = [], {}
    for family in families.values():
        cells = [family.cell(c) for c in _csv(args.cells)] if args.cells else list(family.cells)
        for cell in cells:
            items += few_shot(family.generate(cell.name, args.n, args.seed), family, args.shots, args.seed)
            shifts[family.name, cell.name] = cell.shift
    paths = export(items, shifts, args.format, Path(args.out), name=args.name)
    print(f"wrote {len(items)} items: " + ", ".join(str(p) for p in paths))
    return 0


def cmd_zoo_train(args) -> int:
    from .zoo.recipe import get_preset, with_overrides
    from .zoo.trainer import train

    recipe = with_overrides(get_preset(args.preset), steps=args.steps, seed=args.seed, tasks=_csv(args.tasks))
    train(recipe, Path(args.out), preset=args.preset, resume=args.resume, device=args.device)
    return 0


def cmd_zoo_build(args) -> int:
    from .zoo.recipe import ZOO
    from .zoo.trainer import build_zoo

    build_zoo(Path(args.out), _csv(args.presets) if args.presets else ZOO)
    return 0


def cmd_zoo_list(args) -> int:
    from .zoo.recipe import DEFAULT_PRESET, PRESETS

    width = max(map(len, PRESETS)) + 1
    for name, r in PRESETS.items():
        print(f"{name + ('*' if name == DEFAULT_PRESET else ''):<{width}} {r.arch:<5} layers={r.n_layers} "
              f"d_model={r.d_model} init={r.init_scale}x steps={r.steps} lr={r.lr:g} items/cell={r.items_per_cell} "
              f"seed={r.seed} tasks={','.join(r.tasks)}"
              + (f" warm={','.join(r.warm_tasks)}:{r.warm_steps}" if r.warm_steps else "")
              + (f" sampling={r.sampling}" if r.sampling != "uniform" else "")
              + (f" replay={r.replay:g}" if r.replay else "")
              + (f" mining={r.mining}" if r.mining > 1 else "")
              + (f" from={r.init_from}" if r.init_from else "")
              + (f" grow={r.grow_init}@{r.grow_at}" if r.init_from and PRESETS[r.init_from].n_layers < r.n_layers else "")
              + (f" checkpoints={list(r.checkpoints)}" if r.checkpoints else ""))
    print("* the bundled default model's recipe (`zoo train` without --preset)")
    return 0


DEVICE_MAP_HELP = ("spread the model over the visible devices as it loads (accelerate): auto, balanced, "
                   "sequential, or one device (cuda:1); for a model larger than one GPU, with --dtype bfloat16")


def add_sweep_parser(sub) -> None:
    """`brittlebench sweep`: every option defaults to None, so that --config's values apply under the flags."""
    p = sub.add_parser("sweep", help="many runs (models x checkpoints or revisions x seeds x suites) on local "
                       "processes or a Ray cluster; rerun the same command to finish it",
                       description="A grid of ordinary runs, each in its own process, spread over this machine "
                       "(--executor local) or a Ray cluster (--executor ray), indexed in OUT/sweep.json; then the "
                       "leaderboard, leave-one-model-out and predictability over training from the finished runs. "
                       "Exit 0 when every run finished, 1 when some failed (rerun to retry them), 2 for a mistake "
                       "in the grid. See docs/sweeps.md.")
    grid = p.add_argument_group("the grid")
    grid.add_argument("--config", metavar="FILE.toml", help="the sweep's options as a TOML file (keys: the flags' "
                      "names); flags given here override it")
    grid.add_argument("--out", help="the sweep's folder (required): runs/, logs/, sweep.json, leaderboard/")
    grid.add_argument("--models", metavar="M1,M2,...", help="HF model names, local folders or .gguf files (default: "
                      "the bundled model)")
    grid.add_argument("--zoo", metavar="DIR", help="also every zoo model in DIR (folders with zoo.json)")
    grid.add_argument("--revisions", metavar="R1,R2,...", help="a run per revision of each model, oldest first "
                      "(Pythia's step1000,...), each from the local HF cache")
    grid.add_argument("--at-each-checkpoint", action="store_true", default=None, help="a run per checkpoint of each "
                      "model (a zoo model's own, or --revisions), each with the earlier ones as its history, and "
                      "its predictability over training")
    grid.add_argument("--seeds", metavar="S1,S2,...", help="a run per item seed (default: 0)")
    grid.add_argument("--suites", metavar="zoo,pretrained", help="a run per named suite (default: each model's own)")
    run = p.add_argument_group("every run (as for 'brittlebench run')")
    run.add_argument("--tasks", help="comma-separated families or task files, the same for every run")
    run.add_argument("--predictors", help="comma-separated names or module:Class (default: all registered)")
    run.add_argument("--n", type=int, help="items per cell (default 100)")
    run.add_argument("--dtype", choices=["float32", "float16", "bfloat16", "auto"])
    run.add_argument("--device", help="cpu (default), cuda, cuda:N or auto")
    run.add_argument("--device-map", metavar="MAP", help=DEVICE_MAP_HELP)
    run.add_argument("--batch-size", type=_batch_size, metavar="N|auto")
    run.add_argument("--shots", type=int)
    run.add_argument("--shot-mode", choices=["fixed", "per-item"])
    run.add_argument("--chat", action="store_true", default=None)
    run.add_argument("--no-cache", action="store_true", default=None)
    run.add_argument("--protocol")
    run.add_argument("--target")
    run.add_argument("--predictor-timeout", type=float, metavar="SECONDS")
    run.add_argument("--history-n", metavar="N|all")
    run.add_argument("--history-traces", type=int, metavar="K")
    run.add_argument("--trust-remote-code", action="store_true", default=None)
    run.add_argument("--allow-pickle", action="store_true", default=None)
    where = p.add_argument_group("where the runs execute")
    where.add_argument("--executor", choices=["local", "ray"], help="local (default): a pool of processes here; "
                       "ray: a Ray task per run (pip install 'brittlebench[sweep]')")
    where.add_argument("--workers", type=int, help="runs at once (local default: the cores here, or the visible "
                       "GPUs / --gpus-per-run; ray default: as the cluster's resources allow)")
    where.add_argument("--address", help="ray: an existing cluster ('auto' after 'ray start --head', or "
                       "ray://HEAD:10001); default: start one here")
    where.add_argument("--cpus-per-run", type=int, help="threads per run (local: default the cores shared out "
                       "among the workers); ray: the CPUs each task asks for (default 1)")
    where.add_argument("--gpus-per-run", type=float, help="GPUs per run: Ray's num_gpus, or locally that many "
                       "of CUDA_VISIBLE_DEVICES per process (default 0)")
    where.add_argument("--no-summaries", action="store_true", default=None, help="only the runs: no leaderboard, "
                       "leave-one-model-out or over-training summary")
    p.set_defaults(func=cmd_sweep)


def build_parser() -> argparse.ArgumentParser:
    from .zoo.recipe import DEFAULT_PRESET

    parser = _Parser(prog="brittlebench", description="Predict which compositional variants a language model fails on, "
                                                       "from its internals, before evaluating it.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("run", help="generate items, seal predictions, evaluate, score")
    p.add_argument("--model", default="default", help="HF model name, a folder saved with save_pretrained, or a "
                   ".gguf file or a folder holding one (default: the bundled zoo model)")
    p.add_argument("--revision")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16", "auto"])
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    p.add_argument("--device-map", metavar="MAP", help=DEVICE_MAP_HELP)
    p.add_argument("--trust-remote-code", action="store_true", help="allow code from the model repo to run")
    p.add_argument("--allow-pickle", action="store_true", help="allow pickle (.bin) weights, which can run code")
    p.add_argument("--tasks", help="comma-separated families or task files (.jsonl, or a saved "
                   "dataset folder); default: --suite's default (a zoo model's own families, the pretrained suite for "
                   "any other model); not with --suite")
    p.add_argument("--predictors", default="", help="comma-separated names or module:Class (default: all registered)")
    p.add_argument("--n", type=int, default=100, help="items per cell (default 100)")
    p.add_argument("--seed", type=int, default=0, help="the item seed (default 0): the same seed, the same items")
    p.add_argument("--private-seed-file", metavar="FILE",
                   help="a secret (file, or - for stdin) mixed into the item seed: a held-out suite that nobody "
                        "without it, predictors included, can regenerate; the run records only its SHA-256")
    p.add_argument("--out", help="run folder (default: runs/<time>-<model>-seed<seed>)")
    p.add_argument("--batch-size", type=_batch_size, default=64, metavar="N|auto", help="items per forward pass "
                   "(default 64), or auto (from the model's size and the free memory); results are the same at every "
                   "batch size")
    p.add_argument("--shots", type=int, help="k-shot examples per prompt (default: 0 for zoo models, 3 otherwise)")
    p.add_argument("--shot-mode", default="fixed", choices=["fixed", "per-item"],
                   help="fixed: the same examples before every item of a family (default); per-item: each its own")
    p.add_argument("--suite", help="zoo or pretrained (default: a zoo model's own families, "
                   "the plain-language pretrained suite for any other model)")
    p.add_argument("--chat", action="store_true", help="render items with the tokenizer's chat template (instruct models)")
    p.add_argument("--no-cache", action="store_true", help="trace, evaluate, predict and score everything again "
                   "instead of reusing cached traces, outcomes, predictions and scores")
    p.add_argument("--checkpoints", metavar="DIR", help="a folder of the model's saved checkpoints "
                   "(subfolders with config.json, step-N): its training history (default: the checkpoints a zoo "
                   "model saved, where it saved any)")
    p.add_argument("--at-each-checkpoint", action="store_true", help="run the protocol at every checkpoint of the "
                   "model (each with the earlier ones as its history) into --out/NAME, and plot each predictor's "
                   "pair AUROC against the training step (--out/over_training.html)")
    p.add_argument("--revisions", metavar="R1,R2,...", help="revisions of the HF model along its "
                   "training, oldest first (each in the local HF cache): its training history")
    p.add_argument("--history-n", type=_history_n, default=25, metavar="N|all", help="base items per cell evaluated at "
                   "each checkpoint for the learning curves (default 25; all: every base item)")
    p.add_argument("--history-traces", type=int, default=1, metavar="K", help="trace the latest K checkpoints of the "
                   "history (default 1), for the predictors that read states or next tokens along training")
    p.add_argument("--resume", action="store_true", help="continue the run in --out, reusing what it stored")
    p.add_argument("--predict-only", action="store_true", help="the screen: evaluate the base region and seal the "
                   "blind predictions, evaluate no variant; --resume (without this flag) completes the run")
    p.add_argument("--predictor-timeout", type=float, metavar="SECONDS",
                   help="mark a predictor failed when its fit + predict takes longer")
    p.add_argument("--protocol", default="base", help="base (labels from base items only) or leave-one-family-out "
                   "(also the observed variant outcomes of every other family)")
    p.add_argument("--target", default="failure", help="failure, or compositional: among items whose components "
                   "the model solves, does it fail the whole")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("verify", help="check a run folder: digests, items regenerated, outcomes re-decided, "
                       "scoring rerun; --reevaluate K re-runs the model on K items",
                       description="Derive again everything the run folder's files imply and name each mismatch: "
                       "the predictions' digests; the items, regenerated from the run's spec and seed (less what "
                       "the model's context could not hold); each outcome, re-decided from its stored output and "
                       "target; the scoring stage, rerun on the stored files (base region, flags, every "
                       "score, each protocol's and target's). With --reevaluate K, the run's model is loaded and K "
                       "items are evaluated again. Exit 0: it holds; 1: a mismatch; 2: not a readable run folder. "
                       "See docs/integrity.md.")
    p.add_argument("run", help="the run folder 'brittlebench run' wrote")
    p.add_argument("--reevaluate", type=int, default=0, metavar="K",
                   help="also load the run's model (its fingerprint checked) and re-run it on K items (a sample "
                   "stratified by split, family and stored outcome), comparing outputs and outcomes with the stored "
                   "ones, and decide again what its context could not hold (default 0: no model loaded)")
    p.add_argument("--sample-seed", type=int, metavar="N", help="the seed of --reevaluate's sample (default: drawn "
                   "anew, and printed)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("predictors", help="registered predictors")
    psub = p.add_subparsers(dest="action", required=True, parser_class=_Parser)
    psub.add_parser("list").set_defaults(func=cmd_predictors_list)

    p = sub.add_parser("cache", help="the dequantized weights of GGUF files, kept so that a second load is fast")
    p.add_argument("action", choices=("list", "clear"))
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("compare", help="CI gate: exit 1 if NEW regressed against the baseline beyond tolerance")
    p.add_argument("new", help="results.json or run folder")
    p.add_argument("--baseline", required=True, help="results.json or run folder to compare against")
    p.add_argument("--max-drop", help="predictors: METRIC=TOL,... (default pair_auroc=0.02, the ranking figure)")
    p.add_argument("--max-rise", help="brittleness: failure=TOL,gap=TOL (default 0.05 each): the rise "
                   "in a variant cell's or family's failure rate, or in the compositional gap, that counts")
    p.add_argument("--gate", default=",".join(GATES), help="what to gate on: predictors, brittleness or both (default)")
    p.add_argument("--screen-predictor", help="for a predict-only run: the blind predictor whose predicted failure "
                   "is compared (default: the baseline's best blind predictor)")
    p.add_argument("--against", choices=("predicted", "observed"), default="predicted",
                   help="a screen against a full baseline: its prediction by the same predictor (default, like for "
                   "like) or its observed failure")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("leaderboard", help="build or validate the leaderboard")
    lsub = p.add_subparsers(dest="action", required=True, parser_class=_Parser)
    l = lsub.add_parser("build", help="collect verified runs and submissions into leaderboard files")
    l.add_argument("--root", default="leaderboard")
    l.set_defaults(func=cmd_leaderboard_build)
    l = lsub.add_parser("validate", help="check a submission folder (digest, scores, submission.json)")
    l.add_argument("path")
    l.set_defaults(func=cmd_leaderboard_validate)
    l = lsub.add_parser("run-zoo", help="run every built-in predictor on every zoo model")
    l.add_argument("--zoo", default="zoo")
    l.add_argument("--out", default="leaderboard/runs")
    l.add_argument("--n", type=int, default=100)
    l.add_argument("--seed", type=int, default=0)
    l.add_argument("--members", help="comma-separated zoo members, 'default' for the bundled model (default: all and "
                   "the bundled model)")
    l.set_defaults(func=cmd_leaderboard_run_zoo)

    p = sub.add_parser("lomo", help="leave-one-model-out: refit predictors on the other models' variant outcomes")
    p.add_argument("runs", nargs="+", help="run folders of different models on the same suite (the cells a model's "
                   "context could not hold may differ)")
    p.set_defaults(func=cmd_lomo)

    add_sweep_parser(sub)

    p = sub.add_parser("report", help="rebuild a run folder's report.html")
    p.add_argument("run")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("check-predictor", help="run the conformance checks on a predictor")
    p.add_argument("name", help="registered name, module:Class or path/file.py:Class")
    p.add_argument("--model", help="check against a real model (default: a fake model, no torch)")
    p.set_defaults(func=cmd_check_predictor)

    p = sub.add_parser("tasks", help="task families")
    tsub = p.add_subparsers(dest="action", required=True, parser_class=_Parser)
    tsub.add_parser("list").set_defaults(func=cmd_tasks_list)
    t = tsub.add_parser("show", help="print generated items")
    t.add_argument("family", help="family name or task file")
    t.add_argument("--cell")
    t.add_argument("--axis", help="only list the values this axis takes in each cell")
    t.add_argument("-n", type=int, default=3)
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=cmd_tasks_show)
    t = tsub.add_parser("export", help="write items as JSONL, a HF dataset or an lm-eval task")
    t.add_argument("--tasks", help="comma-separated families or task files (default: every family)")
    t.add_argument("--cells", default="", help="comma-separated cell names (default: all)")
    t.add_argument("-n", "--n", type=int, default=100, help="items per cell")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--shots", type=int, default=0)
    t.add_argument("--format", required=True, choices=["jsonl", "hf", "lm-eval"])
    t.add_argument("--name", default="brittlebench", help="task name (lm-eval)")
    t.add_argument("--out", required=True)
    t.set_defaults(func=cmd_tasks_export)

    p = sub.add_parser("zoo", help="train the model zoo")
    zsub = p.add_subparsers(dest="action", required=True, parser_class=_Parser)
    z = zsub.add_parser("train")
    z.add_argument("--preset", default=DEFAULT_PRESET,
                   help=f"a preset from 'zoo list' (default {DEFAULT_PRESET}: the bundled default model's recipe)")
    z.add_argument("--out", required=True)
    z.add_argument("--steps", type=int)
    z.add_argument("--seed", type=int)
    z.add_argument("--tasks", help="families or task files to train on (their base regions only)")
    z.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out "
                   "(the same result as an uninterrupted run)")
    z.add_argument("--device", default="cpu", help="where to train: cpu (default, bit-reproducible here) or cuda")
    z.set_defaults(func=cmd_zoo_train)
    z = zsub.add_parser("build", help="train every zoo member that is missing or out of date")
    z.add_argument("--out", default="zoo")
    z.add_argument("--presets", help="comma-separated presets (default: the whole zoo)")
    z.set_defaults(func=cmd_zoo_build)
    zsub.add_parser("list", help="the presets").set_defaults(func=cmd_zoo_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from predictors import PredictorError
    from tasks import TaskError

    interrupted: list[int] = []

    def interrupt(signum, frame):  # Ctrl-C, and SIGTERM likewise: open files and workers are closed
        interrupted.append(signum)
        raise KeyboardInterrupt

    reproducible_numerics()  # before any command runs a model
    restore = {}
    if threading.current_thread() is threading.main_thread():
        restore = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (UserError, TaskError, PredictorError) as e:
        if interrupted:  # a library turned the interruption into its own error (numpy's `tofile` does)
            return _interrupted()
        print(f"brittlebench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _interrupted()
    except BrokenPipeError:  # `brittlebench ... | head`: the reader has gone, which is fine
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception:
        if interrupted:  # as above: the interruption, whatever error a library raised in its place
            return _interrupted()
        raise
    finally:
        for sig, handler in restore.items():
            signal.signal(sig, handler)


def _interrupted() -> int:
    print("brittlebench: interrupted (a run can continue with --resume)", file=sys.stderr)
    return 130


def entry() -> None:
    """The `brittlebench` command: `main`, then out without the interpreter's teardown, which frees
    torch's and transformers' modules one by one (~1 s after a run, every file already written and
    closed). Where a thread of ours is still working, the ordinary exit waits for it."""
    import os

    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # the reader has gone, or a stream was closed: nothing to lose
        pass
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    os._exit(code)


if __name__ == "__main__":
    entry()
