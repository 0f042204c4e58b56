import { expect, test } from "@playwright/test";
import {
  allowed,
  approveAndSignIn,
  expectNoProblems,
  expectNoReload,
  matchCode,
  newDesktop,
  newPhone,
  showCode,
  signedInPhone,
  signIn,
} from "./devices";

// Each test drives two browsers: a desktop and a phone, as a person would.
const shortBaseURL = `http://127.0.0.1:${process.env.QRLOGIN_E2E_SHORT_PORT}`;

test.afterEach(expectNoProblems);

test("approve: the desktop signs in as the phone's account, without a reload", async ({ browser, baseURL }, testInfo) => {
  const phone = await signedInPhone(browser, baseURL!, "alice");
  const desktop = await newDesktop(browser, baseURL!);
  const url = await showCode(desktop, testInfo);

  await approveAndSignIn(phone, desktop, url, baseURL!, testInfo);
});

test("deny: the desktop says the sign-in was declined", async ({ browser, baseURL }, testInfo) => {
  const phone = await signedInPhone(browser, baseURL!, "alice");
  const desktop = await newDesktop(browser, baseURL!);
  await phone.goto(await showCode(desktop, testInfo));
  await matchCode(desktop);
  await phone.getByRole("button", { name: "Deny" }).click();
  await expect(phone.getByRole("heading", { name: "Sign-in declined" })).toBeVisible();
  await expect(desktop.locator(".status")).toHaveText("Sign-in was declined");
  await expect(desktop).toHaveURL(`${baseURL}/login`);
  // "Try again" brings a fresh code.
  await desktop.getByRole("button", { name: "Try again" }).click();
  await expect(desktop.locator(".qr svg")).toBeVisible();
});

test("a wrong number declines the sign-in", async ({ browser, baseURL }, testInfo) => {
  const phone = await signedInPhone(browser, baseURL!, "bob");
  const desktop = await newDesktop(browser, baseURL!);
  await phone.goto(await showCode(desktop, testInfo));
  const code = await matchCode(desktop);
  await phone.locator(".choice").filter({ hasNotText: code }).first().click();
  await phone.getByRole("button", { name: "Approve" }).click();
  await expect(phone.getByRole("heading", { name: "Sign-in declined" })).toBeVisible();
  await expect(desktop.locator(".status")).toHaveText("Sign-in was declined");
  expect(await desktop.context().cookies()).not.toContainEqual(
    expect.objectContaining({ name: "qrlogin_session" }),
  );
});

test("a second phone is told the code is already being approved", async ({ browser, baseURL }, testInfo) => {
  const alice = await signedInPhone(browser, baseURL!, "alice");
  const bob = await signedInPhone(browser, baseURL!, "bob");
  const desktop = await newDesktop(browser, baseURL!);
  const url = await showCode(desktop, testInfo);
  await alice.goto(url);
  await expect(alice.getByRole("heading", { name: "Sign in on a computer?" })).toBeVisible();
  await bob.goto(url);
  await expect(bob.getByRole("heading", { name: "Already being approved" })).toBeVisible();
  await expect(bob.getByRole("button", { name: "Approve" })).toHaveCount(0);
  await expect(desktop.locator(".match-code")).toBeVisible();
  await expect(desktop.locator(".scanner")).toHaveCount(0);
});

test("revoking the desktop's session from /m signs the desktop out", async ({ browser, baseURL }, testInfo) => {
  const phone = await signedInPhone(browser, baseURL!, "carol");
  const desktop = await newDesktop(browser, baseURL!);
  await phone.goto(await showCode(desktop, testInfo));
  const code = await matchCode(desktop);
  await phone.locator(".choice", { hasText: code }).click();
  await phone.getByRole("button", { name: "Approve" }).click();
  await expect(desktop.getByRole("heading", { name: "Signed in as Carol Danvers" })).toBeVisible();

  await phone.goto("/m");
  const qrDevice = phone.locator(".device", { hasText: "QR sign-in" });
  await expect(qrDevice).toHaveCount(1);
  await expect(phone.locator(".device", { hasText: "This phone" })).toHaveCount(1);
  // The desktop's sign-in is new since the phone last looked; its own is not.
  const fresh = phone.locator(".device.new");
  await expect(fresh).toHaveCount(1);
  await expect(fresh).toContainText("Chrome on Windows");
  await expect(phone.locator(".device", { hasText: "This phone" }).locator(".badge.new")).toHaveCount(0);
  await phone.screenshot({ path: testInfo.outputPath("phone-home.png"), fullPage: true });
  // The desktop learns of the revocation from a 401 on its session check.
  allowed.set(desktop, /status of 401 \(Unauthorized\)/);
  await fresh.getByRole("button", { name: "Revoke" }).click();
  await expect(phone.locator(".device", { hasText: "QR sign-in" })).toHaveCount(0);
  await expect(phone.locator(".recent", { hasText: "ended" })).toHaveCount(1);
  await expect(phone.locator(".badge.new")).toHaveCount(0);

  // The desktop notices by itself and goes back to /login.
  await expect(desktop).toHaveURL(`${baseURL}/login`, { timeout: 15_000 });
  await expect(desktop.locator(".qr svg")).toBeVisible();
});

