//! What each page a person may see says, in Chinese and in English: complete sentences,
//! no internal ids, no instructions meant for operators (those go to the log and the API).

use super::Lang;
use crate::http::error::ReturnError;
use serde::{Deserialize, Serialize};

macro_rules! outcomes {
    ( $( $variant:ident = ($code:literal, $status:literal, $back:expr,
          $zh_title:literal, $zh:expr, $en_title:literal, $en:expr), )* ) => {
        /// The outcome of a person page, written into it as `data-outcome`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Outcome { $( $variant, )* }

        impl Outcome {
            /// Every outcome (a test reads each one's texts).
            pub const ALL: &'static [Self] = &[$( Self::$variant, )*];

            /// The machine-readable name (`data-outcome`, the callback metric's label).
            pub fn code(self) -> &'static str {
                match self { $( Self::$variant => $code, )* }
            }

            /// The status the page is answered with.
            pub fn status(self) -> u16 {
                match self { $( Self::$variant => $status, )* }
            }

            /// What the browser brings back to a valid `return_to` instead of this page;
            /// `None`: a page the person must see (success without return_to, snapshot).
            pub fn return_error(self) -> Option<ReturnError> {
                match self { $( Self::$variant => $back, )* }
            }

            /// Heading and sentence.
            pub fn text(self, lang: Lang) -> (&'static str, &'static str) {
                match (self, lang) {
                    $( (Self::$variant, Lang::Zh) => ($zh_title, $zh),
                       (Self::$variant, Lang::En) => ($en_title, $en), )*
                }
            }
        }
    };
}

const LINK_BROKEN_ZH: &str =
    "这个链接的设置有误，无法继续。请回到原来的页面重新打开，或联系提供链接的一方。";
const LINK_BROKEN_EN: &str = "This link is not set up correctly and cannot continue. Go back to the page you came from and open it again, or contact whoever gave you the link.";

