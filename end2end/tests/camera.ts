import { writeFileSync } from "node:fs";
import { chromium, type Browser } from "@playwright/test";
import { PNG } from "pngjs";
import { readFileSync } from "node:fs";
import path from "node:path";

const WIDTH = 640;
const HEIGHT = 480;

/**
 * A Y4M video (what Chromium's fake camera plays) of `png` centred on a
 * white frame, as a phone camera would see a screen: grey levels only.
 */
export function pngToY4m(png: Buffer, file: string) {
  const image = PNG.sync.read(png);
  const scale = Math.min((WIDTH * 0.8) / image.width, (HEIGHT * 0.8) / image.height);
  const w = Math.floor(image.width * scale);
  const h = Math.floor(image.height * scale);
  const left = Math.floor((WIDTH - w) / 2);
  const top = Math.floor((HEIGHT - h) / 2);
  const luma = Buffer.alloc(WIDTH * HEIGHT, 255);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const sx = Math.floor(x / scale);
      const sy = Math.floor(y / scale);
      const i = (sy * image.width + sx) * 4;
      const [r, g, b] = [image.data[i], image.data[i + 1], image.data[i + 2]];
      luma[(top + y) * WIDTH + left + x] = Math.round(0.299 * r + 0.587 * g + 0.114 * b);
    }
  }
  const chroma = Buffer.alloc((WIDTH / 2) * (HEIGHT / 2) * 2, 128);
  const frame = Buffer.concat([Buffer.from("FRAME\n"), luma, chroma]);
  const header = Buffer.from(`YUV4MPEG2 W${WIDTH} H${HEIGHT} F10:1 Ip A1:1 C420jpeg\n`);
  writeFileSync(file, Buffer.concat([header, ...Array(10).fill(frame)]));
}

/** A second Chromium whose camera plays `video` (launched after it exists). */
export async function browserWithCamera(video: string): Promise<Browser> {
  const options = JSON.parse(readFileSync(path.join(__dirname, "..", "chromium.json"), "utf8"));
  options.executablePath = process.env.CHROMIUM_PATH ?? options.executablePath;
  return chromium.launch({
    ...options,
    args: [
      ...options.args,
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      `--use-file-for-fake-video-capture=${video}`,
    ],
  });
}
