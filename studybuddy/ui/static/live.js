// The run page's live parts: Server-Sent Events from /runs/ID/events replace #live's content.
// Without JavaScript the page still shows the state it was rendered with (reload to refresh).
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource) {
    return;
  }
  var source = new EventSource(live.getAttribute("data-events"));
  var pending = null;
  var scheduled = false;
  function apply() {
    scheduled = false;
    if (pending !== null) {
      live.innerHTML = pending;
      pending = null;
    }
  }
  source.addEventListener("live", function (event) {
    pending = JSON.parse(event.data).html;
    if (!scheduled) {
      scheduled = true;
      window.requestAnimationFrame(apply);
    }
  });
  source.addEventListener("end", function () {
    source.close();
    var stop = document.querySelector("form[action$='/stop'] button");
    if (stop) {
      stop.disabled = true;
    }
  });
})();
