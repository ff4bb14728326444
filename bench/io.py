"""Run-folder and cache files, each written atomically (write, flush, fsync, rename)."""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()  # what open() would give a new file; mkstemp alone gives 0600


def write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def jsonl_bytes(rows: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, sort_keys=True, separators=(",", ":")) + "\n" for row in rows).encode()


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    write_bytes(path, jsonl_bytes(rows))


def write_json(path: Path, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_keyed(path: Path, entry: dict[str, Any]) -> None:
    """A cache entry as JSON, stamped with its key (the file's own name): `read_keyed` refuses it
    under any other name."""
    write_json(path, {"key": Path(path).stem} | entry)


def read_keyed(path: Path, check=None) -> dict[str, Any] | None:
    """The cache entry `write_keyed` stored at `path` (without its stamp), None where there is none.
    One that cannot be read, holds another key (a swapped or renamed file) or fails `check` (a
    function raising ValueError, KeyError or TypeError) is removed, with one line on stderr: a miss."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text())
        if not isinstance(entry, dict) or entry.pop("key", None) != path.stem:
            raise ValueError("not the entry its name keys")
        if check is not None:
            check(entry)
        return entry
    except (OSError, ValueError, KeyError, TypeError) as e:
        reason = str(e).strip().splitlines()[0][:80] if str(e).strip() else type(e).__name__
        print(f"brittlebench: cache entry {path.name} removed, computed again ({reason})", file=sys.stderr)
        path.unlink(missing_ok=True)
        return None
