"""Load once: a GGUF file's weights, dequantized, kept as a plain HF folder.

transformers dequantizes a .gguf file to float weights every time it loads it (tens of seconds
on a real model), though the result depends only on the file and the dtype. The first load saves
config, tokenizer and `model.safetensors` into `$BRITTLEBENCH_CACHE/gguf/<digest>-<dtype>/` (the
file's SHA-256, read in chunks); later loads read that folder as any saved model. The fingerprint
is computed from the loaded model as always, and is the same by either way (the test checks).

An entry is written whole or not at all (built in a temporary folder beside it, then renamed into
place); one that cannot be read is a miss: recomputed and replaced, with one line on stderr. At most
`max_entries()` entries are kept ($BRITTLEBENCH_GGUF_ENTRIES, default 3), the least recently used
removed first.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DONE = "source.json"  # written last: an entry without it is not complete


def cache_root() -> Path:
    return Path(os.environ.get("BRITTLEBENCH_CACHE") or Path.home() / ".cache" / "brittlebench") / "gguf"


def max_entries() -> int:
    try:
        return max(1, int(os.environ.get("BRITTLEBENCH_GGUF_ENTRIES", "3")))
    except ValueError:
        return 3


def file_digest(path: str | Path) -> str:
    """The file's SHA-256, read 4 MiB at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def entry_folder(digest: str, dtype: str) -> Path:
    return cache_root() / f"{digest[:32]}-{dtype}"


@dataclass(frozen=True)
class Entry:
    folder: Path
    source: str
    dtype: str
    bytes: int
    used: float


def entries() -> list[Entry]:
    """Complete entries, least recently used first."""
    root = cache_root()
    found = []
    for folder in sorted(root.glob("*-*")) if root.is_dir() else []:
        try:
            info = json.loads((folder / DONE).read_text())
            size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
            found.append(Entry(folder, str(info.get("source", "?")), str(info.get("dtype", "?")), size,
                               (folder / DONE).stat().st_mtime))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda e: (e.used, e.folder.name))


def lookup(digest: str, dtype: str) -> Path | None:
    """The entry's folder if a complete one of this file and dtype is there (marked as used now),
    else None; one whose record names another file or dtype (moved or copied in) is a miss."""
    folder = entry_folder(digest, dtype)
    if not (folder / DONE).is_file():
        return None
    try:
        info = json.loads((folder / DONE).read_text())
        os.utime(folder / DONE)
        ours = info.get("sha256") == digest and info.get("dtype") == dtype
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        warn(f"the cached weights in {folder.name} are not this file's in {dtype} (moved or copied there?): "
             "dequantizing the file again")
        return None
    return folder


def warn(message: str) -> None:
    print(f"brittlebench: {message}", file=sys.stderr)


def store(model: Any, tokenizer: Any, digest: str, dtype: str, source: str) -> Path | None:
    """Save the loaded model and tokenizer as the entry for (`digest`, `dtype`), replacing any entry
    there, then keep at most `max_entries()`. A failure (a full disk) costs only the cache: one
    line on stderr, None returned."""
    folder = entry_folder(digest, dtype)
    partial = folder.parent / f".partial-{folder.name}-{uuid.uuid4().hex[:8]}"
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        quantizer = getattr(model, "hf_quantizer", None)
        model.hf_quantizer = None  # the dequantized weights are plain tensors: save them as such
        try:
            model.save_pretrained(partial, safe_serialization=True)
        finally:
            model.hf_quantizer = quantizer
        tokenizer.save_pretrained(partial)
        (partial / DONE).write_text(json.dumps({"source": str(Path(source).name), "sha256": digest, "dtype": dtype,
                                                 "saved": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
        if folder.exists():  # an unreadable entry: moved aside, then replaced
            old = folder.parent / f".old-{folder.name}-{uuid.uuid4().hex[:8]}"
            os.replace(folder, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(partial, folder)
    except Exception as e:  # noqa: BLE001 - the cache is an optimization; the loaded model stands
        shutil.rmtree(partial, ignore_errors=True)
        warn(f"could not cache the dequantized weights of {Path(source).name} ({type(e).__name__}: {e})")
        return None
    prune()
    return folder


def prune() -> list[Path]:
    """Remove the least recently used entries beyond `max_entries()`, and leftovers of interrupted writes."""
    found = entries()
    removed = [e.folder for e in found[:max(0, len(found) - max_entries())]]
    root = cache_root()
    stale = [p for pattern in (".partial-*", ".old-*") for p in root.glob(pattern)
             if time.time() - p.stat().st_mtime > 24 * 3600] if root.is_dir() else []
    for folder in removed + stale:
        shutil.rmtree(folder, ignore_errors=True)
    return removed


def clear() -> list[Entry]:
    gone = entries()
    for entry in gone:
        shutil.rmtree(entry.folder, ignore_errors=True)
    return gone
