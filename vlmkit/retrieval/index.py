"""`retrieval.py index`: embed a collection of images into a FAISS index, resumably.

Input: a folder (every image file below it, sorted by path) or a JSONL (the `positive` / `image` / `images` paths of
its lines, relative to --image_root or the file's folder; duplicates once). Every image is checked before the model
is loaded (a bad one stops with file and line, or is skipped and listed with --skip_bad_samples).

Embedding runs in parts of `part_size` images; each finished part is saved (`.parts/part-NNNNN.npy` + its paths)
atomically, so a killed run resumes with `--resume` from the first missing part (the file list and model must be
the same: checked against `.parts/manifest.json`). At the end the index and its tables are committed together
(vlmkit.io.write_all_or_nothing) and the parts removed:

    INDEX_DIR/index.faiss   the FAISS index over L2-normalised embeddings, inner product (= cosine)
    INDEX_DIR/ids.jsonl     {"id": row, "path": absolute image path} per indexed image, in index order
    INDEX_DIR/index.json    model, model kind, dim, index type and search parameters, count, skipped images

Index types (FAISS's index_factory strings): `flat` (IndexFlatIP, exact; the default, fine to ~1M images on CPU),
`ivf` (IVF<nlist>,Flat: k-means cells, `nprobe` of them searched; for large collections), `hnsw` (HNSW32 graph,
`efSearch`), or any factory string (e.g. `IVF1024,PQ64` for compressed vectors).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from vlmkit.images import image_problem
from vlmkit.io import InputError, atomic_open, atomic_write_json, iter_jsonl, read_json, write_all_or_nothing
from vlmkit.retrieval.data import BadSample, default_root, resolve_image

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
INDEX_FILE, IDS_FILE, META_FILE, PARTS = "index.faiss", "ids.jsonl", "index.json", ".parts"
FORMAT = "vlmkit-retrieval-index/1"
INDEX_TYPES = ("flat", "ivf", "hnsw")


def list_images(source: str | os.PathLike, image_root: str | os.PathLike | None = None
                ) -> list[tuple[str, str]]:
    """(absolute path, where) of every image of a folder or a JSONL; `where` names file and line for errors."""
    src = Path(source).expanduser()
    if src.is_dir():
        found = sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(src).parts))
        out = [(str(p.absolute()), str(p)) for p in found]
        if not out:
            raise InputError(f"{src}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
        return out
    if not src.is_file():
        raise InputError(f"{src}: --images is neither a folder nor a JSONL file")
    root = default_root(src, image_root)
    seen: dict[str, str] = {}
    for lineno, obj in iter_jsonl(src):
        where = f"{src}: line {lineno}"
        names = obj.get("images") or obj.get("positive") or obj.get("image") if isinstance(obj, dict) else obj
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise InputError(f"{where}: expected an image path in 'positive', 'image' or 'images'")
        for name in names:
            seen.setdefault(resolve_image(name, root), where)
    if not seen:
        raise InputError(f"{src}: no images listed")
    return list(seen.items())


def check_images(images: list[tuple[str, str]], skip_bad: bool) -> tuple[list[str], list[BadSample]]:
    from tqdm.auto import tqdm

    kept, bad = [], []
    for path, where in tqdm(images, desc="checking images", unit="img", disable=len(images) < 500, leave=False):
        problem = image_problem(path)
        if problem is None:
            kept.append(path)
            continue
        file, _, line = where.partition(": line ")
        sample = BadSample(file, int(line) if line else 0, path, problem.reason)
        if not skip_bad:
            label = f"{where}: {path}" if line else path
            raise InputError(f"{label}: {problem.reason} (--skip_bad_samples skips and lists such images)")
        bad.append(sample)
    if not kept:
        raise InputError(f"no usable image ({len(bad)} bad)")
    return kept, bad


def factory_string(index_type: str, n: int, nlist: int | None) -> str:
    if index_type == "flat":
        return "Flat"
    if index_type == "ivf":
        cells = nlist or max(1, min(n // 39, int(4 * math.sqrt(n))))  # FAISS wants >= 39 training points per cell
        return f"IVF{max(1, min(cells, n))},Flat"
    if index_type == "hnsw":
        return "HNSW32"
    return index_type  # a factory string of the user's


def faiss_reason(exc: BaseException) -> str:
    """FAISS's C++ message without its `Error in <signature> at <file>:<line>:` prefix, on one short line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if text.startswith("Error in ") and ": " in text:
        text = text.rsplit(": ", 1)[-1] if "Error: " not in text else text.split("Error: ", 1)[1]
    return text[:200]


