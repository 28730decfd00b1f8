// vlmkit review: browse a compare run, cast blind A/B votes, caption live. Plain DOM, no framework, no external URL.
// Every text from the run (captions, references, ids, model names) is set with textContent, never as HTML.
"use strict";

const VOTER_KEY = "vlmkit-review-voter";
const PAGE = 50;
const app = document.getElementById("app");
let meta = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : response.statusText;
    const error = new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
    error.status = response.status;
    throw error;
  }
  return body;
}

function fmt(metric, value) {
  if (value === null || value === undefined) return "n/a";
  return metric === "retrieval_rank" ? String(Math.round(value)) : value.toFixed(3);
}

function label(metric) {
  const found = meta.metrics.find((m) => m.key === metric);
  return found ? found.label : metric;
}

// ---- views and the lightbox -----------------------------------------------------------------------------------
function viewsStrip(item) {
  if (!item.views.length) return el("div", {class: "muted", text: "no rendered views for this id (--images_dir)"});
  return el("div", {class: "views"}, ...item.views.map((v) => el("figure", {},
    el("img", {src: v.url, alt: `${item.id} ${v.view}`, loading: "lazy", "data-view": v.view,
               onclick: () => openLightbox(v.url, `${item.id} · ${v.view}`)}),
    el("figcaption", {text: v.view}))));
}

function openLightbox(url, caption) {
  document.getElementById("lightbox-img").src = url;
  document.getElementById("lightbox-caption").textContent = caption;
  document.getElementById("lightbox").hidden = false;
}

function closeLightbox() { document.getElementById("lightbox").hidden = true; }

// ---- browse ---------------------------------------------------------------------------------------------------
function itemCard(item, chosenMetric, page) {
  const spread = chosenMetric && item.spread[chosenMetric] !== undefined
    ? el("span", {class: "badge", title: "max − min over the models",
                  text: `spread ${fmt(chosenMetric, item.spread[chosenMetric])} (${label(chosenMetric)})`}) : null;
  const rows = item.captions.map((c) => el("tr", {class: "caption-row", "data-model": c.model},
    el("td", {class: "model", text: c.model}),
    el("td", {class: "caption-text", text: c.text}),
    el("td", {class: "scores"}, ...meta.metrics.filter((m) => c.scores[m.key] !== undefined).map((m) =>
      el("span", {class: "score", text: `${m.label} ${fmt(m.key, c.scores[m.key])}`})))));
  return el("section", {class: "item-card", "data-item": item.id},
    el("div", {class: "item-head"},
      page ? el("h2", {text: item.id}) : el("a", {href: `/item/${encodeURIComponent(item.id)}`, text: item.id}),
      spread),
    viewsStrip(item),
    el("div", {class: "reference"}, el("b", {text: "Reference: "}), el("span", {class: "reference-text",
                                                                                 text: item.reference})),
    el("table", {class: "captions"}, el("tbody", {}, ...rows)));
}

function select(id, text, options, value) {
  return el("label", {}, text, el("select", {id},
    ...options.map(([key, name]) => el("option", {value: key, selected: key === value, text: name}))));
}

async function browse() {
  const params = new URLSearchParams(location.search);
  const state = {sort: params.get("sort") || "order", metric: params.get("metric") || (meta.metrics[0] || {}).key || "",
                 model: params.get("model") || meta.models[0], order: params.get("order") || "desc",
                 q: params.get("q") || ""};
  const controls = el("form", {class: "controls", id: "controls", onsubmit: (e) => e.preventDefault()},
    select("sort", "sort by", [["order", "run order"], ["id", "item id"], ["disagreement", "disagreement (spread)"],
                               ["model", "one model's score"]], state.sort),
    select("metric", "metric", meta.metrics.map((m) => [m.key, m.label]), state.metric),
    select("model", "model", meta.models.map((m) => [m, m]), state.model),
    select("order", "order", [["desc", "high → low / best first"], ["asc", "low → high"]], state.order),
    el("label", {}, "search id, reference, captions", el("input", {id: "q", type: "search", value: state.q})));
  const count = el("p", {class: "muted", id: "count"});
  const list = el("div", {id: "items"});
  app.replaceChildren(controls, count, list);
  let timer = null;
  let generation = 0;
  const refresh = async () => {
    const mine = ++generation;  // a newer refresh (typing) wins over a slower older answer
    for (const key of ["sort", "metric", "model", "order", "q"]) state[key] = document.getElementById(key).value;
    document.getElementById("model").parentElement.hidden = state.sort !== "model";
    const query = new URLSearchParams(state);
    history.replaceState(null, "", `/?${query}`);
    const more = el("button", {id: "more", type: "button"});
    list.replaceChildren(more);
    let shown = 0;
    const page = async () => {  // a long run is fetched and drawn PAGE cards at a time; views load lazily
      more.disabled = true;
      try {
        const data = await api(`/api/items?${query}&offset=${shown}&limit=${PAGE}`);
        if (mine !== generation) return;
        more.before(...data.items.map((item) => itemCard(item, state.metric, false)));
        shown += data.items.length;
        count.textContent = `${data.matched} of ${data.total} items`;
        more.textContent = `show ${Math.min(PAGE, data.matched - shown)} more (${shown} of ${data.matched} shown)`;
        more.hidden = shown >= data.matched;
      } catch (error) {
        count.textContent = `error: ${error.message}`;
      } finally {
        more.disabled = false;
      }
    };
    more.addEventListener("click", page);
    await page();
  };
  controls.addEventListener("change", refresh);
  document.getElementById("q").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(refresh, 250); });
  await refresh();
}

