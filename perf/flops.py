"""FLOP counts and this machine's fp32 matmul peak, for the perf scripts' GFLOP/s figures.

A forward pass over T tokens costs 2 x (non-embedding parameters) x T for the blocks (the embedding
lookup is a gather, no multiply-adds) plus 2 x d_model x vocab for every position it unembeds:
counting 2 x (all parameters) x T instead charges the unembedding to every token, which the trace
(the last position only) and evaluation (the answer positions only) do not pay, and on a large
vocabulary that overstates the work several times over. Attention scores (query x key, weights x
value) are not parameters: `attention_flops` counts them apart."""
from __future__ import annotations

import time


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of the best of `repeats` (n x n) fp32 products, after one warm-up, on torch's threads."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best / 1e9


def non_embedding_parameters(model) -> int:
    """Parameters less every embedding table (token and learned position embeddings) and the output
    embedding (tied or not): what a token's pass through the blocks multiplies."""
    import torch

    tables = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    head = model.get_output_embeddings()
    if head is not None:
        tables.add(id(head.weight))
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) not in seen and id(p) not in tables:
            seen.add(id(p))
            total += p.numel()
    return total


def backbone_flops(non_embedding: int, tokens: int) -> float:
    return 2.0 * non_embedding * tokens


def unembedding_flops(d_model: int, vocab: int, rows: int) -> float:
    """`rows` positions (or logit-lens states) through the (vocab x d_model) unembedding."""
    return 2.0 * d_model * vocab * rows


def attention_flops(n_layers: int, width: int, contexts: int) -> float:
    """Query x key and weights x value: 2 x 2 x width per layer for each (query, key) pair;
    `contexts` is the sum over the tokens run of how many keys each attends to."""
    return 4.0 * n_layers * width * contexts
