"""One prompt-only forward pass per item, read from the model as loaded.

Sites (the one place they are named; shapes per item batch):
  hidden         (item, layer + 1, d_model)  residual stream at the last prompt token,
                                              embeddings first, then after every block
  top_ids        (item, k)                   next-token ids, most probable first
  top_probs      (item, k)                   their probabilities
  entropy        (item,)                     entropy (nats) of the next-token distribution
  prompt_tokens  (item,)                     prompt length in tokens
  lens_top_ids   (item, layer + 1)           logit lens: top next-token id read from each layer's state
                                              through the model's own final norm and unembedding
  lens_final_prob (item, layer + 1)          logit lens: probability each layer gives the final top token
  attn_entropy   (item, layer, head)         entropy of the last token's attention over the prompt
  attn_prev      (item, layer, head)         its weight on the previous token
  attn_first     (item, layer, head)         its weight on the first token (the attention sink)
  attn_induction (item, layer, head)         its weight on tokens that followed earlier copies of
                                              the last token (the induction pattern; 0 when none)
The attention sites are filled only when asked for (`attention=True`). Fused kernels return no
weights, so that pass runs attention through transformers' `AttentionInterface` (`_probe_attention`):
the model's own SDPA function computes the layer's output, unchanged, and the last query's weights
are read from the query and key tensors the layer computed, with its mask, scaling and position
bias. A model whose attention does not go through the interface falls back to eager attention, one
item at a time (eager attention's batched products are not batch-invariant).

Every item's trace is bit-for-bit the same whatever the batch size, the other items, or whether it
came from the cache: items are batched only with items of exactly the same token length (no
padding), and the pass uses every core only where a row's result depends neither on the batch's
shape nor on the thread count (`bench.process.invariant_threads`), else one thread. The attention
read is row by row, so independent of the batch too. The logit lens is pooled across a call's
batches in products of at least MIN_ROWS rows where those keep their rows (`PooledLens`), else it
goes one item at a time (`_logit_lens`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
import zipfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from predictors.trace import Trace
from tasks import Item, SealedItem

from .continuation import BUDGET_CAP, Continuations
from .evaluate import MARGIN, _available_ram, exact_length_batches, progress_bar
from .load import MIN_ROWS, ModelHandle, eager_attention, rows_are_batch_invariant
from .prefix import Prefixes, cache_argument, last_logits_only
from ..process import invariant_threads, torch_threads

TOP_K = 8
ATTENTION_SITES = ("attn_entropy", "attn_prev", "attn_first", "attn_induction")


PROBE = "brittlebench_probe"
_probe_rows: list | None = None  # while a probed pass runs: per layer, (item, head, key) weights


def _probe_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """The model's SDPA attention, plus the last query's weights for the trace (see the module docstring)."""
    import torch
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    queries, keys_in = query.shape[2], key.shape[2]
    if attention_mask is None and 1 < queries < keys_in:
        # After a cached prefix, a causal mask left out must align at the bottom right (each query
        # sees the prefix and its own past); SDPA's is_causal would align it at the top left.
        attention_mask = torch.ones(queries, keys_in, dtype=torch.bool, device=query.device).tril(keys_in - queries)[None, None]
    out = sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    if _probe_rows is not None:
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        keys = repeat_kv(key, query.shape[1] // key.shape[1])
        scores = (query[:, :, -1:, :].float() * keys.float()).sum(-1) * scale  # (item, head, key)
        bias = kwargs.get("position_bias")
        if bias is not None:
            scores = scores + bias[..., -1, : scores.shape[-1]].float()
        if attention_mask is not None:
            row = attention_mask[:, :, -1, : scores.shape[-1]]
            scores = scores.masked_fill(~row, float("-inf")) if row.dtype == torch.bool else scores + row.float()
        _probe_rows.append(torch.softmax(scores, dim=-1))
    return out


@contextlib.contextmanager
def _probed_attention(model):
    """Route the model's attention through `_probe_attention` and collect its rows; yields False
    (and changes nothing) where the model does not take an attention function by name."""
    global _probe_rows
    from transformers import AttentionInterface

    AttentionInterface.register(PROBE, _probe_attention)
    before = model.config._attn_implementation
    try:
        model.set_attn_implementation(PROBE)
    except (ValueError, NotImplementedError, KeyError, TypeError):
        yield False
        return
    try:
        yield True
    finally:
        _probe_rows = None
        model.set_attn_implementation(before)


def _attention_summaries(attentions, input_ids):
    """Per layer and head, what the last prompt token attends to. `attentions`: per layer the
    last query's weights, (item, head, key), over unpadded prompts. Shapes out: (item, layer, head)."""
    import torch

    # Induction targets: position j+1 where token j equals the last token (j + 1 before the last position).
    induction = torch.zeros_like(input_ids, dtype=torch.bool)
    induction[:, 1:-1] = input_ids[:, :-2] == input_ids[:, -1:]
    out = {k: [] for k in ATTENTION_SITES}
    for layer in attentions:  # (item, head, key)
        p = layer.float()
        logp = torch.where(p > 0, p.clamp_min(1e-30).log(), torch.zeros_like(p))
        out["attn_entropy"].append(-(p * logp).sum(-1))
        out["attn_prev"].append(p[:, :, -2] if p.shape[-1] > 1 else torch.zeros_like(p[:, :, 0]))
        out["attn_first"].append(p[:, :, 0])
        out["attn_induction"].append((p * induction[:, None, :]).sum(-1))
    return [torch.stack(out[k], dim=1) for k in ATTENTION_SITES]


