import { execFileSync } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { expect, test } from "@playwright/test";
import * as oidc from "openid-client";
import { expectNoProblems, newDesktop, signedInPhone } from "./devices";
import { scanQr } from "./qr";

// qrlogin as an OpenID Connect provider, driven by a real relying party
// library (panva's openid-client), not by our own code: discovery, the code
// flow with PKCE in a desktop browser whose sign-in is the phone scanning
// the QR on its screen, the ID token checked against the JWKS, userinfo,
// refresh, revocation and logout; then the device authorization grant with
// the phone approving.

test.afterEach(expectNoProblems);

const root = path.resolve(__dirname, "../..");
const binary = process.env.QRLOGIN_E2E_BIN ?? path.join(root, "target/release/qrlogin");
const database = path.join(process.env.QRLOGIN_E2E_DIR!, "main.db");

/** Registers a client with the real CLI, as an operator would. */
function addClient(name: string, redirectUri: string, publicClient: boolean) {
  const args = ["client", "add", name, "--redirect-uri", redirectUri, "--json", "--database", database];
  if (publicClient) args.push("--public");
  const { QRLOGIN_CONFIG: _, ...env } = process.env;
  const out = execFileSync(binary, args, { env }).toString();
  return JSON.parse(out) as { client_id: string; client_secret?: string };
}

/** The relying party's callback page: a tiny server the browser lands on. */
async function relyingParty(): Promise<{ server: Server; redirectUri: string }> {
  const server = createServer((_, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end("<!DOCTYPE html><title>Notes</title><p>Back in Notes</p>");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { server, redirectUri: `http://localhost:${port}/callback` };
}

/** A code request with PKCE and a fresh state and nonce, as an app makes it. */
async function codeRequest(config: oidc.Configuration, redirectUri: string) {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const authorizationUrl = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: "openid profile offline_access",
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state,
    nonce,
  });
  return { verifier, state, nonce, authorizationUrl };
}

/** Device clients register a redirect URI too; it is never used. */
const UNUSED_REDIRECT = "http://localhost/unused";

test("a web app signs in by phone through openid-client: code + PKCE, ID token, userinfo, refresh, revoke, logout", async ({ browser, baseURL }, testInfo) => {
  const { server, redirectUri } = await relyingParty();
  const registered = addClient("Notes", redirectUri, false);
  const config = await oidc.discovery(new URL(baseURL!), registered.client_id, registered.client_secret, undefined, {
    execute: [oidc.allowInsecureRequests],
  });
  // Check the ID token's signature against the published JWKS too.
  oidc.enableNonRepudiationChecks(config);
  expect(config.serverMetadata().issuer).toBe(baseURL);

  const { verifier, state, nonce, authorizationUrl } = await codeRequest(config, redirectUri);

  const phone = await signedInPhone(browser, baseURL!, "alice");
  const desktop = await newDesktop(browser, baseURL!);
  await desktop.goto(authorizationUrl.href);
  await expect(desktop.getByRole("heading", { name: "Sign in to Notes with your phone" })).toBeVisible();
  const qr = desktop.locator(".qr");
  await expect(qr.locator("svg")).toBeVisible();
  const url = await scanQr(qr, testInfo, "oidc-desktop-qr.png");
  expect(url).toMatch(/\/q\/[0-9a-f-]{36}$/);

  // The phone names the application as well as the browser asking.
  await phone.goto(url);
  await expect(phone.getByRole("heading", { name: /^Notes on Chrome \/ .+ wants to sign you in$/ })).toBeVisible();
  await phone.screenshot({ path: testInfo.outputPath("oidc-phone-approve.png") });
  await expect(desktop.locator(".status")).toHaveText("Confirm on your phone");
  const code = (await desktop.locator(".match-code").textContent())!.trim();
  await phone.locator(".choice", { hasText: code }).click();
  await phone.getByRole("button", { name: "Approve" }).click();

  // The desktop lands back at the application with a code.
  await desktop.waitForURL((u) => u.href.startsWith(redirectUri));
  const back = new URL(desktop.url());
  expect(back.searchParams.get("state")).toBe(state);
  expect(back.searchParams.get("iss")).toBe(baseURL);
  const tokens = await oidc.authorizationCodeGrant(config, back, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims()!;
  expect(claims.iss).toBe(baseURL);
  expect(claims.aud).toBe(registered.client_id);
  expect(claims.nonce).toBe(nonce);
  expect(claims.preferred_username).toBe("alice");

  const info = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub);
  expect(info).toEqual({ sub: claims.sub, preferred_username: "alice", name: "Alice Liddell" });

  // Refresh rotates; revoking the new refresh token ends the grant.
  const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
  expect(refreshed.refresh_token).toBeTruthy();
  expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
  expect(refreshed.claims()!.sub).toBe(claims.sub);
  await oidc.tokenRevocation(config, refreshed.refresh_token!);
  await expect(oidc.fetchUserInfo(config, refreshed.access_token, claims.sub)).rejects.toThrow();
  await expect(oidc.refreshTokenGrant(config, refreshed.refresh_token!)).rejects.toThrow();

  // The application signs the browser out of qrlogin too (RP-initiated logout).
  const logout = oidc.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token!,
    post_logout_redirect_uri: redirectUri,
    state: "bye",
  });
  await desktop.goto(logout.href);
  await desktop.waitForURL((u) => u.href.startsWith(redirectUri));
  expect(new URL(desktop.url()).searchParams.get("state")).toBe("bye");
  await desktop.goto("/");
  await expect(desktop).toHaveURL(`${baseURL}/login`);

  // /m lists the application, which can be signed out from there.
  await phone.goto("/m");
  await expect(phone.locator(".apps")).toContainText("Notes");
  server.close();
});