async function itemPage(id) {
  let item;
  try {
    item = await api(`/api/item/${encodeURIComponent(id)}`);
  } catch (error) {
    app.replaceChildren(el("p", {class: "warn", text: error.message}), el("a", {href: "/", text: "back to the list"}));
    return;
  }
  document.title = `${item.id} · vlmkit review`;
  const link = (otherId, text) => otherId ? el("a", {href: `/item/${encodeURIComponent(otherId)}`, text}) : null;
  const pager = el("div", {class: "pager"}, el("a", {href: "/", text: "all items"}), link(item.prev, "← previous"),
                   link(item.next, "next →"));
  const card = itemCard(item, null, true);
  card.classList.add("item-page");
  app.replaceChildren(pager, card);
  if (meta.live_models.length) app.append(livePanel(item));
}

function livePanel(item) {
  const result = el("div", {id: "live-result", class: "live-result", hidden: true});
  const status = el("span", {id: "live-status", class: "muted"});
  const model = el("select", {id: "live-model"}, ...meta.live_models.map((name, i) => el("option", {value: i, text: name})));
  const prompt = el("textarea", {id: "live-prompt", rows: 5});
  prompt.value = item.live_prompt || "";
  const run = el("button", {id: "live-run", type: "button", onclick: async () => {
    run.disabled = true;
    status.textContent = "captioning… (the first call loads the model)";
    try {
      const answer = await api("/api/live", {method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({item_id: item.id, model: Number(model.value), prompt: prompt.value})});
      result.hidden = false;
      result.replaceChildren(el("b", {text: `${answer.model} (live, ${answer.seconds} s, views ${answer.views.join(", ")}): `}),
                             el("span", {class: "live-caption", text: answer.caption}));
      status.textContent = "not saved: live captions are never written into the results";
    } catch (error) {
      status.textContent = `error: ${error.message}`;
    } finally {
      run.disabled = false;
    }
  }}, "Caption this object");
  return el("section", {class: "live", id: "live"}, el("b", {text: "Live caption "}),
    el("span", {class: "muted", text: "with a local model folder given by --live_model"}),
    el("div", {class: "controls"}, el("label", {}, "model", model), run, status),
    el("label", {for: "live-prompt", class: "muted", text: "prompt"}), prompt, result);
}

// ---- blind A/B ------------------------------------------------------------------------------------------------
function askVoter() {
  return new Promise((resolve) => {
    const dialog = document.getElementById("voter-dialog");
    const input = document.getElementById("voter-name");
    input.value = localStorage.getItem(VOTER_KEY) || "";
    document.getElementById("voter-form").onsubmit = () => {
      const name = input.value.trim().replace(/\s+/g, " ");
      if (!name) return false;
      localStorage.setItem(VOTER_KEY, name);
      resolve(name);
      return true;
    };
    dialog.showModal();
    input.focus();
  });
}