def final_norm(model):
    """The module that normalizes the last residual state before the unembedding, if found."""
    base = model.base_model
    for owner in (base, getattr(base, "decoder", None)):
        for name in ("ln_f", "norm", "final_layer_norm"):
            module = getattr(owner, name, None) if owner is not None else None
            if module is not None:
                return module
    return None


def has_lens(model) -> bool:
    """Whether the logit lens can be read: the model has a final norm and an output embedding."""
    return final_norm(model) is not None and model.get_output_embeddings() is not None


def last_states(hidden_states, where):
    """Every layer's state at the last position, on `where`: (item, layer + 1, d_model)."""
    import torch

    return torch.stack([h[:, -1, :].to(where) for h in hidden_states], dim=1)


def _logit_lens(model, hidden_states, final_top):
    """Top id and the final top token's probability at each layer, item by item: (item, layer + 1).
    Where `lens_batched` is false (the trace otherwise pools the lens: `PooledLens`)."""
    import torch

    norm, head = final_norm(model), model.get_output_embeddings()
    where = head.weight.device  # under a device map the layers' states sit on several devices
    states = last_states(hidden_states, where)
    # The last entry is already normalized (HF convention); the others go through the final norm.
    states = torch.cat([norm(states[:, :-1]), states[:, -1:]], dim=1)
    # Item by item: every product then has the same (layer + 1, d_model) shape whatever the batch,
    # and so the same summation order (BLAS picks kernels by shape).
    probs = torch.softmax(torch.stack([head(row) for row in states]).float(), dim=-1)  # (item, layer + 1, vocab)
    final_top = final_top.to(where)
    return probs.argmax(-1), probs.gather(-1, final_top[:, None, None].expand(-1, probs.shape[1], 1)).squeeze(-1)


#: The most logits the pooled lens holds at once (rows x vocab x 4 bytes): 256 rows of a 256k vocabulary.
LENS_CHUNK_BYTES = 256 * 2**20

_LENS_CHECKED: dict[int, bool] = {}  # torch's thread count -> whether the pooled lens keeps rows


