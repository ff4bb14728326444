"""Mechanistic access to the base region: hooks on the model as loaded, checked against plain passes,
brute-force weight products and the refusal of anything that is not a base item."""
import numpy as np
import pytest

from bench.model.load import load_model
from bench.model.mechanistic import RegionAccess
from tasks import get_family


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def access(request, tiny_llama, tmp_path_factory):
    if request.param == "llama":
        handle = load_model(str(tiny_llama))
    else:
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel

        from bench.zoo.tokenizer import build_tokenizer

        tok = build_tokenizer()
        torch.manual_seed(0)
        folder = tmp_path_factory.mktemp("gpt2")
        GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=96,
                                   bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)).save_pretrained(folder)
        tok.save_pretrained(folder)
        handle = load_model(str(folder))
    family = get_family("addition")
    base = family.generate("digits=2", 6, seed=1)
    variants = family.generate("digits=4", 2, seed=1)
    return RegionAccess(handle, base), base, variants


def test_reads_agree_with_a_plain_pass(access):
    import torch

    mech, base, _ = access
    reads = mech.read(base[:2], ["resid_post", "pattern", "z"])
    n_layers = len(mech.layout.blocks)
    for item, read in zip(base[:2], reads):
        ids = torch.tensor([mech.handle.token_ids([item.prompt])[0]])
        with torch.inference_mode():
            plain = mech.handle.model(input_ids=ids, output_hidden_states=True)
        for layer in range(n_layers - 1):  # HF's last hidden state is after the final norm; the block's own is not
            assert np.allclose(read[f"resid_post.{layer}"], plain.hidden_states[layer + 1][0].numpy(), atol=1e-6)
        norm = getattr(mech.handle.model.base_model, "norm", None) or mech.handle.model.base_model.ln_f
        with torch.inference_mode():
            last = norm(torch.as_tensor(read[f"resid_post.{n_layers - 1}"])[None])[0].numpy()
        assert np.allclose(last, plain.hidden_states[-1][0].numpy(), atol=1e-5)
        for layer in range(n_layers):
            pattern = read[f"pattern.{layer}"]  # (head, query, key)
            assert pattern.shape == (mech.layout.n_heads, ids.shape[1], ids.shape[1])
            assert np.allclose(pattern.sum(-1), 1.0, atol=1e-5) and np.allclose(np.triu(pattern, 1), 0.0)
            assert read[f"z.{layer}"].shape == (ids.shape[1], mech.layout.n_heads, mech.layout.d_head)
    assert mech.log[-1]["read"] == ["resid_post", "pattern", "z"]  # recorded


def test_a_read_does_not_depend_on_what_else_was_asked(access):
    from bench.process import invariant_threads

    mech, base, _ = access
    alone = RegionAccess(mech.handle, base)
    alone.READ_BATCH = 1
    assert len({len(ids) for ids in mech.handle.token_ids([i.prompt for i in base])}) < len(base)  # some go together
    sites = ["resid_post", "pattern", "z"]
    with invariant_threads(mech.handle.model):  # as `serve` answers
        together, one_by_one = RegionAccess(mech.handle, base).read(base, sites), alone.read(base[::-1], sites)[::-1]
    for a, b in zip(together, one_by_one):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_a_read_at_positions_is_those_rows_of_the_whole_read(access):
    mech, base, _ = access
    sites = ["resid_post", "pattern", "z"]
    whole, last = mech.read(base[:3], sites), mech.read(base[:3], sites, positions=[-1, 0])
    for a, b in zip(whole, last):
        for key, array in a.items():
            rows = array[:, [-1, 0]] if key.startswith("pattern") else array[[-1, 0]]
            assert np.array_equal(rows, b[key]), key
    assert mech.log[-1]["positions"] == [-1, 0]
    with pytest.raises(ValueError, match="positions must lie"):
        mech.read(base[:1], ["resid_post"], positions=[99])


def test_means_of_several_sites_in_one_set_of_passes_equal_each_alone(access):
    import torch

    mech, base, _ = access
    keys = [("z", 0), ("z", 1), ("mlp", 0), ("mlp", 1)]
    together = RegionAccess(mech.handle, base)._means_of(keys)
    for key in keys:
        assert torch.equal(together[key], RegionAccess(mech.handle, base)._means_of([key])[key]), key


