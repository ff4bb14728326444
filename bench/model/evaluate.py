"""Greedy decoding and exact match, batched.

An answer ends at the model's EOS token or a newline. Each item may generate
at most `answer_budget` tokens: the target's length plus room to show it
would not stop, which is all exact match needs to decide.

The fast path (`teacher_forced`) runs one forward pass over prompt + target and
reads the argmax at every answer position and at the end:
  * every argmax is the target's token and the end's is a stop token: greedy
    decoding would write exactly the target and stop, so the item is correct;
  * the first differing argmax makes a text that can no longer strip to the
    target: greedy decoding would fail, so the item is wrong;
  * anything else (a whitespace divergence, a top-1/top-2 margin too small to
    trust across numerical paths, a family with its own `check`, a target the
    tokenizer does not round-trip): the item is generated for real.
Where the fast path decides a failure, `output` holds the greedy answer up to
and including the first wrong token, and `complete` is False.

The teacher-forced pass batches items sorted by length with left padding (few,
full passes); padding moves logits only in the last bits, far below MARGIN, so
a decision never depends on the batch. Tokenization is one batched call.
"""
from __future__ import annotations

import hashlib
import itertools
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from tasks import Item, TaskFamily, get_family

from .. import io

from .continuation import top_and_margin
from .load import ModelHandle
from .prefix import Prefixes, cache_argument

if TYPE_CHECKING:
    from .continuation import Continuations


MARGIN = 1e-3  # logit gap under which the fast path does not trust its argmax


@dataclass(frozen=True)
class Outcome:
    item_id: str
    output: str
    correct: bool
    complete: bool = True  # False: `output` is the greedy answer's decided prefix

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "Outcome":
        return cls(item_id=d["item_id"], output=d["output"], correct=bool(d["correct"]),
                   complete=bool(d.get("complete", True)))


def answer_budget(handle: ModelHandle, target: str) -> int:
    return len(handle.token_ids([target], special=False)[0]) + 2


def first_answer_tokens(handle: ModelHandle, items: Sequence[Item]) -> list[int]:
    """Each target's first token, tokenized as evaluation tokenizes it (on its own, after the prompt)."""
    return [ids[0] if ids else -1 for ids in handle.token_ids([item.target for item in items], special=False)]


def auto_batch_size(handle: ModelHandle, max_tokens: int) -> int:
    """`--batch-size auto`: the largest power of two (at most 256 on an accelerator, 64 on CPU, where
    bigger batches stop paying) whose pass over `max_tokens` tokens fits in a quarter of the free
    memory: per item, every layer's hidden states, one layer's attention scores and the logits."""
    import torch

    card = handle.card
    per_item = 4 * max_tokens * (card.d_model * (card.n_layers + 1) * 2 + card.vocab_size
                                 + card.n_heads * max_tokens)
    if handle.device.type == "cuda":
        free, cap = torch.cuda.mem_get_info(handle.device)[0], 256
    else:
        free, cap = _available_ram(), 64
    size = 1
    while size * 2 <= cap and size * 2 * per_item <= free / 4:
        size *= 2
    return size


def _available_ram() -> int:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def exact_length_batches(lengths: Sequence[int], batch_size: int) -> Iterable[list[int]]:
    """Indices grouped by exactly equal length (no padding), at most `batch_size` a batch."""
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(n, []).append(i)
    for n in sorted(groups, reverse=True):
        members = groups[n]
        for start in range(0, len(members), batch_size):
            yield members[start:start + batch_size]


#: The most float32 logits one teacher-forced pass may hold (rows x answer positions x vocabulary,
#: in bytes): long answers on a large vocabulary go in smaller batches instead of gigabytes of logits.
LOGITS_BYTES = 1 << 28


def logit_batches(rows: Sequence, widths: Sequence[int], batch_size: int, vocab: int,
                  lengths: Sequence[int] | None = None) -> Iterable[list]:
    """`rows` in order, in consecutive batches of at most `batch_size` whose logits (rows x the widest
    row's answer positions `widths` x `vocab`) fit in LOGITS_BYTES; one row at least. With `lengths`
    (the rows' padded lengths, longest first), a row shorter than half of its batch's first starts a
    new batch: at most half of a pass is padding, however unequal the prompts."""
    batch: list = []
    widest = first = 0
    for k, (row, width) in enumerate(zip(rows, widths)):
        if batch and (len(batch) >= batch_size or (len(batch) + 1) * max(widest, width) * vocab * 4 > LOGITS_BYTES
                      or (lengths is not None and 2 * lengths[k] < first)):
            yield batch
            batch, widest = [], 0
        if not batch:
            first = lengths[k] if lengths is not None else 0
        batch.append(row)
        widest = max(widest, width)
    if batch:
        yield batch


