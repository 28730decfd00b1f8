"""`retrieval.py serve`: a FastAPI app over a `Searcher`, run by uvicorn.

    GET  /health                   {"status": "ok", "images": N, "model": ..., "index_type": ...}
    POST /search/text              JSON {"query": "red-figure hydria", "top_k": 10}
    POST /search/image             multipart: file=<image>, top_k=<int> (form field)
         -> {"query": ..., "top_k": k, "results": [{"rank", "id", "path", "score"}, ...]}

Bad requests get 4xx JSON errors ({"detail": ...}): an empty or missing query or a top_k outside 1..max_top_k (422,
FastAPI's request validation), an upload that is not a usable image (400: vlmkit.images' policy: empty, truncated,
not an image, too many pixels), an upload over the size limit (413). The endpoints are plain functions, so
FastAPI runs them in its thread pool; the searcher serialises the model calls.
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoint annotations at definition time, and the
# request model is local to create_app (a string annotation naming it could not be resolved).
import os
import tempfile
from typing import Annotated, Any

from vlmkit.images import ImageProblem, open_rgb
from vlmkit.io import InputError

DEFAULT_MAX_TOP_K = 100
DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024


def create_app(searcher: Any, max_top_k: int = DEFAULT_MAX_TOP_K, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES):
    from fastapi import FastAPI, File, Form, HTTPException, UploadFile
    from pydantic import BaseModel, Field, field_validator

    app = FastAPI(title="vlmkit retrieval", version="1",
                  description="Text and image search over a FAISS index of CLIP/SigLIP image embeddings.")

    class TextQuery(BaseModel):
        query: str = Field(..., description="the description to search for")
        top_k: int = Field(10, ge=1, le=max_top_k)

        @field_validator("query")
        @classmethod
        def not_blank(cls, value: str) -> str:
            if not value.strip():
                raise ValueError("empty query")
            return value

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "images": searcher.size, **searcher.describe()}

    @app.post("/search/text")
    def search_text(body: TextQuery) -> dict[str, Any]:
        try:
            results = searcher.search_text(body.query, body.top_k)
        except InputError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        return {"query": body.query, "top_k": body.top_k, "results": results}

    @app.post("/search/image")
    def search_image(file: Annotated[UploadFile, File()], top_k: Annotated[int, Form()] = 10) -> dict[str, Any]:
        if not 1 <= top_k <= max_top_k:
            raise HTTPException(status_code=422, detail=f"top_k must be in 1..{max_top_k}")
        data = file.file.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise HTTPException(status_code=413, detail=f"upload larger than {max_upload_bytes} bytes")
        # open through the one image policy (it reads files): the upload goes to a temporary file first
        fd, tmp = tempfile.mkstemp(prefix="vlmkit-upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            try:
                image = open_rgb(tmp)
            except ImageProblem as exc:
                raise HTTPException(status_code=400, detail=f"{file.filename or 'upload'}: {exc.reason}") from None
        finally:
            os.unlink(tmp)
        return {"query": file.filename or "upload", "top_k": top_k, "results": searcher.search_image(image, top_k)}

    return app


def serve(searcher: Any, host: str = "127.0.0.1", port: int = 8000, max_top_k: int = DEFAULT_MAX_TOP_K,
          log_level: str = "info") -> None:
    import uvicorn

    uvicorn.run(create_app(searcher, max_top_k), host=host, port=port, log_level=log_level)
