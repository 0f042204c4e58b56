import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import AxeBuilder from "@axe-core/playwright";
import { expect, test, type Browser, type CDPSession, type Page } from "@playwright/test";
import { allowed, expectNoProblems, matchCode, newDesktop, newPhone } from "./devices";
import { scanQr } from "./qr";

// A team, end to end, on a server of its own that starts with nobody in it:
// the setup link it prints enrolls the first administrator's phone; that
// administrator signs in on a desktop by scanning, invites a colleague
// whose phone follows the invite QR on the admin's screen; the colleague
// approves a desktop sign-in and links a third phone; the administrator
// disables the account and every phone of it is signed out; the audit page
// lists all of it. Passkeys through Chromium's virtual authenticator, so
// the server is `localhost` (WebAuthn refuses IP addresses).

const root = path.resolve(__dirname, "../..");
const binary = process.env.QRLOGIN_E2E_BIN ?? path.join(root, "target/release/qrlogin");

let server: ChildProcess | undefined;
let baseURL = "";
let setupLink = "";

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Starts a fresh server and reads its setup link off its output. */
test.beforeAll(async () => {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), "qrlogin-team-"));
  baseURL = `http://localhost:${port}`;
  const { QRLOGIN_CONFIG: _, ...env } = process.env;
  server = spawn(
    binary,
    [
      "serve",
      "--addr", `127.0.0.1:${port}`,
      "--public-url", baseURL,
      "--database", path.join(dir, "team.db"),
      "--site-root", path.join(root, "target/site"),
      "--limit-sign-in", "600",
    ],
    { env, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  setupLink = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no setup link printed:\n${output}`)), 30_000);
    const read = (chunk: Buffer) => {
      output += chunk.toString();
      const found = output.match(/setup link: (http\S+\/invite\/[A-Za-z0-9_-]+)/);
      if (found) {
        clearTimeout(timer);
        resolve(found[1]);
      }
    };
    server!.stdout!.on("data", read);
    server!.stderr!.on("data", read);
    server!.once("exit", (code) => reject(new Error(`server exited (${code}):\n${output}`)));
  });
});

test.afterAll(async () => {
  server?.kill("SIGTERM");
});

test.afterEach(expectNoProblems);

const authenticators = new WeakMap<Page, { cdp: CDPSession; authenticatorId: string }>();

/** A browser context with a platform authenticator that verifies its user. */
async function withAuthenticator(page: Page): Promise<Page> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  authenticators.set(page, { cdp, authenticatorId });
  return page;
}

async function credentialsOf(page: Page) {
  const { cdp, authenticatorId } = authenticators.get(page)!;
  return (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials;
}

/**
 * The phone's passkey made reachable from the desktop's browser: what the
 * browser's cross-device (hybrid) sign-in does with the real phone.
 */
async function lendPasskeys(from: Page, to: Page) {
  const { cdp, authenticatorId } = authenticators.get(to)!;
  for (const credential of await credentialsOf(from)) {
    await cdp.send("WebAuthn.addCredential", { authenticatorId, credential });
  }
}

async function expectAccessible(page: Page, what: string) {
  const results = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]).analyze();
  expect(results.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`), what).toEqual([]);
}

/** Enrolls a passkey on an invite (or setup, or link) page; ends on /m. */
async function enroll(phone: Page, name: RegExp) {
  await phone.getByRole("button", { name: "Create a passkey" }).click();
  await expect(phone).toHaveURL(/\/m$/);
  await expect(phone.getByRole("heading", { name })).toBeVisible();
}

/** Confirms with the passkey where the page asks (or offers) to. */
async function confirmIfAsked(page: Page) {
  const button = page.getByRole("button", { name: "Confirm with my passkey" });
  if (await button.isVisible()) {
    await button.click();
    await expect(page.getByText("Confirmed: you can change how you sign in until")).toBeVisible();
  }
}

/** Submits a console form; when it asks for the step-up first, confirms and submits again. */
async function adminAction(desktop: Page, submit: () => Promise<void>) {
  await submit();
  await expect(desktop.getByTestId("admin-done").or(desktop.getByTestId("admin-refusal"))).toBeVisible();
  if (await desktop.getByTestId("admin-refusal").isVisible()) {
    expect(new URL(desktop.url()).searchParams.get("code")).toBe("confirm_first");
    await confirmIfAsked(desktop);
    await submit();
  }
  await expect(desktop.getByTestId("admin-done")).toBeVisible();
}

/** A desktop signs in by QR, the phone picking the number and approving. */
async function signInByQr(desktop: Page, phone: Page, testInfo: import("@playwright/test").TestInfo) {
  const qr = desktop.locator(".qr");
  await expect(qr.locator("svg")).toBeVisible();
  const url = await scanQr(qr, testInfo, "desktop-qr.png");
  await phone.goto(url);
  const code = await matchCode(desktop);
  await phone.locator(".choice", { hasText: code }).click();
  await phone.getByRole("button", { name: /^Approve/ }).click();
  await expect(phone.getByRole("heading", { name: /Approved|Signed in/ })).toBeVisible();
}

async function phone(browser: Browser): Promise<Page> {
  return withAuthenticator(await newPhone(browser, baseURL));
}

test("a team: setup link, admin by QR, invite by QR, another phone, disable, audit", async ({ browser }, testInfo) => {
  test.setTimeout(180_000);

  // 1. The setup link enrolls the first administrator's phone.
  const adminPhone = await phone(browser);
  await adminPhone.goto(setupLink);
  await enroll(adminPhone, /^Signed in as/);
  // The link is one-time.
  const again = await newPhone(browser, baseURL);
  await again.goto(setupLink);
  await expect(again.getByRole("heading", { name: "This invite cannot be used" })).toBeVisible();

  // 2. The administrator signs in on a desktop the qrlogin way and lands on /admin.
  const desktop = await withAuthenticator(await newDesktop(browser, baseURL));
  await lendPasskeys(adminPhone, desktop);
  await desktop.goto("/admin");
  await expect(desktop).toHaveURL(/\/login\?next=/);
  await signInByQr(desktop, adminPhone, testInfo);
  await expect(desktop).toHaveURL(`${baseURL}/admin`);
  await expect(desktop.getByTestId("admin-nav")).toBeVisible();
  await expect(desktop.getByTestId("database-health")).toBeVisible();
  await expectAccessible(desktop, "/admin");

  // 3. A new account and its invite; the colleague's phone follows the QR on the admin's screen.
  await desktop.goto("/admin/accounts");
  await expectAccessible(desktop, "/admin/accounts");
  await adminAction(desktop, async () => {
    await desktop.getByTestId("new-username").fill("erin");
    await desktop.getByTestId("new-display-name").fill("Erin Example");
    await desktop.getByTestId("create-account").click();
  });
  const inviteQr = desktop.getByTestId("invite-qr");
  await expect(inviteQr.locator("svg")).toBeVisible();
  await expectAccessible(desktop, "/admin/accounts with an invite shown");
  await desktop.screenshot({ path: testInfo.outputPath("admin-console.png"), fullPage: true });
  await testInfo.attach("admin-console.png", { path: testInfo.outputPath("admin-console.png"), contentType: "image/png" });
  const inviteUrl = await scanQr(inviteQr, testInfo, "invite-qr.png");
  expect(inviteUrl).toBe((await desktop.getByTestId("invite-link").textContent())!.trim());
  // Shown once: the next look no longer has it.
  await desktop.reload();
  await expect(desktop.getByTestId("invite-qr")).toHaveCount(0);

  const erinPhone = await phone(browser);
  await erinPhone.goto(inviteUrl);
  await expect(erinPhone.getByRole("heading", { name: /Set up qrlogin for Erin Example/ })).toBeVisible();
  await enroll(erinPhone, /Signed in as Erin Example/);

  // 4. Erin's phone approves a desktop sign-in.
  const erinDesktop = await newDesktop(browser, baseURL);
  await erinDesktop.goto("/login");
  await signInByQr(erinDesktop, erinPhone, testInfo);
  await expect(erinDesktop.getByRole("heading", { name: "Signed in as Erin Example" })).toBeVisible();

  // 5. "Add another phone": the third phone scans, shows a number, the second picks it.
  await erinPhone.goto("/m");
  await confirmIfAsked(erinPhone);
  await erinPhone.getByRole("button", { name: "Add another phone" }).click();
  const linkQr = erinPhone.getByTestId("link-qr");
  await expect(linkQr.locator("svg")).toBeVisible();
  const linkUrl = await scanQr(linkQr, testInfo, "link-qr.png");
  const thirdPhone = await phone(browser);
  await thirdPhone.goto(linkUrl);
  const number = (await thirdPhone.getByTestId("link-number").textContent())!.trim();
  // The first phone's page looks again by itself and offers three numbers.
  await erinPhone.locator(".link-choices button", { hasText: new RegExp(`^${number}$`) }).click();
  await expect(erinPhone.getByRole("heading", { name: "Right number" })).toBeVisible();
  // The third phone's page moves on by itself to creating its passkey.
  await expect(thirdPhone.getByRole("button", { name: "Create a passkey" })).toBeVisible();
  await enroll(thirdPhone, /Signed in as Erin Example/);
  expect(await credentialsOf(thirdPhone)).toHaveLength(1);

  // 6. The administrator disables Erin: every phone of hers is signed out, and her desktop.
  await desktop.goto("/admin/accounts/erin");
  await expect(desktop.getByTestId("passkeys").locator("tbody tr")).toHaveCount(2);
  await expectAccessible(desktop, "/admin/accounts/erin");
  // Her signed-in desktop's watch learns of it by a 401, as intended.
  allowed.set(erinDesktop, /status of 401 \(Unauthorized\)/);
  await adminAction(desktop, () => desktop.getByTestId("disable-account").click());
  await expect(desktop.getByTestId("account-state")).toHaveText(/Disabled/);
  for (const signedOut of [erinPhone, thirdPhone]) {
    await signedOut.goto("/m");
    await expect(signedOut.getByRole("heading", { name: "qrlogin on your phone" })).toBeVisible();
  }
  await erinDesktop.reload();
  await expect(erinDesktop).toHaveURL(/\/login/);

  // 7. The audit trail lists all of it, with who did it (filtered by event:
  // the page is paginated, newest first).
  for (const event of [
    "setup_link_created",
    "invite_used",
    "account_created",
    "invite_created",
    "passkey_added",
    "login_approved",
    "phone_linked",
    "account_disabled",
  ]) {
    await desktop.goto(`/admin/audit?event=${event}`);
    await expect(desktop.getByTestId("audit").locator(`tr[data-event="${event}"]`).first(), event).toBeVisible();
  }
  await expect(desktop.getByTestId("audit").locator('tr[data-event="account_disabled"]')).toContainText("admin:");
  await desktop.goto("/admin/audit?account=erin");
  await expect(desktop.getByTestId("audit").locator('tr[data-event="phone_linked"]').first()).toBeVisible();
  await expectAccessible(desktop, "/admin/audit");
  for (const page of ["/admin/apps", "/admin/tokens"]) {
    await desktop.goto(page);
    await expectAccessible(desktop, page);
  }

  // 8. At a phone's width and in Chinese, every console page still passes
  // axe-core, and none is wider than the screen (wide tables scroll in
  // their own region).
  await desktop.setViewportSize({ width: 412, height: 915 });
  await desktop.context().addCookies([{ name: "lang", value: "zh-CN", url: baseURL }]);
  for (const page of ["/admin", "/admin/accounts", "/admin/accounts/erin", "/admin/apps", "/admin/audit", "/admin/tokens"]) {
    await desktop.goto(page);
    await expect(desktop.locator("html")).toHaveAttribute("lang", "zh-CN");
    await expectAccessible(desktop, `${page} (phone width, zh-CN)`);
    const overflow = await desktop.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow, `${page} is wider than a phone`).toBeLessThanOrEqual(0);
  }
});