def exp_sums_keep_rows() -> bool:
    """Whether, with torch's current thread count, a row's in-place exp and its sum (what the pooled
    lens reduces a row of logits with, `lens_reduce`) do not depend on the other rows, on where the row
    sits, nor on the thread count (torch's exp kernel is elementwise, its sum splits over rows)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(11, 4099, generator=generator) * 4  # more than a thread's grain; an odd width

    def exp_sum(rows):
        return rows.clone().exp_().sum(-1)

    whole = exp_sum(x)
    alone = torch.cat([exp_sum(x[i:i + k]) for i, k in ((0, 4), (4, 5), (9, 2))])
    short = torch.equal(torch.exp(x[3:10, 5:8]), torch.exp(x[:, :9])[3:10, 5:8])  # small tensors, odd offsets
    with torch_threads(1):
        single = exp_sum(x)
    return bool(torch.equal(whole, alone) and torch.equal(whole, single) and short)


def lens_batched(head) -> bool:
    """Whether the trace pools the logit lens (`PooledLens`, else `_logit_lens`): where the output embedding
    is a float32 matrix on a CPU whose batched products (`bench.model.load.rows_are_batch_invariant`, MKL's
    strict mode) and exp and sum (`exp_sums_keep_rows`) keep their rows; checked once per thread count."""
    import torch

    weight = getattr(head, "weight", None)
    if weight is None or weight.device.type != "cpu" or weight.dtype != torch.float32:
        return False
    threads = torch.get_num_threads()
    if threads not in _LENS_CHECKED:
        _LENS_CHECKED[threads] = rows_are_batch_invariant() and exp_sums_keep_rows()
    return _LENS_CHECKED[threads]


def padded(rows):
    """`rows` with zero rows appended up to MIN_ROWS, contiguous."""
    import torch

    n = rows.shape[0]
    if n < MIN_ROWS:
        rows = torch.cat([rows, rows.new_zeros((MIN_ROWS - n, *rows.shape[1:]))])
    return rows.contiguous()


def unembed_rows(head, rows):
    """`head` on the rows (n, d_model) as one product of at least MIN_ROWS rows (`padded`): each row's logits
    are those of the same row in any other such product. Its first n rows are the rows' logits."""
    return head(padded(rows))


def lens_reduce(logits, final_top):
    """Per row of `logits` (rows, vocab), float32, at least MIN_ROWS rows, overwritten: the top
    id (the argmax of the logits) and the probability of the token `final_top` (rows,), as
    exp(logit[final_top] - max) / sum(exp(logits - max)): no softmax over the vocabulary is kept."""
    best = logits.argmax(-1, keepdim=True)
    peak = logits.gather(-1, best)
    target = logits.gather(-1, final_top[:, None])
    total = logits.sub_(peak).exp_().sum(-1, keepdim=True)
    return best[:, 0], ((target - peak).exp_() / total)[:, 0]


