"use strict";
// Sorting tables by a column, searching the flame graph, opening every
// fold before printing. The page reads the same without it.
(function () {
  function value(td) {
    var v = td.getAttribute("data-v");
    return v === null ? null : parseFloat(v);
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(heads, function (th, col) {
      if (th.classList.contains("barcol")) return;
      th.addEventListener("click", function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.filter.call(body.rows, function (r) { return !r.classList.contains("total"); });
        var totals = Array.prototype.filter.call(body.rows, function (r) { return r.classList.contains("total"); });
        var dir = th.getAttribute("aria-sort") === "descending" ? 1 : -1;
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
        rows.sort(function (a, b) {
          var x = a.cells[col], y = b.cells[col];
          var vx = value(x), vy = value(y);
          if (vx !== null && vy !== null) return dir * (vx - vy);
          if (vx !== null) return -1;
          if (vy !== null) return 1;
          return dir * x.textContent.localeCompare(y.textContent);
        });
        rows.concat(totals).forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  document.querySelectorAll(".flame-search").forEach(function (input) {
    var block = input.closest("section");
    var svg = block.querySelector("svg.flamegraph");
    var out = block.querySelector(".flame-match");
    var frames = Array.prototype.slice.call(svg.querySelectorAll("g.fr"));
    var total = parseFloat(svg.getAttribute("data-total")) || 1;
    input.addEventListener("input", function () {
      var q = input.value.trim().toLowerCase();
      svg.classList.toggle("searching", q !== "");
      var bytes = 0, n = 0, end = -1;
      frames.forEach(function (g, i) {
        var hit = q !== "" && i > 0 && g.getAttribute("data-n").toLowerCase().indexOf(q) >= 0;
        g.classList.toggle("hit", hit);
        if (!hit) return;
        n++;
        // Frames come in preorder: a hit inside an earlier hit is counted once.
        var r = g.querySelector("rect"), x = parseFloat(r.getAttribute("x"));
        if (x >= end) {
          bytes += parseFloat(g.getAttribute("data-b"));
          end = x + parseFloat(r.getAttribute("width")) - 0.01;
        }
      });
      out.textContent = q === "" ? "" : (n === 1 ? "1 frame matches, " : n + " frames match, ") + (100 * bytes / total).toFixed(1) + " % of the bytes";
    });
  });
  // Zoom: a click on a frame spreads it over the width, its callers above
  // it as context; a click on the top row shows every frame again.
  document.querySelectorAll("svg.flamegraph").forEach(function (svg) {
    var frames = Array.prototype.map.call(svg.querySelectorAll("g.fr"), function (g) {
      var r = g.querySelector("rect");
      return { g: g, r: r, t: g.querySelector("text"), name: g.getAttribute("data-n"),
        x: parseFloat(r.getAttribute("x")), w: parseFloat(r.getAttribute("width")), y: parseFloat(r.getAttribute("y")) };
    });
    function clip(s, n) { return s.length <= n ? s : (n <= 1 ? "" : s.slice(0, n - 1) + "…"); }
    function zoom(z) {
      frames.forEach(function (f) {
        var x = 0, w = 1000;
        var inside = f.x >= z.x - 1e-6 && f.x + f.w <= z.x + z.w + 1e-6 && f.y >= z.y;
        var above = f.y < z.y && f.x <= z.x + 1e-6 && f.x + f.w >= z.x + z.w - 1e-6;
        f.g.classList.toggle("out", !inside && !above);
        if (inside) { x = (f.x - z.x) * 1000 / z.w; w = f.w * 1000 / z.w; }
        f.r.setAttribute("x", x.toFixed(1));
        f.r.setAttribute("width", w.toFixed(1));
        f.t.setAttribute("x", (x + 3).toFixed(1));
        var chars = Math.floor((w - 6) / 6.4);
        f.t.textContent = chars >= 3 ? clip(f.name, chars) : "";
      });
    }
    frames.forEach(function (f, i) {
      f.g.addEventListener("click", function () { zoom(i === 0 ? frames[0] : f); });
    });
  });
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  });
})();
