"""`retrieval.py serve`: a FastAPI app over a `Searcher`, run by uvicorn.

    GET  /health                   {"status": "ok", "images": N, "model": ..., "index_type": ...}
    POST /search/text              JSON {"query": "red-figure hydria", "top_k": 10}
    POST /search/image             multipart: file=<image>, top_k=<int> (form field)
         -> {"query": ..., "top_k": k, "results": [{"rank", "id", "path", "score"}, ...]}

Bad requests get 4xx JSON errors ({"detail": ...}): an empty or missing query, a field of the wrong type (the
request model is strict: `"top_k": true` or `"top_k": "3"` is refused, not read as 1 or 3), an unknown field, a
top_k outside 1..max_top_k (422, FastAPI's request validation), an upload that is not a usable image (400:
vlmkit.images' policy: empty, truncated, not an image, too many pixels), a body over the size limit (413).

Limits, from the libraries themselves:
- body size: each endpoint's `max_body_size` (FastAPI/Starlette's RequestBodyLimitMiddleware): a Content-Length
  over the limit is answered 413 before the body is read; a body without one (chunked) is counted while it is read
  and cut at the limit, so a huge request never sits in memory, and an upload is never spooled to disk past it;
- concurrency: uvicorn's `limit_concurrency`: past `max_concurrency` open connections (idle keep-alive ones
  included) or running requests a request gets 503 at once, instead of a queue that grows without bound under
  load. The endpoints are plain functions, so FastAPI runs them in its thread pool; the searcher serialises the
  model calls.
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoint annotations at definition time, and the
# request model is local to create_app (a string annotation naming it could not be resolved).
import socket
from typing import Annotated, Any

from vlmkit.images import ImageProblem, open_rgb_bytes
from vlmkit.io import InputError
from vlmkit.sockets import listen

DEFAULT_MAX_TOP_K = 100
DEFAULT_TOP_K = 10
DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_TEXT_BYTES = 64 * 1024  # a text query is a sentence; 64 KiB leaves room for any real one
DEFAULT_MAX_CONCURRENCY = 8


def create_app(searcher: Any, max_top_k: int = DEFAULT_MAX_TOP_K, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
               *, default_top_k: int = DEFAULT_TOP_K, max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES):
    from fastapi import FastAPI, File, Form, HTTPException, UploadFile
    from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

    if not 1 <= default_top_k <= max_top_k:
        raise InputError(f"--default_top_k {default_top_k}: must be in 1..--max_top_k {max_top_k}")
    app = FastAPI(title="vlmkit retrieval", version="1",
                  description="Text and image search over a FAISS index of CLIP/SigLIP image embeddings.")

    class TextQuery(BaseModel):
        model_config = ConfigDict(extra="forbid")
        query: StrictStr = Field(..., description="the description to search for")
        top_k: StrictInt = Field(default_top_k, ge=1, le=max_top_k)

        @field_validator("query")
        @classmethod
        def not_blank(cls, value: str) -> str:
            if not value.strip():
                raise ValueError("empty query")
            return value

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "images": searcher.size, **searcher.describe()}

    @app.post("/search/text", max_body_size=max_text_bytes)
    def search_text(body: TextQuery) -> dict[str, Any]:
        try:
            results = searcher.search_text(body.query, body.top_k)
        except InputError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        return {"query": body.query, "top_k": body.top_k, "results": results}

    @app.post("/search/image", max_body_size=max_upload_bytes + 64 * 1024)  # + the multipart framing
    def search_image(file: Annotated[UploadFile, File()],
                     top_k: Annotated[int, Form()] = default_top_k) -> dict[str, Any]:
        if not 1 <= top_k <= max_top_k:
            raise HTTPException(status_code=422, detail=f"top_k must be in 1..{max_top_k}")
        data = file.file.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise HTTPException(status_code=413, detail=f"upload larger than {max_upload_bytes} bytes")
        try:
            image = open_rgb_bytes(data, file.filename or "upload")
        except ImageProblem as exc:
            raise HTTPException(status_code=400, detail=f"{file.filename or 'upload'}: {exc.reason}") from None
        try:
            results = searcher.search_image(image, top_k)
        except InputError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        return {"query": file.filename or "upload", "top_k": top_k, "results": results}

    return app


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the model loads (vlmkit.sockets.listen)."""
    return listen(host, port)


def make_server(searcher: Any, *, max_top_k: int = DEFAULT_MAX_TOP_K, max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
                log_level: str = "info", **limits: Any):
    """The uvicorn server (run it with `.run(sockets=[bind(host, port)])`)."""
    import uvicorn

    # uvicorn counts the arriving connection itself: limit N serves N - 1 at once, so + 1
    config = uvicorn.Config(create_app(searcher, max_top_k, **limits), log_level=log_level,
                            limit_concurrency=max_concurrency + 1)
    return uvicorn.Server(config)


def serve(searcher: Any, host: str = "127.0.0.1", port: int = 8000, max_top_k: int = DEFAULT_MAX_TOP_K,
          log_level: str = "info", *, sock: socket.socket | None = None, **limits: Any) -> None:
    sock = sock or bind(host, port)
    server = make_server(searcher, max_top_k=max_top_k, log_level=log_level, **limits)
    server.run(sockets=[sock])
