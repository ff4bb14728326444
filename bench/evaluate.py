"""Greedy decoding and exact match, batched.

An answer ends at the model's EOS token or a newline. Each item may generate
at most `answer_budget` tokens: the target's length plus room to show it
would not stop, which is all exact match needs to decide.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from tasks import Item, TaskFamily, get_family

from .models import ModelHandle


@dataclass(frozen=True)
class Outcome:
    item_id: str
    output: str
    correct: bool

    def to_dict(self) -> dict:
        return {"item_id": self.item_id, "output": self.output, "correct": self.correct}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Outcome":
        return cls(item_id=d["item_id"], output=d["output"], correct=bool(d["correct"]))


def answer_budget(handle: ModelHandle, target: str) -> int:
    return len(handle.tokenizer(target, add_special_tokens=False)["input_ids"]) + 2


def length_batches(lengths: Sequence[int], batch_size: int) -> Iterable[list[int]]:
    """Indices grouped into batches of similar length, longest first."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


def decode_answer(handle: ModelHandle, new_tokens: Sequence[int]) -> str:
    stops = set(handle.stop_token_ids)
    kept = []
    for t in new_tokens:
        if t in stops:
            break
        kept.append(t)
    # Special tokens stay in the text: "12<pad>3" must not read as "123".
    text = handle.tokenizer.decode(kept, skip_special_tokens=False)
    return text.split("\n", 1)[0]


def greedy_answers(handle: ModelHandle, prompts: Sequence[str], budgets: Sequence[int], batch_size: int = 64) -> list[str]:
    """Plain batched `model.generate` greedy decoding, each row cut to its own budget."""
    import torch

    tok = handle.tokenizer
    lengths = [len(tok(p)["input_ids"]) for p in prompts]
    answers: list[str] = [""] * len(prompts)
    with torch.inference_mode():
        for batch in length_batches(lengths, batch_size):
            enc = tok([prompts[i] for i in batch], return_tensors="pt", padding=True).to(handle.device)
            out = handle.model.generate(
                **enc, do_sample=False, max_new_tokens=max(budgets[i] for i in batch),
                eos_token_id=handle.stop_token_ids, pad_token_id=tok.pad_token_id,
            )
            new = out[:, enc["input_ids"].shape[1]:].tolist()
            for row, i in enumerate(batch):
                answers[i] = decode_answer(handle, new[row][:budgets[i]])
    return answers


def evaluate(handle: ModelHandle, items: Sequence[Item], batch_size: int = 64,
             families: Mapping[str, TaskFamily] | None = None) -> list[Outcome]:
    families = dict(families or {})
    for item in items:
        if item.family not in families:
            families[item.family] = get_family(item.family)
    budgets = [answer_budget(handle, item.target) for item in items]
    answers = greedy_answers(handle, [item.prompt for item in items], budgets, batch_size)
    return [Outcome(item.id, answer, families[item.family].check(answer, item)) for item, answer in zip(items, answers)]
