import { expect, test, type Page } from "@playwright/test";
import { USERS } from "./accounts";
import { execFileSync } from "node:child_process";
import { allowed, approveAndSignIn, expectNoProblems, newDesktop, newPhone, showCode, signIn } from "./devices";

// The whole flow through scripts/cluster.sh: nginx in front of two qrlogin
// instances that share one PostgreSQL and one Redis, round robin with no
// stickiness. The desktop's and the phone's requests are spread over both
// instances, so each instance must act on what the other was told. nginx
// names the instance that answered in the X-Upstream header.
const port = Number(process.env.QRLOGIN_E2E_CLUSTER_PORT);
const clusterURL = `http://127.0.0.1:${port}`;
const instances = [`127.0.0.1:${port + 1}`, `127.0.0.1:${port + 2}`];

test.afterEach(expectNoProblems);
// One cluster for the file: the Redis test must not stop it under another.
test.describe.configure({ mode: "serial" });

type Answer = { request: string; upstream: string };

/**
 * The instance that answered each of the page's requests into the
 * application, from the moment this is called. Not only /api/: that is the
 * desktop's, but the phone's pages are rendered on the server and send their
 * forms to server functions under /fn/, so the pages count too. Static files
 * do not: any instance serves the same bytes.
 */
function recordUpstreams(page: Page): Answer[] {
  const answers: Answer[] = [];
  page.on("response", (response) => {
    const url = new URL(response.url());
    const request = response.request();
    const app = /^\/(api|fn)\//.test(url.pathname) || request.resourceType() === "document";
    if (url.origin !== clusterURL || !app) return;
    // After a retry nginx lists both instances; the last one answered.
    const upstream = response.headers()["x-upstream"]?.split(", ").pop() ?? "(no X-Upstream)";
    answers.push({ request: `${request.method()} ${url.pathname}`, upstream });
  });
  return answers;
}

test("approve through nginx: desktop and phone on different instances", async ({ browser }, testInfo) => {
  // signedInPhone, but recording from the phone's first request on.
  const phone = await newPhone(browser, clusterURL);
  const phoneAnswers = recordUpstreams(phone);
  await phone.goto("/m");
  await signIn(phone, "alice");
  await expect(phone.getByRole("heading", { name: `Signed in as ${USERS.alice}` })).toBeVisible();

  const desktop = await newDesktop(browser, clusterURL);
  const desktopAnswers = recordUpstreams(desktop);
  const url = await showCode(desktop, testInfo);
  // The QR carries the public URL (nginx's), never an instance's own.
  expect(url.startsWith(`${clusterURL}/q/`), url).toBe(true);

  // The same flow and checks as flow.spec.ts's approve test.
  await approveAndSignIn(phone, desktop, url, clusterURL, testInfo);

  const upstreams = JSON.stringify({ desktop: desktopAnswers, phone: phoneAnswers }, null, 2);
  await testInfo.attach("upstreams.json", { body: upstreams, contentType: "application/json" });
  // Every answer came from one of the two instances, and both took part.
  const seen = new Set([...desktopAnswers, ...phoneAnswers].map((a) => a.upstream));
  expect([...seen].sort(), upstreams).toEqual([...instances].sort());
  // Some request of the phone's went to another instance than one of the
  // desktop's: the two devices did not share one instance all along.
  const crossed = phoneAnswers.some((p) => desktopAnswers.some((d) => d.upstream !== p.upstream));
  expect(crossed, upstreams).toBe(true);
});

test("Redis stopped: the login page says it is reconnecting, then carries on", async ({ browser }, testInfo) => {
  const dir = process.env.QRLOGIN_E2E_CLUSTER_DIR!;
  const phone = await newPhone(browser, clusterURL);
  await phone.goto("/m");
  await signIn(phone, "alice");
  const desktop = await newDesktop(browser, clusterURL);
  const url = await showCode(desktop, testInfo);
  // The page's polls fail while Redis is away (503, logged by the browser).
  allowed.set(desktop, /503|Service Unavailable/);

  // Redis stops (its appendonly file keeps the attempt); the desktop's
  // waiting poll is woken by its instance, meets a 503 and says so.
  execFileSync("redis-cli", ["-s", `${dir}/redis.sock`, "shutdown"]);
  await expect(desktop.locator(".notice")).toContainText("Reconnecting", { timeout: 10_000 });
  await desktop.screenshot({ path: testInfo.outputPath("desktop-reconnecting.png") });

  // Back: the page carries on with the same code, and the sign-in works.
  execFileSync("redis-server", [`${dir}/redis.conf`]);
  await expect(desktop.locator(".notice")).toBeEmpty({ timeout: 20_000 });
  await approveAndSignIn(phone, desktop, url, clusterURL, testInfo);
});
