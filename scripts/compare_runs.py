"""Are two run folders the same run? Every file byte for byte, except the JSON files (compared
as JSON without what differs between identical runs: when it ran, `created`, and how long,
`timings` and every `seconds`) and report.html (rendered from those files and the timings).

    python scripts/compare_runs.py RUN_A RUN_B     # exit 0 when the same, 1 with the differences
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

VOLATILE = {"created", "timings", "seconds", "run_dir"}


def _stable(value):
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def differences(a: Path, b: Path) -> list[str]:
    names = sorted({p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file()}
                   | {p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file()})
    out = []
    for name in names:
        if name == "report.html":
            continue  # rendered from results.json (timings included) and the files compared here
        pa, pb = a / name, b / name
        if not pa.is_file() or not pb.is_file():
            out.append(f"{name}: only in {a if pa.is_file() else b}")
        elif name.endswith(".json"):
            ja, jb = _stable(json.loads(pa.read_text())), _stable(json.loads(pb.read_text()))
            if ja != jb:
                keys = sorted(k for k in set(ja) | set(jb) if ja.get(k) != jb.get(k))
                out.append(f"{name}: differs in {', '.join(keys)}")
            elif list(ja) != list(jb):
                out.append(f"{name}: same content, keys in another order")
        elif pa.read_bytes() != pb.read_bytes():
            out.append(f"{name}: bytes differ")
    return out


if __name__ == "__main__":
    found = differences(Path(sys.argv[1]), Path(sys.argv[2]))
    print("\n".join(found) if found else f"same run: every file equal ({sys.argv[1]} vs {sys.argv[2]})")
    sys.exit(1 if found else 0)
