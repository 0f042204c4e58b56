import { devices, expect, test, type Browser, type Page } from "@playwright/test";
import QRCode from "qrcode";
import { USERS } from "./accounts";
import { browserWithCamera, pngToY4m } from "./camera";
import { expectNoProblems, expectNoReload, matchCode, newDesktop, showCode, signIn } from "./devices";

// The phone scans with the camera in /m: Chromium's fake camera plays a
// video made from the desktop's screenshot, the page decodes it in WASM.

test.afterEach(expectNoProblems);

async function phoneOn(cameraBrowser: Browser, baseURL: string, user: string): Promise<Page> {
  const { defaultBrowserType: _, ...pixel } = devices["Pixel 7"];
  const phone = await (await cameraBrowser.newContext({ ...pixel, baseURL })).newPage();
  await phone.goto("/m");
  await signIn(phone, user);
  await expect(phone.getByRole("heading", { name: `Signed in as ${USERS[user]}` })).toBeVisible();
  return phone;
}

test("the phone scans the desktop's QR with the camera in /m and signs it in", async ({ browser, baseURL }, testInfo) => {
  const desktop = await newDesktop(browser, baseURL!);
  const desktopLoads: string[] = [];
  desktop.on("request", (r) => desktopLoads.push(r.url()));
  await showCode(desktop, testInfo);
  const video = testInfo.outputPath("desktop-qr.y4m");
  pngToY4m(await desktop.locator(".qr").screenshot(), video);

  const camera = await browserWithCamera(video);
  try {
    const phone = await phoneOn(camera, baseURL!, "alice");
    const phoneLoads: string[] = [];
    phone.on("request", (r) => phoneLoads.push(r.url()));
    await phone.getByRole("button", { name: "Scan a code" }).click();
    await phone.screenshot({ path: testInfo.outputPath("phone-scanner.png") });
    await expect(phone).toHaveURL(/\/q\/[0-9a-f-]{36}$/);
    await expect(phone.getByRole("heading", { name: "Sign in on a computer?" })).toBeVisible();
    const code = await matchCode(desktop);
    await phone.locator(".choice", { hasText: code }).click();
    await phone.getByRole("button", { name: "Approve" }).click();
    await expect(desktop.getByRole("heading", { name: "Signed in as Alice Liddell" })).toBeVisible();
    await expectNoReload(desktop);
    // The decoder is a WASM chunk of its own: /m loaded it to scan, /login never did.
    expect(phoneLoads.some((url) => /\/pkg\/split_decode_\w+\.wasm$/.test(url))).toBe(true);
    expect(desktopLoads.filter((url) => url.includes("split_"))).toEqual([]);
  } finally {
    await camera.close();
  }
});

test("a QR of another site is refused and the phone stays on /m", async ({ baseURL }, testInfo) => {
  const foreign = "https://login.example.evil/q/0b8f6a52-2f6e-4b8e-9a4e-6f1d2c3b4a59";
  const video = testInfo.outputPath("foreign-qr.y4m");
  pngToY4m(await QRCode.toBuffer(foreign, { margin: 4, scale: 8 }), video);
  const camera = await browserWithCamera(video);
  try {
    const phone = await phoneOn(camera, baseURL!, "bob");
    await phone.getByRole("button", { name: "Scan a code" }).click();
    const host = new URL(baseURL!).host;
    await expect(phone.locator(".scanner-message")).toHaveText(`This is not a sign-in code for ${host}.`);
    // It keeps looking (for the right code) and never navigates.
    await phone.waitForTimeout(1_000);
    await expect(phone).toHaveURL(`${baseURL}/m`);
    await expect(phone.locator(".scanner")).toHaveAttribute("data-state", /foreign/);
  } finally {
    await camera.close();
  }
});

test("without a camera the page says how to use the phone's own camera app", async ({ browser, baseURL }) => {
  const { defaultBrowserType: _, ...pixel } = devices["Pixel 7"];
  // Playwright's default Chromium has no fake camera: getUserMedia fails.
  const phone = await (await browser.newContext({ ...pixel, baseURL })).newPage();
  await phone.goto("/m");
  await signIn(phone, "carol");
  await phone.getByRole("button", { name: "Scan a code" }).click();
  await expect(phone.locator(".scanner-message")).toContainText("Open your phone's own camera app");
});
