//! The browser's entry point: hydrates the islands of the page.
//!
//! Links the app crate in, so its islands' WASM exports exist.
#[allow(unused_imports)]
use app::*;

/// Room for `cargo leptos build --split` to regroup the read-only data.
///
/// wasm-split gives each output module (the main one, each lazy island,
/// each shared chunk) the `.rodata` symbols it uses, each module's share
/// aligned on its own. When that regrouping comes out even a few bytes
/// longer than the input segment, it gives up and leaves *all* of
/// `.rodata` in the main module: both language catalogues and every lazy
/// island's strings then ship to `/login` (+70 kB brotli; the budget in
/// the test command catches it). These bytes are kept by the linker
/// (`#[used]`) but used by no code, so wasm-split puts them in no module:
/// they cost nothing in any output and leave the regrouping room to fit.
#[used]
static SPLIT_SLACK: [u8; 8192] = [1; 8192];

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
