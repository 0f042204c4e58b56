//! The Content-Security-Policy of the HTML pages.

/// Only this origin's scripts and the inline hydration script carrying
/// `nonce`; WebAssembly compiled from them; no framing.
pub fn page_policy(nonce: &str, reload_port: Option<u32>) -> String {
    // `cargo leptos watch` reloads the page over a websocket on its own port.
    let reload = reload_port
        .map(|port| format!(" ws://127.0.0.1:{port} ws://localhost:{port}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'{reload}; \
         form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::page_policy;

    #[test]
    fn allows_only_own_and_nonced_scripts() {
        let csp = page_policy("abc", None);
        assert!(csp.contains("script-src 'self' 'nonce-abc' 'wasm-unsafe-eval';"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline"));
        assert!(page_policy("abc", Some(3001)).contains("ws://127.0.0.1:3001"));
    }
}
