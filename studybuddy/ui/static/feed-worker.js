// One live feed per run for every tab of this browser: a browser opens at most six HTTP/1.1 connections
// to one host, so an EventSource per tab would leave a seventh tab waiting for its page. Tabs connect to
// this shared worker, say which feed they watch, and get each update the feed sends.
"use strict";
const feeds = new Map(); // feed URL -> {source, ports, last}

function watch(url, port) {
  let feed = feeds.get(url);
  if (!feed) {
    feed = {source: new EventSource(url), ports: new Set(), last: null};
    feeds.set(url, feed);
    feed.source.addEventListener("live", (event) => {
      feed.last = event.data;
      feed.ports.forEach((p) => p.postMessage({type: "live", data: event.data}));
    });
    feed.source.addEventListener("end", () => {
      feed.source.close();
      feeds.delete(url);
      feed.ports.forEach((p) => p.postMessage({type: "end"}));
    });
  }
  feed.ports.add(port);
  if (feed.last !== null) {
    port.postMessage({type: "live", data: feed.last});
  }
}

function leave(url, port) {
  const feed = feeds.get(url);
  if (feed) {
    feed.ports.delete(port);
    if (feed.ports.size === 0) {
      feed.source.close();
      feeds.delete(url);
    }
  }
}

self.onconnect = (event) => {
  const port = event.ports[0];
  port.onmessage = (message) => {
    if (message.data.type === "watch") {
      watch(message.data.url, port);
    } else if (message.data.type === "leave") {
      leave(message.data.url, port);
    }
  };
};
