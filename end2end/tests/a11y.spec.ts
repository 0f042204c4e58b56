import { execFileSync } from "node:child_process";
import path from "node:path";
import AxeBuilder from "@axe-core/playwright";
import { devices, expect, test, type Browser, type Page } from "@playwright/test";
import { PASSWORD } from "./accounts";
import { scanQr } from "./qr";

// Every page, as a new user meets it, through axe-core's WCAG 2.1 A and AA
// rules: at desktop and phone sizes, with JavaScript on and off. Then the
// desktop flow by keyboard alone.

const root = path.resolve(__dirname, "../..");
const binary = process.env.QRLOGIN_E2E_BIN ?? path.join(root, "target/release/qrlogin");
const database = path.join(process.env.QRLOGIN_E2E_DIR!, "main.db");

async function expectAccessible(page: Page, what: string) {
  const results = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]).analyze();
  const found = results.violations.map((v) => ({
    rule: v.id,
    impact: v.impact,
    nodes: v.nodes.map((n) => `${n.target.join(" ")}: ${n.failureSummary?.split("\n").slice(1).join(" ")}`),
  }));
  expect(found, `${what} at ${page.url()}`).toEqual([]);
}

/**
 * A browser context at `size`. Without `ourScripts` the page stays the
 * server's HTML, as with JavaScript off: axe-core itself needs JavaScript
 * to run, so our scripts and WASM are refused rather than all JavaScript.
 */
async function context(browser: Browser, baseURL: string, size: "desktop" | "phone", ourScripts: boolean) {
  const { defaultBrowserType: _, ...device } = size === "desktop" ? devices["Desktop Chrome"] : devices["Pixel 7"];
  const made = await browser.newContext({ ...device, baseURL });
  if (!ourScripts) {
    await made.route(/\/pkg\/.*\.(js|wasm)$/, (route) => route.abort());
    const cardPages = (url: URL) => url.pathname === "/login" || url.pathname === "/authorize";
    await made.route(cardPages, async (route) => {
      // The inline scripts too: the page's own early request for a code.
      const response = await route.fetch({ maxRedirects: 0 });
      const html = (await response.text()).replace(/<script\b[^>]*>[\s\S]*?<\/script>/g, "");
      await route.fulfill({ response, body: html });
    });
  }
  return made;
}

async function signIn(page: Page, user: string) {
  await page.getByLabel("Username").fill(user);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
}

function addClient(name: string, publicClient: boolean) {
  const args = ["client", "add", name, "--redirect-uri", "http://localhost/cb", "--json", "--database", database];
  if (publicClient) args.push("--public");
  const { QRLOGIN_CONFIG: _, ...env } = process.env;
  return JSON.parse(execFileSync(binary, args, { env }).toString()) as { client_id: string };
}

for (const size of ["desktop", "phone"] as const) {
  for (const javaScript of [true, false]) {
    test(`every page passes axe-core (${size}, JavaScript ${javaScript ? "on" : "off"})`, async ({ browser, baseURL }, testInfo) => {
      const desktopContext = await context(browser, baseURL!, size, javaScript);
      const page = await desktopContext.newPage();

      // Signed out.
      await page.goto("/login");
      if (javaScript) await expect(page.locator(".qr svg")).toBeVisible();
      await expectAccessible(page, "/login");
      await page.goto("/no/such/page");
      await expectAccessible(page, "not found");
      await page.goto("/m");
      await expectAccessible(page, "/m signed out");
      await page.goto("/device");
      await expectAccessible(page, "/device signed out");

      // An application's sign-in page, and what qrlogin says of a bad request.
      const client = addClient(`App ${size} ${javaScript}`, true);
      const challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
      await page.goto(
        `/oauth2/authorize?client_id=${client.client_id}&redirect_uri=${encodeURIComponent("http://localhost/cb")}` +
          `&response_type=code&scope=openid&code_challenge=${challenge}&code_challenge_method=S256`,
      );
      await expect(page).toHaveURL(/\/authorize\?request=/);
      if (javaScript) await expect(page.locator(".qr svg")).toBeVisible();
      await expectAccessible(page, "/authorize");
      await page.goto(`/oauth2/authorize?client_id=${client.client_id}&redirect_uri=https%3A%2F%2Fevil.example`);
      await expectAccessible(page, "refused authorization");

      // Signed in: the phone's pages.
      await page.goto("/m");
      await signIn(page, "carol");
      await expect(page.getByRole("heading", { name: /Signed in as/ })).toBeVisible();
      await expectAccessible(page, "/m signed in");
      await page.goto("/device");
      await expectAccessible(page, "/device");
      await page.goto("/device?user_code=BCDF-GHJK");
      await expectAccessible(page, "/device unknown code");
      await page.goto("/");
      await expectAccessible(page, "/ signed in");
      await page.goto("/oauth2/logout");
      await expectAccessible(page, "logout confirmation");

      // The approve page, for a code another browser shows.
      const other = await (await context(browser, baseURL!, "desktop", true)).newPage();
      await other.goto("/login");
      const url = await scanQr(other.locator(".qr"), testInfo, `a11y-${size}-${javaScript}.png`);
      await page.goto(url);
      await expect(page.getByRole("button", { name: "Approve" })).toBeVisible();
      await expectAccessible(page, "/q/{id}");
      await other.close();
      await desktopContext.close();
    });
  }
}