IVF_CELLS = re.compile(r"IVF(\d+)")
PQ_CODES = re.compile(r"PQ(\d+)(?:x(\d+))?")


def check_index_settings(index_type: str, n: int, dim: int, nlist: int | None, nprobe: int) -> str:
    """The factory string for `n` vectors of `dim`, checked before any image is embedded: FAISS must parse it, IVF
    needs at least one vector per cell (k-means refuses fewer), nprobe is in 1..nlist, PQ needs 2^nbits training
    vectors and a dimension its sub-quantisers divide. Returns the factory string."""
    import faiss

    if nlist is not None and not 1 <= nlist <= n:
        raise InputError(f"--nlist {nlist}: must be in 1..{n} (the number of images to index)")
    spec = factory_string(index_type, n, nlist)
    try:
        faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise InputError(f"--index_type {index_type}: FAISS cannot build {spec!r} ({faiss_reason(exc)})") from None
    cells = IVF_CELLS.search(spec)
    if cells:
        k = int(cells.group(1))
        if k > n:
            raise InputError(f"--index_type {index_type}: {spec} has {k} cells but there are only {n} images to "
                             f"index (k-means needs at least one per cell; use --nlist <= {n} or flat)")
        if not 1 <= nprobe <= k:
            raise InputError(f"--nprobe {nprobe}: must be in 1..{k} (the number of IVF cells of {spec})")
    pq = PQ_CODES.search(spec)
    if pq:
        bits = int(pq.group(2) or 8)
        if dim % int(pq.group(1)):
            raise InputError(f"--index_type {index_type}: {spec}: PQ{pq.group(1)} must divide the {dim} dimensions")
        if n < 2 ** bits:
            raise InputError(f"--index_type {index_type}: {spec} needs at least {2 ** bits} images to train its "
                             f"codebooks, there are {n}")
    return spec


def build_faiss(embeddings: np.ndarray, index_type: str, nlist: int | None = None, nprobe: int = 16,
                ef_search: int = 64) -> tuple[Any, dict[str, Any]]:
    import faiss

    n, dim = embeddings.shape
    spec = check_index_settings(index_type, n, dim, nlist, nprobe)
    index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    try:
        if not index.is_trained:
            index.train(x)
        index.add(x)
    except RuntimeError as exc:
        raise InputError(f"--index_type {index_type}: FAISS cannot train {spec!r} on {n} vectors "
                         f"({faiss_reason(exc)})") from None
    params: dict[str, Any] = {"factory": spec}
    if "IVF" in spec:
        params["nprobe"] = nprobe
    if "HNSW" in spec:
        params["efSearch"] = ef_search
    return index, params


def apply_search_params(index: Any, params: dict[str, Any]) -> None:
    import faiss

    for key in ("nprobe", "efSearch"):
        if key in params:
            faiss.ParameterSpace().set_index_parameter(index, key, params[key])


def _manifest(model: str, paths: list[str], part_size: int) -> dict[str, Any]:
    digest = hashlib.sha256("\n".join(paths).encode("utf-8")).hexdigest()
    return {"model": model, "images": len(paths), "paths_sha256": digest, "part_size": part_size}


def check_output(out: Path, resume: bool, overwrite: bool) -> None:
    from vlmkit.outputs import check_output_dir

    check_output_dir(out, "--output")
    if (out / META_FILE).is_file() and not overwrite:
        raise InputError(f"{out}: holds an index already; pass --overwrite to replace it")
    if (out / PARTS).is_dir() and not (resume or overwrite):
        raise InputError(f"{out}: holds a partly embedded collection; pass --resume to continue or --overwrite")