class PooledLens:
    """The logit lens of one `trace` call where `lens_batched`: each batch's layer states (through the
    final norm, the last one as it is: HF's last hidden state is already normalized) wait here, and
    go through the unembedding pooled across batches (`unembed_rows`, `lens_reduce`: a row's result
    depends on nothing else in its product), in products of up to LENS_CHUNK_BYTES of logits: the
    (vocab x d_model) matrix is streamed from memory once per chunk instead of once per item.

    The last layer's entry is the pass's own final logits (caught by `last_position_only`) wherever the
    output embedding's input there is, bit for bit, the state the lens would unembed."""

    reuse_final = True

    def __init__(self, model, n_items: int):
        self.norm, self.head = final_norm(model), model.get_output_embeddings()
        self.where = self.head.weight.device
        self.chunk = max(MIN_ROWS, LENS_CHUNK_BYTES // (4 * self.head.weight.shape[0]))
        self.n_items = n_items
        self.top = self.prob = None  # (item, layer + 1), numpy, allocated on the first batch
        self.pending: list[tuple] = []  # (states (r, d_model), item (r,), layer (r,), final top id (r,))
        self.waiting = 0

    def add(self, positions: list[int], hidden_states, final_top, final=None) -> None:
        """A batch: the trace's rows `positions`, the pass's hidden states, each item's final top id,
        and the output embedding's (input, output) rows at the last position, or None."""
        import torch

        states = last_states(hidden_states, self.where)
        items, layers, width = states.shape
        if self.top is None:
            self.top = np.zeros((self.n_items, layers), dtype=np.int64)
            self.prob = np.zeros((self.n_items, layers), dtype=np.float32)
        final_top = final_top.to(self.where)
        last = states[:, -1]
        reuse = (self.reuse_final and final is not None and final[0].shape == last.shape
                 and torch.equal(final[0].to(self.where), last))
        lensed = self.norm(states[:, :-1])
        if reuse:
            top, prob = lens_reduce(padded(final[1].to(self.where).float()).clone(), padded(final_top))
            self.top[positions, -1] = top[:items].cpu().numpy()
            self.prob[positions, -1] = prob[:items].cpu().numpy()
        else:
            lensed = torch.cat([lensed, last[:, None]], dim=1)
        rows = lensed.shape[1]
        self.pending.append((lensed.reshape(-1, width), torch.tensor(positions).repeat_interleave(rows),
                             torch.arange(rows).repeat(items), final_top.repeat_interleave(rows)))
        self.waiting += items * rows
        if self.waiting >= self.chunk:
            self._flush()

    def _flush(self) -> None:
        import torch

        if not self.pending:
            return
        states, item, layer, final_top = (torch.cat(parts) for parts in zip(*self.pending))
        self.pending, self.waiting = [], 0
        for start in range(0, len(states), self.chunk):
            piece = slice(start, start + self.chunk)
            n = len(states[piece])
            top, prob = lens_reduce(unembed_rows(self.head, states[piece]).float(), padded(final_top[piece]))
            self.top[item[piece].numpy(), layer[piece].numpy()] = top[:n].cpu().numpy()
            self.prob[item[piece].numpy(), layer[piece].numpy()] = prob[:n].cpu().numpy()

    def sites(self) -> dict[str, np.ndarray]:
        self._flush()
        return {} if self.top is None else {"lens_top_ids": self.top, "lens_final_prob": self.prob}


@contextlib.contextmanager
def last_position_only(model, caught: list | None = None):
    """Unembed the last position only: yields `last_logits_only(model)` and, while open, hands the
    output embedding a contiguous copy of its input of at least MIN_ROWS rows (`padded`, the extra
    logits dropped): a product on the model's strided (item, 1, d_model) view of its last hidden
    state, or on fewer rows, is not the full pass's last row bit for bit, nor the same at every batch
    size. The model's own head code runs (its final norm, logit scaling or soft-capping). With
    `caught`, each call of the output embedding appends its input and output rows, (item, d_model)
    and (item, vocab), before any scaling or soft-capping after it (what the logit lens reuses)."""
    head = model.get_output_embeddings()
    if head is None or not last_logits_only(model):
        yield {}
        return
    rows: list[int] = []

    def copy_in(module, args):
        if not args:
            return None
        rows.append(args[0].shape[0])
        return (padded(args[0]), *args[1:])

    def cut_out(module, args, output):
        if not rows:
            return output
        n = rows.pop()
        if caught is not None:
            caught.append((args[0][:n, -1], output[:n, -1]))
        return output[:n]

    hooks = [head.register_forward_pre_hook(copy_in), head.register_forward_hook(cut_out)]
    try:
        yield {"logits_to_keep": 1}
    finally:
        for hook in hooks:
            hook.remove()


def _forward_batch(handle: ModelHandle, attention: str | None, prefixes: Prefixes, prefix: str, rows: list[int],
                   keep: Continuations | None = None, item_ids: list[str] | None = None,
                   lens: PooledLens | None = None) -> dict[str, np.ndarray]:
    """One pass over the prompts `rows` of `prefixes`, all of one length (no padding), continuing
    from `prefix`'s cache where there is one: only their own tokens are run. `attention` is None,
    "probe" (rows collected by `_probe_attention`) or "eager". With `keep`, the keys and values of
    the rows `item_ids` it wants are kept for evaluation (`bench.model.continuation`). With `lens`,
    the logit lens waits there (`PooledLens`); else it is computed here, item by item."""
    global _probe_rows
    import torch

    cache = prefixes.cache(prefix, len(rows)) if prefix else None  # before the probe listens
    caught: list = []  # the output embedding's input and output rows at the last position
    _probe_rows = [] if attention == "probe" else None
    start = prefixes.length(prefix)
    own = torch.tensor([prefixes.ids[i][start:] for i in rows], device=handle.device)
    input_ids = torch.tensor([prefixes.ids[i] for i in rows], device=handle.device)  # the whole prompts
    mask = torch.ones_like(input_ids)
    position_ids = torch.arange(start, input_ids.shape[1], device=handle.device).expand(len(rows), -1)
    past = cache_argument(handle.model, cache) if prefix else dict(use_cache=keep is not None)
    with last_position_only(handle.model, caught) as last:
        out = handle.model(input_ids=own, attention_mask=mask, position_ids=position_ids, output_hidden_states=True,
                           output_attentions=attention == "eager", **past, **last)
    if keep is not None:
        keep.keep(prefix, item_ids, getattr(out, "cache", None) or out.past_key_values, start, own.shape[1],
                  out.logits[:, -1, :])
    probed, _probe_rows = _probe_rows, None
    hidden = last_states(out.hidden_states, handle.device).float()
    logprobs = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)  # (item, vocab)
    probs = logprobs.exp()
    top_probs, top_ids = probs.topk(min(TOP_K, probs.shape[-1]), dim=-1)
    sites = {"hidden": hidden, "top_ids": top_ids, "top_probs": top_probs,
             "entropy": -(probs * logprobs).sum(-1), "prompt_tokens": mask.sum(-1)}
    if lens is not None:
        lens.add(rows, out.hidden_states, top_ids[:, 0], caught[-1] if len(caught) == 1 else None)
    elif has_lens(handle.model):
        sites["lens_top_ids"], sites["lens_final_prob"] = _logit_lens(handle.model, out.hidden_states, top_ids[:, 0])
    if attention == "eager":
        probed = [layer[:, :, -1, :] for layer in out.attentions]
    if attention:
        if len(probed) != len(out.hidden_states) - 1:
            raise RuntimeError(f"read attention from {len(probed)} of {len(out.hidden_states) - 1} layers")
        sites.update(zip(ATTENTION_SITES, _attention_summaries(probed, input_ids)))
    return {k: v.cpu().numpy() for k, v in sites.items()}


