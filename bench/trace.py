"""One prompt-only forward pass per item, read from the model as loaded.

Sites (the one place they are named):
  hidden       (item, layer + 1, d_model)  residual stream at the last prompt token,
                                            embeddings first, after every block
  top_ids      (item, k)                   next-token ids, most probable first
  top_probs    (item, k)                   their probabilities
  entropy      (item,)                     entropy (nats) of the next-token distribution
  prompt_tokens (item,)                    prompt length in tokens
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from tasks import SealedItem

from .evaluate import length_batches
from .models import ModelHandle

SITES = ("hidden", "top_ids", "top_probs", "entropy", "prompt_tokens")
TOP_K = 8


@dataclass(frozen=True)
class Trace:
    item_ids: tuple[str, ...]
    hidden: np.ndarray
    top_ids: np.ndarray
    top_probs: np.ndarray
    entropy: np.ndarray
    prompt_tokens: np.ndarray

    def __len__(self) -> int:
        return len(self.item_ids)


def _forward_batch(handle: ModelHandle, prompts: list[str]):
    import torch

    enc = handle.tokenizer(prompts, return_tensors="pt", padding=True).to(handle.device)
    mask = enc["attention_mask"]
    # Left padding: positions must count real tokens only, as `generate` does.
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    out = handle.model(input_ids=enc["input_ids"], attention_mask=mask, position_ids=position_ids,
                       output_hidden_states=True, use_cache=False)
    hidden = torch.stack([h[:, -1, :] for h in out.hidden_states], dim=1).float()  # (item, layer+1, d_model)
    logprobs = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)  # (item, vocab)
    probs = logprobs.exp()
    entropy = -(probs * logprobs).sum(-1)
    top_probs, top_ids = probs.topk(min(TOP_K, probs.shape[-1]), dim=-1)
    return hidden, top_ids, top_probs, entropy, mask.sum(-1)


def trace(handle: ModelHandle, items: Sequence[SealedItem], batch_size: int = 64) -> Trace:
    import torch

    prompts = [item.prompt for item in items]
    lengths = [len(handle.tokenizer(p)["input_ids"]) for p in prompts]
    parts: list[list] = [[None] * len(items) for _ in range(5)]
    with torch.inference_mode():
        for batch in length_batches(lengths, batch_size):
            arrays = _forward_batch(handle, [prompts[i] for i in batch])
            for site, array in zip(parts, arrays):
                array = array.cpu().numpy()
                for row, i in enumerate(batch):
                    site[i] = array[row]
    hidden, top_ids, top_probs, entropy, prompt_tokens = (np.stack(p) if items else np.zeros((0,)) for p in parts)
    return Trace(tuple(item.id for item in items), hidden.astype(np.float32), top_ids, top_probs.astype(np.float32),
                 entropy.astype(np.float32), prompt_tokens)
