"""Mechanistic access to the base region: what interpretability work reads and does, computed by the
runner on the model as loaded (forward hooks on the unmodified module tree, as nnsight reads it),
for the run's base items only.

Sites (named as TransformerLens names its hook points; shapes per item, `pos` the prompt's tokens):
  resid_post.L    (pos, d_model)          residual stream after block L
  pattern.L       (head, pos, pos)        attention weights, query by key (eager attention)
  z.L             (pos, head, d_head)     each head's output before the output projection
A read may name token positions (`positions=[-1]`: the last): `pos` is then those rows (of
pattern, those queries). On a deep, wide model that is what keeps a read small.
Interventions, each returning the next-token distribution at the last prompt position:
  ablate(item, {L: [h, ...]}, how, mlps)  heads' z (and whole MLPs' outputs) zeroed or set to their
                                          mean over MEAN_OVER region items
  patch(source, target, L, positions)     target's resid_post.L at `positions` taken from source's
Weights (no forward pass):
  composition(kind)                       (layer, head, layer, head) Q-, K- or V-composition scores
                                          (Elhage et al. 2021) between every earlier head's OV and
                                          every later head's QK or OV circuit

Every request names items; an item that is not one of the run's base items (by id and prompt) is
refused with one line: a blind predictor that could run any text could run the variants. A read
passes prompts of one token length together (no padding; under the trace's thread policy a row of
the batch equals the item read alone), so a result never depends on what else was asked for;
interventions go one item at a time.
"""
from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..process import invariant_threads
from .load import ModelHandle, eager_attention
from .prefix import last_logits_only

SITES = ("resid_post", "pattern", "z")
MEAN_OVER = 16  # a mean ablation's mean: over the region's first items by id (a fixed sample)


@dataclass(frozen=True)
class Asked:
    """An item as a request names it: its id and its prompt (both checked against the region)."""

    id: str
    prompt: str


@dataclass(frozen=True)
class Layout:
    """Where a model keeps its blocks and each block's attention projections."""

    blocks: Any  # the ModuleList of blocks
    out_proj: str  # the attention's output projection, inside block.attn (its input is z)
    attn: str  # the attribute of a block holding its attention module
    n_heads: int
    n_kv_heads: int
    d_head: int


