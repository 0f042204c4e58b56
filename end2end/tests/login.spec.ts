import { expect, test, type ConsoleMessage } from "@playwright/test";
import { scanQr } from "./qr";

test.describe("/login", () => {
  test("shows a scannable QR for the attempt it created", async ({ page, baseURL }, testInfo) => {
    const problems: string[] = [];
    page.on("console", (msg: ConsoleMessage) => {
      if (msg.type() === "error") problems.push(msg.text());
    });
    page.on("pageerror", (err) => problems.push(err.message));

    const created = page.waitForResponse(
      (r) => r.url().endsWith("/api/v1/logins") && r.request().method() === "POST",
    );
    await page.goto("/login");
    const response = await created;
    expect(response.status()).toBe(201);
    const { id, qr_url } = await response.json();

    const card = page.locator(".card.login");
    await expect(card.getByText("Scan with your phone")).toBeVisible();
    // The SVG is drawn by the WASM after hydration; the server never sends it.
    const qr = page.locator(".qr");
    await expect(qr.locator("svg")).toBeVisible();
    await expect(qr).toHaveAttribute("data-login-id", id);
    await expect(card).toHaveAttribute("data-state", "pending");
    await expect(card.locator(".validity")).toHaveText(/Code valid for 0:[0-5]\d|Code valid for 1:00/);

    const decoded = await scanQr(qr, testInfo);
    expect(decoded).toBe(`${baseURL}/q/${id}`);
    expect(decoded).toBe(qr_url);

    const pageShot = testInfo.outputPath("login-page.png");
    await page.screenshot({ path: pageShot, fullPage: true });
    await testInfo.attach("login-page.png", { path: pageShot, contentType: "image/png" });

    expect(problems).toEqual([]);
  });

  test("the page cannot be framed by another site", async ({ page, baseURL }) => {
    const refused: string[] = [];
    page.on("console", (msg) => refused.push(msg.text()));
    await page.setContent(`<iframe id="victim" src="${baseURL}/login" width="400" height="600"></iframe>`);
    await page.waitForTimeout(1_000);
    const frame = page.frames().find((f) => f.url().includes("/login"));
    const framed = frame ? await frame.locator("text=Scan with your phone").count().catch(() => 0) : 0;
    expect(framed).toBe(0);
    expect(refused.join("\n")).toMatch(/frame-ancestors|Refused to (display|frame)/);
  });

  test("server HTML carries the card but not the QR", async ({ request }) => {
    const response = await request.get("/login");
    expect(response.status()).toBe(200);
    const html = await response.text();
    expect(html).toContain("Scan with your phone");
    expect(html).not.toContain("<svg");
  });
});

test("/m can be added to the home screen: a manifest with its icons", async ({ page, request }) => {
  await page.goto("/m");
  const href = await page.locator('link[rel="manifest"]').getAttribute("href");
  expect(href).toBe("/manifest.webmanifest");
  const response = await request.get(href!);
  expect(response.status()).toBe(200);
  expect(response.headers()["content-type"]).toContain("manifest+json");
  const manifest = await response.json();
  expect(manifest.start_url).toBe("/m");
  expect(manifest.display).toBe("standalone");
  for (const size of ["192x192", "512x512"]) {
    const icon = manifest.icons.find((i: { sizes: string }) => i.sizes === size);
    const image = await request.get(icon.src);
    expect(image.status()).toBe(200);
    expect(image.headers()["content-type"]).toBe("image/png");
  }
  // The page's CSP lets the browser fetch it.
  const csp = (await page.request.get("/m")).headers()["content-security-policy"];
  expect(csp).toContain("manifest-src 'self'");
});
