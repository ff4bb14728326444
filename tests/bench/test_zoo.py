import json

import pytest
import torch
from safetensors.torch import load_file

from bench.errors import UserError
from bench.model.load import load_model
from bench.zoo.recipe import PRESETS, ZOO, get_preset, with_overrides
from bench.zoo.trainer import build_zoo, train


def test_tiny_preset_trains_deterministically_and_writes_its_card(tmp_path):
    recipe = get_preset("tiny")
    card = train(recipe, tmp_path / "a", progress=False, log=lambda m: None, preset="tiny")
    train(recipe, tmp_path / "b", progress=False, log=lambda m: None)
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    saved = json.loads((tmp_path / "a" / "zoo.json").read_text())
    assert saved == card
    assert saved["preset"] == "tiny" and saved["recipe"]["seed"] == 0 and saved["recipe"]["steps"] == 20
    assert saved["data_region"] == {"addition": ["digits=1", "digits=2", "digits=3"]}
    assert set(saved["base_accuracy"]["addition"]) == {"digits=1", "digits=2", "digits=3"}
    assert load_model(str(tmp_path / "a")).fingerprint == saved["fingerprint"]


def test_checkpoints_are_saved_along_training(tmp_path):
    recipe = with_overrides(get_preset("tiny"), steps=6, checkpoints=(3,), arch="llama", n_heads=2)
    train(recipe, tmp_path, progress=False, log=lambda m: None, preset="tiny")
    assert (tmp_path / "checkpoints" / "step-3" / "model.safetensors").is_file()
    checkpoint = load_model(str(tmp_path / "checkpoints" / "step-3"))
    assert checkpoint.card.positional_encoding == "rotary"
    from bench.protocol.spec import ModelSpec
    from bench.protocol.stages import default_tasks, model_name

    # A checkpoint inside a member runs on that member's suite, named after it
    assert default_tasks(checkpoint) == recipe.tasks
    assert model_name(ModelSpec(str(tmp_path / "checkpoints" / "step-3")), checkpoint) == "tiny/step-3"


def test_trainer_takes_a_user_task_file_base_region_only(tmp_path):
    rows = [{"prompt": f"{w} =", "target": w[::-1], "cell": "short", "split": "base"} for w in ("ab", "cd", "ef")]
    rows += [{"prompt": "abcdef =", "target": "fedcba", "cell": "long", "split": "variant"}]
    path = tmp_path / "rev.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = with_overrides(get_preset("tiny"), tasks=(str(path),), steps=3)
    card = train(recipe, tmp_path / "m", progress=False, log=lambda m: None)
    assert card["data_region"] == {"rev": ["short"]}


def test_zoo_members_vary_one_thing_from_the_reference():
    reference = PRESETS["zoo-l4"]
    assert len(ZOO) >= 6
    varied = {name: {k for k, v in PRESETS[name].__dict__.items() if v != reference.__dict__[k]} - {"checkpoints"}
              for name in ZOO if name != "zoo-l4"}
    assert varied["zoo-rotary"] == {"arch"} and varied["zoo-lazy"] == {"init_scale"}
    assert reference.checkpoints  # training length, through checkpoints


def test_build_skips_members_already_trained(tmp_path, monkeypatch):
    monkeypatch.setitem(PRESETS, "zoo-test", get_preset("tiny"))
    build_zoo(tmp_path, ("zoo-test",), progress=False, log=lambda m: None)
    said = []
    build_zoo(tmp_path, ("zoo-test",), progress=False, log=said.append)
    assert "already trained" in said[0]


def test_unknown_preset():
    with pytest.raises(UserError, match="unknown zoo preset"):
        get_preset("nope")


def test_the_bundled_default_model_records_its_preset_and_solves_every_family():
    from bench.model.load import DEFAULT_MODEL_PATH
    from bench.zoo.recipe import ALL_TASKS, DEFAULT_PRESET, recipe_from_dict
    from bench.zoo.trainer import base_accuracy
    from tasks import SUITES, family_names

    card = json.loads((DEFAULT_MODEL_PATH / "zoo.json").read_text())
    # `zoo train` (its default preset) rebuilds it
    assert card["preset"] == DEFAULT_PRESET and recipe_from_dict(card["recipe"]) == get_preset(DEFAULT_PRESET)
    # modular: the grokking member's alone; the pretrained suite is for pretrained models
    assert set(ALL_TASKS) == set(family_names()) - {"modular"} - set(SUITES["pretrained"])
    assert set(card["base_accuracy"]) == set(ALL_TASKS)
    # Every family's base region is learned (every base cell >= 0.95), and the variants are where
    # it fails: see the README's table.
    assert sum(len(cells) for cells in card["base_accuracy"].values()) == 15
    assert min(v for cells in card["base_accuracy"].values() for v in cells.values()) >= 0.95
    handle = load_model("default")
    assert handle.fingerprint == card["fingerprint"]
    # The card's figures are measured, and measured again here the same: 200 items per base cell.
    assert base_accuracy(handle, ALL_TASKS) == card["base_accuracy"]


