// The room page's charts: read /console/api/rooms/... (with the console's cookie), draw them with
// Chart.js, and read again every data-refresh seconds while the session is live, so the curve grows.
"use strict";
(function () {
  const box = document.getElementById("charts");
  if (!box || typeof Chart === "undefined") return;
  const refresh = Number(box.dataset.refresh || 0) * 1000;
  const state = document.getElementById("chart-state");
  const charts = {};
  const clock = (ms) => new Date(ms).toISOString().slice(11, 19);
  // Linear axes of epoch milliseconds (no date adapter needed); ticks on whole seconds only, so a
  // span of a few seconds does not label the same second twice.
  const timeAxis = {type: "linear", ticks: {callback: clock, maxTicksLimit: 8}, title: {display: true, text: "UTC"},
                    afterBuildTicks: (axis) => { axis.ticks = axis.ticks.filter((t) => t.value % 1000 === 0); }};
  const base = {animation: false, responsive: true, maintainAspectRatio: false, parsing: false, normalized: true};

  function draw(id, config, empty) {
    const canvas = document.getElementById(id);
    const count = config.data.datasets.reduce((n, d) => n + d.data.length, 0);
    canvas.dataset.points = String(count);
    // An empty chart is an empty frame: say what is missing instead.
    canvas.parentElement.hidden = count === 0;
    let note = canvas.parentElement.nextElementSibling;
    if (!note || !note.classList.contains("empty")) {
      note = document.createElement("p");
      note.className = "muted empty";
      canvas.parentElement.after(note);
    }
    note.textContent = count === 0 ? empty : "";
    if (charts[id]) {
      charts[id].data = config.data;
      charts[id].update("none");
    } else {
      charts[id] = new Chart(canvas, config);
    }
  }

  function render(data) {
    const curve = data.curve || [];
    draw("curve", {type: "line", options: {...base, scales: {x: timeAxis, y: {beginAtZero: true}}},
      data: {datasets: [{label: "viewers now", data: curve.filter((p) => p.viewers != null).map((p) => ({x: p.t, y: p.viewers})),
                          borderColor: "#1f6feb", pointRadius: 1.5, tension: 0.2}]}},
      "No snapshot with a viewer count yet.");
    const shown = (data.presented || []).filter((p) => p.from != null);
    draw("presented", {type: "bar", options: {...base, parsing: true, indexAxis: "y", scales: {x: timeAxis}},
      data: {labels: shown.map((p) => p.product_id),
             datasets: [{label: "presented", backgroundColor: "#d29922",
                         data: shown.map((p) => ({y: p.product_id, x: [p.from, Math.max(p.to, p.from + 1000)]}))}]}},
      "No product presented in this session (or the platform does not say which).");
    draw("shelf", {type: "line", options: {...base, scales: {x: timeAxis}},
      data: {datasets: (data.shelf || []).map((s) => ({label: s.product_id, pointRadius: 1,
                                                      data: s.points.map((p) => ({x: p.t, y: p.sales}))}))}},
      "No shelf reading with sales in this session.");
    const table = document.getElementById("products");
    table.replaceChildren();
    const products = data.products || [];
    if (products.length) {
      const head = table.insertRow();
      for (const name of ["product", "units at first reading", "at last reading", "sold meanwhile",
                          "units sold (session estimate)", "GMV [low, high]", "price", "readings"]) {
        head.appendChild(document.createElement("th")).textContent = name;
      }
    }
    const money = (x) => x == null ? "–" : Number(x).toFixed(2);
    for (const p of products) {
      const row = table.insertRow();
      const gmv = p.gmv == null ? null : money(p.gmv) + " [" + money(p.gmv_low) + ", " +
        (p.gmv_high == null ? "unbounded" : money(p.gmv_high)) + "]";
      for (const value of [p.product_id, p.first_sales, p.last_sales, p.sold, p.units, gmv, p.price, p.readings]) {
        row.insertCell().textContent = value == null ? "–" : String(value);
      }
    }
    const down = Object.keys(data.down || {});
    state.textContent = (down.length ? down.join(", ") + " does not answer. " : "") +
      curve.length + " snapshots; read at " + new Date().toISOString().slice(11, 19) + " UTC";
    box.dataset.loaded = String(Number(box.dataset.loaded || 0) + 1);
    return data.session && data.session.status === "ended";
  }

  async function load() {
    let ended = false;
    try {
      const answer = await fetch(box.dataset.src, {credentials: "same-origin", headers: {Accept: "application/json"}});
      if (answer.status === 401) { window.location = "/console/login"; return; }
      ended = render(await answer.json());
    } catch (error) {
      state.textContent = "The charts could not be read: " + error;
    }
    if (refresh && !ended) setTimeout(load, refresh);
  }
  load();
})();
