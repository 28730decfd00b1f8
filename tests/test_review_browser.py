"""review.py in a real browser: headless Chromium from the Debian package (`apt-get install chromium`; .ci/run
installs it when missing), driven by Playwright with the system binary (never `playwright install`).

The server is review.py itself in a subprocess on a free 127.0.0.1 port, on a compare run of the examples. With
VLMKIT_SCREENSHOTS=docs/images the tests also save the browse and A/B screens shown in docs/review.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import threading
from collections import Counter
from pathlib import Path

import pytest

from tests.review_helpers import HOSTILE, compare_run, digest, hostile_copy, per_sample, review_server
from vlmkit.votes import vote_problem

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (Debian: apt-get install chromium; "
                                                          ".ci/run installs it)")]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = os.environ.get("VLMKIT_SCREENSHOTS")
VOTER = "Dr. Ada Vase"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compare_run(tmp_path_factory.mktemp("review_browser_run"))


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / name), full_page=False)


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(f"{msg.text} {msg.location}") if msg.type == "error" else None)
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    return page, errors


def test_browse_shows_views_reference_and_every_caption(browser, results: Path, tmp_path: Path) -> None:
    expected = per_sample(results)
    models = list(expected)
    with review_server(results, tmp_path / "votes.jsonl") as server:
        page, errors = open_page(browser, server.base_url + "/")
        cards = page.locator(".item-card")
        assert cards.count() == 6
        for i in range(6):
            card = cards.nth(i)
            item = card.get_attribute("data-item")
            images = card.locator(".views img")
            assert images.count() == 6
            card.scroll_into_view_if_needed()  # the views load lazily
            page.wait_for_function("els => els.every(e => e.complete && e.naturalWidth > 0)",
                                   arg=images.element_handles())
            assert card.locator(".reference-text").inner_text() == expected[models[0]][item]["reference"]
            rows = card.locator("tr.caption-row")
            assert rows.count() == 3
            for j, model in enumerate(models):
                assert rows.nth(j).get_attribute("data-model") == model
                assert rows.nth(j).locator(".caption-text").inner_text() == expected[model][item]["generated"]
                overall = f"Overall {expected[model][item]['overall_score']:.3f}"
                assert overall in rows.nth(j).locator(".scores").inner_text()
        # click a view to enlarge it, Esc closes
        cards.nth(0).locator(".views img").nth(1).click()
        assert page.locator("#lightbox").is_visible()
        assert page.evaluate("document.getElementById('lightbox-img').naturalWidth") > 110
        page.keyboard.press("Escape")
        assert not page.locator("#lightbox").is_visible()
        # sort by disagreement on lexical similarity: the order of an independent computation, kept in the URL
        spread = {i: max(expected[m][i]["lexical_similarity"] for m in models)
                  - min(expected[m][i]["lexical_similarity"] for m in models) for i in expected[models[0]]}
        page.select_option("#metric", "lexical_similarity")
        page.select_option("#sort", "disagreement")
        page.wait_for_function("() => location.search.includes('sort=disagreement')")
        page.wait_for_function("() => document.querySelector('.badge') && "
                               "document.querySelector('.badge').textContent.includes('Lexical')")
        order = [cards.nth(i).get_attribute("data-item") for i in range(cards.count())]
        assert order == sorted(spread, key=lambda i: -spread[i])
        shot(page, "review_browse.png")
        deep = page.url
        # text search
        page.fill("#q", "hydria")
        page.wait_for_function("() => document.querySelectorAll('.item-card').length < 6")
        assert all("hydria" in cards.nth(i).inner_text().lower() for i in range(cards.count()))
        # the deep link to a sorted list and to one item
        page2, errors2 = open_page(browser, deep)
        assert page2.locator(".item-card").first.get_attribute("data-item") == order[0]
        page2.goto(f"{server.base_url}/item/{order[2]}")
        page2.wait_for_selector("body[data-ready='1']")
        assert page2.locator("h2").inner_text() == order[2] and page2.locator(".item-card").count() == 1
        assert page2.locator(".views img").count() == 6
        page.close()
        page2.close()
        assert errors == [] and errors2 == []


def _caption_owner(expected: dict, item: str, text: str) -> str:
    owners = [m for m in expected if expected[m][item]["generated"] == text]
    assert len(owners) == 1
    return owners[0]


def test_ten_votes_with_mouse_and_keyboard_are_on_disk_line_by_line(browser, results: Path, tmp_path: Path) -> None:
    expected = per_sample(results)
    votes = tmp_path / "votes.jsonl"
    actions = [("click", "left"), ("key", "right"), ("click", "tie"), ("key", "both_bad"), ("click", "right"),
               ("key", "left"), ("click", "both_bad"), ("key", "tie"), ("key", "left"), ("click", "left")]
    keys = {"left": "ArrowLeft", "right": "ArrowRight", "tie": "t", "both_bad": "b"}
    with review_server(results, votes) as server:
        page, errors = open_page(browser, server.base_url + "/")
        page.goto(server.base_url + "/ab")
        page.wait_for_selector("#voter-dialog[open]")
        page.fill("#voter-name", VOTER)
        page.click("#voter-save")
        page.wait_for_function("() => document.getElementById('caption-left')?.textContent?.length > 0")
        seen = []
        for n, (how, choice) in enumerate(actions, start=1):
            page.wait_for_function("() => document.getElementById('vote-left')?.disabled === false")
            item = page.locator("#ab-item").inner_text()
            left_text = page.locator("#caption-left").inner_text()
            right_text = page.locator("#caption-right").inner_text()
            assert page.locator(".views img").count() == 6
            assert page.locator(".reference-text").inner_text() == expected[next(iter(expected))][item]["reference"]
            assert not any(m in page.locator("main").inner_text() for m in expected)  # blind: no model name shown
            if n == 1:
                shot(page, "review_ab.png")
            comment = ""
            if n == 3:  # a comment typed after pressing C, left with Esc; shortcuts are off while typing
                page.keyboard.press("c")
                page.keyboard.type("the handles are wrong in both; tie")
                page.keyboard.press("Escape")
                comment = "the handles are wrong in both; tie"
            if how == "click":
                page.click(f"#vote-{choice}")
            else:
                page.keyboard.press(keys[choice])
            page.wait_for_function(f"() => document.getElementById('status')?.textContent?.startsWith('vote {n} ')")
            seen.append((item, _caption_owner(expected, item, left_text), _caption_owner(expected, item, right_text),
                         choice, comment))
            assert len(votes.read_text().splitlines()) == n  # on disk once the page says recorded
        page.close()
        assert errors == []
        # a kill -9 of the server loses nothing: the votes were fsynced before each answer
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=20)
    lines = votes.read_text().splitlines()
    assert len(lines) == 10
    pairs = Counter()
    for line, (item, shown_left, shown_right, choice, comment) in zip(lines, seen, strict=True):
        vote = json.loads(line)
        assert vote_problem(vote) is None
        assert vote["item_id"] == item and vote["voter"] == VOTER and vote["source"] == "human"
        assert vote["shown_order"] == [shown_left, shown_right]
        assert {vote["left"], vote["right"]} == {shown_left, shown_right}
        if choice in ("left", "right"):
            assert vote[vote["winner"]] == (shown_left if choice == "left" else shown_right)
        else:
            assert vote["winner"] == choice
        assert vote.get("comment", "") == comment
        pairs[frozenset((vote["left"], vote["right"]))] += 1
    assert len(pairs) == 3 and sorted(pairs.values()) == [3, 3, 4]  # every model pair, fewest-first


async def _vote_in_own_browser(playwright, url: str, voter: str, n: int) -> None:
    browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    try:
        page = await browser.new_page()
        await page.goto(url + "/ab")
        await page.wait_for_selector("#voter-dialog[open]")
        await page.fill("#voter-name", voter)
        await page.click("#voter-save")
        for i in range(1, n + 1):
            await page.wait_for_function("() => document.getElementById('vote-left')?.disabled === false")
            if i % 2:
                await page.click("#vote-left" if i % 4 == 1 else "#vote-tie")
            else:
                await page.keyboard.press("ArrowRight" if i % 4 == 2 else "b")
            await page.wait_for_function(f"() => document.getElementById('status')?.textContent?.includes('recorded')"
                                         f" && document.getElementById('vote-count')?.textContent?.startsWith('{i} ')")
    finally:
        await browser.close()


def test_two_browsers_voting_at_once(results: Path, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    votes = tmp_path / "votes.jsonl"

    async def both(url: str) -> None:
        async with async_playwright() as p:
            await asyncio.gather(_vote_in_own_browser(p, url, "ann", 10), _vote_in_own_browser(p, url, "bob", 10))

    failures: list[BaseException] = []

    def run(url: str) -> None:  # in its own thread: the sync Playwright of the other tests holds this thread's loop
        try:
            asyncio.run(both(url))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            failures.append(exc)

    with review_server(results, votes) as server:
        thread = threading.Thread(target=run, args=(server.base_url,))
        thread.start()
        thread.join(timeout=300)
        assert not thread.is_alive(), "the two browsers did not finish within 300 s"
    if failures:
        raise failures[0]
    raw = votes.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 20
    lines = [json.loads(line) for line in raw.decode().splitlines()]  # every line whole JSON: none interleaved
    assert all(vote_problem(v) is None for v in lines)
    assert Counter(v["voter"] for v in lines) == {"ann": 10, "bob": 10}
    pairs = Counter(frozenset((v["left"], v["right"])) for v in lines)
    assert len(pairs) == 3 and min(pairs.values()) >= 6  # 20 votes spread over the 3 pairs (6-7 each)


def test_a_caption_with_html_shows_as_text(browser, results: Path, tmp_path: Path) -> None:
    folder, item, model = hostile_copy(results, tmp_path / "hostile")
    with review_server(folder, tmp_path / "votes.jsonl") as server:
        for url in (server.base_url + "/", f"{server.base_url}/item/{item}"):
            page, _ = open_page(browser, url)
            cell = page.locator(f".item-card[data-item='{item}'] tr[data-model='{model}'] .caption-text")
            assert cell.inner_text() == f"{HOSTILE} #0"  # the markup as characters
            assert cell.locator("script, img, b").count() == 0
            assert page.evaluate("window.__pwned") is None
            assert page.locator("b", has_text="bold?").count() == 0
            page.close()
        # the blind A/B screen: two of the three pairs involve that model; vote until one is shown
        page, _ = open_page(browser, server.base_url + "/")
        page.evaluate("localStorage.setItem('vlmkit-review-voter', 'tester')")
        page.goto(server.base_url + "/ab")
        for n in range(1, 4):
            page.wait_for_function("() => document.getElementById('vote-left')?.disabled === false")
            texts = [page.locator(f"#caption-{side}").inner_text() for side in ("left", "right")]
            if any(t.startswith(HOSTILE) for t in texts):
                break
            page.keyboard.press("t")
            page.wait_for_function(f"() => document.getElementById('status')?.textContent?.startsWith('vote {n} ')")
        assert any(t.startswith(HOSTILE) for t in texts)
        assert page.locator(".ab-caption script, .ab-caption img").count() == 0
        assert page.evaluate("window.__pwned") is None
        page.close()


def test_live_caption_panel_with_a_tiny_model(browser, results: Path, tmp_path: Path, tiny_qwen2_5_vl_dir) -> None:
    before = digest(results)
    votes = tmp_path / "votes.jsonl"
    item = next(iter(per_sample(results).values()))
    item_id = next(iter(item))
    with review_server(results, votes, "--live_model", str(tiny_qwen2_5_vl_dir), "--live_device", "cpu",
                       "--live_max_new_tokens", "8") as server:
        page, errors = open_page(browser, f"{server.base_url}/item/{item_id}")
        assert page.locator("#live-model option").all_inner_texts() == [tiny_qwen2_5_vl_dir.name]
        assert "6 views: front, back, left, right, top, bottom" in page.input_value("#live-prompt")
        with page.expect_response("**/api/live", timeout=180_000) as answer:
            page.click("#live-run")
        body = answer.value.json()
        page.wait_for_selector("#live-result:not([hidden])")
        assert page.locator(".live-caption").inner_text() == body["caption"].strip()
        assert "never written" in page.locator("#live-status").inner_text()
        assert page.locator("tr.caption-row").count() == 3  # side by side with the stored captions
        page.close()
        assert errors == []
    assert digest(results) == before and not votes.exists()
