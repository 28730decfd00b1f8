"""The captioning and VQA commands' boundary: each entry script parses into its options dataclass, every setting is
declared once (a bad range is one `error:` line, exit 2, from that declaration), and a report's settings keep the
flags' names."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import caption  # noqa: E402
import compare_vqa  # noqa: E402
import eval_vqa  # noqa: E402
import internvl  # noqa: E402
import qwen  # noqa: E402
from vlmkit.cli import run_main  # noqa: E402
from vlmkit.generation.captioning import CaptionOptions  # noqa: E402
from vlmkit.generation.model_setup import ModelOptions  # noqa: E402
from vlmkit.generation.sampling import GenerationSettings  # noqa: E402
from vlmkit.io import InputError  # noqa: E402
from vlmkit.options import as_settings, opt, options_from, parse_options  # noqa: E402
from vlmkit.vqa.compare_runs import CompareVqaOptions  # noqa: E402
from vlmkit.vqa.evaluate import VqaOptions  # noqa: E402

OUT = ["--output_dir", "out"]
SCRIPTS = {  # script -> (its options class, the smallest valid command line)
    "qwen": (qwen, qwen.QwenOptions, []),
    "internvl": (internvl, internvl.InternVLOptions, []),
    "caption": (caption, CaptionOptions, []),
    "eval_vqa": (eval_vqa, VqaOptions, OUT),
    "compare_vqa": (compare_vqa, CompareVqaOptions, ["results/a", "results/b"]),
}


def parse(name: str, argv: list[str]):
    module, cls, _ = SCRIPTS[name]
    return parse_options(cls, argv, description=module.__doc__)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_entry_script_parses_into_its_options_dataclass(name: str) -> None:
    module, cls, argv = SCRIPTS[name]
    options = parse(name, argv)
    assert type(options) is cls and dataclasses.is_dataclass(options)
    # the entry script's own parser is the same declaration (launchers and tests read its defaults)
    assert options_from(cls, vars(module.build_parser().parse_args(argv))) == options


def test_per_script_defaults_come_from_the_options_classes() -> None:
    q, i, c, v = parse("qwen", []), parse("internvl", []), parse("caption", []), parse("eval_vqa", OUT)
    assert q.model.model_path == "./models/Qwen2.5-VL-3B-Instruct" == qwen.QwenOptions().model.model_path
    assert i.model.model_path == "./models/OpenGVLab/InternVL3_5-4B" and i.engine.backend == "auto"
    assert c.model.model_path is None and c.engine.backend == "hf"
    assert (q.resolution.min_pixels, q.resolution.max_pixels) == (3136, 401408)
    assert q.model.decoding.max_new_tokens == c.model.decoding.max_new_tokens == 256
    assert v.model.decoding.max_new_tokens == 32 == VqaOptions(output=v.output).model.decoding.max_new_tokens
    assert c.io.views == ("front", "back", "left", "right", "top", "bottom") and c.model.batch_size == 8
    got = parse("qwen", ["--views", "top,front", "--max_new_tokens", "7", "--tp", "2", "--backend", "vllm",
                         "--min_pixels", "784", "--max_pixels", "3136", "--num_shards", "3", "--shard_index", "2"])
    assert got.io.views == ("top", "front") and got.model.decoding == GenerationSettings(max_new_tokens=7)
    assert (got.engine.vllm.tp, got.engine.backend, got.shard.num_shards, got.shard.shard_index) == (2, "vllm", 3, 2)
    assert got.resolution.min_pixels == 784
    assert parse("internvl", ["--tp", "4", "--max_patches", "6"]).engine.vllm.tp == 4


BAD = [  # (script, flags, the one error line)
    ("qwen", ["--batch_size", "0"], "--batch_size 0: must be >= 1"),
    ("caption", ["--batch_size", "-3"], "--batch_size -3: must be >= 1"),
    ("internvl", ["--batch_size", "0"], "--batch_size 0: must be >= 1"),
    ("eval_vqa", ["--batch_size", "0", *OUT], "--batch_size 0: must be >= 1"),
    ("internvl", ["--max_patches", "0"], "--max_patches 0: must be >= 1"),
    ("qwen", ["--min_pixels", "4000", "--max_pixels", "3000"], "--min_pixels 4000 / --max_pixels 3000: need 1 <= "
                                                                 "min <= max"),
    ("qwen", ["--top_p", "0"], "--top_p 0.0: must be in (0, 1]"),
    ("qwen", ["--concurrency", "0"], "--concurrency 0: must be >= 1"),
    ("qwen", ["--engine_chunk", "0", "--backend", "vllm"], "--engine_chunk 0: must be >= 1"),
    ("qwen", ["--resume", "--overwrite"], "--resume and --overwrite exclude each other"),
    ("qwen", ["--output_name", "x.txt"], "--output_name x.txt: must be a file name ending in .json"),
    ("qwen", ["--num_shards", "2", "--shard_index", "2"], "--shard_index 2: out of range; must be in 0..1 for "
                                                          "--num_shards 2"),
    ("eval_vqa", ["--bootstrap", "-1", *OUT], "--bootstrap -1: must be >= 0"),
    ("eval_vqa", ["--num_chunks", "2", "--chunk_idx", "2", *OUT], "--chunk_idx 2: out of range; must be in 0..1 for "
                                                                  "--num_chunks 2"),
    ("compare_vqa", ["r", "--bootstrap", "-1"], "--bootstrap -1: must be >= 0 (0: no confidence interval)"),
    ("compare_vqa", ["r", "--seed", "-1"], "--seed -1: must be in [0, 4294967295]"),
]


@pytest.mark.parametrize(("name", "argv", "message"), BAD, ids=[f"{b[0]} {' '.join(b[1])}" for b in BAD])
def test_a_bad_setting_is_one_error_line_exit_2_before_any_work(
        name: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    module = SCRIPTS[name][0]
    with pytest.raises(SystemExit) as exit_info:
        run_main(module.main, argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert list(tmp_path.iterdir()) == []  # nothing written, nothing loaded


def test_the_batch_size_range_is_declared_once() -> None:
    """ModelOptions holds the one --batch_size range; the package repeats no hand-written check of it."""
    with pytest.raises(InputError, match=r"^--batch_size 0: must be >= 1$"):
        ModelOptions(batch_size=0)
    for folder in ("vlmkit/generation", "vlmkit/vqa"):
        for path in (REPO / folder).glob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"batch_size\s*<\s*1", text), f"{path}: a second --batch_size check"


def test_a_report_records_the_same_settings_as_the_flags() -> None:
    """The caption report's settings are the flags by their names (as when they were the parser's namespace)."""
    options = parse("qwen", [])
    dests = {a.dest for a in qwen.build_parser()._actions if a.dest != "help"}
    assert set(as_settings(options)) == dests
    assert as_settings(options)["views"] == ("front", "back", "left", "right", "top", "bottom")
    assert set(as_settings(parse("internvl", []))) == {a.dest for a in internvl.build_parser()._actions} - {"help"}


def test_a_nested_default_instance_is_the_commands_default() -> None:
    """vlmkit.options: a nested field's default instance sets that command's flag defaults (and nothing else)."""

    @dataclasses.dataclass
    class Short(CaptionOptions):
        model: ModelOptions = opt(factory=lambda: ModelOptions(batch_size=2,
                                                               decoding=GenerationSettings(max_new_tokens=9)))

    got = parse_options(Short, [], description=None)
    assert (got.model.batch_size, got.model.decoding.max_new_tokens, got.model.decoding.top_k) == (2, 9, 50)
    assert options_from(Short, {"model_path": "m"}).model == ModelOptions(
        model_path="m", batch_size=2, decoding=GenerationSettings(max_new_tokens=9))
    assert parse_options(Short, ["--batch_size", "5"], description=None).model.batch_size == 5
    assert parse_options(CaptionOptions, [], description=None).model.batch_size == 8  # the base is unchanged
