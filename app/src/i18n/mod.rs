//! The pages' words, in English and Simplified Chinese: one catalogue per
//! language ([`en`], [`zh_cn`]), each a [`Text`] whose every field must be
//! filled (a missing translation does not compile). The language is the
//! page's `?lang=` (an OpenID Connect client's `ui_locales`, passed on to
//! the login card), else the `lang` cookie's (set by the switcher on every
//! page), else the best of `Accept-Language`, else English. The server
//! renders with it and writes it into `<html lang>`; the islands read it
//! back from there. API machine
//! codes stay English; the pages show [`Text::error`] for them.

mod en;
mod zh_cn;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The languages the pages speak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lang {
    #[default]
    En,
    ZhCn,
}

/// The cookie that remembers the switcher's choice.
pub const LANG_COOKIE: &str = "lang";

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::ZhCn];

    /// The BCP 47 tag (`<html lang>`, the cookie's value).
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
        }
    }

    pub fn from_tag(tag: &str) -> Option<Lang> {
        let tag = tag.trim().to_ascii_lowercase();
        if tag == "en" || tag.starts_with("en-") {
            Some(Lang::En)
        } else if tag == "zh" || tag.starts_with("zh-") {
            // Simplified Chinese is the one Chinese there is.
            Some(Lang::ZhCn)
        } else {
            None
        }
    }

    /// The first of OpenID Connect's `ui_locales` (space-separated BCP 47
    /// tags, best first) that the pages speak.
    pub fn from_ui_locales(ui_locales: &str) -> Option<Lang> {
        ui_locales.split(' ').find_map(Lang::from_tag)
    }

    /// Its own name, as the switcher offers it.
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::ZhCn => "简体中文",
        }
    }

    pub fn text(self) -> &'static Text {
        match self {
            Lang::En => &en::EN,
            Lang::ZhCn => &zh_cn::ZH_CN,
        }
    }

    /// From a `Cookie` header's `lang` and an `Accept-Language` header.
    #[cfg(feature = "ssr")]
    pub fn negotiate(cookie: Option<&str>, accept_language: Option<&str>) -> Lang {
        let chosen = cookie.and_then(|cookies| {
            cookies
                .split(';')
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(name, _)| *name == LANG_COOKIE)
                .and_then(|(_, value)| Lang::from_tag(value))
        });
        chosen
            .or_else(|| {
                let accepted = accept_language::parse(accept_language?);
                accepted.iter().find_map(|tag| Lang::from_tag(tag))
            })
            .unwrap_or_default()
    }
}

/// The language of the page being rendered: on the server from the request,
/// in the browser from `<html lang>` (which the server wrote).
pub fn lang() -> Lang {
    #[cfg(feature = "ssr")]
    {
        use_context::<http::request::Parts>()
            .map(|parts| {
                let header = |name| {
                    parts
                        .headers
                        .get(name)
                        .and_then(|v: &http::HeaderValue| v.to_str().ok())
                };
                // `?lang=`: an OpenID Connect client's `ui_locales`, which the
                // authorization endpoint passes on to the login card.
                let asked = parts.uri.query().and_then(|query| {
                    query
                        .split('&')
                        .filter_map(|pair| pair.split_once('='))
                        .find(|(name, _)| *name == "lang")
                        .and_then(|(_, tag)| Lang::from_tag(tag))
                });
                asked.unwrap_or_else(|| {
                    Lang::negotiate(
                        header(http::header::COOKIE),
                        header(http::header::ACCEPT_LANGUAGE),
                    )
                })
            })
            .unwrap_or_default()
    }
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    {
        web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.document_element())
            .and_then(|html| html.get_attribute("lang"))
            .and_then(|tag| Lang::from_tag(&tag))
            .unwrap_or_default()
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    Lang::default()
}

/// The words of the page being rendered.
pub fn t() -> &'static Text {
    lang().text()
}