def trace(handle: ModelHandle, items: Sequence[SealedItem], batch_size: int = 64, attention: bool = False,
          progress: bool = False, keep: Continuations | None = None
          ) -> Trace:
    """Trace `items` in batches of equal length; rows come back in the order given. Prompts that
    share a prefix (a family's fixed examples) continue from its cache (`bench.model.prefix`).
    `keep` keeps the prompt pass of the items it wants, for evaluation after sealing."""
    import torch

    prompts = [item.prompt for item in items]
    if not items:
        return _empty_trace()
    sites: dict[str, np.ndarray] = {}  # filled in place: no per-item rows, no copy when stacking
    with contextlib.ExitStack() as stack:
        prefixes = Prefixes(handle, prompts)
        mode = None
        if attention:
            mode = "probe" if stack.enter_context(_probed_attention(handle.model)) else "eager"
        if mode == "eager":  # attention weights come from full passes only
            stack.enter_context(eager_attention(handle.model))
            prefixes.prefix = [""] * len(prompts)
        work = []  # (prefix, item indices of one pass)
        for prefix, members in prefixes.groups().items():
            lengths = [len(prefixes.ids[i]) - prefixes.length(prefix) for i in members]
            work += [(prefix, [members[k] for k in batch])
                     for batch in exact_length_batches(lengths, 1 if mode == "eager" else batch_size)]
        stack.enter_context(torch.inference_mode())
        stack.enter_context(invariant_threads(handle.model))
        bar = stack.enter_context(progress_bar(len(items), "trace" if progress else None))
        pooled = has_lens(handle.model) and lens_batched(handle.model.get_output_embeddings())
        lens = PooledLens(handle.model, len(items)) if pooled else None
        for prefix, batch in work:
            bar.update(len(batch))
            wanted = keep if keep is not None and keep.wanted else None
            arrays = _forward_batch(handle, mode, prefixes, prefix, batch, wanted, [items[i].id for i in batch], lens)
            for name, array in arrays.items():
                if name not in sites:
                    dtype = np.float32 if array.dtype.kind == "f" else array.dtype
                    sites[name] = np.empty((len(items),) + array.shape[1:], dtype=dtype)
                sites[name][batch] = array
        if lens is not None:
            sites.update(lens.sites())
        prefixes.forget()
    return Trace(tuple(item.id for item in items), **sites)


