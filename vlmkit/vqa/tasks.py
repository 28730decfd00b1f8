"""The three question sets: TextVQA annotations, MMBench TSV (images inline as base64), generic VQA JSONL.

Each loader validates the whole file before anything expensive and returns the questions in file order (the order
chunks are cut from). A wrong schema, a question without answers, a duplicated id or a missing image file is one
`InputError` line naming the file and the item.

- textvqa: `TextVQA_0.5.1_val.json` = `{"data": [{"question_id", "question", "image_id", "answers": [10 x str]}]}`;
  the image is `<image_dir>/<image_id>.jpg` (the val images ship in `train_images/`). With `--ocr`, OCR tokens come
  from each entry's `ocr_tokens` or from `--ocr_file` (`TextVQA_Rosetta_OCR_v0.2_val.json`: `{"data": [{"image_id",
  "ocr_tokens"}]}`).
- mmbench: VLMEvalKit / OpenCompass TSV with `index, question, hint, A, B, C, D, answer, category, l2-category,
  image`; `image` is base64, or (VLMEvalKit's space saving for rotated copies) the `index` of the row whose image it
  shares; an `image_path` column (relative to `--image_dir`, default the TSV's folder) works too. An empty cell is a
  missing option or hint. `--limit N` keeps the first N questions with all their rotations.
- vqa: JSONL lines `{"question_id", "image", "question", "answers": [...]}` (+ optional `question_type`); `image` is
  relative to `--image_dir` (default: the JSONL's folder).
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmkit.io import InputError, iter_jsonl, quote, read_json
from vlmkit.vqa import prompts
from vlmkit.vqa.mmbench_scoring import OPTION_LETTERS, group_index

TASKS = ("textvqa", "mmbench", "vqa")
MAX_REFERENCE_LEN = 64  # VLMEvalKit: an `image` cell this short is the index of the row holding the image

# First words that name a question type (VQA v2's types are such prefixes); longer prefixes first.
QUESTION_TYPE_PREFIXES = (
    "how many", "what color", "what colour", "what brand", "what number", "what time", "what year",
    "what is the name", "what is written", "what does", "what is", "what are", "what", "which", "who", "whose",
    "where", "when", "why", "how", "is", "are", "does", "do", "can", "was", "will", "has",
)


@dataclass(frozen=True)
class Question:
    """One model input. `answers`: the human answers (textvqa/vqa) or the answer letter (mmbench)."""

    qid: str  # the key: str(question_id), so 17 and "17" in a predictions file are the same question
    question_id: Any  # as written in the dataset
    question: str
    prompt: str
    answers: tuple[str, ...]
    question_type: str
    image_path: Path | None = None
    image_b64: str | None = field(default=None, repr=False)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskData:
    task: str
    source: Path
    sha256: str
    questions: list[Question]
    options: dict[str, Any]  # load_task's keyword arguments, paths resolved (recorded; --merge reloads with them)
    template: str

    def by_id(self) -> dict[str, Question]:
        return {q.qid: q for q in self.questions}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def question_type(question: str) -> str:
    """The first words of the question that name its type ("how many", "what brand", "is", ...), else "other"."""
    text = " ".join(re.sub(r"[^\w\s']", " ", question.lower()).split()).replace("what's", "what is")
    for prefix in QUESTION_TYPE_PREFIXES:
        if text == prefix or text.startswith(prefix + " "):
            return prefix
    return "other"


def _need(entry: Any, keys: Iterable[str], where: str, schema: str) -> None:
    if not isinstance(entry, dict):
        raise InputError(f"{where}: not an object ({schema})")
    for key in keys:
        if key not in entry:
            raise InputError(f"{where}: missing '{key}' ({schema})")


def _question_text(entry: dict, where: str) -> str:
    """The question must be text: a number or a list would be turned into a prompt silently (`str(42)`)."""
    text = entry["question"]
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{where}: 'question' must be a non-empty string, got {quote(text, 60)}")
    return text


def _answers(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise InputError(f"{where}: no answers (a test split? scoring needs the human answers)")
    if not all(isinstance(a, str) for a in value):
        raise InputError(f"{where}: answers must be a list of strings")
    return tuple(value)


def _unique(questions: list[Question], path: Path) -> None:
    seen: set[str] = set()
    for q in questions:
        if q.qid in seen:
            raise InputError(f"{path}: question {q.question_id}: duplicated question_id")
        seen.add(q.qid)


def _ocr_tokens_file(path: str | os.PathLike) -> dict[str, list[str]]:
    data = read_json(path)
    rows = data.get("data") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise InputError(f"{path}: not an OCR file (expected {{'data': [{{'image_id', 'ocr_tokens'}}]}})")
    out = {}
    for i, row in enumerate(rows):
        _need(row, ("image_id", "ocr_tokens"), f"{path}: item {i}", "OCR entries have image_id and ocr_tokens")
        out[str(row["image_id"])] = [str(t) for t in row["ocr_tokens"]]
    return out


def load_textvqa(annotations: str | os.PathLike, image_dir: str | os.PathLike | None, template: str, *,
                 ocr: bool = False, ocr_file: str | None = None, limit: int | None = None) -> list[Question]:
    path = Path(annotations)
    data = read_json(path)
    schema = "TextVQA entries have question_id, question, image_id, answers"
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise InputError(f"{path}: not a TextVQA annotation file (expected {{'data': [...]}}; {schema})")
    ocr_by_image = _ocr_tokens_file(ocr_file) if ocr and ocr_file else None
    image_root = Path(image_dir) if image_dir else path.parent
    questions = []
    for i, entry in enumerate(entries[:limit] if limit else entries):
        where = f"{path}: item {i}"
        _need(entry, ("question_id", "question", "image_id"), where, schema)
        where = f"{path}: question {entry['question_id']}"
        answers = _answers(entry.get("answers"), where)
        text = _question_text(entry, where)
        tokens = None
        if ocr:
            tokens = entry.get("ocr_tokens") if ocr_by_image is None else ocr_by_image.get(str(entry["image_id"]))
            if tokens is None:
                raise InputError(f"{where}: no OCR tokens for image {entry['image_id']} (--ocr needs each entry's "
                                 f"ocr_tokens or an --ocr_file that covers every image)")
        questions.append(Question(
            qid=str(entry["question_id"]), question_id=entry["question_id"], question=text,
            prompt=template.format(question=text, ocr=prompts.ocr_line(tokens)), answers=answers,
            question_type=question_type(text), image_path=image_root / f"{entry['image_id']}.jpg"))
    return questions


def load_vqa_jsonl(questions_file: str | os.PathLike, image_dir: str | os.PathLike | None, template: str, *,
                   limit: int | None = None) -> list[Question]:
    path = Path(questions_file)
    image_root = Path(image_dir) if image_dir else path.parent
    schema = "each line is {\"question_id\", \"image\", \"question\", \"answers\": [...]}"
    questions = []
    for lineno, entry in iter_jsonl(path):
        if limit and len(questions) >= limit:
            break
        _need(entry, ("question_id", "image", "question"), f"{path}: line {lineno}", schema)
        where = f"{path}: question {entry['question_id']}"
        text = _question_text(entry, where)
        qtype = entry.get("question_type") or question_type(text)
        questions.append(Question(
            qid=str(entry["question_id"]), question_id=entry["question_id"], question=text,
            prompt=template.format(question=text), answers=_answers(entry.get("answers"), where),
            question_type=str(qtype), image_path=image_root / str(entry["image"])))
    if not questions:
        raise InputError(f"{path}: no questions")
    return questions


def _read_tsv(path: Path) -> list[dict[str, str]]:
    csv.field_size_limit(sys.maxsize)  # base64 images are far longer than csv's 128 KiB default
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read the TSV ({exc})") from None
    return rows


def load_mmbench(tsv: str | os.PathLike, image_dir: str | os.PathLike | None, template: str, *,
                 limit: int | None = None) -> list[Question]:
    path = Path(tsv)
    rows = _read_tsv(path)
    schema = "MMBench TSV columns: index, question, A, B, ..., answer, image (base64) or image_path"
    if not rows:
        raise InputError(f"{path}: no rows ({schema})")
    columns = set(rows[0])
    for key in ("index", "question", "answer", "A", "B"):
        if key not in columns:
            raise InputError(f"{path}: missing column '{key}' ({schema})")
    if "image" not in columns and "image_path" not in columns:
        raise InputError(f"{path}: missing column 'image' or 'image_path' ({schema})")
    image_root = Path(image_dir) if image_dir else path.parent
    by_index: dict[int, dict[str, str]] = {}
    for lineno, row in enumerate(rows, start=2):
        try:
            index = int(row["index"])
        except (TypeError, ValueError):
            raise InputError(f"{path}: line {lineno}: index {row['index']!r} is not an integer") from None
        if index in by_index:
            raise InputError(f"{path}: question {index}: duplicated index")
        by_index[index] = row
    groups = [i for i in by_index if group_index(i) == i]
    for index in by_index:
        if group_index(index) not in by_index:
            raise InputError(f"{path}: question {index}: rotation of question {group_index(index)}, which is not in "
                             f"the file")
    kept = set(groups[:limit] if limit else groups)
    questions = []
    for index, row in by_index.items():
        if group_index(index) not in kept:
            continue
        where = f"{path}: question {index}"
        options = {c: row[c].strip() for c in OPTION_LETTERS if (row.get(c) or "").strip()}
        answer = (row.get("answer") or "").strip()
        if not answer:
            raise InputError(f"{where}: no answer (a test split? scoring needs the answer letter)")
        if answer not in options:
            raise InputError(f"{where}: answer {answer!r} is not one of the options {', '.join(options)}")
        image_b64, image_path = _mmbench_image(row, by_index, image_root, where)
        hint = (row.get("hint") or "").strip()
        question = row["question"].strip()
        prompt = template.format(hint=f"{hint}\n" if hint else "", question=question,
                                 options=prompts.options_block(options))
        questions.append(Question(
            qid=str(index), question_id=index, question=question, prompt=prompt, answers=(answer,),
            question_type=row.get("category") or "other", image_path=image_path, image_b64=image_b64,
            meta={"group": group_index(index), "options": options, "category": row.get("category") or None,
                  "l2_category": row.get("l2-category") or None}))
    return questions


def _mmbench_image(row: dict[str, str], by_index: dict[int, dict[str, str]], image_root: Path,
                   where: str) -> tuple[str | None, Path | None]:
    cell = (row.get("image") or "").strip()
    if cell:
        if len(cell) <= MAX_REFERENCE_LEN:
            target = by_index.get(int(cell)) if cell.isdigit() else None
            source = (target.get("image") or "").strip() if target else ""
            if len(source) <= MAX_REFERENCE_LEN:
                raise InputError(f"{where}: image {cell!r} is neither base64 nor the index of a row with an image")
            return source, None
        return cell, None
    if (row.get("image_path") or "").strip():
        return None, image_root / row["image_path"].strip()
    raise InputError(f"{where}: no image (empty image and image_path cells)")


def decode_base64_image(data: str, label: str):
    """An RGB PIL image from a base64 cell, under the same policy as image files (`vlmkit.images`)."""
    from vlmkit.images import ImageProblem, open_rgb_bytes

    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise ImageProblem(label, "unreadable", f"bad base64: {exc}") from None
    return open_rgb_bytes(raw, label)


def load_task(task: str, *, annotations: str | None = None, tsv: str | None = None, questions: str | None = None,
              image_dir: str | None = None, ocr: bool = False, ocr_file: str | None = None, limit: int | None = None,
              prompt_file: str | None = None) -> TaskData:
    """Validate and load one question set (see the module docstring for the three formats)."""
    if task not in TASKS:
        raise InputError(f"--task {task}: choose one of {', '.join(TASKS)}")
    if limit is not None and limit < 1:
        raise InputError(f"--limit {limit}: must be at least 1")
    need = {"textvqa": ("--annotations", annotations), "mmbench": ("--tsv", tsv), "vqa": ("--questions", questions)}
    flag, source = need[task]
    if not source:
        raise InputError(f"--task {task} needs {flag}")
    if ocr_file and not ocr:
        raise InputError(f"--ocr_file {ocr_file}: pass --ocr too (the OCR line is off by default)")
    if ocr and task != "textvqa":
        raise InputError(f"--ocr: only for --task textvqa (got {task})")
    template = prompts.load_template(task, prompt_file)
    if ocr and "{ocr}" not in template:
        raise InputError(f"--ocr: the prompt template {prompt_file} has no {{ocr}} field for the OCR tokens")
    if task == "textvqa":
        items = load_textvqa(source, image_dir, template, ocr=ocr, ocr_file=ocr_file, limit=limit)
    elif task == "mmbench":
        items = load_mmbench(source, image_dir, template, limit=limit)
    else:
        items = load_vqa_jsonl(source, image_dir, template, limit=limit)
    path = Path(source)
    if not items:
        raise InputError(f"{path}: no questions")
    _unique(items, path)
    def resolved(value: str | None) -> str | None:
        return str(Path(value).resolve()) if value else None

    options = {"task": task, "annotations": resolved(annotations), "tsv": resolved(tsv),
               "questions": resolved(questions), "image_dir": resolved(image_dir), "ocr": ocr,
               "ocr_file": resolved(ocr_file), "limit": limit, "prompt_file": resolved(prompt_file)}
    return TaskData(task, path, file_sha256(path), items, options, template)


def check_images_exist(data: TaskData) -> None:
    """Every image file named by the questions exists (inline images are decoded when used)."""
    missing = [q for q in data.questions if q.image_path is not None and not q.image_path.is_file()]
    if missing:
        first = missing[0]
        raise InputError(f"{first.image_path}: question {first.question_id}: image not found ({len(missing)} of "
                         f"{len(data.questions)} images missing; is --image_dir right?)")
