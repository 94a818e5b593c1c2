// A minimal graphql-transport-ws client for the console's live parts.
// The WebSocket is authenticated by the console's session cookie (sent with
// the handshake), so connection_init carries no credential. It reconnects
// after a drop, and each subscription is sent again.
"use strict";

window.QuestlineLive = (function () {
  const url = new URL("/graphql", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";

  function connect(handlers) {
    let socket = null;
    let nextId = 1;
    const operations = new Map();

    function send(message) {
      if (socket && socket.readyState === WebSocket.OPEN && socket.acknowledged) {
        socket.send(JSON.stringify(message));
      }
    }

    function start(id) {
      const operation = operations.get(id);
      send({ id: id, type: "subscribe", payload: { query: operation.query, variables: operation.variables } });
    }

    function open() {
      socket = new WebSocket(url, "graphql-transport-ws");
      socket.acknowledged = false;
      socket.addEventListener("open", function () {
        socket.send(JSON.stringify({ type: "connection_init", payload: {} }));
      });
      socket.addEventListener("message", function (event) {
        const message = JSON.parse(event.data);
        if (message.type === "connection_ack") {
          socket.acknowledged = true;
          if (handlers.onState) handlers.onState("live");
          operations.forEach(function (_, id) { start(id); });
        } else if (message.type === "ping") {
          socket.send(JSON.stringify({ type: "pong" }));
        } else if (message.type === "next" || message.type === "error") {
          const operation = operations.get(message.id);
          if (!operation) return;
          const payload = message.type === "error" ? { errors: message.payload } : message.payload;
          operation.onResult(payload);
        } else if (message.type === "complete") {
          const operation = operations.get(message.id);
          if (operation && operation.once) operations.delete(message.id);
        }
      });
      socket.addEventListener("close", function (event) {
        if (handlers.onState) handlers.onState(event.code === 4403 ? "refused" : "reconnecting");
        if (event.code !== 4403) setTimeout(open, 2000);
      });
    }

    open();
    return {
      // A subscription: onResult gets every payload until the page closes.
      subscribe: function (query, variables, onResult) {
        const id = String(nextId++);
        operations.set(id, { query: query, variables: variables, onResult: onResult });
        start(id);
        return id;
      },
      // A query over the same socket: onResult gets its one payload.
      query: function (query, variables, onResult) {
        const id = String(nextId++);
        operations.set(id, {
          query: query,
          variables: variables,
          once: true,
          onResult: function (payload) {
            operations.delete(id);
            onResult(payload);
          },
        });
        start(id);
      },
    };
  }

  return { connect: connect };
})();
