"""Unembed once: the trace asks the model for the last position's logits only
(`trace.last_position_only`), and they equal the full pass's last row bit for bit."""
import pytest

from bench.model.load import load_model
from bench.model.trace import last_position_only
from bench.process import invariant_threads


@pytest.mark.parametrize("kind", ["tiny_llama", "tiny_gpt2", "tiny_llama_32k"])
@pytest.mark.parametrize("batch", [1, 8])
def test_the_last_position_alone_equals_the_full_pass_last_row(kind, batch, request):
    import torch

    handle = load_model(str(request.getfixturevalue(kind)))
    ids = torch.tensor([handle.token_ids(["the cat sat on the mat"])[0]] * batch)
    ids[:, 1] = torch.arange(batch) + 5  # rows differ
    with torch.inference_mode(), invariant_threads(handle.model):  # as the trace runs: where rows are batch-invariant
        full = handle.model(input_ids=ids, output_hidden_states=True).logits
        with last_position_only(handle.model) as last:
            assert last == {"logits_to_keep": 1}
            out = handle.model(input_ids=ids, output_hidden_states=True, **last)
            alone = [handle.model(input_ids=ids[r:r + 1], **last).logits for r in range(batch)]
    assert out.logits.shape == (batch, 1, full.shape[-1])
    assert torch.equal(out.logits[:, -1, :], full[:, -1, :])
    assert all(torch.equal(a[0, -1], out.logits[r, -1]) for r, a in enumerate(alone))  # and batch-invariant
    # the model's final norm is applied: the last hidden state unembedded gives the same row
    head = handle.model.get_output_embeddings()
    with torch.inference_mode(), invariant_threads(handle.model), last_position_only(handle.model):
        assert torch.equal(head(out.hidden_states[-1][:, -1:, :])[:, -1], full[:, -1, :])


def test_the_hook_goes_away(tiny_llama):
    handle = load_model(str(tiny_llama))
    head = handle.model.get_output_embeddings()
    with last_position_only(handle.model):
        assert head._forward_pre_hooks and head._forward_hooks
    assert not head._forward_pre_hooks and not head._forward_hooks