test("the phone page works with JavaScript off", async ({ browser, baseURL }, testInfo) => {
  const phone = await newPhone(browser, baseURL!, { javaScriptEnabled: false });
  const desktop = await newDesktop(browser, baseURL!);
  const url = await showCode(desktop, testInfo);

  // Not signed in yet: the sign-in form returns to the same request.
  await phone.goto(url);
  await expect(phone.getByRole("heading", { name: "Sign in to approve" })).toBeVisible();
  await phone.getByLabel("Username").fill("alice");
  await phone.getByLabel("Password").fill("not the password");
  await phone.getByRole("button", { name: "Sign in", exact: true }).click();
  await expect(phone.getByText("Wrong username or password.")).toBeVisible();
  await signIn(phone, "alice");
  await expect(phone).toHaveURL(url);
  await expect(phone.getByRole("heading", { name: "Sign in on a computer?" })).toBeVisible();

  const code = await matchCode(desktop);
  await phone.locator(".choice", { hasText: code }).click();
  await phone.getByRole("button", { name: "Approve" }).click();
  await expect(phone.getByRole("heading", { name: /Approved|Signed in/ })).toBeVisible();
  await expect(desktop.getByRole("heading", { name: "Signed in as Alice Liddell" })).toBeVisible();
  await expectNoReload(desktop);
});

test("an unknown code is explained plainly", async ({ browser, baseURL }) => {
  const phone = await signedInPhone(browser, baseURL!, "bob");
  await phone.goto("/q/0b8f6a52-2f6e-4b8e-9a4e-6f1d2c3b4a59");
  await expect(phone.getByRole("heading", { name: "Unknown code" })).toBeVisible();
  await phone.goto("/q/not-an-id");
  await expect(phone.getByRole("heading", { name: "Unknown code" })).toBeVisible();
});

test.describe("with codes that expire after a second", () => {
  test.use({ baseURL: shortBaseURL });

  test("expired codes are replaced five times, then wait for a click", async ({ page }) => {
    await page.goto("/login");
    const qr = page.locator(".qr");
    const seen = new Set<string>();
    await expect(async () => {
      const id = await qr.getAttribute("data-login-id", { timeout: 500 }).catch(() => null);
      if (id) seen.add(id);
      await expect(page.locator(".status")).toHaveText("Code expired — refresh", { timeout: 200 });
    }).toPass({ timeout: 30_000, intervals: [100] });
    expect(seen.size).toBeGreaterThanOrEqual(5);
    expect(seen.size).toBeLessThanOrEqual(6);
    await expect(page.locator(".qr svg")).toHaveCount(0);
    await page.getByRole("button", { name: "Refresh code" }).click();
    await expect(page.locator(".qr svg")).toBeVisible();
    const fresh = await qr.getAttribute("data-login-id");
    expect(seen.has(fresh!)).toBe(false);
  });
});

test("a browser that loses its bind cookie gets six codes, not an endless loop", async ({ page }) => {
  let creates = 0;
  page.on("request", (r) => {
    if (r.method() === "POST" && r.url().endsWith("/api/v1/logins")) creates++;
  });
  // As if cookies were blocked: without the bind cookie every poll gets the
  // server's unknown-id answer.
  await page.route(/\/api\/v1\/logins\/[0-9a-f-]{36}\?/, (route) =>
    route.fulfill({
      status: 404,
      contentType: "application/json",
      body: JSON.stringify({ error: "login_not_found", message: "No sign-in request with this id exists for this browser." }),
    }),
  );
  await page.goto("/login");
  await expect(page.locator(".status")).toHaveText("Code expired — refresh");
  await page.waitForTimeout(1_000);
  expect(creates).toBe(6);
});