/// `template` with `{0}`, `{1}`, … replaced by `args`.
pub fn fill(template: &str, args: &[&str]) -> String {
    let mut out = template.to_owned();
    for (i, arg) in args.iter().enumerate() {
        out = out.replace(&format!("{{{i}}}"), arg);
    }
    out
}

/// The first entry of `table` whose code `failure` contains, else `fallback`.
fn pick_error<'a, S: AsRef<str>>(
    table: impl IntoIterator<Item = (S, &'a str)>,
    failure: &str,
    fallback: &'a str,
) -> &'a str {
    table
        .into_iter()
        .find(|(code, _)| failure.contains(code.as_ref()))
        .map_or(fallback, |(_, text)| text)
}

/// A few words of [`Text`] owned and serializable, for an island's props:
/// the server fills them in the page's language, so the desktop's WASM
/// carries neither catalogue. Field names are `Text`'s, so a word that
/// does not exist does not compile.
macro_rules! words {
    ($(#[$meta:meta])* pub struct $name:ident { $($field:ident),* $(,)? }) => {
        $(#[$meta])*
        ///
        /// Sent as a plain list of strings, in field order: serde's derive
        /// for a struct of this many fields costs the WASM ~17 kB (a
        /// visitor per field name); a `Vec<String>` costs almost nothing.
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(into = "Vec<String>", try_from = "Vec<String>")]
        pub struct $name { $(pub $field: String,)* }

        impl From<$name> for Vec<String> {
            fn from(words: $name) -> Self {
                vec![$(words.$field,)*]
            }
        }

        impl TryFrom<Vec<String>> for $name {
            type Error = &'static str;

            fn try_from(list: Vec<String>) -> Result<Self, Self::Error> {
                let mut list = list.into_iter();
                let words = Self {
                    $($field: list.next().ok_or("too few words")?,)*
                };
                match list.next() {
                    Some(_) => Err("too many words"),
                    None => Ok(words),
                }
            }
        }

        impl $name {
            /// These words of `text`.
            #[cfg_attr(not(feature = "ssr"), allow(dead_code))]
            pub fn of(text: &$crate::i18n::Text) -> Self {
                Self { $($field: text.$field.to_owned(),)* }
            }
        }
    };
}
pub(crate) use words;

/// [`Text::error`]'s table as island props.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorWords {
    table: Vec<(String, String)>,
    went_wrong: String,
}

impl ErrorWords {
    #[cfg_attr(not(feature = "ssr"), allow(dead_code))]
    pub fn of(text: &Text) -> Self {
        Self {
            table: text
                .error_table()
                .iter()
                .map(|(code, says)| ((*code).to_owned(), (*says).to_owned()))
                .collect(),
            went_wrong: text.went_wrong.to_owned(),
        }
    }

    /// As [`Text::error`].
    pub fn error(&self, failure: &str) -> &str {
        pick_error(
            self.table.iter().map(|(code, says)| (code, says.as_str())),
            failure,
            &self.went_wrong,
        )
    }
}

/// Every string the pages show, in one language. `{0}`, `{1}`: filled in
/// with [`fill`].
pub struct Text {
    // ---- every page ----
    pub loading: &'static str,
    pub language: &'static str,
    pub not_found_title: &'static str,
    pub not_found_heading: &'static str,
    pub not_found_lead: &'static str,
    pub go_to_sign_in: &'static str,
    pub something_wrong: &'static str,
    pub try_again_later: &'static str,
    pub sign_out: &'static str,
    pub deny: &'static str,
    pub approved: &'static str,
    pub unknown_code: &'static str,
    pub browser: &'static str,
    pub system: &'static str,
    pub address: &'static str,
    pub seconds_ago: &'static str,
    pub minutes_ago: &'static str,
    pub hours_ago: &'static str,
    pub just_now: &'static str,
    pub as_account: &'static str,
    pub on_os: &'static str,

