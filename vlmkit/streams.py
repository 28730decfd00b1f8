"""Streaming data sets: read records in bounded chunks from JSONL, JSON, Parquet, WebDataset or HF `save_to_disk`
folders, and write record parts that are assembled into one file or N part files at commit time.

Why chunk *references*: a chunk is named by a small locator (a byte offset into a JSONL file, a row range of a
Parquet file, a member offset in a tar shard), so the driver plans a run without holding records, any process
(a local worker or a Ray worker on another machine that sees the same file system) reads exactly its chunk, and a
resumed run knows which chunks are done. Chunk k always holds records [k*chunk_size, (k+1)*chunk_size) of the
canonical order (files in sorted order, records in file order), whichever process reads it.

Containers (`container_of` picks one from the path, `--input_format` may name it):

| container | path | a record |
| --- | --- | --- |
| jsonl | `.jsonl` file | the line's JSON object |
| json | `.json` file (one document: parsed whole, once per process) | one list element |
| parquet | `.parquet` file or a folder of them | the row as a dict (pyarrow `to_pylist`) |
| webdataset | `.tar` shard or a folder of them | `{"__key__", "members": {ext: bytes}}` (members sharing a key) |
| hf | HF datasets `save_to_disk` folder (`state.json` + Arrow stream files) | the row as a dict |

Images inside records may be paths (strings) or embedded bytes: `EmbeddedImage` carries the bytes with a label
naming the file and record, so an image problem still names where it came from.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from vlmkit.io import TEXT_ENCODING, InputError, read_json

CONTAINERS = ("jsonl", "json", "parquet", "webdataset", "hf")
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")


@dataclass(frozen=True)
class EmbeddedImage:
    """Image bytes stored in the data set itself (a Parquet/HF binary cell, a WebDataset member)."""

    label: str
    data: bytes = field(repr=False)

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class ChunkRef:
    """Where chunk `index` lives: `file`, and `start` (byte offset, row or member offset) + `count` records;
    `first` is the record number of its first record in that file (a line number for JSONL)."""

    index: int
    file: str
    start: int
    count: int
    first: int

    def to_json(self) -> list:
        return [self.index, self.file, self.start, self.count, self.first]

    @classmethod
    def from_json(cls, row: list) -> ChunkRef:
        return cls(*row)


def container_of(path: str | os.PathLike) -> str:
    """The container a path holds, from its extension (or, for a folder, its contents)."""
    path = Path(path)
    if path.is_dir():
        if (path / "state.json").is_file():
            return "hf"
        if any(path.glob("*.parquet")):
            return "parquet"
        if any(path.glob("*.tar")):
            return "webdataset"
        raise InputError(f"{path}: folder holds no .parquet files, .tar shards or HF datasets save_to_disk files")
    suffix = path.suffix.lower()
    by_suffix = {".jsonl": "jsonl", ".json": "json", ".parquet": "parquet", ".tar": "webdataset"}
    if suffix not in by_suffix:
        raise InputError(f"{path}: unsupported file type '{path.suffix}' (expected .jsonl, .json, .parquet, .tar "
                         f"or an HF datasets folder)")
    return by_suffix[suffix]


def _files(path: Path, pattern: str) -> list[Path]:
    files = sorted(path.glob(pattern)) if path.is_dir() else [path]
    if not files:
        raise InputError(f"{path}: no {pattern} files")
    return files


def hf_files(path: Path) -> list[Path]:
    """The Arrow stream files of an HF datasets `save_to_disk` folder, in their order (state.json)."""
    state = read_json(path / "state.json")
    names = [f.get("filename") for f in state.get("_data_files", [])] if isinstance(state, dict) else []
    if not names or not all(isinstance(n, str) for n in names):
        raise InputError(f"{path / 'state.json'}: no '_data_files' list; is this a save_to_disk folder?")
    files = [path / n for n in names]
    for f in files:
        if not f.is_file():
            raise InputError(f"{f}: data file named in state.json is missing")
    return files


def _wds_key(name: str) -> tuple[str, str]:
    """WebDataset's split of a member name into sample key and extension: the key ends at the first dot of the
    base name (`dir/abc.0.jpg` -> `dir/abc`, `0.jpg`)."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext


