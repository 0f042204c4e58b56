//! "Scan a code" on `/m`: the rear camera, frames decoded in the WASM, and
//! only this site's sign-in URLs followed. A QR of anything else (a phishing
//! page, another site's "login") goes nowhere.

use leptos::prelude::*;

/// What the scanner shows.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq)]
enum ScanState {
    Idle,
    Starting,
    Scanning,
    /// A QR was read that is not a sign-in code of this site.
    Foreign(String),
    /// No camera, or permission refused.
    NoCamera,
    Opening,
}

/// Whether `url` is a sign-in code of the site at `site` (its public URL):
/// a login code (`/q/{id}`), a device-flow verification URL, or an invite
/// (`/invite/{token}`: an administrator's, or another phone's "Add another
/// phone" code).
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn is_sign_in_url(url: &str, site: &str) -> bool {
    let Some(rest) = url.strip_prefix(site.trim_end_matches('/')) else {
        return false;
    };
    let login = rest
        .strip_prefix("/q/")
        .is_some_and(|id| id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
    let device = rest == "/device"
        || rest.strip_prefix("/device?user_code=").is_some_and(|code| {
            code.len() <= 9 && code.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-')
        });
    let invite = rest.strip_prefix("/invite/").is_some_and(|token| {
        token.len() == 43
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    login || device || invite
}

#[island(lazy)]
pub fn CameraScanner(site: String) -> impl IntoView {
    let t = crate::i18n::t();
    let state = RwSignal::new(ScanState::Idle);
    let video = NodeRef::<leptos::html::Video>::new();
    let host = site
        .split("://")
        .nth(1)
        .unwrap_or(&site)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();

    #[cfg(feature = "hydrate")]
    let start = {
        let camera = StoredValue::new_local(camera::Camera::new(state, video, site.clone()));
        on_cleanup(move || camera.with_value(|c| c.stop()));
        move |_| camera.with_value(|c| c.start())
    };
    #[cfg(not(feature = "hydrate"))]
    let start = {
        let _ = &site;
        |_| ()
    };

    let message = move || match state.get() {
        ScanState::Foreign(_) => Some(crate::i18n::fill(t.not_a_sign_in_code, &[&host])),
        ScanState::NoCamera => Some(t.no_camera.to_owned()),
        _ => None,
    };
    let scanning = move || matches!(state.get(), ScanState::Starting | ScanState::Scanning);
    let hydrated = crate::passkey::hydrated();
    view! {
        <div class="scanner" data-state=move || format!("{:?}", state.get()).to_lowercase()>
            <button class="button" type="button" on:click=start disabled=move || !hydrated.get() || scanning()>
                {t.scan_a_code}
            </button>
            <video
                node_ref=video
                class="scanner-video"
                class:active=scanning
                playsinline=true
                muted=true
                aria-label=t.camera_label
            ></video>
            <p class="scanner-message" role="status">{message}</p>
        </div>
    }
}

#[cfg(feature = "hydrate")]
mod camera {
    use std::{
        cell::RefCell,
        rc::Rc,
        sync::{
            atomic::{AtomicBool, Ordering},
            Arc,
        },
    };

    use gloo_timers::future::TimeoutFuture;
    use leptos::{prelude::*, task::spawn_local};
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;

    use super::{is_sign_in_url, ScanState};

    /// Between two decoded frames: fast enough to feel instant, light on
    /// the phone's battery.
    const FRAME_EVERY_MS: u32 = 150;

    pub struct Camera {
        state: RwSignal<ScanState>,
        video: NodeRef<leptos::html::Video>,
        site: String,
        running: Arc<AtomicBool>,
        stream: Rc<RefCell<Option<web_sys::MediaStream>>>,
    }

    impl Camera {
        pub fn new(
            state: RwSignal<ScanState>,
            video: NodeRef<leptos::html::Video>,
            site: String,
        ) -> Self {
            Self {
                state,
                video,
                site,
                running: Arc::new(AtomicBool::new(false)),
                stream: Rc::default(),
            }
        }

        pub fn start(&self) {
            if self.running.swap(true, Ordering::Relaxed) {
                return;
            }
            self.state.set(ScanState::Starting);
            let (state, video, site) = (self.state, self.video, self.site.clone());
            let (running, stream_slot) = (self.running.clone(), self.stream.clone());
            spawn_local(scan(state, video, site, running, stream_slot));
        }

        /// The camera stops when the page is left.
        pub fn stop(&self) {
            self.running.store(false, Ordering::Relaxed);
            if let Some(stream) = self.stream.borrow_mut().take() {
                stop_tracks(&stream);
            }
        }
    }

    /// Opens the camera and reads frames until a sign-in code of this site
    /// is seen (or the page is left). Lazy, with the decoder: the camera's
    /// code is fetched when `/m` first scans, never by `/login`.
    #[leptos::lazy]
    async fn scan(
        state: RwSignal<ScanState>,
        video: NodeRef<leptos::html::Video>,
        site: String,
        running: Arc<AtomicBool>,
        stream_slot: Rc<RefCell<Option<web_sys::MediaStream>>>,
    ) {
        let Some(stream) = open_camera().await else {
            running.store(false, Ordering::Relaxed);
            state.set(ScanState::NoCamera);
            return;
        };
        *stream_slot.borrow_mut() = Some(stream.clone());
        let Some(element) = video.get_untracked() else {
            return;
        };
        let element: web_sys::HtmlVideoElement = element;
        element.set_src_object(Some(&stream));
        if let Ok(playing) = element.play() {
            let _ = JsFuture::from(playing).await;
        }
        let Some(frames) = FrameReader::new() else {
            stop_tracks(&stream);
            running.store(false, Ordering::Relaxed);
            state.set(ScanState::NoCamera);
            return;
        };
        state.set(ScanState::Scanning);
        while running.load(Ordering::Relaxed) {
            TimeoutFuture::new(FRAME_EVERY_MS).await;
            let Some((width, height, luma)) = frames.read(&element) else {
                continue;
            };
            let Some(text) = decode(width, height, luma).await else {
                continue;
            };
            if is_sign_in_url(&text, &site) {
                running.store(false, Ordering::Relaxed);
                stop_tracks(&stream);
                state.set(ScanState::Opening);
                if let Some(window) = web_sys::window() {
                    let _ = window.location().assign(&text);
                }
                return;
            }
            // Keep scanning: the person may move on to the right code.
            state.set(ScanState::Foreign(text));
        }
        stop_tracks(&stream);
    }

    async fn open_camera() -> Option<web_sys::MediaStream> {
        let devices = web_sys::window()?.navigator().media_devices().ok()?;
        let constraints = web_sys::MediaStreamConstraints::new();
        let video = js_sys::Object::new();
        js_sys::Reflect::set(&video, &"facingMode".into(), &"environment".into()).ok()?;
        constraints.set_video(&video);
        let promise = devices.get_user_media_with_constraints(&constraints).ok()?;
        JsFuture::from(promise).await.ok()?.dyn_into().ok()
    }

    fn stop_tracks(stream: &web_sys::MediaStream) {
        for track in stream.get_tracks().iter() {
            if let Ok(track) = track.dyn_into::<web_sys::MediaStreamTrack>() {
                track.stop();
            }
        }
    }

    /// One canvas for the whole scan, reused for every frame (resized only
    /// when the camera's size changes).
    struct FrameReader {
        canvas: web_sys::HtmlCanvasElement,
        context: web_sys::CanvasRenderingContext2d,
    }

    impl FrameReader {
        fn new() -> Option<Self> {
            let document = web_sys::window()?.document()?;
            let canvas: web_sys::HtmlCanvasElement =
                document.create_element("canvas").ok()?.dyn_into().ok()?;
            // Read back every frame: tell the browser, so it keeps the
            // pixels in memory rather than on the GPU.
            let options = js_sys::Object::new();
            js_sys::Reflect::set(&options, &"willReadFrequently".into(), &true.into()).ok()?;
            let context = canvas
                .get_context_with_context_options("2d", &options)
                .ok()??
                .dyn_into()
                .ok()?;
            Some(Self { canvas, context })
        }

        /// The video's current frame in grey levels: width, height, luma.
        fn read(&self, video: &web_sys::HtmlVideoElement) -> Option<(usize, usize, Vec<u8>)> {
            let (width, height) = (video.video_width(), video.video_height());
            if width == 0 || height == 0 {
                return None;
            }
            if self.canvas.width() != width || self.canvas.height() != height {
                self.canvas.set_width(width);
                self.canvas.set_height(height);
            }
            let context = &self.context;
            context
                .draw_image_with_html_video_element(video, 0.0, 0.0)
                .ok()?;
            let pixels = context
                .get_image_data(0.0, 0.0, f64::from(width), f64::from(height))
                .ok()?
                .data();
            Some((width as usize, height as usize, to_luma(&pixels)))
        }
    }

    /// RGBA to luma (Rec. 601).
    fn to_luma(pixels: &[u8]) -> Vec<u8> {
        pixels
            .chunks_exact(4)
            .map(|p| {
                ((u32::from(p[0]) * 299 + u32::from(p[1]) * 587 + u32::from(p[2]) * 114) / 1000)
                    as u8
            })
            .collect()
    }

    /// The text of a QR in the frame, if one is readable. Lazy: the decoder
    /// is its own WASM chunk, loaded when `/m` first scans, so `/login`
    /// never downloads it.
    #[leptos::lazy]
    fn decode(width: usize, height: usize, luma: Vec<u8>) -> Option<String> {
        let mut image =
            rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| luma[y * width + x]);
        image
            .detect_grids()
            .into_iter()
            .find_map(|grid| grid.decode().ok().map(|(_, text)| text))
    }
}

#[cfg(test)]
mod tests {
    use super::is_sign_in_url;

    #[test]
    fn only_this_sites_sign_in_urls_are_followed() {
        let site = "https://login.example.com";
        let id = "0b8f6a52-2f6e-4b8e-9a4e-6f1d2c3b4a59";
        assert!(is_sign_in_url(&format!("{site}/q/{id}"), site));
        assert!(is_sign_in_url(
            &format!("{site}/device?user_code=BCDF-GHJK"),
            site
        ));
        assert!(is_sign_in_url(&format!("{site}/device"), site));
        let token = "k3Jx_Q-9aZ".repeat(4) + "abc";
        assert!(is_sign_in_url(&format!("{site}/invite/{token}"), site));
        for foreign in [
            format!("https://evil.example/invite/{token}"),
            format!("{site}/invite/{token}x"),
            format!("{site}/invite/{token}/../../phish"),
            format!("{site}/invite/{}", "%2F".repeat(14) + "a"),
            format!("https://login.example.com.evil.example/q/{id}"),
            format!("https://evil.example/q/{id}"),
            format!("http://login.example.com/q/{id}"),
            format!("{site}/q/{id}/../../phish"),
            format!("{site}/m"),
            format!("{site}/device?user_code=<script>"),
            "javascript:alert(1)".to_owned(),
        ] {
            assert!(!is_sign_in_url(&foreign, site), "{foreign}");
        }
    }
}
