import { devices, expect, type Browser, type Page, type TestInfo } from "@playwright/test";
import { PASSWORD, USERS } from "./accounts";
import { scanQr } from "./qr";

// The two devices of the flow tests (a desktop and a phone, each its own
// browser context, as a person would have them), shared by flow.spec.ts and
// cluster.spec.ts.

/** Console errors and page errors (CSP violations among them) of a page. */
const problems = new Map<Page, string[]>();

/** Expected console errors of one test (e.g. the 401 that signals a revoked session). */
export const allowed = new Map<Page, RegExp>();

function watch(page: Page): Page {
  const seen: string[] = [];
  problems.set(page, seen);
  page.on("console", (msg) => {
    if (msg.type() === "error") seen.push(msg.text());
  });
  page.on("pageerror", (err) => seen.push(err.message));
  return page;
}

/**
 * For `test.afterEach` in every file that uses these devices: no page had a
 * console error that was not allowed. (A hook registered here would reach
 * only the first file a worker loads: modules are evaluated once.)
 */
export function expectNoProblems() {
  for (const [page, seen] of problems) {
    const pattern = allowed.get(page);
    expect(seen.filter((m) => !pattern?.test(m))).toEqual([]);
  }
  problems.clear();
  allowed.clear();
}

export async function newDesktop(browser: Browser, baseURL: string): Promise<Page> {
  const { defaultBrowserType: _, ...desktop } = devices["Desktop Chrome"];
  const context = await browser.newContext({ ...desktop, baseURL });
  return watch(await context.newPage());
}

export async function newPhone(
  browser: Browser,
  baseURL: string,
  options: { javaScriptEnabled?: boolean } = {},
): Promise<Page> {
  const { defaultBrowserType: _, ...pixel } = devices["Pixel 7"];
  const context = await browser.newContext({ ...pixel, baseURL, ...options });
  return watch(await context.newPage());
}

export async function signIn(page: Page, user: string) {
  await page.getByLabel("Username").fill(user);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
}

/** A phone signed in on its home page `/m`. */
export async function signedInPhone(browser: Browser, baseURL: string, user: string): Promise<Page> {
  const phone = await newPhone(browser, baseURL);
  await phone.goto("/m");
  await signIn(phone, user);
  await expect(phone.getByRole("heading", { name: `Signed in as ${USERS[user]}` })).toBeVisible();
  return phone;
}

/** Opens /login on the desktop and reads the QR off the screen. */
export async function showCode(desktop: Page, testInfo: TestInfo): Promise<string> {
  await desktop.goto("/login");
  const qr = desktop.locator(".qr");
  await expect(qr.locator("svg")).toBeVisible();
  await expect(desktop.locator(".status")).toHaveText("Scan with your phone");
  const url = await scanQr(qr, testInfo, "desktop-qr.png");
  expect(url).toMatch(/\/q\/[0-9a-f-]{36}$/);
  // Marks this document: a reload would lose it.
  await desktop.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
  return url;
}

export async function matchCode(desktop: Page): Promise<string> {
  await expect(desktop.locator(".status")).toHaveText("Confirm on your phone");
  return (await desktop.locator(".match-code").textContent())!.trim();
}

export async function expectNoReload(desktop: Page) {
  expect(await desktop.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);
}

/**
 * The approve flow from the phone opening the QR's URL on: the phone sees
 * who asks and picks the desktop's number; the desktop ends signed in
 * without a reload, stays signed in across one, and signs out.
 */
export async function approveAndSignIn(
  phone: Page,
  desktop: Page,
  url: string,
  baseURL: string,
  testInfo: TestInfo,
) {
  await phone.goto(url);
  await expect(phone.getByRole("heading", { name: "Sign in on a computer?" })).toBeVisible();
  await expect(phone.locator(".requester-browser")).toHaveText("Chrome");
  // Behind a trusted proxy too, the client's own address (X-Forwarded-For).
  await expect(phone.locator(".requester")).toContainText("127.0.0.1");
  await expect(phone.getByText("same network")).toBeVisible();

  const code = await matchCode(desktop);
  // Rule 5: before approval the desktop learns nothing of the account;
  // "Alice Liddell" would give the username away, so no name is shown.
  await expect(desktop.locator(".scanner")).toHaveCount(0);
  await expect(desktop.locator("body")).not.toContainText(/alice/i);
  await expect(desktop.locator(".qr svg")).toHaveCount(0);
  await phone.screenshot({ path: testInfo.outputPath("phone-confirm.png") });
  await desktop.screenshot({ path: testInfo.outputPath("desktop-confirm.png") });

  await phone.locator(".choice", { hasText: code }).click();
  await phone.getByRole("button", { name: "Approve" }).click();
  await expect(phone.getByRole("heading", { name: /Approved|Signed in/ })).toBeVisible();

  await expect(desktop).toHaveURL(`${baseURL}/`);
  await expect(desktop.getByRole("heading", { name: "Signed in as Alice Liddell" })).toBeVisible();
  await expectNoReload(desktop);
  await desktop.screenshot({ path: testInfo.outputPath("desktop-signed-in.png") });

  // A reload keeps the session (the cookie is real, the session stored), and sign-out works.
  await desktop.reload();
  await expect(desktop.getByRole("heading", { name: "Signed in as Alice Liddell" })).toBeVisible();
  await desktop.getByRole("button", { name: "Sign out" }).click();
  await expect(desktop).toHaveURL(`${baseURL}/login`);
}
