// First QR on screen: loads /login in Debian's Chromium and reads, from the
// page's own Performance clock (0 = navigation start), when the QR's SVG
// entered the DOM. Prints JSON: {cold_ms: [...], warm_ms: [...]}.
//   node bench/first-qr.mjs <login-url> <loads>
// cold: a new browser context per load (empty cache); warm: reloads in one.
import { readFileSync } from "node:fs";
import { chromium } from "@playwright/test";

const [url, loadsArg] = process.argv.slice(2);
const loads = Number(loadsArg ?? 9);
const launch = JSON.parse(readFileSync(new URL("../chromium.json", import.meta.url)));
launch.executablePath = process.env.CHROMIUM_PATH ?? launch.executablePath;

// Runs in the page before its own scripts. It reports through the console,
// so nothing is evaluated in the page while it loads (Playwright's injected
// helpers cost the page's main thread ~10 ms in a fresh context).
function watchForQr() {
  new MutationObserver((_, observer) => {
    if (document.querySelector(".qr svg")) {
      console.debug(`first-qr ${performance.now()}`);
      observer.disconnect();
    }
  }).observe(document, { childList: true, subtree: true });
}

async function load(page) {
  const seen = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no QR within 15 s")), 15000);
    page.on("console", (message) => {
      const [tag, ms] = message.text().split(" ");
      if (tag === "first-qr") {
        clearTimeout(timer);
        resolve(Number(ms));
      }
    });
  });
  await page.goto(url, { waitUntil: "commit" });
  const ms = await seen;
  page.removeAllListeners("console");
  return ms;
}

const browser = await chromium.launch(launch);
try {
  const viewport = { width: 1280, height: 800 };
  const cold = [];
  // One unmeasured load first: Chromium's own start-up is not the page's.
  for (let i = 0; i <= loads; i++) {
    const context = await browser.newContext({ viewport });
    await context.addInitScript(watchForQr);
    const ms = await load(await context.newPage());
    if (i > 0) cold.push(ms);
    await context.close();
  }
  const warm = [];
  const context = await browser.newContext({ viewport });
  await context.addInitScript(watchForQr);
  const page = await context.newPage();
  await load(page);
  for (let i = 0; i < loads; i++) warm.push(await load(page));
  await context.close();
  console.log(JSON.stringify({ cold_ms: cold, warm_ms: warm }));
} finally {
  await browser.close();
}
