"""The bundled default model's training history: (re)train its preset with checkpoints kept, then
pack a spread of them (fp16 storage) beside the model.

    python scripts/default_history.py train --out DIR [--device cuda]   # the preset, with its chain
    python scripts/default_history.py pack --out DIR --into FOLDER      # checkpoints/step-N in FOLDER

The default preset ("suite") is one training run of 24,000 steps (about four hours on 2 cores).
A preset that continues another (`init_from`, e.g. the "suite-keyed3" chain) is trained with its
whole chain: `zoo train` trains each stage's parent into the stage's own init/PARENT folder (the
first stage deepest), with the checkpoints its preset lists. `train` run again goes on from the
newest checkpoint of the stage it was in. Steps in the packed names count from the start of the
whole chain, so a history reads as one training run.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.process import reproducible_numerics  # noqa: E402
reproducible_numerics()  # MKL's reproducible branch, as the command line asks for it

# Cumulative steps at which the packed history is taken (each a checkpoint or a stage's end), per
# preset: six checkpoints spread over training, the last close to the end (drift and agreement
# read the latest ones); with the final model, seven points of the learning curves.
PACKED = {"suite": (2000, 6000, 10000, 14000, 18000, 22000),
          "suite-keyed3": (2000, 8000, 14000, 20000, 24000, 32000, 42000, 48000)}


def chain(preset: str) -> list[str]:
    """The presets trained in order to reach `preset`, first to last."""
    from bench.zoo.recipe import get_preset

    line = [preset]
    while get_preset(line[-1]).init_from:
        line.append(get_preset(line[-1]).init_from)
    return line[::-1]


def stage_folders(out: Path, preset: str) -> list[tuple[str, Path, int]]:
    """(preset, its folder, the cumulative step it starts at) for every stage of the chain."""
    from bench.zoo.recipe import get_preset

    names = chain(preset)
    folders, folder = {}, out
    for name in reversed(names):  # each stage trains its parent into its own init/PARENT folder
        folders[name] = folder
        folder = folder / "init" / get_preset(name).init_from if get_preset(name).init_from else folder
    start, stages = 0, []
    for name in names:
        stages.append((name, folders[name], start))
        start += get_preset(name).steps
    return stages


def available(out: Path, preset: str) -> dict[int, tuple[Path, str, int]]:
    """cumulative step -> (weights folder, stage, step within the stage), finished stages only."""
    found = {}
    for name, folder, start in stage_folders(out, preset):
        if not (folder / "zoo.json").is_file():
            break
        for checkpoint in (folder / "checkpoints").glob("step-*"):
            step = int(checkpoint.name.split("-")[1])
            found[start + step] = (checkpoint, name, step)
        from bench.zoo.recipe import get_preset

        found[start + get_preset(name).steps] = (folder, name, get_preset(name).steps)
    return found


def pack(out: Path, into: Path, preset: str, steps: tuple[int, ...]) -> list[Path]:
    """Each of `steps` as into/checkpoints/step-N: fp16 weights, the config and tokenizer, and
    checkpoint.json (cumulative step, stage, step within it)."""
    from safetensors.torch import load_file, save_file

    found = available(out, preset)
    missing = [s for s in steps if s not in found]
    if missing:
        raise SystemExit(f"no checkpoint at steps {missing} under {out} (have {sorted(found)})")
    written = []
    for step in steps:
        source, stage, within = found[step]
        target = into / "checkpoints" / f"step-{step}"
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        weights = load_file(source / "model.safetensors")
        save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in weights.items()},
                  target / "model.safetensors", metadata={"format": "pt"})
        for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
            if (source / name).is_file():
                shutil.copy2(source / name, target / name)
        (target / "checkpoint.json").write_text(json.dumps(
            {"step": step, "stage": stage, "stage_step": within, "storage": "float16"}, indent=2) + "\n")
        written.append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["train", "pack"])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--into", type=Path, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default=None)
    parser.add_argument("--steps", default=None, help="comma-separated steps to pack (default: PACKED's)")
    args = parser.parse_args()
    from bench.zoo.recipe import DEFAULT_PRESET, get_preset
    from bench.zoo.trainer import train

    preset = args.preset or DEFAULT_PRESET
    if args.action == "train":
        from bench.zoo.trainer import _latest_state

        recipe = get_preset(preset)  # every stage of the chain goes on from its newest checkpoint
        train(recipe, args.out, progress=True, preset=preset, device=args.device,
              resume=_latest_state(args.out, recipe) is not None)
    else:
        steps = tuple(int(s) for s in args.steps.split(",")) if args.steps else PACKED.get(preset)
        if not steps:
            raise SystemExit(f"no packed steps known for preset {preset!r}: pass --steps")
        for path in pack(args.out, args.into or args.out, preset, steps):
            print(path)


if __name__ == "__main__":
    main()