test("the desktop flow works by keyboard alone", async ({ browser, baseURL }, testInfo) => {
  const desktop = await (await context(browser, baseURL!, "desktop", true)).newPage();
  const phone = await (await context(browser, baseURL!, "phone", true)).newPage();

  // The phone signs in by keyboard.
  await phone.goto("/m");
  await phone.keyboard.press("Tab");
  await expect(phone.getByLabel("Username")).toBeFocused();
  await phone.keyboard.type("alice");
  await phone.keyboard.press("Tab");
  await phone.keyboard.type(PASSWORD);
  await phone.keyboard.press("Enter");
  await expect(phone.getByRole("heading", { name: /Signed in as/ })).toBeVisible();

  await desktop.goto("/login");
  const qr = desktop.locator(".qr");
  await expect(qr).toHaveAttribute("role", "img");
  await expect(qr).toHaveAttribute("aria-label", /QR code/);
  await expect(desktop.locator(".status")).toHaveAttribute("aria-live", "polite");
  const url = await scanQr(qr, testInfo, "keyboard-qr.png");
  await phone.goto(url);
  await expect(desktop.locator(".status")).toHaveText("Confirm on your phone");
  const code = (await desktop.locator(".match-code").textContent())!.trim();

  // Tab to the right number, pick it with the arrow keys, approve with Enter.
  await phone.locator('input[name="match_code"]').first().focus();
  for (let i = 0; i < 3; i++) {
    const focused = await phone.evaluate(() => (document.activeElement as HTMLInputElement).value);
    if (Number(focused) === Number(code)) break;
    await phone.keyboard.press("ArrowRight");
  }
  await phone.keyboard.press("Space");
  await expect(phone.locator('input[name="match_code"]:checked')).toHaveValue(String(Number(code)));
  await phone.keyboard.press("Tab");
  await expect(phone.getByRole("button", { name: "Approve" })).toBeFocused();
  await phone.keyboard.press("Enter");

  await expect(desktop.getByRole("heading", { name: /Signed in as/ })).toBeVisible();
  // And out again, by keyboard: the sign-out button is reachable.
  await desktop.getByRole("button", { name: "Sign out" }).focus();
  await desktop.keyboard.press("Enter");
  await expect(desktop).toHaveURL(`${baseURL}/login`);
});

test("in dark mode and with reduced motion the pages still pass axe-core", async ({ browser, baseURL }, testInfo) => {
  const { defaultBrowserType: _, ...pixel } = devices["Pixel 7"];
  const phoneContext = await browser.newContext({ ...pixel, baseURL, colorScheme: "dark", reducedMotion: "reduce" });
  const page = await phoneContext.newPage();
  await page.goto("/login");
  await expect(page.locator(".qr svg")).toBeVisible();
  // Dark mode is on, and the QR keeps its light background for cameras.
  expect(await page.evaluate(() => getComputedStyle(document.body).backgroundColor)).not.toBe("rgb(243, 244, 246)");
  expect(await page.locator(".qr-frame").evaluate((e) => getComputedStyle(e).backgroundColor)).toBe("rgb(255, 255, 255)");
  await expectAccessible(page, "/login, dark");
  await page.goto("/m");
  await expectAccessible(page, "/m signed out, dark");
  await signIn(page, "carol");
  await expect(page.getByRole("heading", { name: /Signed in as/ })).toBeVisible();
  await expectAccessible(page, "/m, dark");
  // Times a person reads: relative and in the phone's own zone, the exact
  // UTC time kept in the element.
  const time = page.locator(".devices time").first();
  await expect(time).toHaveText(/^(just now|\d+ min ago)$/);
  await expect(time).toHaveAttribute("datetime", /Z$/);
  const other = await (await context(browser, baseURL!, "desktop", true)).newPage();
  await other.goto("/login");
  await page.goto(await scanQr(other.locator(".qr"), testInfo, "a11y-dark.png"));
  await expect(page.getByRole("button", { name: "Approve" })).toBeVisible();
  await expectAccessible(page, "/q/{id}, dark");
  await page.screenshot({ path: testInfo.outputPath("phone-approve-dark.png") });
});
