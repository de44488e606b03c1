// pacslb WebUI, graphs page: the server's samples (section.graph[data-series]) drawn with uPlot (vendor/, MIT).
// Every chart shares one time axis: the same span, a cursor that shows the same moment on all (uPlot's cursor
// sync), and a zoom (drag across a chart) that applies to all. Hovering shows the values in each chart's legend.
// Without JavaScript the server-drawn SVG charts stay. The live refresh (app.js) replaces the sections every 10 s:
// the charts are drawn again, at the zoom chosen.
(function () {
  "use strict";
  if (typeof uPlot === "undefined") return;
  var METRICS = [
    { key: "requests", label: "requests/s", color: "#1f5fbf", digits: 2 },
    { key: "sessions", label: "sessions", color: "#1e8e3e", digits: 0 },
    { key: "errors", label: "errors/s", color: "#c5221f", digits: 2 },
  ];
  var root = document.getElementById("graphs");
  if (!root) return;
  var tools = document.querySelector(".graph-tools");
  var spanText = document.getElementById("zoom-span");
  var charts = [];
  var zoom = null; // {min, max} in epoch seconds, or null for the whole span
  var syncing = false;

  // Times in UTC and 24 h, as on every other page (the revisions, the audit log): not the browser's zone and locale.
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function hhmm(d) { return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()); }
  function when(seconds) { var d = new Date(seconds * 1000); return hhmm(d) + ":" + pad(d.getUTCSeconds()) + " UTC"; }
  function axisTimes(u, splits) {
    var days = u.scales.x.max - u.scales.x.min > 86400; // a span over a day: the date too
    return splits.map(function (s) {
      var d = new Date(s * 1000);
      return (days ? pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " : "") + hhmm(d);
    });
  }

  function showZoom() {
    if (!tools) return;
    tools.hidden = false;
    spanText.textContent = zoom ? "zoomed: " + when(zoom.min) + " – " + when(zoom.max) : "the whole span";
  }

  function zoomAll(source, min, max) {
    if (syncing) return;
    syncing = true;
    charts.forEach(function (u) { if (u !== source) u.setScale("x", { min: min, max: max }); });
    syncing = false;
  }

  function draw(section) {
    var data;
    try { data = JSON.parse(section.getAttribute("data-series")); } catch (e) { return; }
    var box = document.createElement("div");
    box.className = "uplots";
    section.appendChild(box);
    section.classList.add("drawn");
    var width = Math.max(240, Math.floor((box.clientWidth - 16) / 3));
    METRICS.forEach(function (metric) {
      var holder = document.createElement("div");
      holder.className = "uplot-holder";
      holder.setAttribute("data-metric", metric.key);
      box.appendChild(holder);
      var options = {
        width: width,
        height: 190,
        title: metric.label,
        scales: { x: { time: true, min: data.start, max: data.end }, y: { range: function (u, lo, hi) { return [0, Math.max(hi || 0, metric.digits ? 0.1 : 1) * 1.1]; } } },
        series: [
          { value: function (u, v) { return v == null ? "-" : when(v); } },
          { label: metric.label, stroke: metric.color, width: 1.6, fill: metric.color + "1f", spanGaps: false,
            value: function (u, v) { return v == null ? "-" : v.toFixed(metric.digits); } },
        ],
        tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); }, // ticks on UTC hours
        axes: [{ grid: { stroke: "#edf0f3" }, values: axisTimes }, { grid: { stroke: "#edf0f3" }, size: 50 }],
        cursor: { sync: { key: "pacslb-graphs", setSeries: false }, drag: { x: true, y: false } },
        legend: { live: true },
        hooks: {
          setScale: [function (u, key) {
            if (key !== "x" || syncing) return;
            var min = u.scales.x.min, max = u.scales.x.max;
            var whole = Math.abs(min - data.start) < 1 && Math.abs(max - data.end) < 1;
            zoom = whole ? null : { min: min, max: max };
            zoomAll(u, min, max);
            showZoom();
          }],
        },
      };
      var u = new uPlot(options, [data.t, data[metric.key]], holder);
      u.pacslbSpan = data;
      charts.push(u);
    });
  }

  function drawAll() {
    charts.forEach(function (u) { u.destroy(); });
    charts = [];
    root.querySelectorAll("section.graph[data-series]").forEach(draw);
    if (zoom) { syncing = true; charts.forEach(function (u) { u.setScale("x", zoom); }); syncing = false; }
    showZoom();
  }

  var reset = document.getElementById("zoom-reset");
  if (reset) {
    reset.addEventListener("click", function () {
      zoom = null;
      syncing = true;
      charts.forEach(function (u) { u.setScale("x", { min: u.pacslbSpan.start, max: u.pacslbSpan.end }); });
      syncing = false;
      showZoom();
    });
  }
  root.addEventListener("pacslb:refreshed", drawAll);
  drawAll();
})();
