// Draws every <canvas data-chart> from the JSON figures beside it
// (<script type="application/json" id="<canvas id>-data">), with Chart.js.
"use strict";

(function () {
  const colours = ["#1f6feb", "#2da44e", "#bf8700", "#cf222e", "#8250df"];
  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    const figures = JSON.parse(document.getElementById(canvas.id + "-data").textContent);
    new Chart(canvas, {
      type: canvas.dataset.chart,
      data: {
        labels: figures.labels,
        datasets: figures.series.map(function (series, index) {
          return {
            label: series.label,
            data: series.data,
            backgroundColor: colours[index % colours.length],
          };
        }),
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        plugins: { legend: { display: figures.series.length > 1 } },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
  });
})();
