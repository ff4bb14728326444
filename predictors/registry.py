"""Find predictors through the `brittlebench.predictors` entry-point group.

Built-ins register through the same group as third-party plugins. Nothing is
imported until a predictor is asked for.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
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
