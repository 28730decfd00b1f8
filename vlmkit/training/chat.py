"""The chat format of a composed LLaVA: the language model's own chat template, taught to render images.

A LLaVA processor renders conversations whose user turns are lists of `{"type": "image"}` / `{"type": "text"}`
items, while a text LM's template (Llama 3, Gemma, Phi-3, Qwen) expects each `message['content']` to be a string.
Instead of replacing the LM's format with a generic one (the model would then be fine-tuned on a format it never
saw), `lm_chat_template` puts a short Jinja preamble in front of the LM's own template that flattens each list
into a string, one `<image>` line per image followed by the text, exactly as LLaVA does, and then lets the LM's
template render the turns (its BOS, turn markers and end-of-turn token included).

Documented fallback for an LM without a chat template: ChatML (`<|im_start|>`/`<|im_end|>`) when the tokenizer has
those tokens, else LLaVA-1.5's plain `USER: ... ASSISTANT: ...` format whose answers end with EOS. The BOS token is
never written by these templates: tokenising adds it when the tokenizer does (see `add_special_tokens_for` in
`vlmkit.generation.hf_backend`, the one rule training and inference share).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

IMAGE_TOKEN = "<image>"

# No literal text between the tags, so the preamble itself renders nothing and the LM's template starts at its own
# first character. A top-level `set` rebinds `messages` for the rest of the template.
STRUCTURED_CONTENT_PREAMBLE = (
    "{% set _vlmkit = namespace(messages=[]) %}"
    "{% for _m in messages %}"
    "{% if _m['content'] is string %}{% set _vlmkit.messages = _vlmkit.messages + [_m] %}"
    "{% else %}{% set _text = namespace(value='') %}"
    "{% for _item in _m['content'] %}"
    "{% if _item['type'] == 'image' %}{% set _text.value = _text.value + '" + IMAGE_TOKEN + "\\n' %}"
    "{% elif _item['type'] == 'text' %}{% set _text.value = _text.value + _item['text'] %}{% endif %}"
    "{% endfor %}"
    "{% set _vlmkit.messages = _vlmkit.messages + [{'role': _m['role'], 'content': _text.value}] %}"
    "{% endif %}{% endfor %}"
    "{% set messages = _vlmkit.messages %}"
)

# ChatML (the Qwen chat format) with `{"type": "image"}` content items rendered as the image token. No default
# system prompt: every token of a caption prompt costs memory next to hundreds of image tokens.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}" + IMAGE_TOKEN + "\n"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# For LMs without a template or ChatML tokens: LLaVA-1.5's plain "USER: ... ASSISTANT: ..." format, answers end
# with EOS.
PLAIN_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}ASSISTANT: {% elif message['role'] == 'user' %}USER: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}" + IMAGE_TOKEN + "\n"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT: {% endif %}"
)

PROBE_ANSWER = "VLMKIT_PROBE_ANSWER"


def _probe(n_images: int = 2) -> list[dict]:
    content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": "Describe."}]
    return [{"role": "user", "content": content},
            {"role": "assistant", "content": [{"type": "text", "text": PROBE_ANSWER}]}]


def render(tokenizer, template: str, messages: list[dict], **kwargs) -> str:
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False, **kwargs)


def lm_chat_template(tokenizer) -> tuple[str, str]:
    """(template, source): the LM's own template made image-aware (`lm`), else `chatml` or `plain`."""
    own = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    if own:
        wrapped = STRUCTURED_CONTENT_PREAMBLE + own
        try:
            text = render(tokenizer, wrapped, _probe(2))
        except Exception as exc:  # noqa: BLE001 - any template error means: this template cannot be wrapped
            log.warning("the LM's chat template cannot render image turns (%s); using the fallback format",
                        str(exc).splitlines()[0][:200])
        else:
            if text.count(IMAGE_TOKEN) == 2 and PROBE_ANSWER in text:
                return wrapped, "lm"
            log.warning("the LM's chat template drops image or answer content; using the fallback format")
    vocab = tokenizer.get_vocab()
    if "<|im_start|>" in vocab and "<|im_end|>" in vocab:
        return CHATML_TEMPLATE, "chatml"
    return PLAIN_TEMPLATE, "plain"


def end_of_turn_ids(tokenizer, template: str) -> list[int]:
    """Token ids that end an answer: the special token the template writes right after it (`<|eot_id|>`,
    `<end_of_turn>`, `<|end|>`, `<|im_end|>`), and the tokenizer's EOS. Read from a rendered probe, so any
    template works without a per-model table."""
    ids: list[int] = []
    text = render(tokenizer, template, _probe(0))
    suffix = text.split(PROBE_ANSWER, 1)[1] if PROBE_ANSWER in text else ""
    after = tokenizer(suffix, add_special_tokens=False)["input_ids"] if suffix.strip() else []
    if after and after[0] in tokenizer.added_tokens_decoder:
        ids.append(after[0])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids
