import { devices, expect, test, type Browser, type Page } from "@playwright/test";
import { PASSWORD } from "./accounts";
import { expectNoProblems } from "./devices";
import { scanQr } from "./qr";

// The whole flow in Simplified Chinese: browsers whose locale is zh-CN
// (Accept-Language: zh-CN), every visible word from the Chinese catalogue.
// Then the switcher: English chosen on one page stays chosen.

test.afterEach(expectNoProblems);

async function chineseContext(browser: Browser, baseURL: string, device: "Desktop Chrome" | "Pixel 7", javaScriptEnabled = true) {
  const { defaultBrowserType: _, ...size } = devices[device];
  return browser.newContext({ ...size, baseURL, locale: "zh-CN", javaScriptEnabled });
}

/**
 * Words a Chinese page may still show: names and data (the account, the
 * browser and system a User-Agent names, addresses), the brand, and the
 * switcher's "English". Anything else in Latin letters is an untranslated
 * string.
 */
const NOT_TEXT = [
  /qrlogin/g,
  /English/g,
  /Alice Liddell|alice/g,
  /Chrome|Linux|Android|Windows|Mac OS X|Unknown/g,
  /\b\d{1,3}(\.\d{1,3}){3}\b/g,
  /UTC/g,
];

async function expectChinese(page: Page, what: string) {
  let text = await page.locator("body").innerText();
  for (const pattern of NOT_TEXT) text = text.replace(pattern, "");
  expect(text.match(/[A-Za-z]{2,}/g) ?? [], `English left on ${what}: ${text}`).toEqual([]);
  expect(text, what).toMatch(/[\u4e00-\u9fff]/);
  expect(await page.locator("html").getAttribute("lang")).toBe("zh-CN");
}

test("the whole flow in Chinese, every visible string from the Chinese catalogue", async ({ browser, baseURL }, testInfo) => {
  const desktop = await (await chineseContext(browser, baseURL!, "Desktop Chrome")).newPage();
  const phone = await (await chineseContext(browser, baseURL!, "Pixel 7")).newPage();

  await desktop.goto("/login");
  await expect(desktop.getByRole("heading", { name: "用手机扫码登录" })).toBeVisible();
  const qr = desktop.locator(".qr");
  await expect(qr.locator("svg")).toBeVisible();
  await expect(desktop.locator(".status")).toHaveText("请用手机扫描二维码");
  await expect(qr).toHaveAttribute("aria-label", "登录二维码");
  await expectChinese(desktop, "/login");
  await desktop.screenshot({ path: testInfo.outputPath("login-zh-CN.png") });
  await testInfo.attach("login-zh-CN.png", { path: testInfo.outputPath("login-zh-CN.png"), contentType: "image/png" });
  const url = await scanQr(qr, testInfo);

  // The phone signs in (in Chinese), then opens the QR's URL.
  await phone.goto("/m");
  await expectChinese(phone, "/m signed out");
  await phone.getByLabel("用户名").fill("alice");
  await phone.getByLabel("密码").fill(PASSWORD);
  await phone.getByRole("button", { name: "登录", exact: true }).click();
  await expect(phone.getByRole("heading", { name: "已登录：Alice Liddell" })).toBeVisible();
  await expectChinese(phone, "/m");

  await phone.goto(url);
  await expect(phone.getByRole("heading", { name: "要在电脑上登录吗？" })).toBeVisible();
  await expect(desktop.locator(".status")).toHaveText("请在手机上确认");
  await expect(desktop.locator(".validity")).toContainText("等待确认");
  await expectChinese(desktop, "/login, confirming");
  await expectChinese(phone, "/q/{id}");
  const code = (await desktop.locator(".match-code").textContent())!.trim();
  await phone.locator(".choice", { hasText: code }).click();
  await phone.getByRole("button", { name: "批准" }).click();
  await expect(phone.getByRole("heading", { name: /已批准|已登录/ })).toBeVisible();
  await expectChinese(phone, "/q/{id}, approved");

  await expect(desktop.getByRole("heading", { name: "已登录：Alice Liddell" })).toBeVisible();
  await expectChinese(desktop, "/, signed in");
  await desktop.getByRole("button", { name: "退出登录" }).click();
  await expect(desktop.getByRole("heading", { name: "用手机扫码登录" })).toBeVisible();
});

test("the phone's pages are Chinese with JavaScript off too", async ({ browser, baseURL }) => {
  const phone = await (await chineseContext(browser, baseURL!, "Pixel 7", false)).newPage();
  await phone.goto("/m");
  await expect(phone.getByRole("heading", { name: "手机上的 qrlogin" })).toBeVisible();
  await expectChinese(phone, "/m without JavaScript");
  await phone.goto("/device");
  await expectChinese(phone, "/device without JavaScript");
  await phone.goto("/q/00000000-0000-4000-8000-000000000000");
  await expectChinese(phone, "/q/{id} without JavaScript");
});

test("the switcher's choice is remembered over the browser's language", async ({ browser, baseURL }) => {
  const page = await (await chineseContext(browser, baseURL!, "Desktop Chrome")).newPage();
  await page.goto("/m");
  await expect(page.locator("html")).toHaveAttribute("lang", "zh-CN");
  await page.getByRole("button", { name: "English" }).click();
  await expect(page).toHaveURL(/\/m$/);
  await expect(page.locator("html")).toHaveAttribute("lang", "en");
  await expect(page.getByRole("heading", { name: "qrlogin on your phone" })).toBeVisible();
  // Remembered: other pages, and a reload, stay English.
  await page.goto("/login");
  await expect(page.getByRole("heading", { name: "Sign in with your phone" })).toBeVisible();
  await page.getByRole("button", { name: "简体中文" }).click();
  await expect(page.getByRole("heading", { name: "用手机扫码登录" })).toBeVisible();
});
