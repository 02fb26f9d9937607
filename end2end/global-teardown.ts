// Removes the shared server's directory (see playwright.config.ts) once
// the run is over.
import * as fs from 'fs';

export default function globalTeardown(): void {
  const dir = process.env.E2E_DATA_DIR;
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}
