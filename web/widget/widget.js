/*
 * The leaderboard widget's behaviour: poll the public leaderboard every 5
 * seconds, show rank, speaker and score, mark who moved up or down since the
 * previous refresh, show an empty state, and when the API is unreachable
 * keep the last board on screen and say that it is reconnecting.
 *
 * Refreshes are cheap for the service: the response carries an ETag and a
 * short Cache-Control, so the browser revalidates with If-None-Match and an
 * unchanged board costs a 304 with no body.
 *
 * Boards never go back on screen. Behind a load balancer two refreshes may
 * reach different replicas, and a board may be rebuilt: an answer can be
 * older than the board already shown. Each board carries a version (the
 * number of views counted on it, which only grows), and a board whose
 * version is below the shown one is ignored until a newer one arrives.
 */
(function () {
  "use strict";

  var REFRESH_MS = 5000;
  var TOP_N = 10;
  var match = /^\/widget\/events\/([A-Za-z0-9_.:-]{1,128})\/?$/.exec(window.location.pathname);
  var eventId = match ? match[1] : null;
  var previousRanks = {};      // speaker id -> rank at the previous refresh
  var shownOnce = false;
  var shownVersion = -1;       // version of the board on screen; -1: none yet

  function byId(id) { return document.getElementById(id); }

  function setStatus(text) {
    var status = byId("status");
    status.textContent = text || "";
    status.hidden = !text;
  }

  function render(entries) {
    var list = byId("ranking");
    var nextRanks = {};
    list.textContent = "";
    entries.forEach(function (e) {
      var before = previousRanks[e.speaker_id];
      var li = document.createElement("li");
      var rank = document.createElement("span");
      var speaker = document.createElement("span");
      var score = document.createElement("span");
      var move = document.createElement("span");
      li.className = "row";
      li.dataset.speaker = e.speaker_id;
      rank.className = "rank";
      rank.textContent = "#" + e.rank;
      speaker.className = "speaker";
      speaker.textContent = e.speaker_id;          // textContent: never parsed as HTML
      score.className = "score";
      score.textContent = String(e.score);
      move.className = "move";
      if (shownOnce && before === undefined) {
        move.className += " up"; move.textContent = "\u2191"; move.title = "new on the board";
        li.className += " changed";
      } else if (shownOnce && e.rank < before) {
        move.className += " up"; move.textContent = "\u25B2"; move.title = "moved up";
        li.className += " changed";
      } else if (shownOnce && e.rank > before) {
        move.className += " down"; move.textContent = "\u25BC"; move.title = "moved down";
        li.className += " changed";
      }
      li.dataset.move = move.title || "same";
      li.append(rank, speaker, score, move);
      list.appendChild(li);
      nextRanks[e.speaker_id] = e.rank;
    });
    byId("empty").hidden = entries.length > 0;
    previousRanks = nextRanks;
    shownOnce = true;
  }

  function refresh() {
    var url = "/v1/events/" + encodeURIComponent(eventId) + "/leaderboard?top_n=" + TOP_N;
    fetch(url, { headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (body) {
        // A board without a version (an older server) is always shown.
        var version = typeof body.version === "number" ? body.version : -1;
        if (version >= 0 && version < shownVersion) {
          document.body.dataset.ignored = String((Number(document.body.dataset.ignored) || 0) + 1);
          setStatus("");       // the API answered: not a connection problem
          return;
        }
        if (version >= 0) { shownVersion = version; }
        document.body.dataset.version = String(version);
        render(body.leaderboard || []);
        setStatus("");
        byId("updated").textContent = "Updated " + new Date().toLocaleTimeString();
      })
      .catch(function () {
        // Keep the last board: a flaky network must not blank the projector.
        setStatus("Connection lost \u2014 reconnecting\u2026");
      })
      .then(function () { window.setTimeout(refresh, REFRESH_MS); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!eventId) {
      setStatus("This page needs an event: /widget/events/{event_id}");
      return;
    }
    byId("event").textContent = eventId;
    refresh();
  });
})();
