"""Which training items each step's batch holds: `BatchSampler` and its helpers."""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable

from tasks import Item, resolve_families

from ..errors import UserError
from .recipe import Recipe

REPLAY_SIZE = 2048


class BatchSampler:
    """Which training items each step's batch holds: a seeded generator, the groups batches are
    drawn from (one for mixed batching, one per base cell for by_cell), their prior weights, the
    warm phase's restriction, and with adaptive sampling each group's recent loss or failure."""

    def __init__(self, recipe: Recipe, items: list[Item]):
        import torch

        if recipe.sampling not in ("uniform", "loss", "error"):
            raise UserError(f"unknown sampling {recipe.sampling!r}: use uniform, loss or error")
        if recipe.mining < 1:
            raise UserError(f"mining is how many candidates to score per batch item: an integer >= 1, got {recipe.mining}")
        if not 0 <= recipe.replay < 1:
            raise UserError(f"replay is the share of a batch drawn from recent failures: 0 <= replay < 1, got {recipe.replay}")
        self.recipe = recipe
        self.generator = torch.Generator().manual_seed(recipe.seed)
        self.groups, self.weights = _groups(items, recipe.batching)
        self.warm = _warm_groups(recipe, items, self.groups)
        self.recent = torch.ones(len(self.groups))  # running mean of each group's signal
        self.adaptive = len(self.groups) > 1 and recipe.sampling != "uniform"
        self.chosen = 0
        self.signal: float | None = None  # with mining: the last candidates' mean failure chance
        self.failed = [torch.zeros(0, dtype=torch.long) for _ in self.groups]  # recent failures, per group

    def draw(self, step: int, score: Callable | None = None):
        """The item indices of batch number `step`. With mining, `score(indices)` gives each
        candidate's chance of being missed; the batch keeps the likeliest, and `self.signal` is the
        candidates' mean (an unbiased estimate of the group's failure, unlike the mined batch's)."""
        import torch

        size, warm = self.recipe.batch_size, step < self.recipe.warm_steps
        if len(self.groups) == 1:
            pool = self.warm if warm else self.groups[0]
        else:
            draw = _draw_weights(self.weights, self.recent, self.recipe.sampling)
            if warm:
                draw = draw * self.warm
            self.chosen = int(torch.multinomial(draw, 1, generator=self.generator))
            pool = self.groups[self.chosen]
        failed = self.failed[self.chosen]  # in the warm phase, only warm items were drawn to fail
        again = round(self.recipe.replay * size) if len(failed) else 0
        mining = self.recipe.mining if score is not None else 1
        batch = pool[torch.randint(0, len(pool), ((size - again) * mining,), generator=self.generator)]
        self.signal = None
        if mining > 1:
            missed = score(batch)
            self.signal = float(missed.mean())
            batch = batch[torch.sort(missed, descending=True, stable=True).indices[:size - again]]
        if again:
            batch = torch.cat([batch, failed[torch.randint(0, len(failed), (again,), generator=self.generator)]])
        return batch

    def remember(self, batch, missed) -> None:
        """Keep the batch's items the model missed (chance of missing the answer over a half) as
        the newest of its group's recent failures, and forget those it now gets right."""
        import torch

        if not self.recipe.replay:
            return
        recent = self.failed[self.chosen]
        passed = batch[missed <= 0.5]
        recent = recent[~torch.isin(recent, passed)]
        fresh = torch.unique(batch[missed > 0.5])
        self.failed[self.chosen] = torch.cat([recent[~torch.isin(recent, fresh)], fresh])[-REPLAY_SIZE:]

    def update(self, signal: float) -> None:
        """Fold the last batch's loss or failure into its group's running mean."""
        self.recent[self.chosen] = 0.9 * self.recent[self.chosen] + 0.1 * signal

    def state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "recent": self.recent, "failed": self.failed}

    def load_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.recent = state["recent"]
        self.failed = state.get("failed", self.failed)


def _groups(items: list[Item], batching: str):
    """Index tensors of the items each batch may draw from, and how often to draw each:
    every family equally often, its base cells equally often within it."""
    import torch

    if batching == "mixed":
        return [torch.arange(len(items))], torch.ones(1)
    if batching != "by_cell":
        raise UserError(f"unknown batching {batching!r}: use mixed or by_cell")
    by_cell: dict[tuple[str, str], list[int]] = {}
    for i, item in enumerate(items):
        by_cell.setdefault((item.family, item.cell), []).append(i)
    cells_per_family = Counter(family for family, _ in by_cell)
    weights = torch.tensor([1.0 / cells_per_family[family] for family, _ in by_cell])
    return [torch.tensor(index) for index in by_cell.values()], weights


def _warm_groups(recipe: Recipe, items: list[Item], groups):
    """What the warm phase may draw from: with one group (mixed batching), the indices of the
    warm tasks' items; with several, a 0/1 mask over the groups."""
    import torch

    if not recipe.warm_steps:
        return None
    unknown = set(recipe.warm_tasks) - set(recipe.tasks)
    if not recipe.warm_tasks or unknown:
        raise UserError(f"warm_tasks must be some of the recipe's tasks {list(recipe.tasks)}; got {list(recipe.warm_tasks)}")
    names = {family.name for family in resolve_families(recipe.warm_tasks).values()}
    if len(groups) == 1:
        return torch.tensor([i for i, item in enumerate(items) if item.family in names])
    return torch.tensor([1.0 if items[int(g[0])].family in names else 0.0 for g in groups])


def missed_rows(logits, labels):
    """Each row's chance of *not* producing the whole answer, 1 - P(answer) under teacher forcing:
    a proxy for exact-match failure that, unlike the mean token loss, does not shrink when an
    answer is long and most of its tokens are easy."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        logits, labels = logits[:, :-1].float(), labels[:, 1:]
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,
                              reduction="none").view(labels.shape)
        return 1 - torch.exp(-nll.sum(1))


def _draw_weights(prior, recent, sampling: str):
    """How likely each group is drawn next: the prior alone, or half prior and half the group's
    share of its recent training loss ("loss") or of its recent failure chance ("error"); a group
    whose signal is near zero keeps its prior half."""
    if sampling == "uniform":
        return prior
    prior = prior / prior.sum()
    return 0.5 * prior + 0.5 * recent / recent.sum().clamp_min(1e-9)
