// Loads the WASM and hydrates the page's islands as soon as it can.
// (Leptos's own island script waits for `requestIdleCallback`, which in a
// fresh browser fired 20–90 ms after the page was parsed, all of it before
// the QR code could be drawn.) An async module: the JS and WASM load and
// compile while the page is still parsed; hydration waits for the DOM.
import init, * as islands from "__JS__";

await init({ module_or_path: "__WASM__" });
if (document.readyState === "loading") {
  await new Promise((parsed) =>
    document.addEventListener("DOMContentLoaded", parsed, { once: true }),
  );
}
islands.hydrate();
// In document order, so an island inside another comes after it. (Islands
// here take no server-rendered children, so `leptos-children` needs no care.)
for (const island of document.querySelectorAll("leptos-island")) {
  const hydrateIsland = islands[island.dataset.component];
  if (hydrateIsland) {
    await hydrateIsland(island);
  } else {
    console.warn(`No WASM function for the island ${island.dataset.component}.`);
  }
}
