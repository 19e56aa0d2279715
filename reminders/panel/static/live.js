// The dashboard's counters, kept current by the server's event stream (/live). Without
// JavaScript the page shows the counts as they were when it was loaded.
(function () {
  if (!window.EventSource) return;
  var source = new EventSource("/live");
  source.onmessage = function (event) {
    var counts = JSON.parse(event.data);
    var changed = false;
    Object.keys(counts).forEach(function (key) {
      var el = document.getElementById("counter-" + key);
      if (el && el.textContent !== counts[key]) {
        el.textContent = counts[key];
        changed = true;
      }
    });
    // The hourly chart below is fetched again (htmx listens for this on the body).
    if (changed) document.body.dispatchEvent(new Event("counts-changed"));
  };
})();