@pytest.mark.parametrize("sampling", [dict(sampling="loss"), dict(sampling="error", replay=0.5), dict(sampling="error", mining=2)])
def test_a_resumed_training_ends_where_an_uninterrupted_one_does(tmp_path, sampling):
    import shutil

    recipe = with_overrides(get_preset("tiny"), tasks=("addition", "parity"), batching="by_cell", steps=12,
                            checkpoints=(6,), **sampling)
    train(recipe, tmp_path / "whole", progress=False, log=lambda m: None)
    shutil.copytree(tmp_path / "whole" / "checkpoints", tmp_path / "resumed" / "checkpoints")
    said = []
    train(recipe, tmp_path / "resumed", progress=False, log=said.append, resume=True)
    assert "resuming" in said[0] and "step 6 of 12" in said[0]
    whole, resumed = (load_file(tmp_path / k / "model.safetensors") for k in ("whole", "resumed"))
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    with pytest.raises(UserError, match="nothing to resume"):
        train(with_overrides(recipe, seed=5), tmp_path / "resumed", progress=False, log=lambda m: None, resume=True)


def test_the_warm_phase_draws_only_the_warm_tasks_then_every_task():
    from bench.zoo.sampler import BatchSampler
    from bench.zoo.trainer import training_items

    for batching in ("by_cell", "mixed"):
        recipe = with_overrides(get_preset("tiny"), tasks=("addition", "parity", "recall"), batching=batching,
                                sampling="error", warm_tasks=("recall",), warm_steps=30, steps=200)
        items = training_items(recipe)
        sampler = BatchSampler(recipe, items)
        seen = []
        for step in range(recipe.steps):
            seen.append({items[int(i)].family for i in sampler.draw(step)})
            if sampler.adaptive:
                sampler.update(0.5)
        assert set().union(*seen[:30]) == {"recall"}, batching
        assert set().union(*seen[30:]) == {"addition", "parity", "recall"}, batching


def test_a_warm_phase_keeps_to_the_tasks_a_recipe_still_has():
    suite = get_preset("suite")
    assert suite.warm_tasks and set(suite.warm_tasks) <= set(suite.tasks)
    kept = with_overrides(suite, tasks=("recall", "addition"))
    assert kept.warm_tasks == ("recall",) and kept.warm_steps == suite.warm_steps
    none_left = with_overrides(suite, tasks=("addition",))
    assert none_left.warm_tasks == () and none_left.warm_steps == 0
    with pytest.raises(UserError, match="warm_tasks"):
        from bench.zoo.sampler import BatchSampler
        from bench.zoo.trainer import training_items

        bad = with_overrides(get_preset("tiny"), warm_tasks=("parity",), warm_steps=5)
        BatchSampler(bad, training_items(bad))


def test_error_sampling_reads_the_chance_of_missing_the_whole_answer():
    from bench.zoo.sampler import missed_rows

    # Two answers of three tokens (one padded to two): each scored token has probability 0.9,
    # so P(answer) = 0.9**3 and 0.9**2, and the failure chances are 1 - those.
    vocab, p = 4, 0.9
    logits = torch.full((2, 4, vocab), 0.0)
    labels = torch.tensor([[-100, 1, 2, 3], [-100, 1, 2, -100]])
    for row in range(2):
        for pos in range(3):
            target = int(labels[row, pos + 1])
            if target >= 0:  # softmax giving the target p and the rest (1 - p) / 3
                logits[row, pos] = torch.log(torch.full((vocab,), (1 - p) / 3))
                logits[row, pos, target] = torch.log(torch.tensor(p))
    assert missed_rows(logits, labels).tolist() == pytest.approx([1 - p ** 3, 1 - p ** 2], rel=1e-5)


