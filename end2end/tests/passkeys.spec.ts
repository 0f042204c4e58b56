import { execFileSync } from "node:child_process";
import path from "node:path";
import AxeBuilder from "@axe-core/playwright";
import { expect, test, type Page } from "@playwright/test";
import { USERS } from "./accounts";
import { allowed, expectNoProblems, matchCode, newDesktop, newPhone, showCode, signIn } from "./devices";

// Passkeys through Chromium's virtual authenticator (CDP WebAuthn domain),
// on the server served as `localhost` (WebAuthn refuses IP addresses as
// the relying party). That server trusts 127.0.0.1 as a proxy and runs
// with --require-passkey-off-network: a desktop whose X-Forwarded-For is
// elsewhere is "not on your network".

const baseURL = `http://localhost:${process.env.QRLOGIN_E2E_PASSKEY_PORT}`;
const ELSEWHERE = "203.0.113.7";
// What the test itself (Node) calls: the same server by address.
const direct = `http://127.0.0.1:${process.env.QRLOGIN_E2E_PASSKEY_PORT}`;

/** axe-core's WCAG 2.1 A/AA rules on the page as it is now. */
async function expectAccessible(page: Page, what: string) {
  const results = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]).analyze();
  expect(results.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`), what).toEqual([]);
}

/** A public OpenID Connect client on the passkey server, by the real CLI. */
function addDeviceClient(name: string): string {
  const root = path.resolve(__dirname, "../..");
  const binary = process.env.QRLOGIN_E2E_BIN ?? path.join(root, "target/release/qrlogin");
  const database = path.join(process.env.QRLOGIN_E2E_DIR!, "passkey.db");
  const args = ["client", "add", name, "--redirect-uri", "http://localhost/cb", "--public", "--json", "--database", database];
  const { QRLOGIN_CONFIG: _, ...env } = process.env;
  return (JSON.parse(execFileSync(binary, args, { env }).toString()) as { client_id: string }).client_id;
}

test.afterEach(expectNoProblems);

/** A phone's virtual authenticator, driven through CDP. */
type Authenticator = { cdp: import("@playwright/test").CDPSession; authenticatorId: string };
const authenticators = new WeakMap<Page, Authenticator>();

/** A phone with a platform authenticator that verifies its user. */
async function phoneWithAuthenticator(browser: import("@playwright/test").Browser): Promise<Page> {
  const phone = await newPhone(browser, baseURL);
  const cdp = await phone.context().newCDPSession(phone);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  authenticators.set(phone, { cdp, authenticatorId });
  return phone;
}

/** The passkeys (with private keys and use counters) a phone's authenticator holds. */
async function credentialsOf(phone: Page) {
  const { cdp, authenticatorId } = authenticators.get(phone)!;
  return (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials;
}

/** Signs in with the password and adds a passkey named `name` on /m. */
async function addPasskey(phone: Page, user: string, name: string) {
  await phone.goto("/m");
  await signIn(phone, user);
  await expect(phone.getByRole("heading", { name: `Signed in as ${USERS[user]}` })).toBeVisible();
  await expect(phone.getByText("No passkeys yet.")).toBeVisible();
  await phone.getByLabel("Name").fill(name);
  await phone.getByRole("button", { name: "Add a passkey" }).click();
  await expect(phone.locator(".passkeys .passkey")).toHaveCount(1);
  await expect(phone.locator(".passkeys")).toContainText(name);
  await expectAccessible(phone, "/m with a passkey");
}

async function desktopElsewhere(browser: import("@playwright/test").Browser): Promise<Page> {
  const desktop = await newDesktop(browser, baseURL);
  await desktop.context().setExtraHTTPHeaders({ "X-Forwarded-For": ELSEWHERE });
  return desktop;
}

test("a passkey is added on /m, signs in without a password, and approves what is shown", async ({ browser }, testInfo) => {
  const phone = await phoneWithAuthenticator(browser);
  await addPasskey(phone, "alice", "Alice's test phone");

  // The password off, and every approval to ask for the passkey: changing
  // how the account signs in needs the passkey first.
  await phone.getByRole("button", { name: "Confirm with my passkey" }).click();
  await expect(phone.getByText("Confirmed: you can change how you sign in until")).toBeVisible();
  await phone.getByLabel("Allow signing in with my password").uncheck();
  await phone.getByLabel("Ask for my passkey to approve every sign-in").check();
  await phone.getByRole("button", { name: "Save sign-in choices" }).click();
  await expect(phone.getByLabel("Allow signing in with my password")).not.toBeChecked();
  await expect(phone.getByLabel("Ask for my passkey to approve every sign-in")).toBeChecked();

  // Signed out, the password no longer works; the passkey does, with no username.
  await phone.getByRole("button", { name: "Sign out" }).click();
  await signIn(phone, "alice");
  await expect(phone.getByText("This account signs in with its passkey only.")).toBeVisible();
  await phone.getByRole("button", { name: "Sign in with a passkey" }).click();
  await expect(phone.getByRole("heading", { name: "Signed in as Alice Liddell" })).toBeVisible();
  await expect(phone.locator(".devices .session").first()).toContainText("Passkey");

  // Approving (on the same network) now needs the passkey: the account asked for it.
  const desktop = await newDesktop(browser, baseURL);
  const url = await showCode(desktop, testInfo);
  await phone.goto(url);
  const code = await matchCode(desktop);
  await expect(phone.getByText("Approving needs your passkey")).toBeVisible();
  await phone.locator(".choice", { hasText: code }).click();
  await expectAccessible(phone, "the approve page asking for the passkey");
  await phone.screenshot({ path: testInfo.outputPath("phone-passkey-approve.png") });
  await testInfo.attach("phone-passkey-approve.png", {
    path: testInfo.outputPath("phone-passkey-approve.png"),
    contentType: "image/png",
  });
  await phone.getByRole("button", { name: "Approve with passkey" }).click();
  await expect(phone.getByRole("heading", { name: /Approved|Signed in/ })).toBeVisible();
  await expect(desktop.getByRole("heading", { name: "Signed in as Alice Liddell" })).toBeVisible();
});

test("an assertion made for attempt A or for number 42 approves nothing else", async ({ browser }, testInfo) => {
  const phone = await phoneWithAuthenticator(browser);
  await addPasskey(phone, "bob", "Bob's phone");
  await phone.getByLabel("Ask for my passkey to approve every sign-in").check();
  await phone.getByRole("button", { name: "Save sign-in choices" }).click();
  await expect(phone.getByLabel("Ask for my passkey to approve every sign-in")).toBeChecked();

  const desktopA = await newDesktop(browser, baseURL);
  const desktopB = await newDesktop(browser, baseURL);
  const urlA = await showCode(desktopA, testInfo);
  const urlB = await showCode(desktopB, testInfo);
  const idA = urlA.split("/q/")[1];
  const idB = urlB.split("/q/")[1];
  await phone.goto(urlA);
  await matchCode(desktopA);
  await phone.goto(urlB);
  const codeB = Number(await matchCode(desktopB));
  const wrong = codeB === 42 ? 17 : 42;

  /**
   * In the phone's page: an assertion made with the options for
   * (`madeFor`, `madeWith`), submitted to approve (`submitTo`, `submitWith`).
   */
  const attempt = (madeFor: string, madeWith: number, submitTo: string, submitWith: number) =>
    phone.evaluate(
      async ({ madeFor, madeWith, submitTo, submitWith }) => {
        const post = (path: string, body: unknown) =>
          fetch(path, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify(body),
          });
        const options = await (await post(`/api/v1/logins/${madeFor}/approve/options`, { match_code: madeWith })).json();
        const PKC = PublicKeyCredential as unknown as {
          parseRequestOptionsFromJSON(o: unknown): PublicKeyCredentialRequestOptions;
        };
        const credential = (await navigator.credentials.get({
          publicKey: PKC.parseRequestOptionsFromJSON(options.publicKey),
        })) as PublicKeyCredential & { toJSON(): unknown };
        const answer = await post(`/api/v1/logins/${submitTo}/approve`, {
          match_code: submitWith,
          passkey: credential.toJSON(),
        });
        return { status: answer.status, body: await answer.json() };
      },
      { madeFor, madeWith, submitTo, submitWith },
    );

  // The refusals below are the point (the console reports each 403).
  allowed.set(phone, /status of 403/);
  // Made for attempt A (with B's number), submitted for B: refused.
  expect(await attempt(idA, codeB, idB, codeB)).toMatchObject({ status: 403, body: { error: "passkey_refused" } });
  // Made for number 42 (or 17), submitted with 17 (or 42): refused...
  expect(await attempt(idB, 42, idB, 17)).toMatchObject({ status: 403, body: { error: "passkey_refused" } });
  // ...and made for a wrong number, submitted with the right one: refused.
  expect(await attempt(idB, wrong, idB, codeB)).toMatchObject({ status: 403, body: { error: "passkey_refused" } });
  // Nothing was approved or denied: both desktops still wait for the phone.
  await expect(desktopA.locator(".status")).toHaveText("Confirm on your phone");
  await expect(desktopB.locator(".status")).toHaveText("Confirm on your phone");

  // The assertion made for exactly B and its number approves B.
  expect(await attempt(idB, codeB, idB, codeB)).toMatchObject({ status: 200, body: { state: "approved" } });
  await expect(desktopB.getByRole("heading", { name: "Signed in as Bob Builder" })).toBeVisible();
  await expect(desktopA.locator(".status")).toHaveText("Confirm on your phone");

  // A device (RFC 8628): the passkey signs its user code and where it asked from.
  const clientId = addDeviceClient("Living-room TV");
  const form = (fields: Record<string, string>) => ({
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields).toString(),
  });
  const device = await (await fetch(`${direct}/oauth2/device_authorization`, form({ client_id: clientId, scope: "openid" }))).json();
  await phone.goto(device.verification_uri_complete);
  await expect(phone.getByText("Approving needs your passkey: it signs this code and this request.")).toBeVisible();
  await phone.getByRole("button", { name: "The device shows this code: approve with passkey" }).click();
  await expect(phone.getByRole("heading", { name: "Approved" })).toBeVisible();
  const tokens = await (
    await fetch(
      `${direct}/oauth2/token`,
      form({ grant_type: "urn:ietf:params:oauth:grant-type:device_code", device_code: device.device_code, client_id: clientId }),
    )
  ).json();
  expect(tokens.id_token, JSON.stringify(tokens)).toBeTruthy();

  // Removing the passkey: gone from the list, and "ask for my passkey" off
  // with it (it could only block approvals now).
  await phone.goto("/m");
  await phone.getByRole("button", { name: "Confirm with my passkey" }).click();
  await expect(phone.getByText("Confirmed: you can change how you sign in until")).toBeVisible();
  await phone.locator(".passkeys .passkey").getByRole("button", { name: "Remove" }).click();
  await expect(phone.getByText("No passkeys yet.")).toBeVisible();
  await expect(phone.locator(".passkeys .passkey")).toHaveCount(0);
  await expect(phone.getByLabel("Ask for my passkey to approve every sign-in")).not.toBeChecked();
  await expect(phone.getByLabel("Ask for my passkey to approve every sign-in")).toBeDisabled();
});

test("off the phone's network the relay warning shows and the passkey is required", async ({ browser }, testInfo) => {
  const phone = await phoneWithAuthenticator(browser);
  await addPasskey(phone, "carol", "Carol's phone");

  // On the same network: the session is enough, no warning.
  const near = await newDesktop(browser, baseURL);
  let url = await showCode(near, testInfo);
  await phone.goto(url);
  await matchCode(near);
  await expect(phone.locator(".relay-warning")).toHaveCount(0);
  await expect(phone.getByRole("button", { name: "Approve", exact: true })).toBeVisible();
  await phone.getByRole("button", { name: "Deny" }).click();
  await expect(phone.getByRole("heading", { name: "Sign-in declined" })).toBeVisible();

  // Elsewhere: the warning above the buttons, Deny prominent, and the passkey required.
  const far = await desktopElsewhere(browser);
  url = await showCode(far, testInfo);
  await phone.goto(url);
  const code = await matchCode(far);
  await expect(phone.locator(".relay-warning")).toHaveText(
    "The computer asking is not on your network. If someone sent you this code or asked you to scan it, deny.",
  );
  await expect(phone.locator(".requester")).toContainText(ELSEWHERE);
  await expect(phone.getByRole("button", { name: "Deny" })).toHaveClass(/danger/);
  // Without the passkey (a plain API call with the session): refused.
  allowed.set(phone, /status of 403/);
  const refused = await phone.evaluate(
    async ({ id, code }) => {
      const answer = await fetch(`/api/v1/logins/${id}/approve`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ match_code: Number(code) }),
      });
      return { status: answer.status, body: await answer.json() };
    },
    { id: url.split("/q/")[1], code },
  );
  expect(refused).toMatchObject({ status: 403, body: { error: "passkey_required" } });
  // With it: approved.
  await phone.locator(".choice", { hasText: code }).click();
  await phone.getByRole("button", { name: "Approve with passkey" }).click();
  await expect(phone.getByRole("heading", { name: /Approved|Signed in/ })).toBeVisible();
  await expect(far.getByRole("heading", { name: "Signed in as Carol Danvers" })).toBeVisible();
});

test("adding a second passkey and turning 'ask for my passkey' off each ask for the first passkey", async ({ browser }) => {
  // Phone A adds the first passkey (the password it just signed in with is
  // the proof while the account has none), and asks for it on every
  // approval (stricter: no proof needed).
  const phoneA = await phoneWithAuthenticator(browser);
  await addPasskey(phoneA, "dave", "Dave's phone");
  await phoneA.getByLabel("Ask for my passkey to approve every sign-in").check();
  await phoneA.getByRole("button", { name: "Save sign-in choices" }).click();
  await expect(phoneA.getByLabel("Ask for my passkey to approve every sign-in")).toBeChecked();
  const [first] = await credentialsOf(phoneA);

  // Phone B holds the same passkey (synced) and signs in with the password:
  // that proves nothing any more, the account has a passkey.
  const phoneB = await phoneWithAuthenticator(browser);
  const b = authenticators.get(phoneB)!;
  await b.cdp.send("WebAuthn.addCredential", { authenticatorId: b.authenticatorId, credential: first });
  await phoneB.goto("/m");
  await signIn(phoneB, "dave");
  await expect(phoneB.getByRole("heading", { name: "Confirm it's you" })).toBeVisible();
  // Adding a passkey first asks for the existing one: the first request is
  // refused (403), the passkey confirms, then the new one is made. (The
  // virtual authenticator would refuse to make a second credential for an
  // account whose first it holds, so the test takes the first out of it
  // once it has confirmed, and notes how often it had been used.)
  allowed.set(phoneB, /status of 403/);
  let usesOfFirst = -1;
  let registrations = 0;
  await phoneB.route("**/fn/passkey_registration*", async (route) => {
    registrations += 1;
    if (registrations === 2) {
      const held = await credentialsOf(phoneB);
      usesOfFirst = held.find((c) => c.credentialId === first.credentialId)!.signCount;
      await b.cdp.send("WebAuthn.removeCredential", { authenticatorId: b.authenticatorId, credentialId: first.credentialId });
    }
    await route.continue();
  });
  await phoneB.getByLabel("Name").fill("Dave's tablet");
  await phoneB.getByRole("button", { name: "Add a passkey" }).click();
  await expect(phoneB.locator(".passkeys .passkey")).toHaveCount(2);
  expect(registrations).toBe(2);
  expect(usesOfFirst, "the first passkey was asked before the second was made").toBeGreaterThan(first.signCount);
  await expect(phoneB.getByText("Confirmed: you can change how you sign in until")).toBeVisible();
  // The new one is marked new on /m (the first was there at the last look).
  await expect(phoneB.locator(".passkeys .passkey.new")).toContainText("Dave's tablet");

  // Back on phone A (its password sign-in proves nothing now): turning
  // "ask for my passkey" off is refused until the passkey confirms.
  allowed.set(phoneA, /status of 403/);
  await phoneA.goto("/m");
  await phoneA.getByLabel("Ask for my passkey to approve every sign-in").uncheck();
  await phoneA.getByRole("button", { name: "Save sign-in choices" }).click();
  await expect(phoneA.getByRole("alert")).toHaveText("Confirm it's you first (above), then try again.");
  await expect(phoneA.getByLabel("Ask for my passkey to approve every sign-in")).toBeChecked();
  const before = (await credentialsOf(phoneA))[0].signCount;
  await phoneA.getByRole("button", { name: "Confirm with my passkey" }).click();
  await expect(phoneA.getByText("Confirmed: you can change how you sign in until")).toBeVisible();
  expect((await credentialsOf(phoneA))[0].signCount).toBeGreaterThan(before);
  await phoneA.getByLabel("Ask for my passkey to approve every sign-in").uncheck();
  await phoneA.getByRole("button", { name: "Save sign-in choices" }).click();
  await expect(phoneA.getByLabel("Ask for my passkey to approve every sign-in")).not.toBeChecked();
  await expectAccessible(phoneA, "/m after confirming");
});
