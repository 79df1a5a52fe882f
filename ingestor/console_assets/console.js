// The console's behaviour: confirmation of every action form, sorting and filtering of
// tables, and the live page's charts (the queue's from its stored per-minute samples),
// polled from /dashboard/api/live. No framework, nothing from another origin; every text
// goes in through textContent.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 3000;
const COLORS = ["#2b6cb0", "#c05621", "#b00020", "#2f855a"];

function confirmActions() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
}

function cellValue(row, index) {
  const text = row.cells[index] ? row.cells[index].textContent.trim() : "";
  const number = parseFloat(text.replace(/[ %,]/g, ""));
  return Number.isNaN(number) || !/^[-\d.]/.test(text) ? text.toLowerCase() : number;
}

function sortableTables() {
  for (const table of document.querySelectorAll("table.sortable")) {
    const body = table.tBodies[0];
    table.querySelectorAll("th").forEach((th, index) => {
      th.classList.add("sorts");
      th.addEventListener("click", () => {
        const up = th.dataset.order !== "asc";
        table.querySelectorAll("th").forEach((other) => delete other.dataset.order);
        th.dataset.order = up ? "asc" : "desc";
        const rows = Array.from(body.rows);
        rows.sort((a, b) => {
          const x = cellValue(a, index), y = cellValue(b, index);
          return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1);
        });
        rows.forEach((row) => body.appendChild(row));
      });
    });
  }
  const filter = document.getElementById("filter");
  if (filter) {
    filter.addEventListener("input", () => {
      const wanted = filter.value.toLowerCase();
      for (const row of document.querySelectorAll("table.sortable tbody tr")) {
        row.hidden = wanted !== "" && !row.textContent.toLowerCase().includes(wanted);
      }
    });
  }
}

function element(name, attributes, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Lines of `series` ({label, values}) over the same x positions, scaled to the largest.
function draw(svg, series) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const width = 600, height = 140, top = 18, bottom = 14;
  const all = series.flatMap((s) => s.values.filter((v) => v !== null));
  const max = Math.max(1, ...all);
  svg.appendChild(element("line", { x1: 0, y1: height - bottom, x2: width, y2: height - bottom,
                                    stroke: "#bbb" }));
  svg.appendChild(element("text", { x: 2, y: 12, "font-size": 10, fill: "#555" },
                          "max " + Math.round(max * 10) / 10));
  series.forEach((s, n) => {
    const count = Math.max(2, s.values.length);
    const points = [];
    s.values.forEach((v, i) => {
      if (v === null) return;
      const x = (i / (count - 1)) * width;
      const y = height - bottom - (v / max) * (height - top - bottom);
      points.push(x.toFixed(1) + "," + y.toFixed(1));
    });
    const color = COLORS[n % COLORS.length];
    svg.appendChild(element("polyline", { points: points.join(" "), fill: "none",
                                          stroke: color, "stroke-width": 1.5 }));
    const last = s.values.filter((v) => v !== null).pop();
    svg.appendChild(element("text", { x: 90 + n * 130, y: 12, "font-size": 10, fill: color,
                                      class: "legend" },
                            s.label + ": " + (last === undefined ? "-" : last)));
  });
}

function setText(id, value) {
  const node = document.getElementById(id);
  if (node) node.textContent = String(value);
}

function show(live) {
  const m = live.minutes;
  setText("events-1h", live.events_1h);
  setText("delivered-1h", live.delivered_1h);
  setText("failed-1h", live.failed_1h);
  setText("queue-depth", live.queue_depth);
  setText("oldest-due", live.oldest_due_s);
  setText("live-at", "at " + live.at);
  setText("live-capped", live.capped ? "(a series reached its read cap: lower bounds)" : "");
  const pick = (key) => m.map((x) => x[key]);
  draw(document.getElementById("chart-ingest"), [{ label: "events", values: pick("events") }]);
  draw(document.getElementById("chart-outcomes"), [
    { label: "delivered", values: pick("delivered") },
    { label: "http error", values: pick("http_error") },
    { label: "failed", values: pick("failed") }]);
  draw(document.getElementById("chart-duration"), [
    { label: "p50", values: pick("duration_p50_ms") },
    { label: "p99", values: pick("duration_p99_ms") }]);
  draw(document.getElementById("chart-latency"), [
    { label: "p50", values: pick("latency_p50_ms") },
    { label: "p99", values: pick("latency_p99_ms") }]);
  // The last hour's per-minute samples (stored by one node of the fleet), then now.
  const samples = live.queue_samples || [];
  draw(document.getElementById("chart-queue"), [
    { label: "depth", values: samples.map((x) => x.depth).concat([live.queue_depth]) },
    { label: "oldest due s",
      values: samples.map((x) => x.oldest_due_age_s).concat([live.oldest_due_s]) }]);
}

async function poll(section) {
  const org = document.body.dataset.org;
  const url = section.dataset.poll + (org ? "?org=" + encodeURIComponent(org) : "");
  try {
    const answer = await fetch(url, { credentials: "same-origin",
                                      headers: { Accept: "application/json" } });
    if (answer.status === 401) {
      window.location.assign("/dashboard/login");
      return;
    }
    if (answer.ok) show(await answer.json());
  } catch (error) {
    setText("live-at", "no answer: " + error);
  }
  window.setTimeout(() => poll(section), POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  confirmActions();
  sortableTables();
  const live = document.getElementById("live");
  if (live) poll(live);
});
