// airflowdsl ui: DAG clicks open a step's panel, charts from embedded JSON, live polling.
(function () {
  "use strict";
  var PALETTE = ["#3559e0", "#e8590c", "#2f9e44", "#ae3ec9", "#1098ad", "#f59f00", "#c2255c"];

  function charts(root) {
    if (typeof Chart === "undefined") return;
    root.querySelectorAll("figure.chart").forEach(function (fig) {
      var canvas = fig.querySelector("canvas");
      if (Chart.getChart(canvas)) return;
      var spec = JSON.parse(fig.querySelector(".chart-data").textContent);
      new Chart(canvas, {
        type: "line",
        data: { datasets: spec.series.map(function (s, i) {
          return { label: s.label, data: s.points.map(function (p) { return { x: p[0], y: p[1] }; }),
                   borderColor: PALETTE[i % PALETTE.length], backgroundColor: PALETTE[i % PALETTE.length],
                   pointRadius: s.points.length > 60 ? 0 : 2, tension: 0.15 };
        }) },
        options: { animation: false, parsing: false, responsive: true,
                   scales: { x: { type: "linear", title: { display: true, text: "iteration" } },
                             y: { title: { display: true, text: spec.metric } } },
                   plugins: { legend: { display: spec.series.length > 1 } } }
      });
    });
    root.querySelectorAll("figure.scatter").forEach(function (fig) {
      var canvas = fig.querySelector("canvas");
      var tv = JSON.parse(fig.querySelector(".scatter-data").textContent);
      var xs = fig.querySelector(".scatter-x"), ys = fig.querySelector(".scatter-y");
      function draw() {
        var old = Chart.getChart(canvas);
        if (old) old.destroy();
        var x = xs.value, y = ys.value;
        var pts = function (best) {
          return tv.rows.filter(function (r) { return r.best === best && typeof r.config[x] === "number" && typeof r.metrics[y] === "number"; })
                        .map(function (r) { return { x: r.config[x], y: r.metrics[y], trial: r.id }; });
        };
        new Chart(canvas, {
          type: "scatter",
          data: { datasets: [
            { label: "trials", data: pts(false), backgroundColor: "#3559e0", pointRadius: 4 },
            { label: "best", data: pts(true), backgroundColor: "#f59f00", borderColor: "#111", pointRadius: 8, pointStyle: "star", borderWidth: 2 }
          ] },
          options: { animation: false, parsing: false,
                     scales: { x: { title: { display: true, text: x } }, y: { title: { display: true, text: y } } },
                     plugins: { tooltip: { callbacks: { label: function (c) { return c.raw.trial + ": (" + c.raw.x + ", " + c.raw.y + ")"; } } } } }
        });
        fig.dataset.x = x; fig.dataset.y = y;
      }
      xs.onchange = draw; ys.onchange = draw;
      draw();
    });
  }

  function runPage() {
    var run = document.getElementById("run");
    if (!run) return;
    var id = run.dataset.run, panel = document.getElementById("panel");

    function select(step, push) {
      document.querySelectorAll("svg.dag .node, .steps-table tr").forEach(function (n) {
        n.classList.toggle("selected", n.dataset.step === step);
      });
      panel.setAttribute("aria-busy", "true");
      fetch("/runs/" + encodeURIComponent(id) + "/steps/" + encodeURIComponent(step))
        .then(function (r) { return r.text(); })
        .then(function (html) {
          panel.innerHTML = html;
          panel.removeAttribute("aria-busy");
          charts(panel);
          if (push) history.pushState({ step: step }, "", "/runs/" + encodeURIComponent(id) + "?step=" + encodeURIComponent(step));
        });
    }
    document.addEventListener("click", function (e) {
      var node = e.target.closest("svg.dag .node, a.step-link");
      if (!node) return;
      e.preventDefault();
      select(node.dataset.step, true);
    });
    document.addEventListener("keydown", function (e) {
      var node = e.target.closest && e.target.closest("svg.dag .node");
      if (node && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); select(node.dataset.step, true); }
    });
    window.addEventListener("popstate", function (e) { if (e.state && e.state.step) select(e.state.step, false); });

    if (run.dataset.status !== "running") return;
    // live: poll the run's status; redraw colours; reload once it has finished
    function poll() {
      fetch("/api/runs/" + encodeURIComponent(id)).then(function (r) { return r.json(); }).then(function (s) {
        Object.keys(s.steps).forEach(function (name) {
          var st = s.steps[name];
          document.querySelectorAll('[data-step="' + CSS.escape(name) + '"]').forEach(function (el) {
            if (el.matches("svg.dag .node")) {
              el.setAttribute("class", el.getAttribute("class").replace(/st-\w+/, "st-" + st.status));
              el.dataset.status = st.status;
              var t = el.querySelector(".status"); if (t) t.textContent = st.status;
            } else if (el.matches("tr")) {
              var b = el.querySelector(".step-status");
              b.className = "badge st-" + st.status + " step-status"; b.textContent = st.status;
              el.querySelector(".step-duration").textContent = st.duration;
            }
          });
        });
        document.getElementById("run-duration").textContent = s.duration;
        if (s.status !== "running") { location.reload(); return; }
        setTimeout(poll, 1000);
      }).catch(function () { setTimeout(poll, 3000); });
    }
    setTimeout(poll, 1000);
  }

  function runsPage() {
    var box = document.getElementById("runs-table");
    if (!box) return;
    var btn = document.getElementById("compare-btn");
    function picked() { return Array.prototype.slice.call(box.querySelectorAll("input.pick:checked")); }
    box.addEventListener("change", function () {
      var p = picked();
      btn.disabled = p.length !== 2;
    });
    btn.addEventListener("click", function () {
      var p = picked();
      if (p.length === 2) location.href = "/compare?a=" + encodeURIComponent(p[1].value) + "&b=" + encodeURIComponent(p[0].value);
    });
    // live: while a shown run is running, refresh the table (keeping ticked boxes)
    function poll() {
      var table = box.querySelector("table");
      // page 1 always (a new run appears at the top), other pages while a run runs
      if (!/[?&]page=1(&|$)/.test(box.dataset.liveUrl) && (!table || table.dataset.running === "0")) return;
      var keep = picked().map(function (c) { return c.value; });
      fetch(box.dataset.liveUrl).then(function (r) { return r.text(); }).then(function (html) {
        box.innerHTML = html;
        keep.forEach(function (v) { var c = box.querySelector('input.pick[value="' + CSS.escape(v) + '"]'); if (c) c.checked = true; });
        setTimeout(poll, 2500);
      }).catch(function () { setTimeout(poll, 5000); });
    }
    setTimeout(poll, 2500);
  }

  charts(document);
  runPage();
  runsPage();
})();
