//! WeChat's numeric error codes as a typed enum, and the one place that says what each means
//! for a caller: retry, refresh the token, or give up.

use std::fmt;

/// What a caller should do about an error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient: try again later with backoff.
    Retryable,
    /// The access token was refused: compare-and-invalidate, refresh once, retry once.
    TokenInvalid,
    /// Retrying the same request cannot help.
    Permanent,
    /// The day's quota is spent (45009): nothing goes through until midnight Beijing time.
    DailyQuota,
}

macro_rules! errcodes {
    ($($name:ident = $code:literal, $class:ident, $text:literal;)*) => {
        /// A WeChat `errcode` other than 0.
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrCode {
            $($name,)*
            Other(i64),
        }

        impl ErrCode {
            pub fn from_code(code: i64) -> Self {
                match code {
                    $($code => Self::$name,)*
                    other => Self::Other(other),
                }
            }

            pub fn code(self) -> i64 {
                match self {
                    $(Self::$name => $code,)*
                    Self::Other(c) => c,
                }
            }

            /// The single classification every retry decision goes through.
            pub fn class(self) -> ErrorClass {
                match self {
                    $(Self::$name => ErrorClass::$class,)*
                    // Unknown codes are not retried: a loop on an error we do not
                    // understand only burns quota.
                    Self::Other(_) => ErrorClass::Permanent,
                }
            }

            /// A short English explanation for logs, pages and API errors.
            pub fn description(self) -> &'static str {
                match self {
                    $(Self::$name => $text,)*
                    Self::Other(_) => "unrecognised WeChat error",
                }
            }
        }
    };
}

errcodes! {
    SystemBusy = -1, Retryable, "system busy";
    InvalidCredential = 40001, TokenInvalid, "access token invalid or not the latest";
    InvalidOpenId = 40003, Permanent, "invalid openid";
    InvalidAccessToken = 40014, TokenInvalid, "invalid access token";
    InvalidAppId = 40013, Permanent, "invalid appid";
    InvalidCode = 40029, Permanent, "invalid authorization code";
    InvalidRefreshToken = 40030, Permanent, "invalid refresh token";
    InvalidTemplateId = 40037, Permanent, "invalid template_id";
    InvalidAppSecret = 40125, Permanent, "invalid appsecret";
    CodeUsed = 40163, Permanent, "authorization code already used";
    IpNotWhitelisted = 40164, Permanent, "caller IP is not on the whitelist";
    HighRiskUser = 40226, Permanent, "high-risk user blocked";
    AppSecretFrozen = 40243, Permanent, "AppSecret is frozen";
    MissingAccessToken = 41001, TokenInvalid, "access token missing";
    MissingCode = 41008, Permanent, "code missing";
    MissingOpenId = 41009, Permanent, "openid missing";
    InvalidFormId = 41028, Permanent, "form_id invalid or expired";
    FormIdUsed = 41029, Permanent, "form_id used up";
    InvalidPage = 41030, Permanent, "invalid page";
    AccessTokenExpired = 42001, TokenInvalid, "access token expired";
    RefreshTokenExpired = 42002, Permanent, "refresh token expired";
    CodeExpired = 42003, Permanent, "authorization code expired";
    NotFollowing = 43004, Permanent, "recipient does not follow the account";
    Blacklisted = 43019, Permanent, "recipient has blocked the account";
    NoSubscription = 43101, Permanent, "user refused or has no remaining subscription";
    DailyQuota = 45009, DailyQuota, "daily API quota reached";
    MinuteQuota = 45011, Retryable, "per-minute quota reached";
    // Customer-service messages: the person's window closed, or its sends are spent; only
    // a new interaction of theirs reopens it.
    CustomWindowClosed = 45015, Permanent, "response out of time limit (the person has not interacted within the window)";
    CustomCountSpent = 45047, Permanent, "out of response count limit (the window's sends are spent)";
    DataFormat = 47001, Permanent, "data format error";
    ArgumentInvalid = 47003, Permanent, "argument invalid";
    ApiUnauthorized = 48001, Permanent, "api unauthorized (scope not granted?)";
    IpAwaitingConfirmation = 89503, Permanent, "caller IP awaiting administrator confirmation";
    IpAwaitingConfirmation2 = 89501, Permanent, "caller IP awaiting administrator confirmation";
}

impl fmt::Debug for ErrCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.description())
    }
}

impl fmt::Display for ErrCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.description())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_classes() {
        for code in [-1, 40001, 40029, 40163, 42001, 45009, 45011, 48001, 12345] {
            assert_eq!(ErrCode::from_code(code).code(), code);
        }
        assert_eq!(ErrCode::from_code(-1).class(), ErrorClass::Retryable);
        assert_eq!(ErrCode::from_code(45011).class(), ErrorClass::Retryable);
        for c in [40001, 40014, 42001, 41001] {
            assert_eq!(ErrCode::from_code(c).class(), ErrorClass::TokenInvalid);
        }
        for c in [
            40003, 40029, 40037, 40163, 42003, 40125, 41028, 41029, 41030, 43004, 43019, 43101,
            45015, 45047, 47001, 47003, 99999,
        ] {
            assert_eq!(ErrCode::from_code(c).class(), ErrorClass::Permanent);
        }
        assert_eq!(ErrCode::from_code(45009).class(), ErrorClass::DailyQuota);
    }
}
