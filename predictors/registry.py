"""Find predictors through the `brittlebench.predictors` entry-point group.

Built-ins register through the same group as third-party plugins. Nothing is
imported until a predictor is asked for.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from .base import Predictor

GROUP = "brittlebench.predictors"


class PredictorError(ValueError):
    """A predictor that cannot be found or loaded (a user mistake: exit 2)."""


@dataclass(frozen=True)
class Registered:
    name: str
    target: str  # "module:Class"
    distribution: str


def registered() -> dict[str, Registered]:
    found: dict[str, Registered] = {}
    for ep in entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        if ep.name in found and found[ep.name].target != ep.value:
            raise PredictorError(f"predictor name {ep.name!r} is claimed by two distributions: "
                                 f"{found[ep.name].distribution} and {dist}; uninstall one")
        found[ep.name] = Registered(ep.name, ep.value, dist)
    return found


def _module_source(module: str) -> Path | None:
    """Where a module's source is, found without importing it (or its package)."""
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)  # finding a top-level module executes nothing
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    for location in spec.submodule_search_locations or []:
        base = Path(location).joinpath(*rest[:-1])
        for candidate in (base / f"{rest[-1]}.py", base / rest[-1] / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def describe(entry: Registered) -> dict[str, str]:
    """`reads`, `version` and the docstring's first line of a registered predictor, read
    from its source with `ast`: listing never imports a plugin."""
    module, _, cls_name = entry.target.partition(":")
    info = {"reads": "?", "version": "?", "summary": "", "track": "?"}
    path = _module_source(module)
    if path is None:
        return info
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return info
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls_name:
            doc = ast.get_docstring(node) or ""
            info["summary"] = doc.strip().splitlines()[0] if doc.strip() else ""
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                    key = stmt.targets[0].id
                    if key in ("version", "track"):
                        try:
                            info[key] = str(ast.literal_eval(stmt.value))
                        except ValueError:
                            pass
                    elif key == "reads":
                        value = stmt.value
                        if isinstance(value, ast.Call) and value.args:  # frozenset({...})
                            value = value.args[0]
                        try:
                            info["reads"] = ",".join(sorted(ast.literal_eval(value))) or "-"
                        except ValueError:
                            pass
                        if isinstance(stmt.value, ast.Call) and not stmt.value.args:
                            info["reads"] = "-"
    if info["track"] == "?" and info["reads"] != "?":  # undeclared: it follows from the reads
        from .base import TRACE_READS

        info["track"] = "trace" if set(info["reads"].split(",")) & TRACE_READS else "blind"
    return info


def _import_target(target: str) -> type:
    module_name, _, attr = target.partition(":")
    if not attr:
        raise PredictorError(f"predictor {target!r} is not NAME, module:Class or path/file.py:Class")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise PredictorError(f"no predictor file {module_name}")
            spec = importlib.util.spec_from_file_location(f"brittlebench_user_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
        cls = getattr(module, attr)
    except PredictorError:
        raise
    except Exception as e:  # a plugin's own import failure, whatever it raised
        raise PredictorError(f"cannot import predictor {target!r}: {type(e).__name__}: {e}") from None
    if not (isinstance(cls, type) and issubclass(cls, Predictor)):
        raise PredictorError(f"{target!r} is not a brittlebench Predictor subclass")
    return cls


def load_predictor(name: str) -> Predictor:
    """A fresh instance with default parameters, by registered name or import path."""
    if ":" in name:
        cls = _import_target(name)
    else:
        known = registered()
        if name not in known:
            raise PredictorError(f"unknown predictor {name!r}; registered: {', '.join(sorted(known)) or 'none'}")
        cls = _import_target(known[name].target)
    try:
        return cls()
    except Exception as e:
        raise PredictorError(f"predictor {name!r} cannot be built with default parameters: {e}") from None
