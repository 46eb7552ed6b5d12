// Fork page: draw one line per branch for each trend chart, from the fork's trends.json.
(function () {
  "use strict";
  const root = document.getElementById("trends");
  if (!root || typeof Chart === "undefined") return;
  const palette = ["#0b57d0", "#b3261e", "#146c2e", "#8a4b00", "#6750a4", "#006874"];
  fetch(root.dataset.url, { credentials: "same-origin" })
    .then((response) => {
      if (!response.ok) throw new Error("trends: HTTP " + response.status);
      return response.json();
    })
    .then((data) => {
      const branches = Object.keys(data.branches);
      const days = [...new Set(branches.flatMap((b) => data.branches[b].map((p) => p.taken_at.slice(0, 10))))].sort();
      root.querySelectorAll("canvas[data-field]").forEach((canvas) => {
        const field = canvas.dataset.field;
        const datasets = branches.map((branch, i) => {
          const byDay = new Map(data.branches[branch].map((p) => [p.taken_at.slice(0, 10), p[field]]));
          return {
            label: branch,
            data: days.map((d) => (byDay.has(d) ? byDay.get(d) : null)),
            borderColor: palette[i % palette.length],
            backgroundColor: palette[i % palette.length],
            spanGaps: true,
            tension: 0.2,
          };
        });
        new Chart(canvas, {
          type: "line",
          data: { labels: days, datasets: datasets },
          options: { animation: false, responsive: true, scales: { y: { beginAtZero: true } } },
        });
      });
    })
    .catch((error) => {
      root.insertAdjacentHTML("beforeend", '<p class="error" role="alert">Charts could not be loaded.</p>');
      console.warn(error);
    });
})();
