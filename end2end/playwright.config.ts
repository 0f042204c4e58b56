import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { defineConfig, devices } from "@playwright/test";

// One free port and one scratch folder per run. The config is evaluated again
// in every worker, so the first evaluation publishes them through the
// environment, which the workers inherit.
if (!process.env.QRLOGIN_E2E_PORT) {
  process.env.QRLOGIN_E2E_PORT = execFileSync(process.execPath, [
    "-e",
    "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{process.stdout.write(String(s.address().port));s.close()})",
  ]).toString();
}
if (!process.env.QRLOGIN_E2E_DIR) {
  process.env.QRLOGIN_E2E_DIR = mkdtempSync(path.join(tmpdir(), "qrlogin-e2e-"));
}
const port = process.env.QRLOGIN_E2E_PORT;
const baseURL = `http://127.0.0.1:${port}`;
const root = path.resolve(__dirname, "..");
const binary = process.env.QRLOGIN_E2E_BIN ?? path.join(root, "target/release/qrlogin");

// Debian's Chromium; Playwright's own browser downloads do not work here.
const chromium = {
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
};

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
      name: "phone",
      use: { ...devices["Pixel 7"], launchOptions: chromium },
    },
  ],
  webServer: {
    command: [
      JSON.stringify(binary),
      "serve",
      `--addr 127.0.0.1:${port}`,
      `--public-url ${baseURL}`,
      `--database ${JSON.stringify(path.join(process.env.QRLOGIN_E2E_DIR, "qrlogin.db"))}`,
      `--site-root ${JSON.stringify(path.join(root, "target/site"))}`,
    ].join(" "),
    url: `${baseURL}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: "pipe",
    stderr: "pipe",
  },
});