test("a single-page app signs in with openid-client's DPoP: its tokens are bound to its key, and useless without it", async ({ browser, baseURL }, testInfo) => {
  const { server, redirectUri } = await relyingParty();
  const registered = addClient("Notes", redirectUri, true);
  const config = await oidc.discovery(new URL(baseURL!), registered.client_id, undefined, oidc.None(), {
    execute: [oidc.allowInsecureRequests],
  });
  expect(config.serverMetadata().dpop_signing_alg_values_supported).toContain("ES256");
  const dpop = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair("ES256"));

  const { verifier, state, nonce, authorizationUrl } = await codeRequest(config, redirectUri);
  const phone = await signedInPhone(browser, baseURL!, "alice");
  const desktop = await newDesktop(browser, baseURL!);
  await desktop.goto(authorizationUrl.href);
  const url = await scanQr(desktop.locator(".qr"), testInfo, "oidc-dpop-desktop-qr.png");
  await phone.goto(url);
  await expect(desktop.locator(".status")).toHaveText("Confirm on your phone");
  const code = (await desktop.locator(".match-code").textContent())!.trim();
  await phone.locator(".choice", { hasText: code }).click();
  await phone.getByRole("button", { name: "Approve" }).click();
  await desktop.waitForURL((u) => u.href.startsWith(redirectUri));

  // openid-client answers the server's use_dpop_nonce by itself.
  const tokens = await oidc.authorizationCodeGrant(
    config,
    new URL(desktop.url()),
    { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true },
    undefined,
    { DPoP: dpop },
  );
  expect(tokens.token_type.toLowerCase()).toBe("dpop");
  const sub = tokens.claims()!.sub;
  const info = await oidc.fetchUserInfo(config, tokens.access_token, sub, { DPoP: dpop });
  expect(info.preferred_username).toBe("alice");

  // A thief with the access token but not the key: as a bearer token, or
  // with a key of its own, user info refuses it.
  await expect(oidc.fetchUserInfo(config, tokens.access_token, sub)).rejects.toThrow();
  const thief = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair("ES256"));
  await expect(oidc.fetchUserInfo(config, tokens.access_token, sub, { DPoP: thief })).rejects.toThrow();
  // … and the refresh token, bound to the app's key too.
  await expect(oidc.refreshTokenGrant(config, tokens.refresh_token!, undefined, { DPoP: thief })).rejects.toThrow();
  await expect(oidc.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toThrow();

  // The app itself, with its key, still refreshes and reads user info.
  const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!, undefined, { DPoP: dpop });
  expect(refreshed.token_type.toLowerCase()).toBe("dpop");
  const again = await oidc.fetchUserInfo(config, refreshed.access_token, sub, { DPoP: dpop });
  expect(again.sub).toBe(sub);
  await oidc.tokenRevocation(config, refreshed.refresh_token!);
  await expect(oidc.refreshTokenGrant(config, refreshed.refresh_token!, undefined, { DPoP: dpop })).rejects.toThrow();
  server.close();
});

test("a TV signs in with openid-client's device authorization grant, the phone approving", async ({ browser, baseURL }, testInfo) => {
  const registered = addClient("Living-room TV", UNUSED_REDIRECT, true);
  const config = await oidc.discovery(new URL(baseURL!), registered.client_id, undefined, oidc.None(), {
    execute: [oidc.allowInsecureRequests],
  });
  oidc.enableNonRepudiationChecks(config);
  const device = await oidc.initiateDeviceAuthorization(config, { scope: "openid profile" });
  expect(device.user_code).toMatch(/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
  const polling = oidc.pollDeviceAuthorizationGrant(config, device);

  // The phone opens the verification URL and checks the code against the TV's.
  const phone = await signedInPhone(browser, baseURL!, "alice");
  await phone.goto(device.verification_uri_complete!);
  await expect(phone.getByRole("heading", { name: "Sign in Living-room TV on a device?" })).toBeVisible();
  await expect(phone.locator(".device-code")).toHaveText(device.user_code);
  await expect(phone.getByRole("note")).toContainText("If you did not start it");
  await phone.screenshot({ path: testInfo.outputPath("device-phone-approve.png") });
  await phone.getByRole("button", { name: "The device shows this code: approve" }).click();
  await expect(phone.getByRole("heading", { name: "Approved" })).toBeVisible();

  const tokens = await polling;
  expect(tokens.claims()!.preferred_username).toBe("alice");
  const info = await oidc.fetchUserInfo(config, tokens.access_token, tokens.claims()!.sub);
  expect(info.name).toBe("Alice Liddell");
});

test("typing the code at the verification URL works too", async ({ browser, baseURL }) => {
  const registered = addClient("Set-top box", UNUSED_REDIRECT, true);
  const config = await oidc.discovery(new URL(baseURL!), registered.client_id, undefined, oidc.None(), {
    execute: [oidc.allowInsecureRequests],
  });
  const device = await oidc.initiateDeviceAuthorization(config, { scope: "openid" });
  const phone = await signedInPhone(browser, baseURL!, "bob");
  await phone.goto(device.verification_uri);
  await phone.getByLabel("Code shown on the device").fill(device.user_code.toLowerCase().replace("-", ""));
  await phone.getByRole("button", { name: "Continue" }).click();
  await expect(phone.locator(".device-code")).toHaveText(device.user_code);
  await phone.getByRole("button", { name: "Deny" }).click();
  await expect(phone.getByRole("heading", { name: "Denied" })).toBeVisible();
  await expect(oidc.pollDeviceAuthorizationGrant(config, device)).rejects.toMatchObject({ error: "access_denied" });
});
