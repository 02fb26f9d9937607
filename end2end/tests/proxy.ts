// A TCP proxy the test controls, to cut a page's connection for real:
// Chromium's `context.setOffline(true)` does not close an open websocket
// (frames are only held back), so reconnect logic must be tested by
// dropping the TCP connections and refusing new ones for a while.
import * as net from 'net';

export class CuttableProxy {
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private refusing = false;
  port = 0;

  constructor(private targetPort: number, private readonly targetHost = '127.0.0.1') {}

  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = net.createServer((client) => {
      if (this.refusing) {
        client.destroy();
        return;
      }
      const upstream = net.connect(this.targetPort, this.targetHost);
      const pair = [client, upstream];
      const close = () => pair.forEach((s) => { s.destroy(); this.sockets.delete(s); });
      pair.forEach((s) => { this.sockets.add(s); s.on('error', close); s.on('close', close); });
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server!.address() as net.AddressInfo).port;
  }

  /** Drops every open connection and refuses new ones until `restore`. */
  cut(): void {
    this.refusing = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  restore(): void {
    this.refusing = false;
  }

  /** Sends new connections to another port, as a load balancer does when
   * a node leaves; open connections stay where they are. */
  retarget(port: number): void {
    this.targetPort = port;
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