def build_index(model: Any, model_info: Any, paths: list[str], out: Path, *, index_type: str = "flat",
                batch_size: int = 64, part_size: int = 4096, skipped: list[BadSample] | None = None,
                nlist: int | None = None, nprobe: int = 16, ef_search: int = 64, resume: bool = False,
                source: str = "", cache: Any = None) -> dict[str, Any]:
    """`cache` (vlmkit.retrieval.model.ModelCache): images embedded before by this model are read, not encoded."""
    from tqdm.auto import tqdm

    from vlmkit.retrieval.model import encode_images

    parts_dir = out / PARTS
    manifest = _manifest(str(model_info.path.resolve()), paths, part_size)
    if parts_dir.is_dir() and resume:
        previous = read_json(parts_dir / "manifest.json") if (parts_dir / "manifest.json").is_file() else None
        if previous != manifest:
            raise InputError(f"{out}: --resume: the parts were embedded from another model or image list; "
                             "use --overwrite to start afresh")
    else:
        shutil.rmtree(parts_dir, ignore_errors=True)
    parts_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(parts_dir / "manifest.json", manifest)
    n_parts = math.ceil(len(paths) / part_size)
    done = sum((parts_dir / f"part-{k:05d}.npy").is_file() for k in range(n_parts))
    if done:
        log.info("resuming: %d of %d parts already embedded", done, n_parts)
    started = time.time()
    with tqdm(total=len(paths), initial=min(done * part_size, len(paths)), desc="embedding images", unit="img",
              disable=None) as bar:
        for k in range(n_parts):
            target = parts_dir / f"part-{k:05d}.npy"
            if target.is_file():
                continue
            chunk = paths[k * part_size:(k + 1) * part_size]
            matrix = encode_images(model, chunk, batch_size, progress=False, cache=cache)
            with atomic_open(target, "wb") as handle:
                np.save(handle, matrix)
            bar.update(len(chunk))
    embeddings = np.concatenate([np.load(parts_dir / f"part-{k:05d}.npy") for k in range(n_parts)])
    try:
        index, params = build_faiss(embeddings, index_type, nlist, nprobe, ef_search)
    except InputError:
        if not resume:  # nothing of this run stays behind (a resumed run keeps the parts it found)
            shutil.rmtree(parts_dir, ignore_errors=True)
        raise
    import faiss

    meta = {"format": FORMAT, "model": str(model_info.path.resolve()), "kind": model_info.kind,
            "dim": int(embeddings.shape[1]), "index_type": index_type, **params, "metric": "inner product (cosine)",
            "count": int(index.ntotal), "source": source, "skipped": [s.to_json() for s in (skipped or [])],
            "embedding_seconds": round(time.time() - started, 1)}
    ids = io.StringIO()
    for i, path in enumerate(paths):
        ids.write(json.dumps({"id": i, "path": path}, ensure_ascii=False) + "\n")
    blob = faiss.serialize_index(index).tobytes()
    meta["index_bytes"] = len(blob)  # checked when the index is opened: a truncated copy is one line, not FAISS's
    write_all_or_nothing({out / INDEX_FILE: blob, out / IDS_FILE: ids.getvalue(),
                          out / META_FILE: json.dumps(meta, ensure_ascii=False, indent=2) + "\n"})
    shutil.rmtree(parts_dir, ignore_errors=True)
    return meta


def read_index_meta(index_dir: str | os.PathLike) -> dict[str, Any]:
    folder = Path(index_dir).expanduser()
    if not folder.is_dir():
        raise InputError(f"{folder}: --index: folder not found")
    from vlmkit.io import recover_commits

    recover_commits(folder)
    if not (folder / META_FILE).is_file():
        partial = " (partly embedded: finish it with retrieval.py index ... --resume)" if (folder / PARTS).is_dir() \
            else ""
        raise InputError(f"{folder}: --index: not an index folder (no {META_FILE}){partial}")
    meta = read_json(folder / META_FILE)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(f"{folder / META_FILE}: not an index of retrieval.py index")
    for name in (INDEX_FILE, IDS_FILE):
        if not (folder / name).is_file():
            raise InputError(f"{folder}: --index: {name} missing")
    for key in ("nprobe", "efSearch"):
        value = meta.get(key)
        if key in meta and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise InputError(f"{folder / META_FILE}: {key} must be a positive integer, got {value!r}")
    check_index_file(folder / INDEX_FILE, meta.get("index_bytes"))
    return meta


# The fourcc FAISS writes first (faiss/impl/index_write.cpp): every index type's starts with "I" (IxFI flat, IwFl
# IVF flat, IHNf HNSW, IwPQ IVF-PQ, ...) -- checked, with the size index.json recorded, before FAISS reads a byte.
def check_index_file(path: Path, expected_bytes: int | None) -> None:
    size = path.stat().st_size
    if expected_bytes is not None and size != expected_bytes:
        raise InputError(f"{path}: {size} bytes, {expected_bytes} when written (truncated or replaced); rebuild it "
                         "with retrieval.py index --overwrite")
    with path.open("rb") as handle:
        head = handle.read(4)
    if len(head) < 4 or not head.startswith(b"I") or not head.isascii() or not head.isalnum():
        raise InputError(f"{path}: not a FAISS index file (starts with {head!r})")


def read_faiss(path: Path) -> Any:
    import faiss

    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        raise InputError(f"{path}: FAISS cannot read it ({faiss_reason(exc)}); rebuild it with retrieval.py index "
                         "--overwrite") from None