async function abPage() {
  let voter = localStorage.getItem(VOTER_KEY) || await askVoter();
  let current = null;
  let busy = false;
  let cast = 0;
  const status = el("div", {id: "status", role: "status"});
  const who = el("span", {id: "voter-label", text: voter});
  const header = el("p", {class: "muted"}, "voting as ", who, " · ",
    el("a", {href: "#", onclick: async (e) => { e.preventDefault(); voter = await askVoter(); who.textContent = voter; }},
       "change"), " · ", el("span", {id: "vote-count"}));
  const body = el("div", {id: "ab-body"});
  const comment = el("textarea", {id: "comment", rows: 2, maxlength: 2000,
                                  placeholder: "optional comment (press C to type here, Esc to leave)"});
  const button = (choice, text, key) => el("button", {id: `vote-${choice}`, type: "button", "data-choice": choice,
                                                      onclick: () => vote(choice)}, text, " ", el("kbd", {text: key}));
  const sides = el("div", {class: "ab-pair"},
    el("div", {class: "ab-side", id: "side-left"}, el("h3", {text: "Caption A"}),
       el("div", {class: "ab-caption", id: "caption-left"}), button("left", "A is better", "←")),
    el("div", {class: "ab-side", id: "side-right"}, el("h3", {text: "Caption B"}),
       el("div", {class: "ab-caption", id: "caption-right"}), button("right", "B is better", "→")));
  const more = el("div", {class: "ab-buttons"}, button("tie", "Tie", "T"), button("both_bad", "Both bad", "B"),
    el("span", {class: "muted"}, "keys: ", el("kbd", {text: "←"}), "/", el("kbd", {text: "1"}), " A · ",
       el("kbd", {text: "→"}), "/", el("kbd", {text: "2"}), " B · ", el("kbd", {text: "T"}), "/", el("kbd", {text: "3"}),
       " tie · ", el("kbd", {text: "B"}), "/", el("kbd", {text: "4"}), " both bad · ", el("kbd", {text: "C"}), " comment"));
  app.replaceChildren(header, body, sides, more, comment, status,
    el("p", {class: "muted", text: "Model names and their order are hidden; the order is drawn at random for every " +
      "vote and recorded. Each vote is on disk before the next pair appears."}));

  const setBusy = (value) => {
    busy = value;
    for (const b of document.querySelectorAll("button[data-choice]")) b.disabled = value;
  };
  const load = async () => {
    setBusy(true);
    try {
      current = await api(`/api/ab/next?voter=${encodeURIComponent(voter)}`);
      body.replaceChildren(
        el("div", {class: "item-head"}, el("b", {text: "Object "}), el("span", {id: "ab-item", text: current.item_id})),
        viewsStrip({id: current.item_id, views: current.views}),
        el("details", {open: true}, el("summary", {text: "Reference"}),
           el("div", {class: "reference"}, el("span", {class: "reference-text", text: current.reference}))));
      document.getElementById("caption-left").textContent = current.captions[0];
      document.getElementById("caption-right").textContent = current.captions[1];
      document.getElementById("vote-count").textContent = `${cast} vote(s) this session · ${current.votes} in the file`;
      setBusy(false);
    } catch (error) {
      status.className = "error";
      status.textContent = `error: ${error.message}`;
    }
  };
  const vote = async (choice) => {
    if (busy || !current) return;
    setBusy(true);
    try {
      const answer = await api("/api/ab/vote", {method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({token: current.token, choice, voter, comment: comment.value})});
      cast += 1;
      status.className = "";
      status.textContent = `vote ${answer.votes} recorded (${choice.replace("_", " ")})`;
      comment.value = "";
      await load();
    } catch (error) {
      status.className = "error";
      status.textContent = `not recorded: ${error.message}`;
      if (error.status === 410) await load(); else setBusy(false);
    }
  };
  document.addEventListener("keydown", (event) => {
    if (location.pathname !== "/ab" || document.getElementById("voter-dialog").open) return;
    if (!document.getElementById("lightbox").hidden) return;  // Esc closes the enlarged view first
    if (event.target === comment) { if (event.key === "Escape") comment.blur(); return; }
    if (event.target instanceof HTMLInputElement || event.ctrlKey || event.metaKey || event.altKey) return;
    const keys = {ArrowLeft: "left", 1: "left", ArrowRight: "right", 2: "right", t: "tie", T: "tie", 3: "tie",
                  b: "both_bad", B: "both_bad", 4: "both_bad"};
    if (event.key === "c" || event.key === "C") { event.preventDefault(); comment.focus(); return; }
    if (keys[event.key]) { event.preventDefault(); vote(keys[event.key]); }
  });
  await load();
}

// ---- start ----------------------------------------------------------------------------------------------------
async function start() {
  document.getElementById("lightbox").addEventListener("click", closeLightbox);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeLightbox(); });
  meta = await api("/api/meta");
  const info = document.getElementById("run-info");
  info.textContent = `${meta.results_dir.split("/").pop()} · ${meta.models.length} models · ${meta.items} items · ` +
    `protocol ${meta.protocol} · votes → ${meta.votes_file.split("/").pop()}`;
  info.title = `results: ${meta.results_dir}\nimages: ${meta.images_dir || "none"}\nvotes: ${meta.votes_file}`;
  for (const warning of meta.warnings) app.before(el("div", {class: "warn", text: warning}));
  const path = location.pathname;
  if (path === "/ab") {
    document.getElementById("nav-ab").classList.add("active");
    await abPage();
  } else if (path.startsWith("/item/")) {
    document.getElementById("nav-browse").classList.add("active");
    await itemPage(decodeURIComponent(path.slice("/item/".length)));
  } else {
    document.getElementById("nav-browse").classList.add("active");
    await browse();
  }
  document.body.dataset.ready = "1";
}

start().catch((error) => { app.replaceChildren(el("p", {class: "warn", text: `error: ${error.message}`})); });
