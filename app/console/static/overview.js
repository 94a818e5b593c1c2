// The overview's per-minute rates: unlocks from the allUnlocks subscription
// (every server), events from this server's counter sampled every 5 s.
"use strict";

(function () {
  const MINUTE = 60 * 1000;
  const unlocks = [];
  const samples = [];
  const eventsOut = document.getElementById("events-per-minute");
  const unlocksOut = document.getElementById("unlocks-per-minute");
  const ratesURL = document.getElementById("live").dataset.rates;

  function showUnlocks() {
    const since = Date.now() - MINUTE;
    while (unlocks.length && unlocks[0] < since) unlocks.shift();
    unlocksOut.textContent = String(unlocks.length);
  }

  function sample() {
    fetch(ratesURL, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (counters) {
        const now = Date.now();
        samples.push({ at: now, events: counters.events });
        while (samples.length > 1 && samples[1].at <= now - MINUTE) samples.shift();
        const first = samples[0];
        eventsOut.textContent = samples.length > 1 ? String(Math.round(counters.events - first.events)) : "0";
      })
      .catch(function () { eventsOut.textContent = "?"; });
  }

  QuestlineLive.connect({}).subscribe("subscription { allUnlocks { id } }", {}, function (payload) {
    if (payload.data) {
      unlocks.push(Date.now());
      showUnlocks();
    }
  });
  sample();
  setInterval(sample, 5000);
  setInterval(showUnlocks, 5000);
  showUnlocks();
})();