def decode_answer(handle: ModelHandle, new_tokens: Sequence[int]) -> str:
    stops = set(handle.stop_token_ids)
    kept = list(itertools.takewhile(lambda t: t not in stops, new_tokens))
    # Special tokens stay in the text: "12<pad>3" must not read as "123".
    text = handle.tokenizer.decode(kept, skip_special_tokens=False)
    return text.split("\n", 1)[0]


def progress_bar(total: int, desc: str | None):
    """A tqdm bar in items/s on a terminal (nothing when stderr is not one, or without `desc`)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="item", leave=False, disable=True if desc is None else None)


def greedy_answers(handle: ModelHandle, prompts: Sequence[str], budgets: Sequence[int], batch_size: int = 64,
                   progress: str | None = None) -> list[str]:
    """Plain batched `model.generate` greedy decoding, each row cut to its own budget."""
    import torch

    tok = handle.tokenizer
    lengths = [len(ids) for ids in tok(list(prompts))["input_ids"]] if prompts else []
    answers: list[str] = [""] * len(prompts)
    with torch.inference_mode(), progress_bar(len(prompts), progress) as bar:
        for batch in exact_length_batches(lengths, batch_size):
            bar.update(len(batch))
            enc = tok([prompts[i] for i in batch], return_tensors="pt", padding=True).to(handle.device)
            out = handle.model.generate(
                **enc, do_sample=False, max_new_tokens=max(budgets[i] for i in batch),
                eos_token_id=handle.stop_token_ids, pad_token_id=tok.pad_token_id,
            )
            new = out[:, enc["input_ids"].shape[1]:].tolist()
            for row, i in enumerate(batch):
                answers[i] = decode_answer(handle, new[row][:budgets[i]])
    return answers


def _decide(handle: ModelHandle, target: str, target_ids: list[int], argmax: list[int], ok_margin: list[bool]):
    """(correct, output, complete) when teacher forcing settles the item, else None."""
    stops = set(handle.stop_token_ids)
    want = target.strip()  # a target may start with the space a pretrained LM writes after "Answer:"
    for j, token in enumerate(argmax):
        if not ok_margin[j]:
            return None
        if j < len(target_ids) and token == target_ids[j]:
            continue
        if j == len(target_ids) and token in stops:
            return True, want, True
        if token in stops:  # the answer ends here: the output is fully known
            text = handle.tokenizer.decode(target_ids[:j], skip_special_tokens=False).split("\n", 1)[0]
            return text.strip() == want, text, True
        text = handle.tokenizer.decode(target_ids[:j] + [token], skip_special_tokens=False)
        if "\n" in text:  # the answer ends at the newline: the output is fully known
            text = text.split("\n", 1)[0]
            return text.strip() == want, text, True
        head = text.lstrip()
        if want.startswith(head) or (head.startswith(want) and not head[len(want):].strip()):
            return None  # could still strip to the target: generate it
        return False, text, False
    return None


def teacher_forced(handle: ModelHandle, items: Sequence[Item], batch_size: int = 64,
                   progress: str | None = None, continuations: Continuations | None = None
                   ) -> list[tuple[bool, str, bool] | None]:
    """One forward pass per item over prompt + target; see the module docstring. Prompts that share
    a prefix (a family's fixed examples) continue from its cache: only their own tokens and the
    answer are run (`bench.model.prefix`). Items whose prompt pass the trace kept (`continuations`)
    run only their answer tokens."""
    import torch

    tok = handle.tokenizer
    decided: list[tuple[bool, str, bool] | None] = [None] * len(items)
    if not items:
        return decided
    prefixes = Prefixes(handle, [item.prompt for item in items])
    targets = handle.token_ids([item.target for item in items], special=False)
    round_trip = tok.batch_decode(targets, skip_special_tokens=False)
    usable = {i for i, item in enumerate(items) if targets[i] and round_trip[i] == item.target}
    with torch.inference_mode(), progress_bar(len(usable), progress) as bar:
        done = (_continued(handle, items, targets, usable, prefixes, continuations, decided, bar, batch_size)
                if continuations else set())
        for prefix, members in prefixes.groups().items():
            members = [i for i in members if i in usable and i not in done]
            start = prefixes.length(prefix)
            own = {i: prefixes.ids[i][start:] for i in members}
            order = sorted(members, key=lambda i: -(len(own[i]) + len(targets[i])))  # longest first: little padding
            for rows in logit_batches(order, [len(targets[i]) + 1 for i in order], batch_size, handle.card.vocab_size,
                                      [len(own[i]) + len(targets[i]) for i in order]):
                bar.update(len(rows))
                width = max(len(own[i]) + len(targets[i]) for i in rows)
                keep = max(len(targets[i]) for i in rows) + 1
                ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for r, i in enumerate(rows):
                    seq = own[i] + targets[i]
                    ids[r, width - len(seq):] = torch.tensor(seq)
                    mask[r, width - len(seq):] = 1
                position_ids = start + (mask.cumsum(-1) - 1).clamp(min=0)
                past = dict(use_cache=False)
                if prefix:  # the prefix's keys and values come first, all real tokens
                    mask = torch.cat([torch.ones((len(rows), start), dtype=torch.long), mask], dim=1)
                    past = cache_argument(handle.model, prefixes.cache(prefix, len(rows)))
                logits = handle.model(input_ids=ids.to(handle.device), attention_mask=mask.to(handle.device),
                                      position_ids=position_ids.to(handle.device), logits_to_keep=keep,
                                      **past).logits.float()  # (item, keep, vocab)
                argmax, margin_ok = top_and_margin(logits, MARGIN)
                for r, i in enumerate(rows):
                    n = len(targets[i]) + 1  # every answer token and the end
                    decided[i] = _decide(handle, items[i].target, targets[i], argmax[r][keep - n:], margin_ok[r][keep - n:])
    prefixes.forget()
    return decided


def _continued(handle: ModelHandle, items: Sequence[Item], targets: list[list[int]], usable: set[int],
               prefixes, continuations: Continuations, decided: list, bar, batch_size: int = 64) -> set[int]:
    """Teacher forcing on top of kept prompt passes: the kept rows of one prefix, up to `batch_size`
    at a time whatever trace batch kept them, continue from the prefix's cache and their own keys
    and values (left-padded to the longest, masked), then run only their answer tokens (right-padded:
    a pad after an answer changes nothing before it; padding is below MARGIN, as in the full pass).
    The first answer position's argmax is the trace pass's. Returns the items decided or tried."""
    import torch

    index = {item.id: i for i, item in enumerate(items)}
    tried: set[int] = set()
    by_prefix: dict[str, list[tuple]] = {}  # prefix -> (kept, row in it, item index)
    for kept in continuations.kept:
        for r, item_id in enumerate(kept.item_ids):
            i = index.get(item_id)
            if i in usable and prefixes.prefix[i] == kept.prefix:
                by_prefix.setdefault(kept.prefix, []).append((kept, r, i))
    for prefix, rows in by_prefix.items():
        start = prefixes.length(prefix)
        # Answers of one length together (no answer padding to compute), then own parts by length.
        rows.sort(key=lambda row: (len(targets[row[2]]), row[0].layers[0][0].shape[2]))
        for batch in logit_batches(rows, [len(targets[i]) for _, _, i in rows], batch_size, handle.card.vocab_size):
            cache = prefixes.cache(prefix, len(batch)) if prefix else None
            if cache is None:
                from transformers import DynamicCache

                cache = DynamicCache(config=handle.model.config)
            parts: dict[int, tuple] = {}  # id(kept) -> (kept, [(row in it, item index)]): one slice each
            for kept, r, i in batch:
                parts.setdefault(id(kept), (kept, []))[1].append((r, i))
            batch = [(kept, r, i) for kept, rows_there in parts.values() for r, i in rows_there]  # cache order
            owns = [kept.layers[0][0].shape[2] for kept, _, _ in batch]
            longest = max(owns)
            for layer in range(len(batch[0][0].layers)):
                keys, values = [], []
                for kept, rows_there in parts.values():
                    k, v = kept.layers[layer]
                    select = torch.tensor([r for r, _ in rows_there], device=k.device)
                    pad = (0, 0, longest - k.shape[2], 0)  # left: the own tokens end where the answer begins
                    keys.append(torch.nn.functional.pad(k.index_select(0, select), pad))
                    values.append(torch.nn.functional.pad(v.index_select(0, select), pad))
                cache.update(torch.cat(keys) if len(keys) > 1 else keys[0],
                             torch.cat(values) if len(values) > 1 else values[0], layer)
            width = max(len(targets[i]) for _, _, i in batch)
            ids = torch.full((len(batch), width), handle.tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.ones((len(batch), start + longest + width), dtype=torch.long)
            for k, ((_, _, i), own) in enumerate(zip(batch, owns)):
                ids[k, :len(targets[i])] = torch.tensor(targets[i])
                mask[k, start:start + longest - own] = 0
            position_ids = (start + torch.tensor(owns))[:, None] + torch.arange(width)[None, :]
            logits = handle.model(input_ids=ids.to(handle.device), attention_mask=mask.to(handle.device),
                                  position_ids=position_ids.to(handle.device),
                                  **cache_argument(handle.model, cache)).logits.float()
            argmax, margin_ok = top_and_margin(logits, MARGIN)
            for k, (kept, r, i) in enumerate(batch):
                n = len(targets[i])
                decided[i] = _decide(handle, items[i].target, targets[i], [kept.first[r]] + argmax[k][:n],
                                     [kept.first_ok[r]] + margin_ok[k][:n])
                tried.add(i)
            bar.update(len(batch))
    continuations.evaluated += len(tried)
    return tried


def evaluate(handle: ModelHandle, items: Sequence[Item], batch_size: int = 64,
             families: Mapping[str, TaskFamily] | None = None, fast: bool = True,
             stats: dict | None = None, progress: str | None = None,
             continuations: Continuations | None = None) -> list[Outcome]:
    """Greedy exact match for each item; `fast` uses the teacher-forced path where it decides,
    going on from the trace's kept prompt passes where there are some (`continuations`).
    `stats`, if given, counts the items each path decided."""
    families = dict(families or {})
    for item in items:
        if item.family not in families:
            families[item.family] = get_family(item.family)
    outcomes: list[Outcome | None] = [None] * len(items)
    if fast:
        plain_check = [type(families[item.family]).check is TaskFamily.check for item in items]
        for i, result in enumerate(teacher_forced(handle, items, batch_size, progress=progress,
                                                  continuations=continuations)):
            if result is not None and plain_check[i]:
                correct, output, complete = result
                outcomes[i] = Outcome(items[i].id, output, correct, complete)
    todo = [i for i, o in enumerate(outcomes) if o is None]
    if stats is not None:
        stats["teacher_forced"] = stats.get("teacher_forced", 0) + len(items) - len(todo)
        stats["generated"] = stats.get("generated", 0) + len(todo)
    if todo:
        budgets = [answer_budget(handle, items[i].target) for i in todo]
        answers = greedy_answers(handle, [items[i].prompt for i in todo], budgets, batch_size,
                                 progress=progress and f"{progress} (generated)")
        for i, answer in zip(todo, answers):
            outcomes[i] = Outcome(items[i].id, answer, families[items[i].family].check(answer, items[i]))
    return outcomes


#: Bumped when the evaluation decides an outcome another way: the outcome cache keeps other versions apart.
EVALUATION_VERSION = 1


class OutcomeCache:
    """A model's outcomes on a list of items, on disk beside its traces (`root/<cache_name>/`, the
    name holding the model's fingerprint and numerics): an outcome depends only on those and the
    item, so a second run of the same model on the same items evaluates nothing. A file is keyed by
    EVALUATION_VERSION and its items' ids, prompts, targets and families in order, and written whole; one that cannot be
    read as these items' outcomes is a miss (evaluated again and replaced)."""

    def __init__(self, root: str | Path, cache_name: str):
        self.folder = Path(root) / cache_name

    def path(self, items: Sequence[Item]) -> Path:
        key = hashlib.sha256(f"evaluation {EVALUATION_VERSION}\x00".encode())
        for item in items:
            key.update(f"{item.id}\x00{item.prompt}\x00{item.target}\x00{item.family}\x00".encode())
        return self.folder / f"outcomes-{key.hexdigest()[:16]}.jsonl"

    def get(self, items: Sequence[Item]) -> list[Outcome] | None:
        try:
            outcomes = [Outcome.from_dict(row) for row in io.read_jsonl(self.path(items))]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return outcomes if [o.item_id for o in outcomes] == [item.id for item in items] else None

    def put(self, items: Sequence[Item], outcomes: Sequence[Outcome]) -> None:
        io.write_jsonl(self.path(items), (o.to_dict() for o in outcomes))
