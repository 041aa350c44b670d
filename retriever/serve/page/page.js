// The search page of `retriever serve`: a client of the server's own HTTP API, no framework, no build step.
// Documents are untrusted: every text from the index reaches the DOM as a text node (textContent, append of a
// string), never as HTML, and no value from a document becomes a link. The server's CSP forbids inline script.
"use strict";

(() => {
  const KEY_STORAGE = "retriever-api-key";
  const $ = (id) => document.getElementById(id);
  const state = {
    maxK: 100, readOnly: false, judging: false,
    query: null, hits: [], grades: new Map(), summary: null, summaryAsked: 0,
  };

  // DOM from text only ------------------------------------------------------------------------------------------
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props)) {
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else if (name === "onclick") node.addEventListener("click", value);
      else node.setAttribute(name, value);
    }
    node.append(...children); // strings become text nodes
    return node;
  }

  // Offsets from the server count code points (Python); JavaScript strings count UTF-16 units.
  function marked(text, spans) {
    const chars = Array.from(text);
    const out = [];
    let at = 0;
    for (const span of [...spans].sort((a, b) => a.start - b.start)) {
      if (span.start < at || span.end > chars.length || span.end <= span.start) continue;
      out.push(chars.slice(at, span.start).join(""), el("mark", { text: chars.slice(span.start, span.end).join("") }));
      at = span.end;
    }
    out.push(chars.slice(at).join(""));
    return out;
  }

  function status(message, isError = false) {
    $("status").textContent = message;
    $("status").className = isError ? "error" : "muted";
  }

  // The API, with the key asked for once per tab ---------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }
  let keyWaiters = [];

  function askForKey(wrong) {
    $("key-wrong").hidden = !wrong;
    $("key-form").hidden = false;
    $("key-input").focus();
    return new Promise((resolve) => keyWaiters.push(resolve));
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORAGE, key);
    $("key-input").value = "";
    $("key-form").hidden = true;
    const waiting = keyWaiters;
    keyWaiters = [];
    waiting.forEach((resolve) => resolve());
  });

  async function api(method, path, body) {
    for (;;) {
      const key = sessionStorage.getItem(KEY_STORAGE);
      const headers = { Accept: "application/json" };
      if (key) headers.Authorization = `Bearer ${key}`;
      if (body !== undefined) headers["Content-Type"] = "application/json";
      const response = await fetch(path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit", cache: "no-store",
      });
      if (response.status === 401) {
        if (key) sessionStorage.removeItem(KEY_STORAGE);
        await askForKey(Boolean(key));
        continue;
      }
      let data = null;
      try { data = await response.json(); } catch { data = null; }
      if (!response.ok) {
        const reason = data && (data.error || (typeof data.detail === "string" ? data.detail : null));
        throw new ApiError(response.status, reason || `${response.status} ${response.statusText}`);
      }
      return data;
    }
  }

  // What the server allows -------------------------------------------------------------------------------------
  async function loadConfig() {
    const info = await api("GET", "/info");
    const server = info.server || {};
    const limits = server.limits || {};
    state.readOnly = Boolean(server.read_only);
    state.maxK = limits.max_k || 100;
    $("k").max = String(state.maxK);
    if (Number($("k").value) > state.maxK) $("k").value = String(state.maxK);
    if (limits.max_query_chars) $("query").maxLength = limits.max_query_chars;
    const documents = (info.counts || {}).documents;
    $("index-name").textContent = `${info.index} · ${documents ?? "?"} documents`;
    $("read-only").hidden = !state.readOnly;
    state.judging = await judgingAvailable();
  }

  async function judgingAvailable() {
    try {
      await api("GET", "/judgments?query=page-probe"); // cheap: one query's grades, not the summary
      return true;
    } catch (error) {
      return false; // a server without judgments (404): the page hides judging
    }
  }

  // Searching ----------------------------------------------------------------------------------------------------
  function searchBody() {
    const k = Math.min(Math.max(parseInt($("k").value, 10) || 10, 1), state.maxK);
    $("k").value = String(k);
    const body = { query: $("query").value.trim(), k, mode: $("mode").value, explain: true };
    const where = $("filters").value.split("\n").map((line) => line.trim()).filter(Boolean);
    if (where.length) body.where = where;
    return body;
  }

  $("search-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = searchBody();
    if (!body.query) return;
    status("Searching…");
    try {
      const answer = await api("POST", "/search", body);
      state.query = body.query;
      state.hits = answer.hits;
      await loadJudgments();
      showResults();
      status(`${state.hits.length} result${state.hits.length === 1 ? "" : "s"} for “${body.query}” (${body.mode})`);
    } catch (error) {
      status(error.message, true);
    }
  });

  function explanationLine(e) {
    if (!e) return "";
    const side = (name, score, rank, normalized, digits) => {
      if (rank === null || rank === undefined) return e.mode === "hybrid" ? `${name} not found (0)` : null;
      const value = normalized === null || normalized === undefined ? "" : ` → ${normalized.toFixed(3)}`;
      return `${name} ${score.toFixed(digits)} #${rank}${value}`;
    };
    const sides = [side("dense", e.dense_score, e.dense_rank, e.dense_normalized, 3),
      side("BM25", e.lexical_score, e.lexical_rank, e.lexical_normalized, 2)].filter(Boolean);
    let how = e.mode;
    if (e.fusion) how += ` ${e.fusion}` + (e.alpha === null || e.alpha === undefined ? "" : ` α=${e.alpha.toFixed(2)}`);
    const reranked = e.reranked === null || e.reranked === undefined ? "" : ` · reranked ${e.reranked.toFixed(4)}`;
    return `${how}: ${sides.join(" + ")} = ${e.fused.toFixed(4)}${reranked}`;
  }

  function hitItem(hit, rank) {
    const title = el("button", { type: "button", className: "hit-title", text: hit.title || hit.doc_id,
      onclick: () => openDocument(hit) });
    const head = el("div", { className: "hit-head" },
      el("span", { className: "muted", text: `${rank}.` }), title,
      el("span", { className: "muted doc-id", text: hit.doc_id }),
      el("span", { className: "muted source", text: hit.source || "" }), // text, never a link
      el("span", { className: "score muted", text: hit.score.toFixed(4) }));
    const item = el("li", { className: "hit", "data-doc-id": hit.doc_id }, head,
      el("p", { className: "passage" }, ...marked(hit.text, hit.highlights || [])),
      el("p", { className: "why", text: explanationLine(hit.explanation) }));
    if (state.judging && !state.readOnly) item.append(gradeButtons(hit));
    return item;
  }

  function gradeButtons(hit) {
    const current = state.grades.get(hit.doc_id);
    const labels = ["not relevant", "relevant", "highly relevant"];
    const buttons = [0, 1, 2].map((grade) => el("button", {
      type: "button", className: "grade", "data-grade": String(grade), title: labels[grade],
      "aria-pressed": String(current === grade), text: String(grade), onclick: () => judge(hit, grade),
    }));
    return el("div", { className: "grades" }, el("span", { className: "muted", text: "Grade" }), ...buttons);
  }

  function showResults() {
    $("document").hidden = true;
    $("results").hidden = false;
    $("results").replaceChildren(...state.hits.map((hit, i) => hitItem(hit, i + 1)));
    showJudging();
  }

  // Judging --------------------------------------------------------------------------------------------------------
  // The grades first (the buttons show them at once), then the summary, which may take the server a while.
  async function loadJudgments() {
    state.grades = new Map();
    state.summary = null;
    if (!state.judging || state.query === null) return;
    const list = await api("GET", `/judgments?query=${encodeURIComponent(state.query)}`);
    for (const judgment of list.judgments || []) state.grades.set(judgment.doc_id, judgment.grade);
    refreshSummary(state.query);
  }

  async function refreshSummary(query) {
    const asked = ++state.summaryAsked; // only the latest answer is shown (an older one may arrive last)
    try {
      const summary = await api("GET", `/judgments/summary?query=${encodeURIComponent(query)}`);
      if (state.query !== query || asked !== state.summaryAsked) return;
      state.summary = summary;
      showJudging();
    } catch (error) {
      status(error.message, true);
    }
  }

  async function judge(hit, grade) {
    try {
      await api("POST", "/judgments", { query: state.query, doc_id: hit.doc_id, grade });
      await loadJudgments();
      showResults();
      status(`Graded ${hit.doc_id}: ${grade}`);
    } catch (error) {
      status(error.message, true);
    }
  }

  function showJudging() {
    const box = $("judging");
    if (!state.judging || state.query === null) { box.hidden = true; return; }
    const ndcg = (value) => (value === null || value === undefined ? "–" : value.toFixed(3));
    const shown = state.hits.filter((hit) => state.grades.has(hit.doc_id)).length;
    const here = state.summary && state.summary.query;
    const parts = [
      `This query: ${state.grades.size} judged (${shown} of these ${state.hits.length} results), `
        + `nDCG@10 ${ndcg(here ? here.ndcg_at_10 : null)}`,
    ];
    if (state.summary) {
      parts.push(`All judged queries: ${state.summary.queries} queries, ${state.summary.judgments} judgments, `
        + `nDCG@10 ${ndcg(state.summary.ndcg_at_10)}`);
    }
    if (!state.summary) parts.push("Computing nDCG@10…");
    if (state.readOnly) parts.push("Read-only server: grading is off.");
    box.replaceChildren(...parts.map((text) => el("p", { text })));
    box.hidden = false;
  }

  // The document view -----------------------------------------------------------------------------------------------
  async function openDocument(hit) {
    try {
      const doc = await api("GET", `/documents/${encodeURIComponent(hit.doc_id)}`);
      const chars = Array.from(doc.text || "");
      const start = Math.min(Math.max(hit.start, 0), chars.length);
      const end = Math.min(Math.max(hit.end, start), chars.length);
      const passage = el("mark", { id: "passage", text: chars.slice(start, end).join("") });
      $("doc-text").replaceChildren(chars.slice(0, start).join(""), passage, chars.slice(end).join(""));
      $("doc-title").textContent = doc.title || doc.doc_id;
      $("doc-id").textContent = doc.doc_id;
      $("doc-source").textContent = doc.source || ""; // text, never a link
      const metadata = Object.entries(doc.metadata || {}).flatMap(([name, value]) => [
        el("dt", { text: name }), el("dd", { text: typeof value === "string" ? value : JSON.stringify(value) })]);
      $("doc-metadata").replaceChildren(...metadata);
      $("results").hidden = true;
      $("document").hidden = false;
      passage.scrollIntoView({ block: "center" });
      status(`Characters ${start}–${end} of ${doc.doc_id} matched.`);
    } catch (error) {
      status(error.message, true);
    }
  }

  $("back").addEventListener("click", showResults);

  // Start --------------------------------------------------------------------------------------------------------
  loadConfig()
    .then(() => { document.body.dataset.ready = "true"; $("query").focus(); })
    .catch((error) => status(error.message, true));
})();