    // ---- desktop: /login, /authorize, / ----
    pub title_sign_in: &'static str,
    pub title_sign_in_to: &'static str,
    pub title_request_expired: &'static str,
    pub request_expired_heading: &'static str,
    pub request_expired_lead: &'static str,
    /// The authorization endpoint's page for a request that is not sent
    /// back to its client.
    pub authorize_refused_title: &'static str,
    pub authorize_unknown_client: &'static str,
    /// `{0}`: the client's name.
    pub authorize_unregistered_redirect: &'static str,
    pub authorize_malformed: &'static str,
    pub heading_sign_in: &'static str,
    pub heading_sign_in_to: &'static str,
    pub status_scan: &'static str,
    pub status_confirm: &'static str,
    pub signed_in_as: &'static str,
    pub status_denied: &'static str,
    pub status_expired: &'static str,
    pub preparing: &'static str,
    pub qr_label: &'static str,
    pub requested_by: &'static str,
    pub pick_this_number: &'static str,
    pub number_to_pick: &'static str,
    pub nobody_signed_in: &'static str,
    pub try_again: &'static str,
    pub code_no_longer_valid: &'static str,
    pub refresh_code: &'static str,
    pub valid_for: &'static str,
    pub waiting_for_approval: &'static str,
    pub step_open_camera: &'static str,
    pub step_point: &'static str,
    pub step_check: &'static str,
    pub needs_javascript: &'static str,
    pub returning_to: &'static str,
    pub reconnecting: &'static str,
    pub trouble_connecting: &'static str,
    pub cannot_draw: &'static str,
    pub could_not_finish: &'static str,
    pub cannot_reach_server: &'static str,
    pub server_answered: &'static str,
    pub unexpected_answer: &'static str,
    pub connection_lost: &'static str,
    pub home_lead: &'static str,

    // ---- phone: sign-in ----
    pub sign_in_lead: &'static str,
    pub wrong_password: &'static str,
    pub password_only_passkey: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub sign_in: &'static str,
    pub sign_in_with_passkey: &'static str,

    // ---- phone: /q/{id} ----
    pub title_approve: &'static str,
    pub scan_again: &'static str,
    pub sign_in_to_approve: &'static str,
    pub unknown_login_code: &'static str,
    pub taken_heading: &'static str,
    pub taken_lead: &'static str,
    pub other_account_heading: &'static str,
    pub other_account_lead: &'static str,
    pub approved_lead: &'static str,
    pub finished_redeemed: (&'static str, &'static str),
    pub finished_denied: (&'static str, &'static str),
    pub finished_expired: (&'static str, &'static str),
    pub finished_cancelled: (&'static str, &'static str),
    pub finished_other: (&'static str, &'static str),
    pub client_wants_sign_in: &'static str,
    pub sign_in_on_computer: &'static str,
    pub approving_signs_in_to: &'static str,
    pub requested: &'static str,
    pub same_network: &'static str,
    pub pick_number: &'static str,
    pub relay_warning: &'static str,
    pub approve: &'static str,
    pub approve_with_passkey: &'static str,
    pub approve_needs_passkey: &'static str,
    pub passkey_needs_javascript: &'static str,

    // ---- phone: /m ----
    pub signed_in_as_heading: &'static str,
    pub phone_home_lead: &'static str,
    pub phone_signed_out_heading: &'static str,
    pub your_devices: &'static str,
    pub ended_recently: &'static str,
    pub apps_signed_in: &'static str,
    pub new_badge: &'static str,
    pub this_phone: &'static str,
    pub last_active: &'static str,
    pub method_qr: &'static str,
    pub method_password: &'static str,
    pub method_passkey: &'static str,
    pub revoke: &'static str,
    pub signed_in_at: &'static str,
    pub ended: &'static str,
    pub approved_at: &'static str,
    pub forget_app: &'static str,
    pub cannot_load_account: &'static str,
    pub passkeys: &'static str,
    pub passkey_added: &'static str,
    pub passkey_last_used: &'static str,
    pub remove: &'static str,
    pub no_passkeys: &'static str,
    pub passkey_name: &'static str,
    pub passkey_default_name: &'static str,
    pub add_passkey: &'static str,
    pub adding_needs_javascript: &'static str,
    pub choices_refused: &'static str,
    pub allow_password: &'static str,
    pub always_passkey: &'static str,
    pub save_choices: &'static str,
    pub confirm_heading: &'static str,
    pub confirm_lead_passkey: &'static str,
    pub confirm_lead_password: &'static str,
    pub confirm_with_passkey: &'static str,
    pub confirm_with_password: &'static str,
    pub confirmed_until: &'static str,
    pub confirm_impossible: &'static str,
    pub confirm_first: &'static str,
    pub wrong_password_only: &'static str,
    pub removed_passkeys: &'static str,
    pub passkey_removed_at: &'static str,