def test_continued_training_starts_from_the_parent_presets_weights(tmp_path, monkeypatch):
    from bench.model.load import load_model as load

    monkeypatch.setitem(PRESETS, "parent-test", with_overrides(get_preset("tiny"), steps=10))
    child = with_overrides(get_preset("tiny"), steps=4, lr=1e-9, warmup=1, init_from="parent-test")
    said = []
    card = train(child, tmp_path / "child", progress=False, log=said.append)
    parent = tmp_path / "child" / "init" / "parent-test"
    assert card["init"]["preset"] == "parent-test"
    assert card["init"]["fingerprint"] == json.loads((parent / "zoo.json").read_text())["fingerprint"]
    # At a learning rate of 1e-9 four steps move nothing that matters: the child still is the parent.
    a, b = load_file(parent / "model.safetensors"), load_file(tmp_path / "child" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    train(child, tmp_path / "child", progress=False, log=said.append)  # the parent is reused, not retrained
    assert any("already trained to preset 'parent-test'" in line for line in said)
    with pytest.raises(UserError, match="d_model differ"):
        train(with_overrides(child, d_model=64), tmp_path / "other", progress=False, log=lambda m: None)
    assert load(str(tmp_path / "child")).card.n_layers == 1


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("grow_at,init", [(0, "copy"), (1, "random"), (2, "copy")])
def test_a_grown_model_computes_what_its_parent_did(tmp_path, arch, grow_at, init):
    from bench.zoo.tokenizer import build_tokenizer
    from bench.zoo.trainer import _grow, _save, build_model

    tokenizer = build_tokenizer()
    special = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                   pad_token_id=tokenizer.pad_token_id)
    recipe = with_overrides(get_preset("tiny"), arch=arch, n_layers=2)
    torch.manual_seed(0)
    parent = build_model(recipe, len(tokenizer), special).eval()
    _save(parent, tokenizer, tmp_path)
    child = build_model(with_overrides(recipe, n_layers=4), len(tokenizer), special).eval()
    _grow(child, tmp_path, 2, grow_at, init)
    ids = torch.randint(5, len(tokenizer), (3, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(parent(ids).logits, child(ids).logits, atol=1e-5)
    layers = (lambda m: m.model.layers) if arch == "llama" else (lambda m: m.transformer.h)
    outputs = ("self_attn.o_proj.", "mlp.down_proj.") if arch == "llama" else ("attn.c_proj.", "mlp.c_proj.")
    old = [block.state_dict() for block in layers(parent)]
    source = old[min(grow_at, 1)]  # a copy of the layer it is inserted before, or of the top one
    for i, block in enumerate(layers(child)):
        new = block.state_dict()
        assert new.keys() == old[0].keys()
        if i in (grow_at, grow_at + 1):  # an inserted layer: zero at its outputs
            assert all(not new[k].any() for k in new if k.startswith(outputs))
            query = "self_attn.q_proj.weight" if arch == "llama" else "attn.c_attn.weight"
            assert torch.equal(new[query], source[query]) == (init == "copy")
            if init == "copy":
                assert all(torch.equal(new[k], source[k]) for k in new if not k.startswith(outputs))
        else:  # a saved layer, in its order
            assert all(torch.equal(new[k], old[i - 2 if i > grow_at else i][k]) for k in new)


def test_growth_takes_more_layers_only(tmp_path, monkeypatch):
    monkeypatch.setitem(PRESETS, "parent-test", with_overrides(get_preset("tiny"), steps=2, n_layers=2))
    child = with_overrides(get_preset("tiny"), steps=2, init_from="parent-test")  # 1 layer: fewer
    with pytest.raises(UserError, match="grow, not shrink"):
        train(child, tmp_path / "child", progress=False, log=lambda m: None)
    with pytest.raises(UserError, match="grow_init"):
        train(with_overrides(child, n_layers=3, grow_init="zero"), tmp_path / "child", progress=False, log=lambda m: None)
    with pytest.raises(UserError, match="grow_at"):
        train(with_overrides(child, n_layers=3, grow_at=3), tmp_path / "child", progress=False, log=lambda m: None)
    said = []
    card = train(with_overrides(child, n_layers=3, grow_at=2), tmp_path / "child", progress=False, log=said.append)
    assert any("grown from 2 to 3 layers" in line for line in said) and card["recipe"]["n_layers"] == 3


def test_training_rows_hold_prompt_answer_and_eos_and_score_the_answer_only():
    from bench.zoo.tokenizer import build_tokenizer
    from bench.zoo.trainer import _encode
    from tasks import get_family

    tokenizer = build_tokenizer()
    items = get_family("recall").generate("pairs=2", 3, seed=0) + get_family("compose").generate("depth=2", 3, seed=0)
    ids, labels, mask = _encode(tokenizer, items)
    assert ids.shape == labels.shape == mask.shape
    for row, item in enumerate(items):
        prompt = tokenizer(item.prompt)["input_ids"]
        answer = tokenizer(item.target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        n = len(prompt) + len(answer)
        assert ids[row, :n].tolist() == prompt + answer
        assert set(ids[row, n:].tolist()) <= {tokenizer.pad_token_id}
        assert mask[row].tolist() == [1] * n + [0] * (ids.shape[1] - n)
        assert labels[row].tolist() == [-100] * len(prompt) + answer + [-100] * (ids.shape[1] - n)
    assert ids.shape[1] == max(int(m.sum()) for m in mask)


def test_replay_draws_a_share_of_each_batch_from_the_items_last_missed():
    from bench.zoo.sampler import BatchSampler
    from bench.zoo.trainer import training_items

    recipe = with_overrides(get_preset("tiny"), batching="mixed", replay=0.5, batch_size=8)
    items = training_items(recipe)
    plain = BatchSampler(with_overrides(recipe, replay=0.0), items)
    sampler = BatchSampler(recipe, items)
    first = sampler.draw(0)
    assert torch.equal(first, plain.draw(0))  # nothing missed yet: the usual draw
    sampler.remember(first, torch.tensor([0.9, 0.1, 0.8, 0.0, 0.0, 0.2, 0.3, 0.4]))
    missed = {int(first[0]), int(first[2])}
    second = sampler.draw(1)
    assert len(second) == 8 and {int(i) for i in second[4:]} <= missed  # half replays the misses
    sampler.remember(torch.tensor([int(first[0]), int(first[2])]), torch.tensor([0.1, 0.7]))  # one now right
    assert sampler.failed[0].tolist() == [int(first[2])]
    sampler.remember(torch.tensor([int(first[2])]), torch.tensor([0.2]))
    assert len(sampler.failed[0]) == 0 and len(sampler.draw(2)) == 8
    with pytest.raises(UserError, match="replay"):
        BatchSampler(with_overrides(recipe, replay=1.0), items)


def test_mining_trains_on_the_candidates_likeliest_to_be_missed():
    from bench.zoo.sampler import BatchSampler
    from bench.zoo.trainer import training_items

    recipe = with_overrides(get_preset("tiny"), batching="mixed", mining=3, batch_size=4)
    items = training_items(recipe)
    seen = []

    def score(candidates):  # a stand-in model: misses the items with the largest index
        seen.append(candidates)
        return candidates.float() / len(items)

    batch = BatchSampler(recipe, items).draw(0, score)
    candidates = seen[0]
    assert len(candidates) == 12 and len(batch) == 4
    assert batch.tolist() == sorted(candidates.tolist(), reverse=True)[:4]
    again = BatchSampler(recipe, items)
    assert torch.equal(again.draw(0, score), batch)  # seeded: the same candidates, the same batch
    assert again.signal == pytest.approx(float(score(candidates).mean()))  # the candidates' failure, not the batch's
    plain = BatchSampler(recipe, items).draw(0)  # no scorer (as without mining): an ordinary batch
    assert len(plain) == 4 and plain.tolist() == candidates[:4].tolist()
    with pytest.raises(UserError, match="mining"):
        BatchSampler(with_overrides(recipe, mining=0), items)


def test_zoo_list_marks_the_default_models_preset_and_zoo_train_defaults_to_it(capsys):
    from bench.cli import build_parser, main
    from bench.zoo.recipe import DEFAULT_PRESET

    assert main(["zoo", "list"]) == 0
    *rows, footnote = capsys.readouterr().out.splitlines()
    assert footnote.startswith("* the bundled default model")
    assert [row.split()[0] for row in rows] == [name + "*" * (name == DEFAULT_PRESET) for name in PRESETS]
    assert build_parser().parse_args(["zoo", "train", "--out", "x"]).preset == DEFAULT_PRESET


def test_loading_saved_weights_into_a_different_model_is_refused(tmp_path):
    from bench.zoo.tokenizer import build_tokenizer
    from bench.zoo.trainer import _load_weights, _save, build_model

    tokenizer = build_tokenizer()
    special = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                   pad_token_id=tokenizer.pad_token_id)
    recipe = with_overrides(get_preset("tiny"), arch="llama", n_layers=2)
    _save(build_model(recipe, len(tokenizer), special), tokenizer, tmp_path)
    same = build_model(recipe, len(tokenizer), special)
    _load_weights(same, tmp_path)  # the tied head is the one weight a save may leave out
    assert torch.equal(same.lm_head.weight, same.model.embed_tokens.weight)
    with pytest.raises(UserError, match="do not fit"):
        _load_weights(build_model(with_overrides(recipe, n_layers=3), len(tokenizer), special), tmp_path)
