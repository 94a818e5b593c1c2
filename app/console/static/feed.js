// The live feed: each unlock of every player, newest first (allUnlocks).
"use strict";

(function () {
  const MAX_ROWS = 200;
  const body = document.getElementById("feed");
  const state = document.getElementById("feed-state");
  const words = { live: "Live.", reconnecting: "Connection lost, reconnecting…", refused: "Refused: sign in again." };

  function cell(text, tag) {
    const element = document.createElement(tag || "td");
    element.textContent = text;
    return element;
  }

  const live = QuestlineLive.connect({ onState: function (name) { state.textContent = words[name]; } });
  live.subscribe(
    "subscription { allUnlocks { id playerId title points unlockedAt } }",
    {},
    function (payload) {
      if (!payload.data) return;
      const unlock = payload.data.allUnlocks;
      const empty = body.querySelector("tr.empty");
      if (empty) empty.remove();
      const row = document.createElement("tr");
      row.append(cell(new Date(unlock.unlockedAt).toLocaleString()));
      const player = cell("");
      const link = document.createElement("a");
      link.href = "/console/players/" + encodeURIComponent(unlock.playerId);
      link.textContent = unlock.playerId;
      player.append(link);
      row.append(player, cell(unlock.title), cell(unlock.points == null ? "" : String(unlock.points)));
      body.prepend(row);
      while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
    },
  );
})();
