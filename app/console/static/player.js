// The player page, live: on each unlock of this player (Subscription.unlocks)
// a notice appears, and the progress is read again over the same socket to
// fill the bars, without a reload.
"use strict";

(function () {
  const playerId = document.getElementById("player").dataset.playerId;
  const notices = document.getElementById("notices");
  const PROGRESS = "query($id: ID!) { player(id: $id) {" +
    " challenges { challenge { id } progress { current target percent completed } }" +
    " milestones { milestone { id } progress { current target percent completed } }" +
    " streaks { streak { id } progress { current target percent completed } }" +
    " points { balance } } }";

  function round(value) {
    return String(Math.round(value * 100) / 100);
  }

  function fill(id, progress) {
    const bar = document.getElementById(id);
    if (!bar) return;
    bar.max = progress.target;
    bar.value = Math.min(progress.current, progress.target);
    bar.textContent = progress.percent + "%";
    const text = document.getElementById(id + "-text");
    if (text) text.textContent = round(progress.current) + " / " + round(progress.target) + (progress.completed ? " · done" : "");
  }

  function refresh(live) {
    live.query(PROGRESS, { id: playerId }, function (payload) {
      if (!payload.data || !payload.data.player) return;
      const player = payload.data.player;
      player.challenges.forEach(function (item) { fill("challenge-" + item.challenge.id, item.progress); });
      player.milestones.forEach(function (item) { fill("milestone-" + item.milestone.id, item.progress); });
      player.streaks.forEach(function (item) { fill("streak-" + item.streak.id, item.progress); });
      document.getElementById("points-balance").textContent = String(player.points.balance);
    });
  }

  function notify(unlock) {
    const notice = document.createElement("p");
    notice.className = "notice unlocked";
    notice.textContent = "Unlocked: " + unlock.title + (unlock.points ? " (+" + unlock.points + " points)" : "");
    notices.prepend(notice);
  }

  const live = QuestlineLive.connect({});
  live.subscribe(
    "subscription($id: ID!) { unlocks(playerId: $id) { id key title points } }",
    { id: playerId },
    function (payload) {
      if (!payload.data) return;
      notify(payload.data.unlocks);
      refresh(live);
    },
  );
})();
