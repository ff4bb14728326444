"""Zoo recipes: the `Recipe` record (every field documented here, with its default) and the
presets, loaded from `presets.toml` and checked against the record."""
from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from tasks import SUITES

from ..errors import UserError

PRESETS_FILE = Path(__file__).parent / "presets.toml"


@dataclass(frozen=True)
class Recipe:
    arch: str = "gpt2"  # "gpt2" (learned positions) or "llama" (rotary)
    n_layers: int = 4
    d_model: int = 128
    n_heads: int = 4
    context_length: int = 64
    init_scale: float = 1.0  # multiplies the default initializer_range (0.02)
    tasks: tuple[str, ...] = ("addition",)
    items_per_cell: int = 40_000
    steps: int = 6000
    batch_size: int = 128
    lr: float = 1e-3
    warmup: int = 200
    weight_decay: float = 0.01
    seed: int = 0
    checkpoints: tuple[int, ...] = field(default_factory=tuple)  # steps at which to save a copy
    batching: str = "mixed"  # "mixed": any items together; "by_cell": each batch from one base cell
    # With by_cell batching, "loss" draws cells in proportion to their recent training loss and
    # "error" in proportion to their recent failure chance, 1 - P(whole answer) (half of the
    # draws; the other half stays uniform per family), so steps go where the model is still
    # wrong instead of to cells it has already learned. The token loss undersells long answers
    # whose tokens are mostly easy: one wrong token fails the item, so "error" is the better guide.
    sampling: str = "uniform"
    # A curriculum's first phase: for the first `warm_steps` steps, batches come only from
    # `warm_tasks` (a subset of `tasks`); the schedule and the optimizer run on unchanged.
    warm_tasks: tuple[str, ...] = ()
    warm_steps: int = 0
    # Continued training: start from the weights of this preset's trained model (trained first,
    # into OUT/init/PRESET, unless already there to the same recipe), with a fresh optimizer and
    # schedule. The architecture must be the same.
    init_from: str = ""
    # Replay of recent failures: this share of each batch is drawn from the last REPLAY_SIZE items
    # of the batch's group that the model missed when last drawn (1 - P(answer) > 0.5 under
    # teacher forcing), the rest as usual. Still the base region, only its hard items more often:
    # an item pool too large to see an item twice otherwise shows a rare hard case once.
    replay: float = 0.0
    # Online hard-example mining (Shrivastava et al. 2016): draw `mining` times the batch's fresh
    # items, score them in one no-grad pass, and train on the ones the model is likeliest to miss
    # (1 - P(answer)). Still fresh items of the base region, never the same item on purpose: a
    # rare hard case (one in ten) fills the batch without any item being seen twice.
    mining: int = 1
    # Growth: where `init_from`'s model has fewer layers (all else the same), its layers keep
    # their order and the new ones are inserted before its layer `grow_at` (0: at the bottom),
    # each with its attention and MLP output projections zero, so that it adds nothing and
    # training continues from the same function. Inside, a new layer is a copy of the saved layer
    # it is inserted before (`grow_init="copy"`, the top one at the top: as progressive stacking),
    # or freshly initialized ("random").
    grow_at: int = 0
    grow_init: str = "copy"


ALL_TASKS = SUITES["zoo"]  # the zoo suite: the formats zoo models are trained on


def load_presets(path: Path = PRESETS_FILE) -> tuple[dict[str, Recipe], str]:
    """(presets by name in the file's order, the default preset's name), each preset checked:
    known fields only, each of its field's type, continuations from presets in the file."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UserError(f"cannot read the zoo presets {path}: {e}") from None
    default = data.pop("default", None)
    presets = {name: _recipe(name, table) for name, table in data.items()}
    if default not in presets:
        raise UserError(f"{path}: 'default' must name one of its presets, got {default!r}")
    for name, recipe in presets.items():
        if recipe.init_from and recipe.init_from not in presets:
            raise UserError(f"{path}: preset {name!r} continues from {recipe.init_from!r}, which is not a preset")
    return presets, default


def _recipe(name: str, table: Any) -> Recipe:
    if not isinstance(table, dict):
        raise UserError(f"{PRESETS_FILE.name}: {name!r} must be a table of recipe fields ([{name}])")
    hints = get_type_hints(Recipe)  # every field, in order
    values = {}
    for key, value in table.items():
        if key not in hints:
            raise UserError(f"{PRESETS_FILE.name}: preset {name!r} has no recipe field {key!r}; fields: {', '.join(hints)}")
        values[key] = _typed(name, key, value, hints[key])
    return Recipe(**values)


def _typed(preset: str, key: str, value: Any, hint: Any) -> Any:
    """`value` as the field's type says (a TOML list becomes a tuple, an integer a float where the
    field is one), or a UserError naming the preset and the field."""
    if get_origin(hint) is tuple:
        element = get_args(hint)[0]
        if isinstance(value, list) and all(type(v) is element for v in value):
            return tuple(value)
    elif hint is float and type(value) in (int, float):
        return float(value)
    elif type(value) is hint:
        return value
    raise UserError(f"{PRESETS_FILE.name}: preset {preset!r}: {key} = {value!r} is not a {getattr(hint, '__name__', hint)}")


PRESETS, DEFAULT_PRESET = load_presets()
ZOO = tuple(name for name in PRESETS if name.startswith("zoo-"))


def get_preset(name: str) -> Recipe:
    try:
        return PRESETS[name]
    except KeyError:
        raise UserError(f"unknown zoo preset {name!r}; presets: {', '.join(PRESETS)}") from None


def with_overrides(recipe: Recipe, **overrides: Any) -> Recipe:
    """`recipe` with the fields given (None: keep). Other tasks keep the warm phase only for the
    warm tasks still among them (none left: no warm phase)."""
    changed = replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    if changed.tasks != recipe.tasks and "warm_tasks" not in overrides:
        kept = tuple(t for t in recipe.warm_tasks if t in changed.tasks)
        changed = replace(changed, warm_tasks=kept, warm_steps=changed.warm_steps if kept else 0)
    return changed


def recipe_dict(recipe: Recipe) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(recipe).items()}


def recipe_from_dict(d: dict[str, Any]) -> Recipe:
    """A card's recipe; fields added since it was written take their defaults (the recipe it ran)."""
    known = {f.name for f in fields(Recipe)}
    return Recipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known})
