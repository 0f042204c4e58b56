import jsQR from "jsqr";
import { PNG } from "pngjs";
import type { Locator, TestInfo } from "@playwright/test";

/**
 * Screenshots the QR as the screen shows it and decodes it, as a phone's
 * camera would: the test learns the URL only from the pixels.
 */
export async function scanQr(qr: Locator, testInfo: TestInfo, name = "qr.png"): Promise<string> {
  const file = testInfo.outputPath(name);
  const shot = await qr.screenshot({ path: file });
  await testInfo.attach(name, { path: file, contentType: "image/png" });
  const png = PNG.sync.read(shot);
  const code = jsQR(new Uint8ClampedArray(png.data), png.width, png.height);
  if (!code) {
    throw new Error(`no QR code found in ${file} (${png.width}x${png.height})`);
  }
  return code.data;
}
