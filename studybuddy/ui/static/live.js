// The run page's live parts: updates from the run's Server-Sent Events feed replace #live's content.
// Tabs share one feed per run through a shared worker (feed-worker.js) where the browser has them, else
// each opens its own EventSource. Without JavaScript the page shows the state it was rendered with.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource) {
    return;
  }
  var url = live.getAttribute("data-events");
  var pending = null;
  var scheduled = false;
  function apply() {
    scheduled = false;
    if (pending !== null) {
      live.innerHTML = pending;
      pending = null;
    }
  }
  function update(data) {
    pending = JSON.parse(data).html;
    if (!scheduled) {
      scheduled = true;
      window.requestAnimationFrame(apply);
    }
  }
  function ended() {
    var stop = document.querySelector("form[action$='/stop'] button");
    if (stop) {
      stop.disabled = true;
    }
  }
  if (window.SharedWorker) {
    var port = new SharedWorker("/static/feed-worker.js").port;
    port.onmessage = function (message) {
      if (message.data.type === "live") {
        update(message.data.data);
      } else if (message.data.type === "end") {
        ended();
      }
    };
    port.postMessage({type: "watch", url: url});
    window.addEventListener("pagehide", function () {
      port.postMessage({type: "leave", url: url});
    });
    return;
  }
  var source = new EventSource(url);
  source.addEventListener("live", function (event) {
    update(event.data);
  });
  source.addEventListener("end", function () {
    source.close();
    ended();
  });
})();
