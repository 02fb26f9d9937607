// The socket.io 4.8 peer of the benchmark: the room fan-out most game chats
// run, configured the way such deployments are tuned for throughput
// (websocket transport only, no compression) and doing exactly what the
// load generator asks of every server: join a room, broadcast each message
// to everyone in it, the sender included. No store, no history.
//
//   node server.js --port 9100
//
// Events: "join" (payload: the room) answers "joined" (the room) once the
// socket is in it; "msg" (payload: a string) is emitted as "msg" to the
// whole room.
"use strict";

const http = require("http");
const { Server } = require("socket.io");

function portFromArgs(argv) {
  const i = argv.indexOf("--port");
  const port = i >= 0 ? Number(argv[i + 1]) : NaN;
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    console.error("usage: node server.js --port N");
    process.exit(2);
  }
  return port;
}

const port = portFromArgs(process.argv);
const io = new Server({
  transports: ["websocket"],
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  // Big enough for the largest frame the load generator sends.
  maxHttpBufferSize: 64 * 1024,
});

io.on("connection", (socket) => {
  let room = null;
  socket.on("join", (name) => {
    if (typeof name !== "string" || room !== null) return;
    room = name;
    socket.join(name);
    socket.emit("joined", name);
  });
  socket.on("msg", (body) => {
    if (room !== null && typeof body === "string") io.to(room).emit("msg", body);
  });
});

// Loopback only: the benchmark never listens on a public interface.
const httpServer = http.createServer((_req, res) => {
  res.writeHead(404).end();
});
io.attach(httpServer);
httpServer.listen(port, "127.0.0.1", () => {
  console.log(`socket.io peer listening on 127.0.0.1:${port}`);
});

function stop() {
  io.close(() => process.exit(0));
  // Open sockets may keep close() waiting; the benchmark has its numbers.
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