def _tar_error(path: Path, exc: Exception) -> InputError:
    return InputError(f"{path}: not a readable tar shard ({type(exc).__name__}: {exc})")


class Source:
    """One input data set: plans chunks and reads any one of them."""

    def __init__(self, path: str | os.PathLike, container: str | None = None):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"{self.path}: input file not found")
        self.container = container or container_of(self.path)
        if self.container not in CONTAINERS:
            raise InputError(f"unknown container {self.container!r}; choose from {', '.join(CONTAINERS)}")
        if self.container in ("jsonl", "json") and not self.path.is_file():
            raise InputError(f"{self.path}: a {self.container} input must be a file")
        if self.container == "hf" and not self.path.is_dir():
            raise InputError(f"{self.path}: an HF datasets input is a save_to_disk folder")

    @property
    def root(self) -> Path:
        """The folder relative image paths are resolved against (as Data-Juicer does: the data file's folder)."""
        return self.path if self.path.is_dir() else self.path.parent

    def files(self) -> list[Path]:
        return {"jsonl": lambda: [self.path], "json": lambda: [self.path],
                "parquet": lambda: _files(self.path, "*.parquet"), "webdataset": lambda: _files(self.path, "*.tar"),
                "hf": lambda: hf_files(self.path)}[self.container]()

    def signature(self) -> list:
        """Name, size and modification time of every input file: a resumed run refuses parts of another input."""
        out = []
        for f in self.files():
            st = f.stat()
            out.append([str(f), st.st_size, st.st_mtime_ns])
        return out

    # ---- planning --------------------------------------------------------------------------------------------
    def plan(self, chunk_size: int) -> list[ChunkRef]:
        """Chunk references covering every record, in canonical order; reads no record bodies (except JSON)."""
        refs: list[ChunkRef] = []
        for f in self.files():
            for start, count, first in getattr(self, f"_plan_{self.container}")(f, chunk_size):
                refs.append(ChunkRef(len(refs), str(f), start, count, first))
        return refs

    @staticmethod
    def _plan_jsonl(f: Path, size: int) -> Iterator[tuple[int, int, int]]:
        offset, n, start, first = 0, 0, 0, 1
        with open(f, "rb") as handle:
            for lineno, raw in enumerate(handle, start=1):
                if raw.strip():
                    if n == 0:
                        start, first = offset, lineno
                    n += 1
                    if n == size:
                        yield start, n, first
                        n = 0
                offset += len(raw)
        if n:
            yield start, n, first

    @staticmethod
    def _plan_json(f: Path, size: int) -> Iterator[tuple[int, int, int]]:
        data = _parsed_json(str(f), f.stat().st_mtime_ns)
        if not isinstance(data, list):
            raise InputError(f"{f}: expected a JSON list of records")
        for start in range(0, len(data), size):
            yield start, min(size, len(data) - start), start

    @staticmethod
    def _plan_parquet(f: Path, size: int) -> Iterator[tuple[int, int, int]]:
        import pyarrow.parquet as pq

        try:
            rows = pq.ParquetFile(f).metadata.num_rows
        except Exception as exc:  # noqa: BLE001 - any pyarrow failure is a bad input file
            raise InputError(f"{f}: not a readable Parquet file ({exc})") from None
        for start in range(0, rows, size):
            yield start, min(size, rows - start), start

    @staticmethod
    def _plan_hf(f: Path, size: int) -> Iterator[tuple[int, int, int]]:
        rows = sum(b.num_rows for b in _arrow_batches(f))
        for start in range(0, rows, size):
            yield start, min(size, rows - start), start

    @staticmethod
    def _plan_webdataset(f: Path, size: int) -> Iterator[tuple[int, int, int]]:
        n, start, first, key, samples = 0, 0, 0, None, 0
        try:
            with tarfile.open(f, "r:") as tar:  # headers only: tarfile seeks over member data
                for member in tar:
                    if not member.isfile():
                        continue
                    k, _ = _wds_key(member.name)
                    if k != key:
                        key = k
                        if n == size:
                            yield start, n, first
                            n = 0
                        if n == 0:
                            start, first = member.offset, samples
                        n += 1
                        samples += 1
        except tarfile.TarError as exc:
            raise _tar_error(f, exc) from None
        if n:
            yield start, n, first

    # ---- reading -----------------------------------------------------------------------------------------------
    def read(self, ref: ChunkRef) -> list[tuple[Any, str]]:
        """The records of one chunk with where each came from (`<file>: line 7`, `<file>: row 12`, ...)."""
        return getattr(self, f"_read_{self.container}")(ref)

    @staticmethod
    def _read_jsonl(ref: ChunkRef) -> list[tuple[Any, str]]:
        out = []
        with open(ref.file, "rb") as handle:
            handle.seek(ref.start)
            lineno = ref.first
            while len(out) < ref.count:
                raw = handle.readline()
                if not raw:
                    raise InputError(f"{ref.file}: changed while being read (ends before line {lineno})")
                if raw.strip():
                    try:
                        line = raw.decode(TEXT_ENCODING if lineno == 1 else "utf-8")
                    except UnicodeDecodeError as exc:
                        raise InputError(f"{ref.file}: line {lineno}: not UTF-8 text ({exc.reason} at byte "
                                         f"{exc.start})") from None
                    try:
                        out.append((json.loads(line), f"{ref.file}: line {lineno}"))
                    except json.JSONDecodeError as exc:
                        raise InputError(f"{ref.file}: line {lineno}: malformed JSON: {exc.msg}") from None
                    except RecursionError:
                        raise InputError(f"{ref.file}: line {lineno}: JSON nested too deeply to read") from None
                lineno += 1
        return out

    @staticmethod
    def _read_json(ref: ChunkRef) -> list[tuple[Any, str]]:
        data = _parsed_json(ref.file, Path(ref.file).stat().st_mtime_ns)
        return [(data[k], f"{ref.file}: item {k}") for k in range(ref.start, ref.start + ref.count)]

    @staticmethod
    def _read_parquet(ref: ChunkRef) -> list[tuple[Any, str]]:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(ref.file)
        meta = pf.metadata
        groups, offset, first_row = [], 0, None
        for g in range(meta.num_row_groups):
            rows = meta.row_group(g).num_rows
            if offset + rows > ref.start and offset < ref.start + ref.count:
                groups.append(g)
                first_row = offset if first_row is None else first_row
            offset += rows
        table = pf.read_row_groups(groups).slice(ref.start - first_row, ref.count)
        return [(row, f"{ref.file}: row {ref.start + k}") for k, row in enumerate(table.to_pylist())]

    @staticmethod
    def _read_hf(ref: ChunkRef) -> list[tuple[Any, str]]:
        import pyarrow as pa

        parts, offset = [], 0
        for batch in _arrow_batches(Path(ref.file)):
            lo, hi = max(ref.start - offset, 0), min(ref.start + ref.count - offset, batch.num_rows)
            if lo < hi:
                parts.append(batch.slice(lo, hi - lo))
            offset += batch.num_rows
            if offset >= ref.start + ref.count:
                break
        rows = pa.Table.from_batches(parts).to_pylist() if parts else []
        return [(row, f"{ref.file}: row {ref.start + k}") for k, row in enumerate(rows)]

    @staticmethod
    def _read_webdataset(ref: ChunkRef) -> list[tuple[Any, str]]:
        # tarfile, not webdataset's reader: a chunk starts mid-shard at a member's header offset, which webdataset's
        # sequential pipeline cannot seek to; the grouping rule (consecutive members, key up to the first dot of the
        # base name) is webdataset's own.
        out: list[tuple[Any, str]] = []
        path = Path(ref.file)
        try:
            with open(path, "rb") as handle:
                handle.seek(ref.start)
                with tarfile.open(fileobj=handle, mode="r|") as tar:
                    key, members = None, {}
                    for member in tar:
                        if not member.isfile():
                            continue
                        k, ext = _wds_key(member.name)
                        if k != key:
                            if key is not None:
                                out.append(({"__key__": key, "members": members},
                                            f"{path}: sample {ref.first + len(out)} ({key})"))
                                if len(out) == ref.count:
                                    return out
                            key, members = k, {}
                        data = tar.extractfile(member)
                        members[ext] = data.read() if data is not None else b""
                    if key is not None and len(out) < ref.count:
                        out.append(({"__key__": key, "members": members},
                                    f"{path}: sample {ref.first + len(out)} ({key})"))
        except tarfile.TarError as exc:
            raise _tar_error(path, exc) from None
        return out

    def arrow_schema(self):
        """The Arrow schema of a Parquet / HF input (kept rows are written back with it)."""
        import pyarrow.parquet as pq

        first = self.files()[0]
        if self.container == "parquet":
            return pq.read_schema(first)
        for batch in _arrow_batches(first):
            return batch.schema
        import pyarrow as pa

        with pa.ipc.open_stream(pa.memory_map(str(first))) as reader:
            return reader.schema