def _empty_trace() -> Trace:
    return Trace((), *(np.zeros((0,)) for _ in range(5)))


def site_shapes(handle: ModelHandle, attention: bool) -> dict[str, tuple[int, ...]]:
    """The sites `trace` fills for this model and each one's shape after the item axis (the table
    at the top), read from the card: what a cached trace of this model must hold."""
    card, model = handle.card, handle.model
    top = (min(TOP_K, card.vocab_size),)
    shapes = {"hidden": (card.n_layers + 1, card.d_model), "top_ids": top, "top_probs": top, "entropy": (),
              "prompt_tokens": ()}
    if has_lens(model):
        shapes.update(lens_top_ids=(card.n_layers + 1,), lens_final_prob=(card.n_layers + 1,))
    if attention:
        shapes.update({name: (card.n_layers, card.n_heads) for name in ATTENTION_SITES})
    return shapes


def cache_key(item: SealedItem) -> str:
    """An item's trace depends on its prompt (k-shot rendering changes it), not only its id."""
    return hashlib.sha256(f"{item.id}\x00{item.prompt}".encode()).hexdigest()[:24]


def default_cache_dir() -> Path:
    return Path(os.environ.get("BRITTLEBENCH_CACHE", Path.home() / ".cache" / "brittlebench")) / "traces"


# What reading a file that is not a whole cache file of ours raises (numpy, zipfile, our own checks).
UNREADABLE = (OSError, EOFError, ValueError, KeyError, TypeError, MemoryError, zipfile.BadZipFile)


