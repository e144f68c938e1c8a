// The search page: asks /v1/search and renders hits with DOM nodes (never HTML strings).
"use strict";

const form = document.getElementById("search-form");
const query = document.getElementById("query");
const folder = document.getElementById("folder");
const fileType = document.getElementById("file-type");
const mode = document.getElementById("mode");
const statusLine = document.getElementById("status");
const results = document.getElementById("results");
const RESULTS = 20;

function option(select, value, label) {
  const item = document.createElement("option");
  item.value = value;
  item.textContent = label;
  select.appendChild(item);
}

async function loadFacets() {
  try {
    const response = await fetch("/v1/facets");
    if (!response.ok) return;
    const facets = await response.json();
    document.getElementById("index-info").textContent =
      `${facets.documents} passages from ${facets.folders.length} folder(s).`;
    for (const path of facets.folders) option(folder, path, path);
    for (const suffix of facets.file_types) option(fileType, suffix, suffix);
  } catch (error) {
    statusLine.textContent = "Could not reach the server.";
  }
}

function fileUrl(metadata) {
  const url = "/v1/file?path=" + encodeURIComponent(metadata.file);
  return metadata.page ? `${url}#page=${metadata.page}` : url;
}

function baseName(path) {
  return path.split(/[\\/]/).pop() || path;
}

function renderHit(hit) {
  const metadata = hit.metadata || {};
  const item = document.createElement("li");
  item.className = "hit";
  const title = document.createElement("h2");
  if (metadata.file) {
    const link = document.createElement("a");
    link.href = fileUrl(metadata);
    link.textContent = metadata.title || metadata.subject || baseName(metadata.file);
    title.appendChild(link);
  } else {
    title.textContent = String(hit.id);
  }
  item.appendChild(title);
  const where = document.createElement("p");
  where.className = "where";
  const parts = [];
  if (metadata.file) parts.push(metadata.file);
  if (metadata.page) parts.push(`page ${metadata.page}`);
  if (metadata.heading) parts.push(`section “${metadata.heading}”`);
  if (metadata.line) parts.push(`line ${metadata.line}`);
  where.textContent = parts.join(" · ");
  item.appendChild(where);
  const snippet = document.createElement("p");
  snippet.className = "snippet";
  (hit.snippet || [hit.text || ""]).forEach((segment, position) => {
    if (position % 2 === 1) {
      const match = document.createElement("mark");
      match.textContent = segment;
      snippet.appendChild(match);
    } else {
      snippet.appendChild(document.createTextNode(segment));
    }
  });
  item.appendChild(snippet);
  return item;
}

async function search(text) {
  const body = {query: text, k: RESULTS, mode: mode.value, snippets: true};
  if (folder.value) body.folder = folder.value;
  if (fileType.value) body.file_types = [fileType.value];
  statusLine.textContent = "Searching…";
  results.replaceChildren();
  try {
    const response = await fetch("/v1/search", {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
    });
    const answer = await response.json();
    if (!response.ok) {
      statusLine.textContent = answer.error ? answer.error.message : "The search failed.";
      return;
    }
    const hits = answer.data[0].hits;
    for (const hit of hits) results.appendChild(renderHit(hit));
    statusLine.textContent = hits.length
      ? `${hits.length} result${hits.length === 1 ? "" : "s"} for “${text}”.`
      : `Nothing found for “${text}”.`;
  } catch (error) {
    statusLine.textContent = "Could not reach the server.";
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = query.value.trim();
  if (text) {
    const url = new URL(window.location);
    url.searchParams.set("q", text);
    window.history.replaceState(null, "", url);
    search(text);
  }
});

document.addEventListener("keydown", (event) => {
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
  if (event.key === "/" && !typing) {
    event.preventDefault();
    query.focus();
  }
});

loadFacets().then(() => {
  const initial = new URL(window.location).searchParams.get("q");
  if (initial) {
    query.value = initial;
    search(initial);
  } else {
    query.focus();
  }
});