@lru_cache(maxsize=2)
def _parsed_json(path: str, mtime_ns: int) -> Any:
    """A JSON document is parsed once per process (every chunk of it is a slice of the same list)."""
    return read_json(path)


def parsed_json(path: str | os.PathLike) -> Any:
    """A JSON document, parsed once per process while the file is unchanged (shared by every reader of it)."""
    return _parsed_json(str(path), Path(path).stat().st_mtime_ns)


def _arrow_batches(f: Path):
    """The record batches of an Arrow IPC stream file (HF datasets' format), memory-mapped (nothing copied)."""
    import pyarrow as pa

    try:
        reader = pa.ipc.open_stream(pa.memory_map(str(f)))
    except Exception as exc:  # noqa: BLE001 - any pyarrow failure is a bad input file
        raise InputError(f"{f}: not a readable Arrow stream file ({exc})") from None
    yield from reader


def image_value(value: Any, label: str) -> str | EmbeddedImage | None:
    """One image cell as a path or embedded bytes: a string, bytes, or HF's Image struct {"bytes", "path"}."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return EmbeddedImage(label, bytes(value))
    if isinstance(value, dict) and ("bytes" in value or "path" in value):
        if value.get("bytes"):
            return EmbeddedImage(label, bytes(value["bytes"]))
        return value.get("path") or None
    return None


# ---- writing: per-chunk parts, assembled into one file or N part files ---------------------------------------------
OUTPUT_SUFFIXES = {".jsonl": "jsonl", ".json": "json", ".parquet": "parquet", ".tar": "webdataset"}
SHARDABLE = ("jsonl", "parquet", "webdataset")


def shard_paths(target: Path, shards: int) -> list[Path]:
    """`target` itself for one shard, else `<stem>-00000-of-0000N<suffix>` beside it."""
    if shards <= 1:
        return [target]
    return [target.with_name(f"{target.stem}-{i:05d}-of-{shards:05d}{target.suffix}") for i in range(shards)]


def split_counts(total: int, shards: int) -> list[int]:
    """Contiguous split of `total` records into `shards` parts whose sizes differ by at most one."""
    return [total // shards + (1 if i < total % shards else 0) for i in range(shards)]


class PartWriter:
    """Writes one chunk's records as a part file of `kind` and reads parts back, record by record, for assembly.

    Parts of one run are byte-for-byte what the final file holds for those records, so a part written by any worker
    (or by a run that was killed and resumed) assembles into the same final bytes.
    """

    def __init__(self, kind: str, schema: Any = None):
        self.kind = kind
        self.schema = schema

    def write_part(self, path: Path, records: list[Any]) -> None:
        tmp = path.with_name(path.name + ".tmp")
        if self.kind in ("jsonl", "json"):
            with open(tmp, "w", encoding="utf-8") as handle:
                for obj in records:
                    handle.write(json.dumps(obj, ensure_ascii=False) + "\n")
        elif self.kind == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(records, schema=self.schema), tmp)
        else:
            with open(tmp, "wb") as handle:
                _write_tar_samples(handle, records)
        os.replace(tmp, path)

    def assemble(self, parts: list[Path], counts: list[int], finals: list[Path], final_paths: list[Path]) -> None:
        """Stream the parts (with `counts` records each) into `final_paths` (staged files for `finals`), split
        contiguously; holds one part at a time."""
        total = sum(counts)
        sizes = split_counts(total, len(final_paths))
        getattr(self, f"_assemble_{self.kind}")(parts, sizes, final_paths)

    def _assemble_jsonl(self, parts, sizes, outs) -> None:
        shard, left = 0, sizes[0]
        out = open(outs[0], "wb")
        try:
            for part in parts:
                with open(part, "rb") as handle:
                    for line in handle:
                        while left == 0 and shard + 1 < len(outs):
                            out.close()
                            shard += 1
                            left = sizes[shard]
                            out = open(outs[shard], "wb")
                        out.write(line)
                        left -= 1
            while shard + 1 < len(outs):  # trailing empty shards still exist (the set has a fixed file count)
                out.close()
                shard += 1
                out = open(outs[shard], "wb")
        finally:
            out.close()

    def _assemble_json(self, parts, sizes, outs) -> None:
        # The same bytes as json.dumps(list, indent=2): each element indented one level, ",\n" between them.
        with open(outs[0], "w", encoding="utf-8") as out:
            first = True
            for part in parts:
                with open(part, encoding="utf-8") as handle:
                    for line in handle:
                        text = json.dumps(json.loads(line), ensure_ascii=False, indent=2).replace("\n", "\n  ")
                        out.write(("[\n  " if first else ",\n  ") + text)
                        first = False
            out.write("[]\n" if first else "\n]\n")

    def _assemble_parquet(self, parts, sizes, outs) -> None:
        import pyarrow.parquet as pq

        shard, left = 0, sizes[0]
        writer = pq.ParquetWriter(outs[0], self.schema)
        try:
            for part in parts:
                table = pq.read_table(part, schema=self.schema)
                pos = 0
                while pos < table.num_rows:
                    while left == 0:
                        writer.close()
                        shard += 1
                        left = sizes[shard]
                        writer = pq.ParquetWriter(outs[shard], self.schema)
                    take = min(left, table.num_rows - pos)
                    writer.write_table(table.slice(pos, take))
                    pos += take
                    left -= take
            while shard + 1 < len(outs):
                writer.close()
                shard += 1
                writer = pq.ParquetWriter(outs[shard], self.schema)
        finally:
            writer.close()

    def _assemble_webdataset(self, parts, sizes, outs) -> None:
        shard, left = 0, sizes[0]
        out = open(outs[0], "wb")
        try:
            for part in parts:
                for sample, _ in Source._read_webdataset(ChunkRef(0, str(part), 0, 1 << 62, 0)):
                    while left == 0:
                        _end_tar(out)
                        shard += 1
                        left = sizes[shard]
                        out = open(outs[shard], "wb")
                    _write_tar_samples(out, [sample], end=False)
                    left -= 1
            while shard + 1 < len(outs):
                _end_tar(out)
                shard += 1
                out = open(outs[shard], "wb")
            _end_tar(out)
        finally:
            out.close()


def _write_tar_samples(handle, samples: list[dict], end: bool = True) -> None:
    """Samples as WebDataset tar members `<key>.<ext>` with a fixed owner and time, so equal samples give equal
    bytes. Headers are written one by one (`TarInfo.tobuf`) because a part must be appendable to an open shard:
    tarfile's writer always ends the archive on close, and webdataset's TarWriter stamps the current time."""
    for sample in samples:
        for ext, data in sample["members"].items():
            info = tarfile.TarInfo(f"{sample['__key__']}.{ext}")
            info.size, info.mtime, info.mode, info.uname, info.gname = len(data), 0, 0o444, "vlmkit", "vlmkit"
            handle.write(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"))
            handle.write(data)
            handle.write(b"\0" * ((-len(data)) % tarfile.BLOCKSIZE))
    if end:
        _end_tar(handle)


def _end_tar(handle) -> None:
    """Two zero blocks, then padding to a full record: what tarfile.TarFile.close writes."""
    handle.write(b"\0" * (tarfile.BLOCKSIZE * 2))
    handle.write(b"\0" * ((-handle.tell()) % tarfile.RECORDSIZE))
