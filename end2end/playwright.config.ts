import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { defineConfig, devices } from "@playwright/test";
import { PASSWORD, USERS } from "./tests/accounts";

// Free ports and one scratch folder per run. The config is evaluated again
// in every worker, so the first evaluation publishes them through the
// environment, which the workers inherit.
function freePort(): string {
  return execFileSync(process.execPath, [
    "-e",
    "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{process.stdout.write(String(s.address().port));s.close()})",
  ]).toString();
}
process.env.QRLOGIN_E2E_PORT ??= freePort();
process.env.QRLOGIN_E2E_SHORT_PORT ??= freePort();
process.env.QRLOGIN_E2E_DIR ??= mkdtempSync(path.join(tmpdir(), "qrlogin-e2e-"));
const dir = process.env.QRLOGIN_E2E_DIR;
const port = process.env.QRLOGIN_E2E_PORT;
const shortPort = process.env.QRLOGIN_E2E_SHORT_PORT;
const baseURL = `http://127.0.0.1:${port}`;
const root = path.resolve(__dirname, "..");
const binary = process.env.QRLOGIN_E2E_BIN ?? path.join(root, "target/release/qrlogin");

/** Adds the test accounts with the real CLI, then serves. */
function server(port: string, name: string, extra: string[] = []): string {
  const q = JSON.stringify;
  const db = q(path.join(dir, `${name}.db`));
  const bin = q(binary);
  const users = Object.entries(USERS)
    .map(([user, display]) => `printf '%s\\n' ${q(PASSWORD)} | ${bin} user add ${user} --display-name ${q(display)} --database ${db} >/dev/null`)
    .join(" && ");
  const serve = [
    `exec ${bin} serve`,
    `--addr 127.0.0.1:${port}`,
    `--public-url http://127.0.0.1:${port}`,
    `--database ${db}`,
    `--site-root ${q(path.join(root, "target/site"))}`,
    // Every browser here shares 127.0.0.1; the limits are tested in Rust.
    "--limit-sign-in 600",
    ...extra,
  ].join(" ");
  return `sh -c ${q(`${users} && ${serve}`)}`;
}

// Debian's Chromium (Playwright's own browser downloads do not work here),
// with the flags it needs on a closed network; shared with bench/first-qr.mjs.
const chromium = JSON.parse(readFileSync(path.join(__dirname, "chromium.json"), "utf8"));
chromium.executablePath = process.env.CHROMIUM_PATH ?? chromium.executablePath;

export default defineConfig({
  testDir: "./tests",
  outputDir: "./test-results",
  timeout: 60_000,
  expect: { timeout: 15_000 },
  fullyParallel: true,
  forbidOnly: !!process.env.CI,
  retries: 0,
  workers: process.env.CI ? 1 : 2,
  reporter: [["list"]],
  use: {
    baseURL,
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
  },
  projects: [
    {
      name: "desktop",
      use: { ...devices["Desktop Chrome"], launchOptions: chromium },
    },
    {
      // The two-device flows make their own desktop and phone contexts.
      name: "phone",
      testIgnore: /flow\.spec\.ts/,
      use: { ...devices["Pixel 7"], launchOptions: chromium },
    },
  ],
  webServer: [
    {
      command: server(port, "main"),
      url: `${baseURL}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: "pipe",
      stderr: "pipe",
    },
    {
      // Codes that run out after a second, for the expiry tests.
      command: server(shortPort, "short", ["--pending-ttl 1"]),
      url: `http://127.0.0.1:${shortPort}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: "pipe",
      stderr: "pipe",
    },
  ],
});