    // ---- phone: scanner ----
    pub scan_a_code: &'static str,
    pub camera_label: &'static str,
    pub not_a_sign_in_code: &'static str,
    pub no_camera: &'static str,

    // ---- phone: /device ----
    pub title_device: &'static str,
    pub device_code_label: &'static str,
    pub continue_: &'static str,
    pub device_sign_in_to_approve: &'static str,
    pub device_enter_heading: &'static str,
    pub device_enter_lead: &'static str,
    pub device_unknown_lead: &'static str,
    pub too_many_heading: &'static str,
    pub too_many_lead: &'static str,
    pub device_approved_lead: &'static str,
    pub denied: &'static str,
    pub device_denied_lead: &'static str,
    pub device_heading: &'static str,
    pub device_must_show: &'static str,
    pub device_code_aria: &'static str,
    pub application: &'static str,
    pub started_from: &'static str,
    pub started: &'static str,
    pub device_off_network: &'static str,
    pub device_phishing: &'static str,
    pub device_approve: &'static str,
    pub device_approve_passkey: &'static str,
    pub device_needs_passkey: &'static str,

    // ---- phone: /invite/{token} ----
    pub title_invite: &'static str,
    /// `{0}`: the account's display name, `{1}`: this site.
    pub invite_heading: &'static str,
    /// `{0}`: the username.
    pub invite_account: &'static str,
    pub invite_lead_passkey: &'static str,
    pub invite_lead_password: &'static str,
    pub invite_create_passkey: &'static str,
    pub invite_new_password: &'static str,
    pub invite_set_password: &'static str,
    pub invite_gone_heading: &'static str,
    pub invite_gone: &'static str,

    // ---- failures the pages show ----
    pub passkey_refused: &'static str,
    pub passkey_expired: &'static str,
    pub passkey_missing: &'static str,
    pub passkey_cancelled: &'static str,
    pub passkey_unsupported: &'static str,
    pub not_accepted: &'static str,
    pub went_wrong: &'static str,
    pub rate_limited: &'static str,
    pub unavailable: &'static str,
}

impl Text {
    /// What a page says for an API or server-function failure, by its
    /// machine code (found anywhere in `failure`).
    pub fn error(&self, failure: &str) -> &'static str {
        pick_error(self.error_table(), failure, self.went_wrong)
    }

    /// Machine codes and what a page says for them (see [`Text::error`]).
    fn error_table(&self) -> [(&'static str, &'static str); 15] {
        [
            ("invite_gone", self.invite_gone),
            ("confirm_first", self.confirm_first),
            ("passkey_required", self.confirm_first),
            ("no_credential", self.confirm_impossible),
            ("invalid_credentials", self.wrong_password_only),
            ("password_needed", self.choices_refused),
            ("passkey_refused", self.passkey_refused),
            ("passkey_expired", self.passkey_expired),
            ("no_passkey", self.passkey_missing),
            ("NotAllowedError", self.passkey_cancelled),
            ("AbortError", self.passkey_cancelled),
            ("unsupported", self.passkey_unsupported),
            ("rate_limited", self.rate_limited),
            ("unavailable", self.unavailable),
            ("bad_request", self.not_accepted),
        ]
    }

    /// "12 s ago" / "3 min ago" for an age in seconds.
    pub fn age(&self, seconds: u64) -> String {
        if seconds < 60 {
            fill(self.seconds_ago, &[&seconds.to_string()])
        } else {
            fill(self.minutes_ago, &[&(seconds / 60).to_string()])
        }
    }
}

