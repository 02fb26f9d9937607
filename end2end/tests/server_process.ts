// A server process of its own for specs that need other settings than the
// shared one (several nodes, a token secret): the release binary on a
// given port, ready once `/readyz` answers 200. Given no DATABASE_URL, it
// gets a fresh SQLite file in a directory of its own, removed when it
// stops.
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export class ServerProcess {
  private child?: ChildProcess;
  private dataDir?: string;

  constructor(readonly port: number, private readonly env: Record<string, string>) {}

  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    // Whatever answers on the port must be this process, never a server
    // another spec left behind.
    if (await this.answers()) throw new Error(`port ${this.port} is taken by another server`);
    const database: Record<string, string> = {};
    if (!('DATABASE_URL' in this.env)) {
      this.dataDir ??= fs.mkdtempSync(path.join(os.tmpdir(), `embedded-chat-${this.port}-`));
      database.DATABASE_URL = `sqlite://${this.dataDir}/chat.db?mode=rwc`;
    }
    const child = spawn('./target/release/server', [], {
      cwd: '..',
      stdio: ['ignore', 'ignore', 'inherit'],
      env: {
        PATH: process.env.PATH,
        LEPTOS_SITE_ADDR: `127.0.0.1:${this.port}`,
        LEPTOS_SITE_ROOT: 'target/site',
        RUST_LOG: 'error',
        SHUTDOWN_GRACE_SECS: '2',
        ...database,
        ...this.env,
      },
    });
    this.child = child;
    for (let i = 0; i < 200; i++) {
      if (child.exitCode !== null) throw new Error(`server on port ${this.port} exited (${child.exitCode})`);
      if (await this.answers()) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`server on port ${this.port} never became ready`);
  }

  private async answers(): Promise<boolean> {
    try {
      return (await fetch(`${this.origin}/readyz`)).status === 200;
    } catch {
      return false; // not listening
    }
  }

  /** SIGTERM: the server closes its streams with "going away" and exits. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    if (this.dataDir) fs.rmSync(this.dataDir, { recursive: true, force: true });
    this.dataDir = undefined;
  }
}
