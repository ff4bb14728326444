"""A zoo member's checkpoints made light enough to ship: float16 weights (traces are still computed
in float32: the loader upcasts them), the optimizer state dropped (a shipped member is not resumed).
With --curves, print each checkpoint's accuracy on every cell of its families (base and variants).

    python scripts/slim_checkpoints.py zoo/zoo-grok
    python scripts/slim_checkpoints.py --curves zoo/zoo-grok
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.process import reproducible_numerics  # noqa: E402
reproducible_numerics()  # MKL's reproducible branch, as the command line asks for it


def slim(member: Path) -> None:
    from safetensors.torch import load_file, save_file

    for checkpoint in sorted((member / "checkpoints").glob("step-*")):
        (checkpoint / "training_state.pt").unlink(missing_ok=True)
        path = checkpoint / "model.safetensors"
        weights = load_file(path)
        save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in weights.items()}, path,
                  metadata={"format": "pt"})


def curves(member: Path, n: int = 200) -> None:
    from bench.model.evaluate import evaluate
    from bench.model.load import ModelSpec, load_model
    from tasks import resolve_families

    card = json.loads((member / "zoo.json").read_text())
    families = resolve_families(card["recipe"]["tasks"])
    folders = sorted((member / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1])) + [member]
    for folder in folders:
        handle = load_model(ModelSpec(str(folder)))
        row = []
        for name, family in families.items():
            for cell in family.cells:
                items = family.generate(cell.name, n, seed=1)
                row.append(f"{name}/{cell.name} {sum(o.correct for o in evaluate(handle, items, families=families)) / n:.2f}")
        print(f"{member.name} {folder.name if folder != member else 'final'}: " + ", ".join(row))


if __name__ == "__main__":
    if sys.argv[1] == "--curves":
        curves(Path(sys.argv[2]))
    else:
        slim(Path(sys.argv[1]))
