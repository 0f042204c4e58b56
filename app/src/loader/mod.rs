//! The page's `<head>` scripts: preload the JS and WASM, then hydrate the
//! islands at once (see `islands.js` for why not Leptos's own loader).

use leptos::{nonce::use_nonce, prelude::*};

const LOADER: &str = include_str!("islands.js");

/// Replaces `<HydrationScripts islands=true/>` for this site (no hashed
/// file names, no islands router).
#[component]
pub fn IslandScripts(options: LeptosOptions) -> impl IntoView {
    // As `HydrationScripts` does: in islands mode only islands hydrate, so
    // the rest of the page is rendered without hydration markers.
    #[cfg(feature = "ssr")]
    if let Some(context) = Owner::current_shared_context() {
        context.set_is_hydrating(false);
    }
    let pkg = format!("/{}", options.site_pkg_dir);
    let name = options.output_name.to_string();
    // cargo-leptos names the WASM after the crate; wasm-bindgen alone adds `_bg`.
    let wasm_name = if option_env!("LEPTOS_OUTPUT_NAME").is_some() {
        name.clone()
    } else {
        format!("{name}_bg")
    };
    let js = format!("{pkg}/{name}.js");
    let wasm = format!("{pkg}/{wasm_name}.wasm");
    let script = LOADER.replace("__JS__", &js).replace("__WASM__", &wasm);
    view! {
        <link rel="modulepreload" href=js/>
        <link rel="preload" href=wasm.clone() r#as="fetch" r#type="application/wasm" crossorigin="anonymous"/>
        <script type="module" async nonce=use_nonce()>{script}</script>
    }
}