class TraceCache:
    """Traces on disk under `root/<name>/` (`ModelHandle.cache_name`: the model's fingerprint and the
    numerics it runs under), one .npz per traced batch of items.

    Keys are `cache_key(item)`; a file holds its keys, the name of the cache it belongs to and every
    site it computed, and is named by its keys' digest, so a lookup reads only the files that hold
    the asked-for items. Files are written whole (a temporary file renamed into place). A file that
    cannot be read as one of this cache's (truncated, not an archive, keys other than its name says,
    another model's or numerics', a site missing or of the wrong shape) is a miss: it is removed, its
    items are traced again and stored anew, and one line (`log`, else stderr) names the files."""

    def __init__(self, root: Path, name: str, log: Callable[[str], None] | None = None):
        self.folder = Path(root) / name
        self.name = name
        self._index: dict[str, tuple[Path, int]] | None = None
        self._log = log
        self.hits = 0
        self.dropped: list[str] = []  # the unreadable files removed, each with why
        self._reported = 0

    @staticmethod
    def file_name(keys: Sequence[str]) -> str:
        return hashlib.sha256("".join(keys).encode()).hexdigest()[:16] + ".npz"

    def _load_index(self) -> dict[str, tuple[Path, int]]:
        if self._index is None:
            self._index = {}
            for path in sorted(self.folder.glob("*.npz")):
                try:
                    with open(path, "rb") as f:
                        if f.read(4) != b"PK\x03\x04":  # what np.savez writes first
                            raise ValueError("not an archive")
                    with np.load(path) as data:
                        keys, owner = data["keys"], str(data["cache"])
                    if keys.ndim != 1 or keys.dtype.kind != "U" or self.file_name(keys.tolist()) != path.name:
                        raise ValueError("its keys are not those its name says")
                    if owner != self.name:
                        raise ValueError(f"written for {owner}")
                except UNREADABLE as e:
                    self._drop(path, e)
                    continue
                for row, key in enumerate(keys.tolist()):
                    self._index[key] = (path, row)
        return self._index

    def _drop(self, path: Path, error: BaseException) -> None:
        """Forget an unreadable file and remove it (a concurrent writer's replacement of it is lost too:
        a miss next time, nothing worse)."""
        reason = str(error).strip().splitlines()[0][:80] if str(error).strip() else type(error).__name__
        self.dropped.append(f"{path.name} ({reason})")
        path.unlink(missing_ok=True)
        if self._index is not None:
            for key in [k for k, (p, _) in self._index.items() if p == path]:
                del self._index[key]

    def _report(self) -> None:
        new = self.dropped[self._reported:]
        if new:
            self._reported = len(self.dropped)
            named = ", ".join(new[:4]) + (f" and {len(new) - 4} more" if len(new) > 4 else "")
            message = (f"trace cache {self.folder}: {len(new)} unreadable {'entry' if len(new) == 1 else 'entries'} "
                       f"removed; their items are traced again and stored anew: {named}")
            if self._log is not None:
                self._log(message)
            else:
                print(message, file=sys.stderr, flush=True)

    @staticmethod
    def _read(path: Path, rows: list[int], shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray] | None:
        """The `shapes` sites of `rows`; None where the file lacks only attention sites (a trace
        made without them: not wrong, just not enough)."""
        with np.load(path) as data:
            n = len(data["keys"])
            lacking = set(shapes) - set(data.files)
            if lacking and lacking <= set(ATTENTION_SITES):
                return None
            if lacking:
                raise ValueError(f"it has no {sorted(lacking)[0]}")
            sites = {}
            for name, shape in shapes.items():
                array = data[name]
                if array.shape != (n, *shape) or array.dtype.kind not in "biuf":
                    raise ValueError(f"its {name} is {array.dtype}{list(array.shape)}, not {[n, *shape]}")
                sites[name] = array[rows]
        return sites

    def get(self, items: Sequence[SealedItem], shapes: dict[str, tuple[int, ...]]
            ) -> tuple[Trace | None, list[SealedItem]]:
        """The cached rows for `items` (in their order) and the items still to trace; `shapes` are
        the sites wanted and their shapes (`site_shapes`)."""
        index = self._load_index()
        found: dict[Path, list[tuple[int, SealedItem]]] = {}
        missing = []
        for item in items:
            hit = index.get(cache_key(item))
            if hit is None:
                missing.append(item)
            else:
                found.setdefault(hit[0], []).append((hit[1], item))
        parts = []
        for path, entries in found.items():
            try:
                sites = self._read(path, [r for r, _ in entries], shapes)
            except UNREADABLE as e:
                self._drop(path, e)
                sites = None
            if sites is None:
                missing += [item for _, item in entries]
            else:
                parts.append(Trace(tuple(item.id for _, item in entries), **sites))
        self._report()
        self.hits += len(items) - len(missing)
        if not parts:
            return None, missing
        lost = {item.id for item in missing}
        return Trace.concat(parts, [item.id for item in items if item.id not in lost]), missing

    def put(self, items: Sequence[SealedItem], traced: Trace) -> None:
        from .. import io

        if not items:
            return
        keys = [cache_key(item) for item in items]
        buffer = __import__("io").BytesIO()
        np.savez(buffer, keys=np.array(keys), cache=np.array(self.name),
                 **{n: getattr(traced, n) for n in traced.site_names()})
        path = self.folder / self.file_name(keys)
        io.write_bytes(path, buffer.getvalue())  # a temporary file in the folder, renamed into place
        index = self._load_index()
        for row, key in enumerate(keys):
            index[key] = (path, row)


