// Fork page: open security fixes by severity over time, and the patch gap per release against
// upstream Chrome's own gap, from the fork's security.json.
(function () {
  "use strict";
  const root = document.getElementById("security-trends");
  if (!root || typeof Chart === "undefined") return;
  const severities = [
    ["critical", "Critical", "#8c1d18"],
    ["high", "High", "#d93025"],
    ["medium", "Medium", "#e37400"],
    ["low", "Low", "#5f6368"],
  ];
  const options = {
    animation: false,
    responsive: true,
    scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
  };

  function openChart(canvas, points) {
    // One point per day (the day's last snapshot), like the lag charts.
    const byDay = new Map(points.map((p) => [p.taken_at.slice(0, 10), p]));
    const days = [...byDay.keys()].sort();
    new Chart(canvas, {
      type: "line",
      data: {
        labels: days,
        datasets: severities.map(([key, label, colour]) => ({
          label: label,
          data: days.map((d) => byDay.get(d)["open_" + key]),
          borderColor: colour,
          backgroundColor: colour,
          stepped: true,
          pointRadius: 0,
        })),
      },
      options: options,
    });
  }

  function gapChart(canvas, releases) {
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: releases.map((r) => r.release),
        datasets: [
          {
            type: "bar",
            label: "This fork: median days from landing to release",
            data: releases.map((r) => r.median_days_from_landing),
            backgroundColor: "#0b57d0",
          },
          {
            type: "line",
            label: "Upstream Chrome: median days from landing to Stable",
            data: releases.map((r) => r.upstream_median_days),
            borderColor: "#146c2e",
            backgroundColor: "#146c2e",
            spanGaps: true,
          },
        ],
      },
      options: options,
    });
  }

  fetch(root.dataset.url, { credentials: "same-origin" })
    .then((response) => {
      if (!response.ok) throw new Error("security trends: HTTP " + response.status);
      return response.json();
    })
    .then((data) => {
      openChart(root.querySelector("canvas[data-chart=open]"), data.open);
      gapChart(root.querySelector("canvas[data-chart=gap]"), data.gap);
    })
    .catch((error) => {
      root.insertAdjacentHTML("beforeend", '<p class="error" role="alert">Charts could not be loaded.</p>');
      console.warn(error);
    });
})();
