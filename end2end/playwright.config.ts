import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { defineConfig, devices } from "@playwright/test";
import { PASSWORD, USERS } from "./tests/accounts";

// Free ports and scratch folders per run. The config is evaluated again in
// every worker, so the first evaluation publishes them through the
// environment, which the workers inherit.

/**
 * The first port of each run of `lengths[i]` consecutive free ports on
 * 127.0.0.1 (the cluster takes three: nginx and its two instances). All are
 * held open until all are chosen, so that no two runs overlap.
 */
function freePorts(lengths: number[]): number[] {
  const script = `
    const net = require("net");
    const listen = (port) => new Promise((resolve) => {
      if (port > 65535) return resolve(null);
      const s = net.createServer();
      s.once("error", () => resolve(null));
      s.listen(port, "127.0.0.1", () => resolve(s));
    });
    (async () => {
      const held = [], firsts = [];
      for (const length of JSON.parse(process.argv[1])) {
        for (let tries = 0; ; tries++) {
          if (tries === 100) throw new Error("no " + length + " consecutive free ports");
          const run = [await listen(0)];
          const first = run[0].address().port;
          while (run.length < length && run[run.length - 1]) run.push(await listen(first + run.length));
          if (run.every(Boolean)) { held.push(...run); firsts.push(first); break; }
          for (const s of run) s?.close();
        }
      }
      for (const s of held) s.close();
      process.stdout.write(JSON.stringify(firsts));
    })();`;
  return JSON.parse(execFileSync(process.execPath, ["-e", script, JSON.stringify(lengths)]).toString());
}
const portsWanted: [string, number][] = [
  ["QRLOGIN_E2E_PORT", 1],
  ["QRLOGIN_E2E_SHORT_PORT", 1],
  ["QRLOGIN_E2E_CLUSTER_PORT", 3],
  ["QRLOGIN_E2E_PASSKEY_PORT", 1],
];
const portsMissing = portsWanted.filter(([name]) => !process.env[name]);
if (portsMissing.length > 0) {
  const firsts = freePorts(portsMissing.map(([, length]) => length));
  portsMissing.forEach(([name], i) => (process.env[name] = String(firsts[i])));
}
process.env.QRLOGIN_E2E_DIR ??= mkdtempSync(path.join(tmpdir(), "qrlogin-e2e-"));
const dir = process.env.QRLOGIN_E2E_DIR;
const port = process.env.QRLOGIN_E2E_PORT!;
const shortPort = process.env.QRLOGIN_E2E_SHORT_PORT!;
const clusterPort = process.env.QRLOGIN_E2E_CLUSTER_PORT!;
const passkeyPort = process.env.QRLOGIN_E2E_PASSKEY_PORT!;
const baseURL = `http://127.0.0.1:${port}`;
const root = path.resolve(__dirname, "..");
const binary = process.env.QRLOGIN_E2E_BIN ?? path.join(root, "target/release/qrlogin");

// The cluster's folder holds Redis's and PostgreSQL's sockets: directly in
// /tmp (not TMPDIR, which may be long), as services_prepare_dir wants it.
// cluster.sh deletes it when it stops (QRLOGIN_CLUSTER_THROWAWAY).
process.env.QRLOGIN_E2E_CLUSTER_DIR ??= mkdtempSync("/tmp/qrlogin-cluster-");
const clusterDir = process.env.QRLOGIN_E2E_CLUSTER_DIR;
// The same accounts as the other servers, in QRLOGIN_CLUSTER_USERS's format.
const clusterUsers = path.join(dir, "cluster-users");
if (!existsSync(clusterUsers)) {
  const lines = Object.entries(USERS).map(([user, display]) => `${user}:${display}:${PASSWORD}\n`);
  writeFileSync(clusterUsers, lines.join(""));
}

/** Adds the test accounts with the real CLI, then serves. */
function server(port: string, name: string, extra: string[] = [], host = "127.0.0.1"): string {
  const q = JSON.stringify;
  const db = q(path.join(dir, `${name}.db`));
  const bin = q(binary);
  const users = Object.entries(USERS)
    .map(([user, display]) => `printf '%s\\n' ${q(PASSWORD)} | ${bin} user add ${user} --display-name ${q(display)} --database ${db} >/dev/null`)
    .join(" && ");
  const serve = [
    `exec ${bin} serve`,
    `--addr 127.0.0.1:${port}`,
    `--public-url http://${host}:${port}`,
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
      testIgnore: /(flow|cluster|oidc|a11y|scanner|passkeys|i18n|team)\.spec\.ts/,
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
    {
      // Passkeys need a host name as the relying party (WebAuthn refuses
      // IP addresses): served as localhost. Behind a "proxy" (127.0.0.1 is
      // trusted), so a test can place the desktop on another network, where
      // approving then needs the passkey.
      command: server(passkeyPort, "passkey", ["--trusted-proxies 127.0.0.1", "--require-passkey-off-network"], "localhost"),
      url: `http://127.0.0.1:${passkeyPort}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: "pipe",
      stderr: "pipe",
    },
    {
      // Two instances on PostgreSQL and Redis behind nginx (round robin, no
      // stickiness), for cluster.spec.ts. Needs redis-server, PostgreSQL 15
      // and nginx installed (scripts/test.sh sees to that).
      // --limit-sign-in goes to both instances, as for the other servers.
      command: `${JSON.stringify(path.join(root, "scripts/cluster.sh"))} --limit-sign-in 600`,
      env: {
        QRLOGIN_CLUSTER_NO_BUILD: "1",
        QRLOGIN_CLUSTER_THROWAWAY: "1",
        QRLOGIN_CLUSTER_BIN: binary,
        QRLOGIN_CLUSTER_DIR: clusterDir,
        QRLOGIN_CLUSTER_PORT: clusterPort,
        QRLOGIN_CLUSTER_USERS: clusterUsers,
      },
      url: `http://127.0.0.1:${clusterPort}/healthz`,
      reuseExistingServer: false,
      // initdb, two instances one after the other, three accounts.
      timeout: 120_000,
      // SIGTERM to the whole group: cluster.sh then stops the instances
      // (10 s at most), nginx, PostgreSQL and Redis, and deletes its folder.
      // Without it Playwright would SIGKILL, leaving the daemons running.
      gracefulShutdown: { signal: "SIGTERM", timeout: 15_000 },
      stdout: "pipe",
      stderr: "pipe",
    },
  ],
});
