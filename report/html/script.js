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
      out.textContent = q === "" ? "" : n + " frames match, " + (100 * bytes / total).toFixed(1) + " % of the bytes";
    });
  });
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  });
})();
