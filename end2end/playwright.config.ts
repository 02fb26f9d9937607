// Playwright runs the release server (built by scripts/test) on its own
// port with a fresh SQLite file, and drives Debian's Chromium (no browser
// download). CHROMIUM_PATH overrides the browser; E2E_PORT the port.
import { defineConfig } from '@playwright/test';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const port = Number(process.env.E2E_PORT ?? 8091);
// The shared server's directory: made where this file is first read (the
// runner), inherited by its workers (which read this file too), removed by
// the global teardown.
process.env.E2E_DATA_DIR ??= fs.mkdtempSync(path.join(os.tmpdir(), 'embedded-chat-e2e-'));
const dataDir = process.env.E2E_DATA_DIR;
const chromium = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export default defineConfig({
  testDir: './tests',
  globalTeardown: './global-teardown.ts',
  timeout: 30_000,
  expect: { timeout: 7_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: process.env.CI ? [['list']] : [['list']],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    trace: 'off',
    launchOptions: {
      executablePath: fs.existsSync(chromium) ? chromium : undefined,
      args: [
        '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ],
    },
  },
  webServer: {
    command: './target/release/server',
    cwd: '..',
    url: `http://127.0.0.1:${port}/`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'ignore',
    stderr: 'pipe',
    env: {
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      LEPTOS_SITE_ROOT: 'target/site',
      DATABASE_URL: `sqlite://${dataDir}/e2e.db`,
      RUST_LOG: 'warn',
      // Tests seed rooms faster than people type.
      MESSAGES_PER_SEC: '1000',
      MESSAGE_BURST: '1000',
      // The embedding tests' host page runs on this origin and frames the
      // room from http://localhost:<port>.
      EMBED_ALLOWED_ORIGINS: `http://127.0.0.1:${port}`,
    },
  },
});
