//! The words of the server-rendered pages for open sign-up (`/join`) and
//! linking another phone (`/m/link/…`, and the second phone's side of
//! `/invite/…`), in English and Simplified Chinese. Kept apart from
//! [`crate::i18n::Text`] on purpose: islands read that catalogue, so all of
//! it ships in the WASM; no island reads these, so none of it does.

use crate::i18n::{lang, Lang};

pub(crate) struct Words {
    pub join_title: &'static str,
    pub join_heading: &'static str,
    pub join_lead_passkey: &'static str,
    pub join_lead_password: &'static str,
    pub display_name: &'static str,
    pub join_continue: &'static str,
    pub join_link: &'static str,
    pub join_closed_heading: &'static str,
    pub join_closed_lead: &'static str,
    pub username_taken: &'static str,
    pub names_rule: &'static str,
    pub join_too_many: &'static str,

    pub add_phone: &'static str,
    pub add_phone_hint: &'static str,
    pub link_title: &'static str,
    pub link_waiting_lead: &'static str,
    pub link_qr_label: &'static str,
    pub link_pick_heading: &'static str,
    pub link_pick_none: &'static str,
    pub link_matched_heading: &'static str,
    pub link_matched_lead: &'static str,
    pub link_gone_heading: &'static str,
    pub link_gone_lead: &'static str,
    pub link_wrong: &'static str,
    pub back_to_account: &'static str,
    pub link_number_heading: &'static str,
    pub link_number_lead: &'static str,
    pub link_ready_heading: &'static str,
    pub link_ready_lead: &'static str,
}

const EN: Words = Words {
    join_title: "Create an account · qrlogin",
    join_heading: "Create your account",
    join_lead_passkey: "Choose a username and the name others see; then create a passkey on this phone. It signs you in with no password.",
    join_lead_password: "Choose a username and the name others see; then choose a password.",
    display_name: "Your name",
    join_continue: "Continue",
    join_link: "New here? Create an account",
    join_closed_heading: "Accounts are by invitation",
    join_closed_lead: "This server makes accounts by invitation only: ask an administrator for an invite.",
    username_taken: "That username is taken: choose another.",
    names_rule: "A username is 3 to 32 letters, digits, '.', '_' or '-', starting with a letter or digit; a name is 1 to 64 characters.",
    join_too_many: "Too many new accounts from this network: try again in an hour.",

    add_phone: "Add another phone",
    add_phone_hint: "Show a code that your other phone scans to get its own passkey for this account.",
    link_title: "Add another phone · qrlogin",
    link_waiting_lead: "On your other phone, scan this code with the camera. It works once, for 5 minutes.",
    link_qr_label: "Code for your other phone",
    link_pick_heading: "A phone scanned your code: which number does it show?",
    link_pick_none: "None of these: stop",
    link_matched_heading: "Right number",
    link_matched_lead: "Now create the passkey on the other phone; it is then signed in to your account.",
    link_gone_heading: "This code has ended",
    link_gone_lead: "It was used, it expired, or it belongs to another phone. Start again from your account.",
    link_wrong: "That was not the number the other phone shows, so the code was ended. If it was your phone, start again.",
    back_to_account: "Back to your account",
    link_number_heading: "Your number",
    link_number_lead: "On the phone signed in as {0}, pick this number. This page moves on by itself.",
    link_ready_heading: "Add this phone to {0}'s account on {1}",
    link_ready_lead: "Create a passkey on this phone: from then on it signs in to this account with no password.",
};

const ZH_CN: Words = Words {
    join_title: "创建账户 · qrlogin",
    join_heading: "创建您的账户",
    join_lead_passkey:
        "选择用户名和他人看到的名字，然后在这部手机上创建通行密钥，之后无需密码即可登录。",
    join_lead_password: "选择用户名和他人看到的名字，然后设置密码。",
    display_name: "您的名字",
    join_continue: "继续",
    join_link: "第一次来？创建账户",
    join_closed_heading: "仅限邀请创建账户",
    join_closed_lead: "此服务器仅通过邀请创建账户：请向管理员索取邀请。",
    username_taken: "该用户名已被占用，请换一个。",
    names_rule:
        "用户名为 3 到 32 个字母、数字、“.”、“_”或“-”，以字母或数字开头；名字为 1 到 64 个字符。",
    join_too_many: "来自此网络的新账户过多，请一小时后再试。",

    add_phone: "添加另一部手机",
    add_phone_hint: "显示一个二维码，让您的另一部手机扫描，为此账户创建它自己的通行密钥。",
    link_title: "添加另一部手机 · qrlogin",
    link_waiting_lead: "用另一部手机的相机扫描此二维码。它只能使用一次，有效期 5 分钟。",
    link_qr_label: "给另一部手机的二维码",
    link_pick_heading: "有手机扫描了您的二维码：它显示的是哪个数字？",
    link_pick_none: "都不是：停止",
    link_matched_heading: "数字正确",
    link_matched_lead: "现在请在另一部手机上创建通行密钥，之后它即登录您的账户。",
    link_gone_heading: "此二维码已失效",
    link_gone_lead: "它已被使用、已过期，或属于另一部手机。请从您的账户页面重新开始。",
    link_wrong: "这不是另一部手机显示的数字，因此二维码已失效。如果那是您的手机，请重新开始。",
    back_to_account: "返回您的账户",
    link_number_heading: "您的数字",
    link_number_lead: "请在以 {0} 登录的手机上选择这个数字。此页面会自动继续。",
    link_ready_heading: "将这部手机添加到 {0} 在 {1} 上的账户",
    link_ready_lead: "在这部手机上创建通行密钥：之后它无需密码即可登录此账户。",
};

/// The words of the page being rendered.
pub(crate) fn words() -> &'static Words {
    match lang() {
        Lang::En => &EN,
        Lang::ZhCn => &ZH_CN,
    }
}

impl Words {
    /// What `/join` says for a refusal's machine code.
    pub fn join_error(&self, code: &str) -> Option<&'static str> {
        match code {
            "username_taken" => Some(self.username_taken),
            "bad_request" => Some(self.names_rule),
            "rate_limited" => Some(self.join_too_many),
            "registration_closed" => Some(self.join_closed_lead),
            _ => None,
        }
    }
}