outcomes! {
    Linked = ("linked", 200, None,
        "授权成功", "你的微信已成功关联。现在可以返回继续使用。",
        "Done", "Your WeChat account is now linked. You can go back and continue."),
    Declined = ("declined", 200, Some(ReturnError::Declined),
        "你已取消授权", "你没有同意授权，我们没有保存任何信息。如需继续，请点击“重新授权”。",
        "You declined", "You did not agree, so nothing was saved. To continue, tap “Try again”."),
    Snapshot = ("snapshot", 200, None,
        "请使用完整服务", "你正在浏览页面快照，无法在这里完成授权。请点击页面底部的“使用完整服务”，然后重新授权。",
        "Open the full page", "You are viewing a preview of this page, where signing in is not possible. Tap “Use full service” at the bottom of the page, then try again."),
    Conflict = ("conflict", 409, Some(ReturnError::IdentityConflict),
        "无法关联这个微信", "这个微信已经关联了另一个账号，本次没有做任何更改。如有疑问，请联系客服。",
        "This WeChat account is already in use", "This WeChat account is already linked to another account, so nothing was changed. If this is unexpected, please contact support."),
    OpenInWechat = ("open_in_wechat", 200, None,
        "请在微信中打开", "这个页面需要在微信中打开。请用微信扫描下方二维码，或把链接发到微信聊天中再点开。",
        "Open this in WeChat", "This page has to be opened inside WeChat. Scan the code below with WeChat, or send the link to yourself in a chat and tap it."),
    StateMissing = ("state_missing", 400, None,
        "页面已失效", "这个授权页面已经失效，没有保存任何信息。请回到原来的页面重新开始。",
        "This page has expired", "This sign-in page is no longer valid and nothing was saved. Go back to the page you came from and start again."),
    StateInvalid = ("state_invalid", 400, None,
        "页面已失效", "这个授权页面已经失效，没有保存任何信息。请回到原来的页面重新开始。",
        "This page has expired", "This sign-in page is no longer valid and nothing was saved. Go back to the page you came from and start again."),
    StateUnknown = ("state_unknown", 400, None,
        "页面已失效", "这个授权页面已经失效，或者不是在当前浏览器中打开的，没有保存任何信息。请回到原来的页面重新开始。",
        "This page has expired", "This sign-in page is no longer valid, or it was opened in another browser, and nothing was saved. Go back to the page you came from and start again."),
    StateExpired = ("state_expired", 400, Some(ReturnError::StateExpired),
        "授权已超时", "授权等待的时间太长，已经失效，没有保存任何信息。请重新授权。",
        "Sign-in timed out", "Signing in took too long and has expired, so nothing was saved. Please try again."),
    StateUsed = ("state_used", 400, Some(ReturnError::StateUsed),
        "无需重复授权", "这次授权之前已经处理过了，无需再操作一次。",
        "Already handled", "This sign-in was already handled; there is nothing more to do."),
    CodeReused = ("code_reused", 400, Some(ReturnError::CodeReused),
        "页面已失效", "这个授权结果属于另一次登录，本次没有做任何更改。请重新授权。",
        "This page has expired", "This sign-in result belongs to another sign-in, so nothing was changed. Please try again."),
    CodeInvalid = ("code_invalid", 400, Some(ReturnError::CodeInvalid),
        "授权已失效", "这次授权已经过期或已经用过，没有保存任何信息。请重新授权。",
        "Sign-in expired", "This sign-in has expired or was already used, so nothing was saved. Please try again."),
    TicketUnknown = ("ticket_unknown", 404, Some(ReturnError::TicketUnknown),
        "链接无效", "这个链接无效，没有做任何更改。请回到原来的页面重新获取链接。",
        "This link is not valid", "This link is not valid and nothing was changed. Go back to the page you came from and get a new link."),
    TicketUsed = ("ticket_used", 410, Some(ReturnError::TicketUsed),
        "链接已使用过", "这个链接已经使用过了。如需再次关联，请回到原来的页面重新获取链接。",
        "This link was already used", "This link has already been used. To link again, go back to the page you came from and get a new link."),
    TicketExpired = ("ticket_expired", 410, Some(ReturnError::TicketExpired),
        "链接已过期", "这个链接已经过期，没有做任何更改。请回到原来的页面重新获取链接。",
        "This link has expired", "This link has expired and nothing was changed. Go back to the page you came from and get a new link."),
    TicketOtherPerson = ("ticket_other_person", 409, Some(ReturnError::TicketOtherPerson),
        "这个链接不属于你", "这个链接是为另一位用户准备的，本次没有做任何更改。请在你自己的小程序里重新打开。",
        "This link is meant for someone else", "This link was made for another person, so nothing was changed. Open it again from your own mini-program."),
    ReturnToNotAllowed = ("return_to_not_allowed", 400, None,
        "链接无效", LINK_BROKEN_ZH, "This link is not valid", LINK_BROKEN_EN),
    InvalidScope = ("invalid_scope", 400, Some(ReturnError::InvalidScope),
        "链接无效", LINK_BROKEN_ZH, "This link is not valid", LINK_BROKEN_EN),
    InvalidQuery = ("invalid_query", 400, Some(ReturnError::InvalidQuery),
        "链接无效", LINK_BROKEN_ZH, "This link is not valid", LINK_BROKEN_EN),
    UnknownApp = ("unknown_app", 404, None,
        "链接无效", LINK_BROKEN_ZH, "This link is not valid", LINK_BROKEN_EN),
    NotWebApp = ("not_web_app", 400, None,
        "链接无效", LINK_BROKEN_ZH, "This link is not valid", LINK_BROKEN_EN),
    WechatError = ("wechat_error", 502, Some(ReturnError::WechatError),
        "微信暂时无法完成授权", "微信没有正常响应，没有保存任何信息。请稍后重新授权。",
        "WeChat could not finish", "WeChat did not answer as expected, so nothing was saved. Please try again in a moment."),
    WechatUnreachable = ("wechat_unreachable", 502, Some(ReturnError::WechatError),
        "微信暂时无法完成授权", "暂时无法连接微信，没有保存任何信息。请稍后重新授权。",
        "WeChat could not be reached", "WeChat could not be reached, so nothing was saved. Please try again in a moment."),
    InProgress = ("in_progress", 503, None,
        "正在处理", "正在完成授权，请稍等几秒后刷新本页。",
        "Still working", "Your sign-in is still being completed. Wait a few seconds, then reload this page."),
    Unavailable = ("internal_error", 503, None,
        "服务暂时不可用", "服务暂时出现问题，没有保存任何信息。请稍后再试。",
        "Temporarily unavailable", "Something went wrong on our side and nothing was saved. Please try again in a moment."),
}

/// The labels of the buttons.
pub struct Labels {
    pub retry: &'static str,
    pub reload: &'static str,
    pub back: &'static str,
    pub back_to: &'static str,
    pub close: &'static str,
    pub open_link: &'static str,
}

pub fn labels(lang: Lang) -> Labels {
    match lang {
        Lang::Zh => Labels {
            retry: "重新授权",
            reload: "刷新",
            back: "返回",
            back_to: "返回",
            close: "关闭页面",
            open_link: "或复制这个链接，在微信中打开：",
        },
        Lang::En => Labels {
            retry: "Try again",
            reload: "Reload",
            back: "Go back",
            back_to: "Back to ",
            close: "Close this page",
            open_link: "Or copy this link and open it in WeChat:",
        },
    }
}
