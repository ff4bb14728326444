"""Train small transformers in HF format on the base regions of task families.

`brittlebench zoo train --preset suite --out DIR` is rerunnable and
deterministic for a seed; the folder it writes is a normal HF model folder
(safetensors, tokenizer.json) plus `zoo.json`, the card that says how it was
trained and how well it does on the base region.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable

from tasks import Item, resolve_families

from .. import io
from ..errors import UserError
from ..model.evaluate import evaluate
from ..model.load import ModelSpec, load_model
from .recipe import ZOO, Recipe, get_preset, recipe_dict, recipe_from_dict
from .sampler import BatchSampler, missed_rows
from .tokenizer import build_tokenizer

TRAIN_SEED_OFFSET = 1_000_003  # training items come from seeds no run uses by default


def build_model(recipe: Recipe, vocab_size: int, special: dict[str, int]):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    if recipe.arch == "gpt2":
        config = GPT2Config(vocab_size=vocab_size, n_positions=recipe.context_length, n_embd=recipe.d_model,
                            n_layer=recipe.n_layers, n_head=recipe.n_heads, resid_pdrop=0.0, embd_pdrop=0.0,
                            attn_pdrop=0.0, initializer_range=0.02 * recipe.init_scale, **special)
        return GPT2LMHeadModel(config)
    if recipe.arch == "llama":
        config = LlamaConfig(vocab_size=vocab_size, max_position_embeddings=recipe.context_length,
                             hidden_size=recipe.d_model, intermediate_size=4 * recipe.d_model,
                             num_hidden_layers=recipe.n_layers, num_attention_heads=recipe.n_heads,
                             num_key_value_heads=recipe.n_heads, initializer_range=0.02 * recipe.init_scale,
                             tie_word_embeddings=True, **special)
        return LlamaForCausalLM(config)
    raise UserError(f"unknown zoo architecture {recipe.arch!r}: use gpt2 or llama")


def training_items(recipe: Recipe) -> list[Item]:
    """The base region of every task in the recipe, never a variant cell."""
    return [item for family in resolve_families(recipe.tasks).values() for cell in family.base_cells
            for item in family.generate(cell.name, recipe.items_per_cell, seed=TRAIN_SEED_OFFSET + recipe.seed)]


def _encode(tokenizer, items: list[Item]):
    """Token ids of `<bos> prompt target <eos>` and labels that score the answer only."""
    import itertools

    import numpy as np
    import torch

    prompts = tokenizer([item.prompt for item in items])["input_ids"]
    answers = tokenizer([item.target for item in items], add_special_tokens=False)["input_ids"]
    rows = [prompt + answer + [tokenizer.eos_token_id] for prompt, answer in zip(prompts, answers)]
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    prompt_lengths = np.fromiter(map(len, prompts), dtype=np.int64, count=len(rows))
    row = np.repeat(np.arange(len(rows)), lengths)  # each token's row and column
    column = np.arange(len(row)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    tokens = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=len(row))
    ids = np.full((len(rows), int(lengths.max())), tokenizer.pad_token_id, dtype=np.int64)
    ids[row, column] = tokens
    mask = (np.arange(ids.shape[1]) < lengths[:, None]).astype(np.int64)
    answer_part = mask.astype(bool) & (np.arange(ids.shape[1]) >= prompt_lengths[:, None])
    labels = np.where(answer_part, ids, -100)
    return torch.from_numpy(ids), torch.from_numpy(labels), torch.from_numpy(mask)


def _latest_state(out: Path, recipe: Recipe) -> Path | None:
    """The newest checkpoint under `out` that saved its training state for this very recipe."""
    import torch

    found = []
    for state in (out / "checkpoints").glob("step-*/training_state.pt"):
        saved = torch.load(state, weights_only=True)
        if recipe_from_dict(json.loads(saved["recipe"])) == recipe:
            found.append((saved["step"], state))
    return max(found)[1] if found else None


def train(recipe: Recipe, out: Path, progress: bool = True, log: Callable[[str], None] = print,
          preset: str | None = None, resume: bool = False, device: str = "cpu") -> dict[str, Any]:
    """Train `recipe` into `out`. With `resume`, continue from the newest checkpoint in `out` that
    saved its training state (model, optimizer, schedule, sampler and random generator): the
    result is the same as an uninterrupted run's. `device`: where the steps run ("cuda" trains the
    same recipe much faster; its numbers differ from the CPU's in the last bits, so a model trained
    there is not bit-identical to one trained here, and its card says where it was trained)."""
    import torch
    from tqdm import tqdm

    out = Path(out)
    torch.manual_seed(recipe.seed)
    tokenizer = build_tokenizer()
    special = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                   pad_token_id=tokenizer.pad_token_id)
    model = build_model(recipe, len(tokenizer), special)
    model.train()
    state_path = _latest_state(out, recipe) if resume else None
    if resume and state_path is None:
        raise UserError(f"nothing to resume in {out}: no checkpoint with a training state for this recipe")
    init = None
    if recipe.init_from and state_path is None:
        init = _init_from(recipe, model, out, progress, log, device)
    elif recipe.init_from:  # resumed: the weights come from the checkpoint; the card still says whence
        init = _init_record(recipe.init_from, out / "init" / recipe.init_from)
    model.to(device)
    items = training_items(recipe)
    ids, labels, mask = (t.to(device) for t in _encode(tokenizer, items))
    if ids.shape[1] > recipe.context_length:
        raise UserError(f"training sequences reach {ids.shape[1]} tokens, over the context length {recipe.context_length}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=(0.9, 0.98), weight_decay=recipe.weight_decay)

    def lr_at(step: int) -> float:
        if step < recipe.warmup:
            return (step + 1) / recipe.warmup
        done = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    sampler = BatchSampler(recipe, items)
    started = time.time()
    losses: list[float] = []
    first = 0
    if state_path is not None:
        state = torch.load(state_path, weights_only=True, map_location=device)
        _load_weights(model, state_path.parent)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        sampler.load_state(state)
        losses, first = list(state["losses"]), int(state["step"])
        started -= float(state["seconds"])
        log(f"resuming {out} at step {first} of {recipe.steps}")
    bar = tqdm(range(first, recipe.steps), desc=f"zoo train {out.name}", disable=not progress,
               initial=first, total=recipe.steps)

    def score(candidates):  # mining: each candidate's chance of being missed, no gradient
        rows = candidates.to(device)
        width = int(mask[rows].sum(1).max())
        model.eval()
        with torch.no_grad():
            logits = model(input_ids=ids[rows, :width], attention_mask=mask[rows, :width]).logits
        model.train()
        return missed_rows(logits, labels[rows, :width]).cpu()

    for step in bar:
        batch = sampler.draw(step, score if recipe.mining > 1 else None)  # indices, on the CPU
        rows = batch.to(device)
        width = int(mask[rows].sum(1).max())
        output = model(input_ids=ids[rows, :width], attention_mask=mask[rows, :width], labels=labels[rows, :width])
        loss = output.loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if sampler.adaptive or recipe.replay:
            missed = missed_rows(output.logits, labels[rows, :width]).cpu()
            sampler.remember(batch, missed)
            if sampler.adaptive:
                error = sampler.signal if sampler.signal is not None else float(missed.mean())
                sampler.update(losses[-1] if recipe.sampling == "loss" else error)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
        if step + 1 in recipe.checkpoints:
            folder = out / "checkpoints" / f"step-{step + 1}"
            _save(model, tokenizer, folder)
            torch.save({"step": step + 1, "recipe": json.dumps(recipe_dict(recipe)), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), **sampler.state(), "losses": losses,
                        "seconds": time.time() - started}, folder / "training_state.pt")
    model.eval()
    _save(model, tokenizer, out)
    handle = load_model(ModelSpec(str(out)))
    card = {
        "schema_version": 1,
        "preset": preset,
        "recipe": recipe_dict(recipe),
        "data_region": {name: [c.name for c in f.base_cells] for name, f in resolve_families(recipe.tasks).items()},
        "train_items": len(items),
        "train_item_seed": TRAIN_SEED_OFFSET + recipe.seed,
        **({"init": init} if init else {}),
        "final_loss": round(sum(losses[-100:]) / len(losses[-100:]), 6),
        "train_seconds": round(time.time() - started, 1),
        "torch_version": torch.__version__,
        **({"train_device": str(device)} if str(device) != "cpu" else {}),
        "base_accuracy": base_accuracy(handle, recipe.tasks),
        "fingerprint": handle.fingerprint,
    }
    io.write_json(out / "zoo.json", card)
    log(f"saved {out}: base accuracy {card['base_accuracy']}, final loss {card['final_loss']}")
    return card


ARCHITECTURE = ("arch", "n_layers", "d_model", "n_heads", "context_length")


def _init_from(recipe: Recipe, model, out: Path, progress: bool, log: Callable[[str], None],
               device: str = "cpu") -> dict[str, Any]:
    """Load the trained weights of preset `recipe.init_from` into `model` (training it first into
    out/init/PRESET where it is not there to the same recipe); what the card records of it."""
    parent = get_preset(recipe.init_from)
    different = [k for k in ARCHITECTURE if getattr(parent, k) != getattr(recipe, k) and k != "n_layers"]
    if different or parent.n_layers > recipe.n_layers:
        raise UserError(f"cannot continue from preset {recipe.init_from!r}: its {', '.join(different or ['n_layers'])} "
                        f"differ{'' if different else ' (a model can grow, not shrink)'}")
    if recipe.grow_init not in ("copy", "random"):
        raise UserError(f"unknown grow_init {recipe.grow_init!r}: use copy or random")
    if not 0 <= recipe.grow_at <= parent.n_layers:
        raise UserError(f"grow_at must name one of preset {recipe.init_from!r}'s {parent.n_layers} layers or its top; "
                        f"got {recipe.grow_at}")
    folder = Path(out) / "init" / recipe.init_from
    if _trained_to(folder, parent):
        log(f"continuing from {folder} (already trained to preset {recipe.init_from!r})")
    else:  # an earlier stage interrupted after a checkpoint goes on from it, not from scratch
        train(parent, folder, progress=progress, log=log, preset=recipe.init_from, device=device,
              resume=_latest_state(folder, parent) is not None)
    if parent.n_layers == recipe.n_layers:
        _load_weights(model, folder)
    else:
        _grow(model, folder, parent.n_layers, recipe.grow_at, recipe.grow_init)
        log(f"grown from {parent.n_layers} to {recipe.n_layers} layers: new at layer {recipe.grow_at} "
            f"({recipe.grow_init} inside, adding nothing until trained)")
    return _init_record(recipe.init_from, folder)


_LAYERS = {"llama": ("model.layers.", ("self_attn.o_proj.", "mlp.down_proj.")),
           "gpt2": ("transformer.h.", ("attn.c_proj.", "mlp.c_proj."))}


def _grow(model, folder: Path, parent_layers: int, grow_at: int, init: str = "copy") -> None:
    """`folder`'s weights into `model`, which has more layers: the saved layers in order, the new
    ones inserted before saved layer `grow_at`, copies of it (`init="copy"`; of the top layer
    when inserted at the top) or as initialized ("random"), with zero output projections: the
    identity, as every block adds its outputs to the residual stream."""
    import torch
    from safetensors.torch import load_file

    arch = "gpt2" if model.config.model_type == "gpt2" else "llama"
    prefix, outputs = _LAYERS[arch]
    added = model.config.num_hidden_layers - parent_layers
    state = model.state_dict()
    saved = load_file(Path(folder) / "model.safetensors")
    source = f"{prefix}{min(grow_at, parent_layers - 1)}."
    for key, value in saved.items():
        targets = []
        if key.startswith(prefix):
            index, rest = key[len(prefix):].split(".", 1)
            targets.append(f"{prefix}{int(index) + (added if int(index) >= grow_at else 0)}.{rest}")
            if init == "copy" and key.startswith(source):
                targets += [f"{prefix}{layer}.{rest}" for layer in range(grow_at, grow_at + added)]
        else:
            targets.append(key)
        for target in targets:
            if target not in state or state[target].shape != value.shape:
                raise UserError(f"cannot grow from {folder}: its weight {key} does not fit the new model")
            state[target] = value.clone()
    for layer in range(grow_at, grow_at + added):
        for key in state:
            if key.startswith(f"{prefix}{layer}.") and key[len(f"{prefix}{layer}."):].startswith(outputs):
                state[key] = torch.zeros_like(state[key])
    model.load_state_dict(state, strict=True)
    model.tie_weights()


def _load_weights(model, folder: Path) -> None:
    """The weights saved in `folder` into `model` (a head saved tied is the embedding)."""
    from safetensors.torch import load_file

    saved = load_file(Path(folder) / "model.safetensors")
    missing, unexpected = model.load_state_dict(saved, strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:  # only a tied head may be absent
        raise UserError(f"the weights in {folder} do not fit this recipe's model: "
                        f"{len(missing)} missing, {len(unexpected)} unexpected (e.g. {(unexpected or missing)[0]})")
    if "lm_head.weight" not in saved:
        model.tie_weights()


def _trained_to(folder: Path, recipe: Recipe) -> bool:
    """Whether `folder` holds a finished model whose card records exactly `recipe`."""
    card = Path(folder) / "zoo.json"
    return card.is_file() and recipe_from_dict(json.loads(card.read_text()).get("recipe", {})) == recipe


def _init_record(preset: str, folder: Path) -> dict[str, Any]:
    """What a card records of the model it continued from: `preset`, trained into `folder`."""
    card = json.loads((folder / "zoo.json").read_text())
    return {"preset": preset, "fingerprint": card["fingerprint"], "base_accuracy": card["base_accuracy"]}


def base_accuracy(handle, tasks, n: int = 200, seed: int = 0) -> dict[str, dict[str, float]]:
    result = {}
    for name, family in resolve_families(tasks).items():
        result[name] = {}
        for cell in family.base_cells:
            items = family.generate(cell.name, n, seed=seed)
            outcomes = evaluate(handle, items, families={name: family})
            result[name][cell.name] = sum(o.correct for o in outcomes) / len(outcomes)
    return result


def _save(model, tokenizer, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def build_zoo(out: Path, names: tuple[str, ...] = ZOO, progress: bool = True, log: Callable[[str], None] = print) -> list[Path]:
    """Train every preset of the zoo into out/NAME, skipping members already trained to the same recipe."""
    built = []
    for name in names:
        recipe = get_preset(name)
        folder = Path(out) / name
        if _trained_to(folder, recipe):
            log(f"{folder}: already trained to this recipe, kept")
        else:
            train(recipe, folder, progress=progress, log=log, preset=name)
        built.append(folder)
    return built
