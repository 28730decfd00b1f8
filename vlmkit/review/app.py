"""The review app: a FastAPI app serving one plain HTML/JS page and a small JSON API over a compare run.

    GET  /  /item/<id>  /ab            the page (browse, one item, blind A/B); the script routes on the path
    GET  /api/meta                     models, per-item metrics, counts, whether live captioning is on
    GET  /api/items?sort=&metric=&model=&q=&order=    the items, filtered and sorted (vlmkit.review.data)
    GET  /api/item/<id>                one item, with the previous and next id
    GET  /views/<id>/<view>            a rendered view (looked up by id and view name, never by a path)
    GET  /results/<file>               a file of the results folder (e.g. evaluation_report.html)
    GET  /api/ab/next?voter=           a blind pair: token, item, two captions without model names
    POST /api/ab/vote                  {token, choice: left|right|tie|both_bad, voter, comment}
    POST /api/live                     {item_id, model, prompt}: a caption from a --live_model folder

Safety: every response carries a Content-Security-Policy that allows only this server's own script, styles and
images (so even a caption that escaped escaping could not run a script; the page sets text with textContent only),
no external URL is ever referenced (no fonts, CDNs or analytics), a Host header other than the loopback names is
refused while bound to loopback (DNS rebinding), and every file served resolves inside the results or the images
folder (a symlink or ``..`` that leaves them is a 404).

A vote is appended to the votes file with :func:`vlmkit.votes.append_votes` (locked, flushed, fsynced) before the
response is sent, so a vote the page showed as recorded survives a killed server.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint annotations (local pydantic models) at
# definition time.
import random
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote as url_quote

from vlmkit.io import InputError
from vlmkit.review.data import ITEM_LABELS, LOWER_IS_BETTER, SORTS, Item, ReviewRun, select_items
from vlmkit.review.pairs import PairScheduler
from vlmkit.votes import WINNERS, iter_votes, make_vote

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"app.js": "text/javascript", "app.css": "text/css"}
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# the static report of compare.py has inline CSS and base64 images, and no script: allow exactly that, sandboxed
FILE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"
PENDING_SECONDS = 3600
MAX_PENDING = 10_000
MAX_VOTER = 80
MAX_COMMENT = 2000
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass
class Pending:
    """A pair handed to a browser: the models in ranking order and the order they were shown in."""

    item_id: str
    left: str
    right: str
    shown: tuple[str, str]
    voter: str
    issued: float


def contained(root: Path | None, path: str | Path) -> Path | None:
    """The real path of `path` (absolute, or relative to `root`) if it is a file inside `root`'s real path, else
    None: `..`, an absolute path elsewhere and a symlink that leaves the folder are all refused."""
    if root is None or not str(path) or "\x00" in str(path):
        return None
    base = root.resolve()
    try:
        target = (base / path).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    return target if target.is_relative_to(base) and target.is_file() else None


def host_name(header: str) -> str:
    """The host part of a Host header (`127.0.0.1:7860` -> `127.0.0.1`, `[::1]:7860` -> `[::1]`)."""
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0]


def clean_voter(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a voter name is required")
    name = " ".join(name.split())
    if len(name) > MAX_VOTER or not name.isprintable():
        raise ValueError(f"the voter name must be 1..{MAX_VOTER} printable characters")
    return name


def item_json(item: Item, run: ReviewRun) -> dict[str, Any]:
    quoted = url_quote(item.id, safe="")
    return {
        "id": item.id, "reference": item.reference,
        "views": [{"view": v, "url": f"/views/{quoted}/{url_quote(v, safe='')}"} for v in item.views],
        "captions": [{"model": m, "text": item.captions[m], "scores": item.scores.get(m, {})}
                     for m in run.models if m in item.captions],
        "spread": {m: s for m in run.metrics if (s := item.spread(m)) is not None},
    }


class ReviewState:
    """The mutable part of the app: the pair scheduler, the pairs handed out, the vote count; guarded by one lock."""

    def __init__(self, run: ReviewRun, votes_path: Path, seed: int | None = None):
        self.run = run
        self.votes_path = votes_path
        existing = [v for _, v in iter_votes(votes_path)] if votes_path.is_file() else []
        captions = {item.id: item.captions for item in run.items}
        self.scheduler = PairScheduler(run.models, captions, (v for v in existing if v.source == "human"),
                                       rng=random.Random(seed))
        self.rng = random.Random(None if seed is None else seed + 1)
        self.pending: dict[str, Pending] = {}
        self.recorded = len(existing)
        self.lock = threading.Lock()

    def next_pair(self, voter: str) -> dict[str, Any] | None:
        with self.lock:
            now = time.time()
            # a voter sees one pair at a time: asking again (a reload, a second tab) drops the earlier one, so
            # abandoned pairs do not pile up in the scheduling; unanswered pairs expire after PENDING_SECONDS too
            for token in [t for t, p in self.pending.items() if now - p.issued > PENDING_SECONDS or p.voter == voter]:
                del self.pending[token]
            while len(self.pending) >= MAX_PENDING:
                self.pending.pop(next(iter(self.pending)))
            choice = self.scheduler.next(voter, ((p.item_id, p.left, p.right) for p in self.pending.values()))
            if choice is None:
                return None
            item_id, left, right = choice
            shown = (left, right) if self.rng.random() < 0.5 else (right, left)
            token = secrets.token_urlsafe(16)
            self.pending[token] = Pending(item_id, left, right, shown, voter, now)
        item = self.run.by_id[item_id]
        data = item_json(item, self.run)
        return {"token": token, "item_id": item_id, "reference": item.reference, "views": data["views"],
                "captions": [item.captions[shown[0]], item.captions[shown[1]]], "votes": self.recorded}

    def vote(self, token: str, choice: str, voter: str, comment: str) -> dict[str, Any]:
        """Record one vote; KeyError for an unknown, answered or expired token."""
        from vlmkit.votes import append_votes

        with self.lock:
            pending = self.pending.pop(token)
        if choice in ("left", "right"):  # the caption shown on that side -> the side of the canonical pair
            chosen = pending.shown[0] if choice == "left" else pending.shown[1]
            winner = "left" if chosen == pending.left else "right"
        else:
            winner = choice
        extra = {"comment": comment} if comment else {}
        vote = make_vote(item_id=pending.item_id, left=pending.left, right=pending.right, winner=winner, voter=voter,
                         shown_order=list(pending.shown), results=str(self.run.results_dir), **extra)
        try:
            append_votes(self.votes_path, [vote])
        except OSError:
            with self.lock:
                self.pending[token] = pending  # not recorded: the same pair can be answered again
            raise
        with self.lock:
            self.scheduler.record(pending.item_id, pending.left, pending.right, voter)
            self.recorded += 1
            return {"recorded": True, "votes": self.recorded}


def create_app(run: ReviewRun, votes_path: Path, *, live: Any = None, loopback_only: bool = True,
               seed: int | None = None):
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
    from pydantic import BaseModel

    state = ReviewState(run, votes_path, seed)
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    static = {name: (STATIC / name).read_bytes() for name in STATIC_FILES}
    app = FastAPI(title="vlmkit review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.review = state

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if loopback_only and host_name(request.headers.get("host") or "") not in LOOPBACK:
            return JSONResponse({"detail": "unexpected Host header"}, status_code=421)
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    def page_response() -> HTMLResponse:
        return HTMLResponse(page)

    for path in ("/", "/ab", "/item/{item_id}"):
        app.add_api_route(path, page_response, methods=["GET"], include_in_schema=False)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)  # no icon, and no 404 in the browser console

    @app.get("/static/{name}")
    def static_file(name: str) -> Response:
        if name not in static:
            raise HTTPException(404, "not found")
        return Response(static[name], media_type=STATIC_FILES[name])

    @app.get("/api/meta")
    def meta() -> dict[str, Any]:
        return {"results_dir": str(run.results_dir), "images_dir": str(run.images_dir) if run.images_dir else None,
                "protocol": run.protocol, "models": run.models, "items": len(run.items), "sorts": list(SORTS),
                "metrics": [{"key": m, "label": ITEM_LABELS.get(m, m), "lower_is_better": m in LOWER_IS_BETTER}
                            for m in run.metrics],
                "warnings": run.warnings, "votes_file": str(votes_path), "votes": state.recorded,
                "pairs": len(state.scheduler.pairs), "winners": list(WINNERS),
                "live_models": live.names() if live else []}

    @app.get("/api/items")
    def items(sort: str = "order", metric: str | None = None, model: str | None = None, q: str = "",
              order: str = "desc", offset: int = 0, limit: int | None = None) -> dict[str, Any]:
        if offset < 0 or (limit is not None and limit < 1):
            raise HTTPException(422, "offset must be >= 0 and limit >= 1")
        try:
            chosen = select_items(run, sort=sort, metric=metric, model=model, q=q[:200], descending=order != "asc")
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        page = chosen[offset:] if limit is None else chosen[offset:offset + limit]
        return {"total": len(run.items), "matched": len(chosen), "offset": offset,
                "items": [item_json(i, run) for i in page]}

    @app.get("/api/item/{item_id}")
    def one_item(item_id: str) -> dict[str, Any]:
        item = run.by_id.get(item_id)
        if item is None:
            raise HTTPException(404, f"no item {item_id!r} in this run")
        index = run.items.index(item)
        data = item_json(item, run)
        data["prev"] = run.items[index - 1].id if index > 0 else None
        data["next"] = run.items[index + 1].id if index + 1 < len(run.items) else None
        if live:
            data["live_prompt"] = live.default_prompt(list(item.views))
        return data

    @app.get("/views/{item_id}/{view}")
    def view_file(item_id: str, view: str) -> FileResponse:
        item = run.by_id.get(item_id)
        path = item.views.get(view) if item else None
        target = contained(run.images_dir, path) if path is not None else None
        if target is None:
            raise HTTPException(404, "not found")
        return FileResponse(target)

    @app.get("/results/{relative:path}")
    def results_file(relative: str) -> FileResponse:
        target = contained(run.results_dir, relative)
        if target is None:
            raise HTTPException(404, "not found")
        response = FileResponse(target)
        response.headers["Content-Security-Policy"] = FILE_CSP
        return response

    @app.get("/api/ab/next")
    def ab_next(voter: str = "") -> dict[str, Any]:
        try:
            name = clean_voter(voter)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        pair = state.next_pair(name)
        if pair is None:
            raise HTTPException(409, "no two models of this run have different captions of one item: "
                                     "nothing to compare")
        return pair

    class VoteBody(BaseModel):
        token: str
        choice: str
        voter: str
        comment: str = ""

    @app.post("/api/ab/vote")
    def ab_vote(body: VoteBody) -> dict[str, Any]:
        if body.choice not in WINNERS:
            raise HTTPException(422, f"choice must be one of {', '.join(WINNERS)}")
        if len(body.comment) > MAX_COMMENT:
            raise HTTPException(422, f"the comment is longer than {MAX_COMMENT} characters")
        try:
            voter = clean_voter(body.voter)
            return state.vote(body.token, body.choice, voter, body.comment.strip())
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        except KeyError:
            raise HTTPException(410, "this pair was already answered or has expired: load the next one") from None
        except OSError as exc:
            raise HTTPException(500, f"the vote was NOT recorded: cannot write {votes_path}: {exc}") from None

    @app.get("/api/ab/progress")
    def ab_progress() -> dict[str, Any]:
        with state.lock:
            counts = state.scheduler.counts()
        return {"votes": state.recorded, "pairs": counts}

    class LiveBody(BaseModel):
        item_id: str
        model: int
        prompt: str

    @app.post("/api/live")
    def live_caption(body: LiveBody) -> dict[str, Any]:
        if live is None:
            raise HTTPException(404, "live captioning is off: start review.py with --live_model DIR")
        item = run.by_id.get(body.item_id)
        if item is None:
            raise HTTPException(404, f"no item {body.item_id!r} in this run")
        try:
            return live.caption(body.model, item.views, body.prompt)
        except InputError as exc:
            raise HTTPException(422, str(exc)) from None

    return app