/// The language switcher on every page: a plain form (works without
/// JavaScript) that sets the `lang` cookie and comes back here.
#[component]
pub fn LanguageSwitcher() -> impl IntoView {
    use leptos::server_fn::ServerFn;
    let current = lang();
    let location = leptos_router::hooks::use_location();
    let next = move || {
        // Without `?lang=`, which would outrank the choice made here.
        let search = location
            .search
            .get()
            .split('&')
            .filter(|pair| !pair.is_empty() && !pair.starts_with("lang="))
            .collect::<Vec<_>>()
            .join("&");
        if search.is_empty() {
            location.pathname.get()
        } else {
            format!("{}?{}", location.pathname.get(), search)
        }
    };
    view! {
        <form method="post" action=crate::server_fns::SetLanguage::url() class="language-switcher">
            <input type="hidden" name="next" value=next/>
            <span class="language-label">{current.text().language}</span>
            {Lang::ALL.into_iter().map(|lang| {
                let here = lang == current;
                view! {
                    <button
                        type="submit"
                        name="lang"
                        value=lang.tag()
                        class="link-button"
                        lang=lang.tag()
                        aria-pressed=if here { "true" } else { "false" }
                        disabled=here
                    >{lang.name()}</button>
                }
            }).collect_view()}
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "ssr")]
    #[test]
    fn the_cookie_wins_then_accept_language_then_english() {
        assert_eq!(
            Lang::negotiate(Some("a=b; lang=zh-CN"), Some("en")),
            Lang::ZhCn
        );
        assert_eq!(Lang::negotiate(Some("lang=en"), Some("zh-CN")), Lang::En);
        assert_eq!(
            Lang::negotiate(None, Some("zh-CN,zh;q=0.9,en;q=0.8")),
            Lang::ZhCn
        );
        assert_eq!(
            Lang::negotiate(None, Some("fr-FR, zh;q=0.5, en;q=0.7")),
            Lang::En
        );
        assert_eq!(Lang::negotiate(Some("lang=xx"), Some("de")), Lang::En);
        assert_eq!(Lang::negotiate(None, None), Lang::En);
    }

    #[test]
    fn templates_are_filled_and_errors_named() {
        assert_eq!(fill("a {0} b {1}", &["x", "y"]), "a x b y");
        let zh = Lang::ZhCn.text();
        assert_eq!(
            zh.error("error running server function: passkey_refused"),
            zh.passkey_refused
        );
        assert_eq!(zh.error("???"), zh.went_wrong);
    }

    #[test]
    fn error_words_say_what_the_catalogue_says() {
        for lang in Lang::ALL {
            let text = lang.text();
            let words = ErrorWords::of(text);
            for (code, _) in text.error_table() {
                assert_eq!(words.error(code), text.error(code), "{code}");
            }
            assert_eq!(words.error("???"), text.went_wrong);
        }
    }

    #[test]
    fn island_words_travel_as_a_list_and_only_at_their_length() {
        let words = crate::HomeWords::of(Lang::ZhCn.text());
        let sent = serde_json::to_string(&words).unwrap();
        assert!(sent.starts_with('['), "{sent}");
        assert_eq!(
            serde_json::from_str::<crate::HomeWords>(&sent).unwrap(),
            words
        );
        assert!(serde_json::from_str::<crate::HomeWords>(r#"["a","b"]"#).is_err());
        assert!(serde_json::from_str::<crate::HomeWords>(r#"["a","b","c","d"]"#).is_err());
    }
}
