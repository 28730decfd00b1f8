"""Real-size random models: the published architectures (`vlmkit.model_configs`), random weights, generated tokenizers.

Speed and memory do not depend on the values of the weights, so a model built from the published config with random
weights costs what the released checkpoint costs. No weights can be downloaded here; configs are public facts. Each
preset below writes the numbers of the hub repo's `config.json` (source named per preset) into a transformers config,
and states the published parameter count with where it comes from; `count_params` builds the model on the meta
device (no memory, no time) so a test checks the counts without building anything.

    python -m demo.tiny OUT --models clip-vit-base-patch32 --size real [--dtype bfloat16] [--count_only]

The folders are normal local model folders (config, safetensors, tokenizer/processor; sentence-transformers layout for
the two text encoders). Tokenizers are generated with exactly the config's vocabulary size (a small locally trained
BPE padded with unreachable filler entries): the real vocabulary is not needed for costs, its size is (embedding and
logit matrices). Special-token ids therefore differ from the released tokenizers; the configs' token ids follow the
generated tokenizer.
"""

from __future__ import annotations

import json

from vlmkit.model_configs import _instantiate, preset_config


def build_model(name: str, dtype: str = "float32", seed: int = 0, device: str = "cpu"):
    """The preset's model (or "VISION+LM" composition) with random weights in `dtype`, in memory on `device`.

    The model is created without transformers' weight initialisation (slow at billions of parameters) and every
    parameter is then drawn from N(0, 0.02) (norm weights 1, biases 0), seeded: the costs are the real model's.
    """
    import torch
    from transformers.initialization import no_init_weights

    torch_dtype = getattr(torch, dtype)
    config = preset_config(name)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype)
    try:
        with no_init_weights(), torch.device(device):
            model = _instantiate(name, config)
    finally:
        torch.set_default_dtype(previous)
    # no_init_weights also skips the tying of the output head to the input embeddings (transformers 5): without
    # this a tied model (Qwen3-0.6B, Qwen2.5-VL-3B, ...) carried a second vocab x hidden matrix (0.58 GiB in fp32
    # for Qwen3-0.6B), which the released checkpoints do not, and which the first training peaks included
    model.tie_weights()
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if p.ndim == 1:
                p.fill_(1.0 if pname.endswith("weight") and "norm" in pname.lower() else 0.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32, device=device).mul_(0.02))
    return model.to(torch_dtype).eval()


def padded_tokenizer(base, size: int):
    """`base` (a fast tokenizer) with unreachable filler entries appended to its model vocabulary up to `size`."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    data = json.loads(base.backend_tokenizer.to_str())
    vocab = data["model"]["vocab"]
    if len(base) > size:
        raise ValueError(f"base tokenizer has {len(base)} entries, more than {size}")
    next_id = max(max(vocab.values()), max((t["id"] for t in data.get("added_tokens", [])), default=-1)) + 1
    while next_id < size:
        vocab[f"<|filler_{next_id}|>"] = next_id
        next_id += 1
    specials = base.special_tokens_map
    kwargs = {k: v for k, v in specials.items() if k != "additional_special_tokens"}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(data)), padding_side="left",
                                  additional_special_tokens=specials.get("additional_special_tokens", []), **kwargs)
    tok.chat_template = base.chat_template
    return tok
