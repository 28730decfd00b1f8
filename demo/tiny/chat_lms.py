"""Tiny random Llama-3, Gemma and Phi-3 causal LMs, each with its own chat format and BOS behaviour (hub layout).

The LLaVA composition must train a non-Qwen LM on the inputs it will see at inference, so each builder copies what
matters from the released checkpoint's tokenizer (shortened chat templates, no tools/system handling beyond what
the real ones do):

- `llama` (Llama-3.x-Instruct): header/eot turns; the template renders `{{ bos_token }}` and the tokenizer adds
  `<|begin_of_text|>` too; q/k/v/o and gate/up/down projections.
- `gemma` (Gemma-2B-it, MGM-2B's LM): `<start_of_turn>user/model` turns, BOS as Llama; q/k/v/o, gate/up/down.
- `phi3` (Phi-3-mini-instruct): `<|user|>`/`<|assistant|>` turns ending with EOS, no BOS in the template (the
  tokenizer adds `<s>`); fused `qkv_proj` and `gate_up_proj`.

Llama and Gemma templates write BOS and their tokenizers add one as well (the classic double-BOS trap); Phi-3's
template relies on the tokenizer. The tiny Llama has no pad token (as Llama 3), the others have one.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import processors
from transformers import AutoModelForCausalLM, GemmaConfig, GenerationConfig, LlamaConfig, Phi3Config

from demo.tiny.tokenizer import build_tokenizer

LLAMA3_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + "
    "'<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)

GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)

PHI3_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"
)

# name -> (special tokens, bos, eos, pad, end-of-turn token, chat template, config class, config overrides)
FAMILIES = {
    "llama": (["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
              "<|begin_of_text|>", "<|eot_id|>", None, "<|eot_id|>", LLAMA3_CHAT_TEMPLATE, LlamaConfig,
              {"tie_word_embeddings": False}),
    "gemma": (["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"],
              "<bos>", "<eos>", "<pad>", "<end_of_turn>", GEMMA_CHAT_TEMPLATE, GemmaConfig,
              {"head_dim": 8, "tie_word_embeddings": True, "hidden_activation": "gelu_pytorch_tanh"}),
    "phi3": (["<unk>", "<s>", "</s>", "<|endoftext|>", "<|assistant|>", "<|end|>", "<|user|>", "<|system|>"],
             "<s>", "<|endoftext|>", "<|endoftext|>", "<|end|>", PHI3_CHAT_TEMPLATE, Phi3Config,
             {"tie_word_embeddings": False, "original_max_position_embeddings": 2048}),
}


def build_tiny_chat_lm(out_dir: str | Path, family: str, seed: int = 0) -> Path:
    """Build and save a 2-layer, 32-wide causal LM of `family` (llama, gemma, phi3) with its tokenizer."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r} ({', '.join(FAMILIES)})")
    special, bos, eos, pad, end_of_turn, template, config_cls, overrides = FAMILIES[family]
    out_dir = Path(out_dir)
    tokenizer = build_tokenizer(special_tokens=special, chat_template=template, eos_token=eos, pad_token=pad,
                                bos_token=bos, padding_side="left")
    # The released tokenizers add BOS in their post-processor (tokenizer.json), as tokenizer(text) does here.
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokenizer.bos_token_id)])
    config = config_cls(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, initializer_range=0.1,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, **overrides)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config).eval()
    stop = [tokenizer.convert_tokens_to_ids(end_of_turn), tokenizer.eos_token_id]
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=list(dict.fromkeys(stop)),
        pad_token_id=tokenizer.pad_token_id, do_sample=False)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return out_dir
