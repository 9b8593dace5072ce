// feeder's status page. The HTML carries no data: this script asks for the control token once (kept in
// sessionStorage, for this tab only), reads /api/sources, /api/status and /api/feeds with it, and fills the
// tables. "Refresh now" POSTs /api/refresh/SOURCE, follows /api/refresh/ID until it is done, then redraws
// that source's row (and the feeds) without reloading the page. No framework; text goes in as text only.
// URLs are relative to the page, which may be proxied under a path of its own.
"use strict";

(() => {
  const KEY = "feeder-control-token";
  const POLL_MS = 400;
  const $ = (id) => document.getElementById(id);

  class Unauthorized extends Error {}

  async function api(method, path) {
    const response = await fetch(path, {
      method,
      cache: "no-store",
      headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY) || ""}`, Accept: "application/json" },
    });
    if (response.status === 401) throw new Unauthorized("the control token was refused");
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    return body;
  }

  // Elements: el("td", {class: "x"}, "text", child, …); strings become text nodes, never markup.
  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value !== null && value !== undefined) node.setAttribute(name, value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const shown = (iso) => new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });

  function when(iso) {
    if (!iso) return el("span", { class: "muted" }, "—");
    return el("time", { datetime: iso, title: iso }, shown(iso));
  }

  function bytes(count) {
    if (count === null || count === undefined) return "—";
    if (count < 1024) return `${count} B`;
    const units = ["KiB", "MiB", "GiB"];
    let value = count / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${value.toFixed(1)} ${units[unit]}`;
  }

  // Sources ---------------------------------------------------------------------------------------------------------

  function lastPoll(source) {
    if (!source.last_poll) return [el("span", { class: "muted" }, "never polled")];
    const seconds = Number(source.duration_seconds || 0).toFixed(2);
    const outcome = source.failure
      ? el("small", { class: "bad" }, `failed: ${source.failure}`)
      : source.waiting
        ? el("small", { class: "warn" }, "skipped: the site asked to wait")
        : el("small", { class: "ok" }, `ok in ${seconds} s`);
    return [el("span", { class: "last-poll" }, when(source.last_poll)), outcome];
  }

  function entries(source) {
    if (!source.last_poll) return ["—"];
    const added = el("span", { class: "added" }, `${source.new} new`);
    const rest = el("small", {}, `${source.updated} updated, ${source.unchanged} unchanged, ${source.skipped} skipped`);
    return [added, rest];
  }

  function health(source) {
    const lines = [];
    if (source.degraded) lines.push(el("div", { class: "warn degraded" }, source.degraded));
    if (source.failure) lines.push(el("div", { class: "bad" }, "the last poll failed"));
    if (source.waiting) lines.push(el("div", { class: "warn waiting" }, `poll skipped, asked to wait: ${source.waiting}`));
    if (!lines.length) lines.push(el("div", { class: source.last_poll ? "ok" : "muted" }, source.last_poll ? "healthy" : "—"));
    const problems = source.problems || [];
    if (source.errors) {
      lines.push(el("small", { class: "bad" }, `${source.errors} input(s) could not be used:`));
      lines.push(el("ul", {}, problems.slice(0, 5).map((p) => el("li", {}, `${p.file}: ${p.reason}`))));
    }
    return lines;
  }

  function sourceRow(source) {
    const button = el("button", { type: "button", class: "refresh", "data-source": source.name }, "Refresh now");
    button.addEventListener("click", () => refresh(source.name));
    return el(
      "tr",
      { id: `source-${source.name}`, "data-source": source.name },
      el("td", {}, el("span", { class: "name" }, source.name), el("small", {}, `${source.kind}, every ${source.interval}`)),
      el("td", {}, lastPoll(source)),
      el("td", { class: "number" }, entries(source)),
      el("td", {}, when(source.next_poll)),
      el("td", {}, health(source)),
      el("td", {}, button, el("span", { class: "state", "aria-live": "polite" })),
    );
  }

  function drawSources(sources) {
    $("sources").tBodies[0].replaceChildren(...sources.map(sourceRow));
  }

  function redrawSource(source, state) {
    const old = $(`source-${source.name}`);
    const row = sourceRow(source);
    row.querySelector(".state").textContent = state;
    if (old) old.replaceWith(row);
    else $("sources").tBodies[0].append(row);
  }

  // Feeds and summary -----------------------------------------------------------------------------------------------

  function feedRow(feed) {
    const labels = { atom: "Atom", rss: "RSS", json: "JSON Feed" };
    const links = Object.entries(labels).map(([kind, label]) => el("a", { href: feed.urls[kind] }, label));
    const total = Object.values(feed.bytes || {}).reduce((sum, size) => sum + (size || 0), 0);
    return el(
      "tr",
      { id: `feed-${feed.name}` },
      el("td", {}, el("span", { class: "name" }, feed.title), el("small", {}, feed.name)),
      el("td", { class: "number" }, feed.entries ?? "—"),
      el("td", {}, when(feed.last_change)),
      el("td", { class: "number", title: `Atom ${bytes(feed.bytes.atom)}, RSS ${bytes(feed.bytes.rss)}, JSON ${bytes(feed.bytes.json)}` }, bytes(total)),
      el("td", { class: "links" }, links),
    );
  }

  function drawFeeds(feeds) {
    $("feeds").tBodies[0].replaceChildren(...feeds.map(feedRow));
  }

  function drawSummary(status) {
    const parts = [];
    if (status.entries !== undefined) parts.push(`${status.entries} entries stored`);
    if (status.updated) parts.push(`last poll recorded ${shown(status.updated)}`);
    const hubs = Object.entries(status.websub || {});
    if (hubs.length) parts.push(`WebSub: ${hubs.filter(([, hub]) => hub.ok).length} of ${hubs.length} hubs ok`);
    parts.push(...queueSummary(status.queue));
    $("summary").textContent = parts.join(" · ");
  }

  // On PostgreSQL the status has the job queue: its poll jobs by state, and the workers alive.
  function queueSummary(queue) {
    if (!queue || !Array.isArray(queue.workers)) return queue && queue.error ? [`queue: ${queue.error}`] : [];
    const counts = { waiting: 0, running: 0, failed: 0 };
    for (const jobs of Object.values(queue.sources || {})) for (const state in counts) counts[state] += jobs[state] || 0;
    const workers = queue.workers.length;
    return [
      `poll jobs: ${counts.waiting} waiting, ${counts.running} running, ${counts.failed} failed`,
      `${workers} ${workers === 1 ? "worker" : "workers"} alive`,
    ];
  }

  // Loading, refreshing, the token --------------------------------------------------------------------------------------

  async function load() {
    try {
      const [sources, status, feeds] = await Promise.all([api("GET", "api/sources"), api("GET", "api/status"), api("GET", "api/feeds")]);
      drawSources(sources.sources);
      drawSummary(status);
      drawFeeds(feeds.feeds);
      show("dashboard");
    } catch (error) {
      fail(error);
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function refresh(name) {
    const row = $(`source-${name}`);
    row.querySelector("button.refresh").disabled = true;
    const state = row.querySelector(".state");
    try {
      let asked = await api("POST", `api/refresh/${encodeURIComponent(name)}`);
      while (asked.state === "queued" || asked.state === "running") {
        state.textContent = `${asked.state}…`;
        await sleep(POLL_MS);
        asked = await api("GET", `api/refresh/${encodeURIComponent(asked.id)}`);
      }
      const [sources, feeds, status] = await Promise.all([api("GET", "api/sources"), api("GET", "api/feeds"), api("GET", "api/status")]);
      const source = sources.sources.find((s) => s.name === name);
      if (source) redrawSource(source, asked.state === "done" ? "refreshed just now" : `failed: ${asked.error}`);
      drawFeeds(feeds.feeds);
      drawSummary(status);
    } catch (error) {
      fail(error);
      state.textContent = `failed: ${error.message}`;
      row.querySelector("button.refresh").disabled = false;
    }
  }

  function show(which) {
    $("login").hidden = which !== "login";
    $("dashboard").hidden = which !== "dashboard";
    $("forget").hidden = $("reload").hidden = which !== "dashboard";
    $("failure").hidden = true;
    if (which === "login") $("token").focus();
  }

  function fail(error) {
    if (error instanceof Unauthorized) {
      sessionStorage.removeItem(KEY);
      $("login-error").textContent = "That token was refused: copy it again from the token file.";
      show("login");
      return;
    }
    $("failure").textContent = `Cannot read the status: ${error.message}`;
    $("failure").hidden = false;
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, $("token").value.trim());
      $("token").value = "";
      $("login-error").textContent = "";
      load();
    });
    $("forget").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      show("login");
    });
    $("reload").addEventListener("click", load);
    if (sessionStorage.getItem(KEY)) load();
    else show("login");
  });
})();