def layout(model: Any) -> Layout:
    config = getattr(model.config, "text_config", None) or model.config
    n_heads = int(getattr(config, "num_attention_heads", None) or config.n_head)
    d_model = int(getattr(config, "hidden_size", None) or config.n_embd)
    d_head = int(getattr(config, "head_dim", None) or d_model // n_heads)
    n_kv = int(getattr(config, "num_key_value_heads", None) or n_heads)
    base = model.base_model
    if hasattr(base, "layers"):  # Llama, Mistral, Qwen, Gemma...
        return Layout(base.layers, "o_proj", "self_attn", n_heads, n_kv, d_head)
    if hasattr(base, "h"):  # GPT-2
        return Layout(base.h, "c_proj", "attn", n_heads, n_kv, d_head)
    raise NotImplementedError(f"mechanistic access does not know the layout of {type(model).__name__}")


class RegionAccess:
    """The means of interpretability work on the `allowed` items of `handle`'s model (the blind track:
    the base region; the trace track: every item of the run), refused elsewhere. Reads are kept in
    memory, bounded (`CACHE_BYTES`), keyed by item and request: the model and its numerics are this
    object's."""

    CACHE_BYTES = 256 * 2**20
    READ_BATCH = 32  # prompts of one length read in one pass

    def __init__(self, handle: ModelHandle, allowed: Sequence[Any], region: str = "base"):
        self.handle = handle
        self.region = region
        self.allowed = {item.id: item.prompt for item in allowed}
        self.layout = layout(handle.model)
        self.log: list[dict] = []  # every request, so a reader sees what a predictor looked at
        self._means: dict[int, Any] = {}
        self._reads: OrderedDict[tuple, dict[str, np.ndarray]] = OrderedDict()
        self._read_bytes = 0

    # -- the guard -------------------------------------------------------------------------------
    def _check(self, items: Sequence[Any]) -> None:
        for item in items:
            if self.allowed.get(item.id) != item.prompt:
                if self.region == "base":
                    raise PermissionError(f"mechanistic access is for the run's base items only; {item.id!r} is "
                                          "not one (a blind predictor may not run the model on variants or other text)")
                raise PermissionError(f"mechanistic access is for the run's own items only; {item.id!r} is not one")

    # -- the worker's requests -------------------------------------------------------------------
    def serve(self, request: dict) -> Any:
        """Answer one request from the predictor worker (`bench.protocol.worker.MechanisticClient`)."""
        op = request.get("op")
        items = [Asked(str(i), str(p)) for i, p in request.get("items", [])]
        calls = {"read": lambda: self.read(items, request["sites"], request.get("layers"), request.get("positions")),
                 "ablate": lambda: self.ablate(items, {int(k): v for k, v in request.get("heads", {}).items()},
                                               request.get("how", "zero"), request.get("mlps", ())),
                 "patch": lambda: self.patch(items[0], items[1], request["layer"], request["positions"]),
                 "next_token": lambda: self.next_token(items),
                 "composition": lambda: self.composition(request.get("kind", "k"))}
        if op not in calls:
            raise ValueError(f"unknown mechanistic request {op!r}")
        started = time.perf_counter()
        with invariant_threads(self.handle.model):  # as the trace: an answer's last bits do not depend on the core count
            result = calls[op]()
        self.log[-1]["seconds"] = time.perf_counter() - started  # the entry the call just logged
        return result

    # -- reading ---------------------------------------------------------------------------------
    def read(self, items: Sequence[Any], sites: Sequence[str], layers: Sequence[int] | None = None,
             positions: Sequence[int] | None = None) -> list[dict[str, np.ndarray]]:
        """Per item, {"SITE.L": array} for each site and layer asked for (all layers by default), at
        the token `positions` asked for (negative counts from each prompt's end; all by default): the
        rows of resid_post and z, the query rows of pattern (every key kept)."""
        self._check(items)
        unknown = [s for s in sites if s not in SITES]
        if unknown:
            raise ValueError(f"unknown sites {unknown}; sites: {', '.join(SITES)}")
        n_layers = len(self.layout.blocks)
        layers = list(range(n_layers)) if layers is None else [int(x) for x in layers]
        if any(not -n_layers <= x < n_layers for x in layers):
            raise ValueError(f"layers must lie in [0, {n_layers}), got {layers}")
        layers = [x % n_layers for x in layers]
        positions = None if positions is None else tuple(int(p) for p in positions)
        self.log.append({"read": list(sites), "layers": layers, "items": [i.id for i in items]}
                        | ({"positions": list(positions)} if positions is not None else {}))
        key = (tuple(sites), tuple(layers), positions)
        found = {}
        for item in items:
            if (item.id, *key) in self._reads:  # kept: the most recently used last
                self._reads.move_to_end((item.id, *key))
                found[item.id] = self._reads[(item.id, *key)]
        todo = list({item.id: item for item in items if item.id not in found}.values())
        ids = self.handle.token_ids([item.prompt for item in todo]) if todo else []
        by_length: dict[int, list[int]] = {}
        for k, row in enumerate(ids):
            by_length.setdefault(len(row), []).append(k)
        for group in by_length.values():  # prompts of one length go together (no padding), in the order asked
            for start in range(0, len(group), self.READ_BATCH):
                rows = group[start:start + self.READ_BATCH]
                for k, out in zip(rows, self._read_batch([ids[k] for k in rows], *key)):
                    found[todo[k].id] = out
        for item in todo:
            self._keep((item.id, *key), found[item.id])
        return [found[item.id] for item in items]

    def _keep(self, key: tuple, out: dict[str, np.ndarray]) -> None:
        self._reads[key] = out
        self._read_bytes += sum(a.nbytes for a in out.values())
        while self._read_bytes > self.CACHE_BYTES and len(self._reads) > 1:
            _, dropped = self._reads.popitem(last=False)
            self._read_bytes -= sum(a.nbytes for a in dropped.values())

    def _read_batch(self, ids: list[list[int]], sites, layers, positions=None) -> list[dict[str, np.ndarray]]:
        """One pass over prompts of one token length (`ids`), each item's sites split out. A row of
        the batch equals the item read alone (`tests/bench/test_mechanistic.py` holds them equal)."""
        import torch

        length = len(ids[0])
        if positions is not None and any(not -length <= p < length for p in positions):
            raise ValueError(f"positions must lie in [-{length}, {length}) for a prompt of {length} tokens, got "
                             f"{list(positions)}")
        at = slice(None) if positions is None else torch.tensor([p % length for p in positions])
        whole: dict[str, np.ndarray] = {}  # site -> (item, ...)
        with contextlib.ExitStack() as stack, torch.inference_mode():
            for layer in layers:
                if "z" in sites:
                    stack.enter_context(self._hook_z(layer, _capture(whole, f"z.{layer}", at)))
                if "resid_post" in sites:  # the block's own output (HF's last hidden state is after the final norm)
                    stack.enter_context(_hooked(self.layout.blocks[layer].register_forward_hook(
                        lambda module, args, output, key=f"resid_post.{layer}": whole.__setitem__(
                            key, _first(output)[:, at].float().cpu().numpy()))))
            eager = "pattern" in sites
            if eager:
                stack.enter_context(eager_attention(self.handle.model))
            # the backbone alone: a read needs no logits, and unembedding every position costs a
            # large vocabulary's width per position
            result = self.handle.model.base_model(input_ids=torch.tensor(ids, device=self.handle.device),
                                                  output_attentions=eager)
            if eager:
                whole.update({f"pattern.{layer}": result.attentions[layer][:, :, at].float().cpu().numpy()
                              for layer in layers})
        return [{key: value[b].copy() for key, value in whole.items()} for b in range(len(ids))]

    # -- interventions ---------------------------------------------------------------------------
    def ablate(self, items: Sequence[Any], heads: dict[int, Sequence[int]] | None = None, how: str = "zero",
               mlps: Sequence[int] = ()) -> list[np.ndarray]:
        """Per item, the next-token probabilities (vocab,) with `heads` ({layer: [head, ...]}) and the
        MLPs of the blocks in `mlps` ablated: their output set to zero, or (`how="mean"`) to its mean
        over MEAN_OVER region items at each position (counted from the end)."""
        self._check(items)
        if how not in ("zero", "mean"):
            raise ValueError(f"how must be zero or mean, got {how!r}")
        heads = dict(heads or {})
        mlps = [int(x) for x in mlps]
        self.log.append({"ablate": {str(k): list(v) for k, v in heads.items()}, "mlps": mlps, "how": how,
                         "items": [i.id for i in items]})
        means = {}  # zero ablation: no replacement; mean ablation: every mean it needs, in one set of passes
        if how == "mean":
            means = self._means_of([("z", layer) for layer in heads] + [("mlp", layer) for layer in mlps])
        out = []
        for item in items:
            with contextlib.ExitStack() as stack:
                for layer, hs in heads.items():
                    stack.enter_context(self._hook_z(layer, _ablating(list(hs), means.get(("z", layer)))))
                for layer in mlps:
                    stack.enter_context(self._hook_mlp(layer, _replacing(means.get(("mlp", layer)))))
                out.append(self._next_token(item))
        return out

    def patch(self, source: Any, target: Any, layer: int, positions: Sequence[int]) -> np.ndarray:
        """The target's next-token probabilities with its residual stream after block `layer`, at
        `positions` (negative counts from the end, each prompt's own), taken from the source's."""
        self._check([source, target])
        self.log.append({"patch": [source.id, target.id], "layer": layer, "positions": list(positions)})
        kept = self._read_batch(self.handle.token_ids([source.prompt]), ["resid_post"], [layer])[0][f"resid_post.{layer}"]
        import torch

        def swap(module, args, output):
            hidden = _first(output).clone()
            for p in positions:
                hidden[0, p] = torch.as_tensor(kept[p], dtype=hidden.dtype, device=hidden.device)
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

        with _hooked(self.layout.blocks[layer].register_forward_hook(swap)):
            return self._next_token(target)

    def next_token(self, items: Sequence[Any]) -> list[np.ndarray]:
        """Per item, the unchanged next-token probabilities (the reference for an intervention)."""
        self._check(items)
        self.log.append({"next_token": True, "items": [i.id for i in items]})
        return [self._next_token(item) for item in items]

    def _next_token(self, item) -> np.ndarray:
        import torch

        model = self.handle.model  # its own head code, on the last position only where it can
        with torch.inference_mode():
            ids = torch.tensor(self.handle.token_ids([item.prompt]), device=self.handle.device)
            logits = model(input_ids=ids, **last_logits_only(model)).logits[0, -1].float()
        return torch.softmax(logits, -1).cpu().numpy()

    def _hook_z(self, layer: int, edit):
        """A context in which `edit(z)` sees and may replace layer `layer`'s z, (1, pos, head, d_head)."""
        lay = self.layout
        projection = getattr(getattr(lay.blocks[layer], lay.attn), lay.out_proj)

        def pre(module, args):
            x = args[0]
            z = x.reshape(*x.shape[:-1], lay.n_heads, lay.d_head)
            new = edit(z)
            return (new.reshape(x.shape), *args[1:]) if new is not z else None
        return _hooked(projection.register_forward_pre_hook(pre))

    def _hook_mlp(self, layer: int, edit):
        """A context in which `edit(out)` sees and may replace block `layer`'s MLP output, (1, pos, d_model)."""
        mlp = getattr(self.layout.blocks[layer], "mlp", None)
        if mlp is None:
            raise NotImplementedError(f"block {layer} of this model has no `mlp` module to ablate")

        def hook(module, args, output):
            new = edit(output)
            return new if new is not output else None
        return _hooked(mlp.register_forward_hook(hook))

    def _means_of(self, keys) -> dict:
        """The mean of each site in `keys` ("z": each head's output, (pos, head, d_head); "mlp": the MLP's
        output, (pos, d_model)) over the region's first MEAN_OVER items by id, per position from the end
        (prompts differ in length): aligned at the last token, as long as the longest prompt. Those not
        yet known are computed in one set of passes (one per item); a head's mean is computed for every
        layer at once, so later mean ablations on a deep model cost no further passes. Sums run in the
        items' order, each key's exactly as it would alone."""
        missing = [key for key in dict.fromkeys(keys) if key not in self._means]
        if any(site == "z" for site, _ in missing):
            missing += [("z", layer) for layer in range(len(self.layout.blocks))
                        if ("z", layer) not in self._means and ("z", layer) not in missing]
        if missing:
            import torch

            prompts = [prompt for _, prompt in sorted(self.allowed.items())[:MEAN_OVER]]
            ids = self.handle.token_ids(prompts)
            longest = max(len(row) for row in ids)
            total: dict[tuple, Any] = {}
            count: dict[tuple, Any] = {}
            for row in ids:
                seen: dict = {}
                with contextlib.ExitStack() as stack, torch.inference_mode():
                    for key in missing:
                        site, layer = key
                        capture = _capture(seen, key, as_numpy=False)
                        stack.enter_context(self._hook_z(layer, capture) if site == "z" else self._hook_mlp(layer, capture))
                    self.handle.model.base_model(input_ids=torch.tensor([row], device=self.handle.device))
                for key in missing:
                    r = seen[key][0]
                    if key not in total:
                        total[key] = torch.zeros(longest, *r.shape[1:], dtype=r.dtype)
                        count[key] = torch.zeros(longest, *(1,) * (r.dim() - 1), dtype=r.dtype)
                    total[key][longest - r.shape[0]:] += r
                    count[key][longest - r.shape[0]:] += 1
            for key in missing:
                self._means[key] = total[key] / count[key].clamp(min=1)
        return {key: self._means[key] for key in keys}

    # -- weights ---------------------------------------------------------------------------------
    def composition(self, kind: str = "k") -> np.ndarray:
        """(layer, head, layer, head) composition scores (Elhage et al. 2021): entry [l1, h1, l2, h2]
        (l1 < l2) is ||X||_F / (||M||_F ||W_OV||_F) with X the later head's circuit M read through
        the earlier head's W_OV: K-composition QK(h2) OV(h1), Q-composition OV(h1)^T QK(h2),
        V-composition OV(h2) OV(h1); 0 elsewhere. Weights only: no item is run. Each circuit is
        kept as its two (d_model, d_head) factors, so a score costs d_head^2 d_model, not d_model^3."""
        if kind not in ("q", "k", "v"):
            raise ValueError(f"kind must be q, k or v, got {kind!r}")
        self.log.append({"composition": kind})
        factors = [self._factors(layer) for layer in range(len(self.layout.blocks))]
        n_layers, n_heads = len(factors), self.layout.n_heads
        out = np.zeros((n_layers, n_heads, n_layers, n_heads))
        for l2 in range(n_layers):
            for l1 in range(l2):
                wq2, wk2, wv2, wo2 = factors[l2]
                wq1, wk1, wv1, wo1 = factors[l1]
                # X = A1 B1 A2 B2, each factor (head, rows, cols); ||X||^2 = tr(C^T (A1^T A1) C (B2 B2^T)), C = B1 A2
                if kind == "k":
                    a1, b1, a2, b2 = wq2.transpose(0, 2, 1), wk2, wo1, wv1
                elif kind == "q":
                    a1, b1, a2, b2 = wv1.transpose(0, 2, 1), wo1.transpose(0, 2, 1), wq2.transpose(0, 2, 1), wk2
                else:
                    a1, b1, a2, b2 = wo2, wv2, wo1, wv1
                later = kind != "q"  # which of (a1, b1) / (a2, b2) belongs to the later head
                c = np.einsum("xij,yjk->xyik", b1, a2)  # (head of the first pair, head of the second)
                g1 = np.einsum("xji,xjk->xik", a1, a1)
                g2 = np.einsum("yij,ykj->yik", b2, b2)
                g1c = np.einsum("xjk,xykl->xyjl", g1, c)
                norm2 = np.einsum("xyji,xyjl,yli->xy", c, g1c, g2)
                first, second = _circuit_norms(a1, b1), _circuit_norms(a2, b2)
                scores = np.sqrt(np.maximum(norm2, 0)) / (first[:, None] * second[None, :] + 1e-12)
                out[l1, :, l2, :] = scores.T if later else scores
        return out

    def _factors(self, layer: int) -> tuple[np.ndarray, ...]:
        """Per head (head, ...): W_Q (d_head, d_model), W_K (d_head, d_model), W_V (d_head, d_model),
        W_O (d_model, d_head), from the projections as loaded (GPT-2's fused c_attn split; grouped-query
        heads share their k and v). QK = W_Q^T W_K, OV = W_O W_V."""
        lay = self.layout
        attn = getattr(lay.blocks[layer], lay.attn)
        d = lay.n_heads * lay.d_head
        if lay.out_proj == "c_proj":  # GPT-2's Conv1D: weight (in, out)
            w = attn.c_attn.weight.detach().float().numpy()
            wq, wk, wv = w[:, :d].T, w[:, d:2 * d].T, w[:, 2 * d:].T
            wo = attn.c_proj.weight.detach().float().numpy().T
        else:  # Linear: weight (out, in)
            wq, wk, wv = (getattr(attn, n).weight.detach().float().numpy() for n in ("q_proj", "k_proj", "v_proj"))
            wo = attn.o_proj.weight.detach().float().numpy()
        group, dh = lay.n_heads // lay.n_kv_heads, lay.d_head
        heads = range(lay.n_heads)
        return (np.stack([wq[h * dh:(h + 1) * dh] for h in heads]).astype(np.float64),
                np.stack([wk[(h // group) * dh:(h // group + 1) * dh] for h in heads]).astype(np.float64),
                np.stack([wv[(h // group) * dh:(h // group + 1) * dh] for h in heads]).astype(np.float64),
                np.stack([wo[:, h * dh:(h + 1) * dh] for h in heads]).astype(np.float64))


def _circuit_norms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """||A_h B_h||_F per head, from the factors: sqrt(tr((A^T A)(B B^T)))."""
    return np.sqrt(np.maximum(np.einsum("hji,hjk,hki->h", a, a, np.einsum("hij,hkj->hik", b, b)), 0))


def _first(output):
    """A block's hidden states, whether it returns them alone or first in a tuple."""
    return output[0] if isinstance(output, tuple) else output


@contextlib.contextmanager
def _hooked(handle):
    try:
        yield
    finally:
        handle.remove()


def _capture(store: dict, key: str, at=slice(None), as_numpy: bool = True):
    """An edit that keeps a copy of what it sees (item, pos, ...), at positions `at`, under `key`
    and changes nothing."""
    def edit(z):
        store[key] = z[:, at].float().cpu().numpy() if as_numpy else z[:, at].clone()
        return z
    return edit


def _replacing(replacement):
    """An edit setting a whole output (1, pos, d) to zero, or to `replacement`'s last `pos` rows."""
    def edit(out):
        import torch

        if replacement is None:
            return torch.zeros_like(out)
        return replacement[-out.shape[1]:].to(out.dtype)[None].clone()
    return edit


def _ablating(heads: list[int], replacement):
    def edit(z):
        z = z.clone()
        for h in heads:
            if replacement is None:
                z[..., h, :] = 0
            else:
                n = z.shape[-3]
                z[0, :, h, :] = replacement[-n:, h, :].to(z.dtype)
        return z
    return edit
