"""Shared prompt prefixes, computed once.

With fixed few-shot examples (tasks.render, the default), every prompt of a family starts with
the same examples. Their keys and values are computed once, alone, and every item of the family
continues from them: only the item's own tokens (and, in evaluation, its answer) are run. The
rule that finds a prompt's prefix depends on that prompt (and the model's chat template) alone,
so an item's trace is the same whatever else is traced with it, at any batch size:

  * a chat prompt (`--chat`) shares everything up to its last user message: the prefix ends
    where the template's text between an assistant's answer and the next user message ends
    (e.g. "<|im_end|>\n<|im_start|>user\n"), found once by rendering a probe conversation;
  * any other prompt shares everything up to the blank line before the item's own text
    (`shot_separator` "\n\n" of the plain-language suite), kept to its first newline: in
    byte-level BPE vocabularies "\n\n" followed by text splits as "\n" + "\nText", so the
    prefix ends on a token boundary;
  * a prefix is used only where the prompt's tokens start with the prefix's own tokens (checked
    per item); any other prompt is run whole.
"""
from __future__ import annotations

import copy
from typing import Any, Sequence


def last_logits_only(model) -> dict[str, Any]:
    """The keyword that asks `model` for its last position's logits alone (`logits_to_keep=1`; {} for
    a model without it, which then unembeds every position)."""
    import inspect

    return {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}


def cache_argument(model, cache) -> dict[str, Any]:
    """The keywords that have a model's forward continue from a key/value cache (and extend it); the
    cache's keyword is the one its forward takes (transformers renames it)."""
    import inspect

    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    return {"use_cache": True, name: cache}


def turn_boundary(tokenizer) -> str:
    """The text a chat template writes between an assistant's answer and the next user message;
    "" for a tokenizer without a template (or one that cannot render a probe conversation)."""
    if not getattr(tokenizer, "chat_template", None):
        return ""
    probe = [{"role": "user", "content": "PROBE-U1"}, {"role": "assistant", "content": "PROBE-A1"},
             {"role": "user", "content": "PROBE-U2"}]
    try:
        text = tokenizer.apply_chat_template(probe, tokenize=False)
    except Exception:  # a template with its own rules (roles, system turns): no chat prefix
        return ""
    start, end = text.find("PROBE-A1"), text.find("PROBE-U2")
    return text[start + len("PROBE-A1"):end] if 0 <= start < end else ""


def prefix_text(prompt: str, boundary: str = "") -> str:
    """The part of `prompt` shared with its family's other prompts: its examples, or ""."""
    if boundary:
        cut = prompt.rfind(boundary)
        if cut > 0:
            return prompt[:cut + len(boundary)]
    cut = prompt.rfind("\n\n")
    return prompt[:cut + 1] if cut > 0 else ""


class Prefixes:
    """Token ids of prompts split into (shared prefix, own part), and each prefix's cache."""

    def __init__(self, handle, prompts: Sequence[str]):
        self.handle = handle
        self.ids = handle.token_ids(list(prompts)) if prompts else []
        boundary = turn_boundary(handle.tokenizer)
        texts = [prefix_text(p, boundary) for p in prompts]
        unique = sorted({t for t in texts if t})
        encoded = dict(zip(unique, handle.token_ids(unique))) if unique else {}
        self.prefix: list[str] = []
        for text, ids in zip(texts, self.ids):
            head = encoded.get(text)
            usable = head is not None and 0 < len(head) < len(ids) and ids[:len(head)] == head
            self.prefix.append(text if usable else "")
        self._encoded = encoded
        self._caches: dict[str, Any] = {}

    def groups(self) -> dict[str, list[int]]:
        """Prompt indices by prefix ("" for prompts run whole), in a fixed order."""
        out: dict[str, list[int]] = {}
        for i, text in enumerate(self.prefix):
            out.setdefault(text, []).append(i)
        return dict(sorted(out.items()))

    def length(self, text: str) -> int:
        return len(self._encoded[text]) if text else 0

    def cache(self, text: str, rows: int):
        """The prefix's keys and values for a batch of `rows` items (the prefix is run once,
        alone, so its cache is the same whatever batch it is used in)."""
        import torch

        if text not in self._caches:
            ids = torch.tensor([self._encoded[text]], device=self.handle.device)
            # only the keys and values are read: unembed one position, not the whole prefix
            out = self.handle.model(input_ids=ids, use_cache=True, **last_logits_only(self.handle.model))
            self._caches[text] = getattr(out, "cache", None) or out.past_key_values
        cache = copy.deepcopy(self._caches[text])
        if rows > 1:
            cache.batch_repeat_interleave(rows)
        return cache

    def forget(self) -> None:
        self._caches.clear()
