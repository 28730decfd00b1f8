"""Prompt templates per task, filled with Python `str.format` fields; the template used is recorded in every
result's signature, since the prompt moves VQA scores by several points.

- textvqa / vqa: LLaVA's short-answer instruction (model_vqa_loader + eval_textvqa, also lmms-eval's default
  `post_prompt`). `{ocr}` is empty unless `--ocr`: then it is LLaVA's `--question-file ..._ocr.jsonl` line
  "\\nReference OCR token: tok1, tok2, ...".
- mmbench: LLaVA's model_vqa_mmbench with `--single-pred-prompt`: the hint line (if any), the question, one
  "A. text" line per option, then the instruction to answer with the letter.
"""

from __future__ import annotations

import string
from pathlib import Path

from vlmkit.io import InputError, read_text

SHORT_ANSWER = "Answer the question using a single word or phrase."
TEXTVQA_PROMPT = "{question}{ocr}\n" + SHORT_ANSWER
VQA_PROMPT = "{question}\n" + SHORT_ANSWER
MMBENCH_PROMPT = "{hint}{question}\n{options}\nAnswer with the option's letter from the given choices directly."
OCR_LINE = "\nReference OCR token: {tokens}"

DEFAULTS = {"textvqa": TEXTVQA_PROMPT, "vqa": VQA_PROMPT, "mmbench": MMBENCH_PROMPT}
FIELDS = {"textvqa": {"question", "ocr"}, "vqa": {"question"}, "mmbench": {"hint", "question", "options"}}


def load_template(task: str, prompt_file: str | None) -> str:
    """The task's default template, or the UTF-8 file's; a field the task cannot fill is an input error."""
    if prompt_file is None:
        return DEFAULTS[task]
    template = read_text(Path(prompt_file), "prompt file").strip("\n")
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise InputError(f"{prompt_file}: not a valid template ({exc}); write literal braces as {{{{ and }}}}"
                         ) from None
    unknown = sorted(fields - FIELDS[task])
    if unknown:
        raise InputError(f"{prompt_file}: unknown field(s) {', '.join('{' + f + '}' for f in unknown)} for --task "
                         f"{task}; available: {', '.join('{' + f + '}' for f in sorted(FIELDS[task]))}")
    if "question" not in fields:
        raise InputError(f"{prompt_file}: the template has no {{question}} field")
    return template


def ocr_line(tokens: list[str] | None) -> str:
    return OCR_LINE.format(tokens=", ".join(tokens)) if tokens is not None else ""


def options_block(options: dict[str, str]) -> str:
    return "\n".join(f"{letter}. {text}" for letter, text in options.items())
