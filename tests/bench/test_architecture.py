"""Architecture cards of tiny random-config models of each family, saved and loaded by path."""
import pytest

from bench.model.load import load_model
from bench.zoo.tokenizer import build_tokenizer


def _save(kind, folder):
    import torch
    from transformers import (GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig,
                              LlamaForCausalLM, MistralConfig, MistralForCausalLM, OPTConfig, OPTForCausalLM,
                              Qwen2Config, Qwen2ForCausalLM)

    tok = build_tokenizer()
    common = dict(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                  pad_token_id=tok.pad_token_id)
    llama_like = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=96, **common)
    torch.manual_seed(0)
    model = {
        "gpt2": lambda: GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=3, n_head=4, n_positions=96, **common)),
        "llama": lambda: LlamaForCausalLM(LlamaConfig(**llama_like)),
        "mistral": lambda: MistralForCausalLM(MistralConfig(**llama_like)),
        "qwen2": lambda: Qwen2ForCausalLM(Qwen2Config(**llama_like)),
        "gpt_neox": lambda: GPTNeoXForCausalLM(GPTNeoXConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                                             num_attention_heads=4, max_position_embeddings=96, **common)),
        "opt": lambda: OPTForCausalLM(OPTConfig(hidden_size=32, ffn_dim=64, num_hidden_layers=3, num_attention_heads=4,
                                                word_embed_proj_dim=32, max_position_embeddings=96, **common)),
    }[kind]()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind, positions", [("gpt2", "learned"), ("llama", "rotary"), ("mistral", "rotary"),
                                             ("qwen2", "rotary"), ("gpt_neox", "rotary"), ("opt", "learned")])
def test_card_fields_for_each_architecture(kind, positions, tmp_path):
    handle = load_model(str(_save(kind, tmp_path)))
    card = handle.card
    assert card.model_type == kind
    assert (card.n_layers, card.d_model, card.n_heads) == (3, 32, 4)
    assert card.positional_encoding == positions
    assert card.context_length == 96
    assert card.n_parameters == sum(p.numel() for p in handle.model.parameters())
    assert card.tokenizer["number_pieces"] == list("1234567")
    assert card.tokenizer["adds_bos"] is True


def test_tokenizer_facts_see_multi_digit_tokens(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    corpus = [f"{i} walk {i * 7} run" for i in range(2000)]
    core.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<eos>"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", eos_token="<eos>")
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=16, n_layer=1, n_head=2)).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    facts = load_model(str(tmp_path)).card.tokenizer
    assert facts["digits_per_token"] > 1 and facts["single_digit_tokens"] is False
    assert facts["space_merges_into_word"] is True


def test_positional_scheme_of_configs_the_type_table_does_not_name():
    from types import SimpleNamespace

    from bench.model.card import positional_encoding

    gemma3 = SimpleNamespace(model_type="gemma3_text", rope_theta=1_000_000.0)
    assert positional_encoding(gemma3) == "rotary"
    new_rope = SimpleNamespace(model_type="someday_lm", rope_parameters={"rope_type": "default"})
    assert positional_encoding(new_rope) == "rotary"
    wrapped = SimpleNamespace(model_type="someday_vlm", text_config=SimpleNamespace(model_type="someday_lm",
                                                                                   rope_theta=10_000.0))
    assert positional_encoding(wrapped) == "rotary"
    assert positional_encoding(SimpleNamespace(model_type="bert_like", position_embedding_type="absolute")) == "learned"
    assert positional_encoding(SimpleNamespace(model_type="someday_lm")) == "unknown"