def test_interventions_change_what_they_touch_and_nothing_else(access):
    mech, base, _ = access
    plain = mech.next_token(base[:2])
    untouched = mech.ablate(base[:2], {0: []})
    assert all(np.array_equal(a, b) for a, b in zip(plain, untouched))
    zeroed = mech.ablate(base[:2], {0: [0, 1]})
    assert not np.array_equal(zeroed[0], plain[0]) and np.isclose(zeroed[0].sum(), 1.0, atol=1e-5)
    mean = mech.ablate(base[:1], {1: [2]}, how="mean")
    assert np.isclose(mean[0].sum(), 1.0, atol=1e-5)
    mlp_mean = mech.ablate(base[:1], mlps=[0], how="mean")
    assert np.isclose(mlp_mean[0].sum(), 1.0, atol=1e-5) and not np.array_equal(mlp_mean[0], plain[0])
    assert np.array_equal(mech.patch(base[0], base[0], 0, [-1]), plain[0])  # an item patched into itself
    patched = mech.patch(base[1], base[0], len(mech.layout.blocks) - 1, [-1])
    assert np.allclose(patched, plain[1], atol=1e-6)  # the last block's last state decides the next token


def test_composition_scores_equal_brute_force_weight_products(access):
    mech, _, _ = access
    n_layers = len(mech.layout.blocks)
    full = [mech._factors(layer) for layer in range(n_layers)]
    for kind in ("k", "q", "v"):
        scores = mech.composition(kind)
        assert scores.shape == (n_layers, mech.layout.n_heads, n_layers, mech.layout.n_heads)
        wq1, wk1, wv1, wo1 = full[0]
        wq2, wk2, wv2, wo2 = full[1]
        for h1 in range(mech.layout.n_heads):
            for h2 in range(mech.layout.n_heads):
                ov1, ov2 = wo1[h1] @ wv1[h1], wo2[h2] @ wv2[h2]
                qk2 = wq2[h2].T @ wk2[h2]
                x, m = {"k": (qk2 @ ov1, qk2), "q": (ov1.T @ qk2, qk2), "v": (ov2 @ ov1, ov2)}[kind]
                expected = np.linalg.norm(x) / (np.linalg.norm(m) * np.linalg.norm(ov1))
                assert scores[0, h1, 1, h2] == pytest.approx(expected, rel=1e-6), (kind, h1, h2)
        assert np.all(scores[1, :, 0, :] == 0) and np.all(scores[:, :, 0, :] == 0)  # only earlier into later


def test_anything_but_a_base_item_is_refused(access):
    from dataclasses import replace

    mech, base, variants = access
    for request in (lambda i: mech.read([i], ["resid_post"]), lambda i: mech.ablate([i], {0: [0]}),
                    lambda i: mech.patch(base[0], i, 0, [-1]), lambda i: mech.patch(i, base[0], 0, [-1]),
                    lambda i: mech.next_token([i])):
        with pytest.raises(PermissionError, match="base items only"):
            request(variants[0])  # a variant
        with pytest.raises(PermissionError, match="base items only"):
            request(replace(base[0], prompt=variants[0].prompt))  # a base item's id on a variant's text
    with pytest.raises(ValueError, match="unknown sites"):
        mech.read(base[:1], ["logits"])


def test_a_zeroed_mlp_is_the_model_with_that_mlp_s_output_projection_zeroed(access):
    import torch

    mech, base, _ = access
    ablated = mech.ablate(base[:2], mlps=[1])
    mlp = mech.layout.blocks[1].mlp
    out = mlp.down_proj if hasattr(mlp, "down_proj") else mlp.c_proj
    kept = {k: v.clone() for k, v in out.state_dict().items()}
    try:
        with torch.no_grad():
            for v in out.parameters():
                v.zero_()
        assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(ablated, mech.next_token(base[:2])))
    finally:
        out.load_state_dict(kept)
    assert not np.allclose(ablated[0], mech.next_token(base[:1])[0], atol=1e-6)  # restored: it mattered
    assert [e for e in mech.log if "ablate" in e][-1]["mlps"] == [1]  # recorded