class TracedModel:
    """What predictors are handed: the architecture card and prompt-only traces,
    computed once per item (and cached on disk by model fingerprint and numerics) and shared by
    every predictor. It holds no targets and no run folder."""

    def __init__(self, handle: ModelHandle, batch_size: int = 64, attention: bool = False,
                 cache: TraceCache | None = None):
        self._handle = handle
        self._batch_size = batch_size
        self.attention = attention  # whether the attention sites are traced
        self.cache = cache
        self._parts: list[Trace] = []
        self._where: dict[str, int] = {}
        self._pieces: dict[int, str] = {}  # token id -> its text, decoded once
        self.seconds = 0.0
        self.traced = 0  # items that needed a forward pass (not in memory or on disk)
        self.continuations: Continuations | None = None

    @property
    def card(self):
        return self._handle.card

    @property
    def fingerprint(self) -> str:
        return self._handle.fingerprint

    def tokenizer_json(self) -> str:
        """The tokenizer as `tokenizers` JSON: what the predictor worker rebuilds it from. Without the
        padding and truncation the runner's last batched call left set on it: the same tokenizer
        whatever ran before (a prediction cache key reads it)."""
        data = json.loads(self._handle.tokenizer.backend_tokenizer.to_str())
        data["padding"] = data["truncation"] = None
        return json.dumps(data)

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """Each text cut into the model's tokens (no special tokens), as the text each covers."""
        out = []
        for ids in self._handle.token_ids(texts, special=False):
            for i in ids:
                if i not in self._pieces:
                    self._pieces[i] = self._handle.tokenizer.decode([i])
            out.append([self._pieces[i] for i in ids])
        return out

    def region_access(self, items: Sequence[SealedItem], region: str):
        """Mechanistic access (`bench.model.mechanistic.RegionAccess`) to `items` only: the runner's,
        serving the predictor worker's requests (the worker never holds the model)."""
        from .mechanistic import RegionAccess

        return RegionAccess(self._handle, items, region)

    def keep_continuations(self, item_ids: Sequence[str], budget: int | None = None) -> Continuations:
        """From now on, the prompt passes of these items also keep what their evaluation needs
        (`bench.model.continuation`): the runner's, never a predictor's."""
        if budget is None:
            budget = min(BUDGET_CAP, _available_ram() // 4)
        self.continuations = Continuations(item_ids, budget, MARGIN)
        return self.continuations

    def forget(self) -> None:
        """Drop the traces held in memory (the disk cache keeps them); the next `trace` re-reads."""
        self._parts, self._where = [], {}

    def _remember(self, part: Trace) -> None:
        self._parts.append(part)
        for item_id in part.item_ids:
            self._where[item_id] = len(self._parts) - 1

    def trace(self, items: Sequence[SealedItem]) -> Trace:
        unique = {item.id: item for item in items}.values()
        missing = [item.sealed() if isinstance(item, Item) else item for item in unique if item.id not in self._where]
        if missing:
            started = time.perf_counter()
            if self.cache is not None:
                cached, missing = self.cache.get(missing, site_shapes(self._handle, self.attention))
                if cached is not None:
                    self._remember(cached)
            if missing:
                new = trace(self._handle, missing, self._batch_size, attention=self.attention, progress=True,
                            keep=self.continuations)
                self.traced += len(missing)
                if self.cache is not None:
                    self.cache.put(missing, new)
                self._remember(new)
            self.seconds += time.perf_counter() - started
        order = [item.id for item in items]
        used = sorted({self._where[i] for i in order})
        return Trace.concat([self._parts[k] for k in used], order) if order else _empty_trace()
