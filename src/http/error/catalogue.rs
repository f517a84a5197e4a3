//! Every error code the service answers, with its HTTP status and what it means. The
//! responses take their code and status from here, the OpenAPI document its error
//! descriptions, and README.md's tables are rendered from it (a test compares them).
//!
//! Two lists, one per audience that branches on a code: [`ErrorCode`] for the backend JSON
//! API (`{"error":{"code",...}}`) and [`PushCode`] for WeChat's push endpoint (plain text
//! `code: reason`). Browser pages are not in it: their `data-outcome` also names the good
//! outcomes (`linked`, `declined`), their status depends on the cause, and a person reads
//! them, not a program.

use axum::http::StatusCode;

/// Declares a code list: each variant with its code, its status and a one-line meaning.
macro_rules! catalogue {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $variant:ident = ($code:literal, $status:literal, $meaning:literal), )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( #[doc = $meaning] $variant, )*
        }

        impl $name {
            /// Every code, in the order of the README table.
            pub const ALL: &'static [Self] = &[$( Self::$variant, )*];

            /// The stable, machine-readable code.
            pub fn code(self) -> &'static str {
                match self { $( Self::$variant => $code, )* }
            }

            /// The HTTP status it is answered with.
            pub fn status(self) -> StatusCode {
                let status = match self { $( Self::$variant => $status, )* };
                StatusCode::from_u16(status).expect("the catalogue's statuses are valid")
            }

            /// What it means, in one line.
            pub fn meaning(self) -> &'static str {
                match self { $( Self::$variant => $meaning, )* }
            }
        }
    };
}

catalogue! {
    /// The backend JSON API's error codes.
    pub enum ErrorCode {
        InvalidJson = ("invalid_json", 400, "the body is not JSON"),
        InvalidBody = ("invalid_body", 400, "the body is JSON but not the route's shape, or a value in it is malformed (`field` names it when it can)"),
        InvalidUserId = ("invalid_user_id", 400, "a user id is 1 to 128 letters, digits or any of `_ - . : @`"),
        InvalidOpenid = ("invalid_openid", 400, "an openid is 1 to 64 letters, digits, `-` or `_`"),
        InvalidUnionid = ("invalid_unionid", 400, "a unionid is 1 to 64 letters, digits, `-` or `_`"),
        InvalidScope = ("invalid_scope", 400, "the scope is `snsapi_base` or `snsapi_userinfo`"),
        ReturnToNotAllowed = ("return_to_not_allowed", 400, "`return_to` is not under any `return_to_allow` entry"),
        UrlNotAllowed = ("url_not_allowed", 400, "the page `url` is not an absolute http(s) URL without credentials under one of the app's `js_safe_domains`"),
        InvalidTicketType = ("invalid_ticket_type", 400, "the ticket type is `jsapi` or `wx_card`"),
        NotWebApp = ("not_web_app", 400, "web authorization, link tickets and JS-SDK tickets need an Official Account app"),
        NotMiniProgram = ("not_mini_program", 400, "mini-program login needs a `mini_program` app"),
        NotOfficialAccount = ("not_official_account", 400, "followers and their info belong to an Official Account app"),
        UnionidMismatch = ("unionid_mismatch", 400, "the identity is stored with a different unionid"),
        InvalidChannel = ("invalid_channel", 400, "the channel is `template`, `subscribe`, `form`, `custom`, `oa_subscribe` or `auto`"),
        InvalidTemplateId = ("invalid_template_id", 400, "a template id is 1 to 128 letters, digits, `-` or `_`"),
        InvalidCategory = ("invalid_category", 400, "a category is 1 to 32 lowercase letters, digits, `-` or `_`"),
        InvalidWait = ("invalid_wait", 400, "`wait` is a whole number of seconds from 0 to `outbox.max_wait_secs`"),
        InvalidIdempotencyKey = ("invalid_idempotency_key", 400, "an `Idempotency-Key` is 1 to 64 letters, digits or any of `_ - . :`"),
        FieldNotForChannel = ("field_not_for_channel", 400, "a field that does not apply to the message's channel (`field`)"),
        AppRequired = ("app_required", 400, "several apps send on this channel: name one in `app`"),
        NoAppForChannel = ("no_app_for_channel", 400, "no configured app sends on this channel"),
        AppChannelMismatch = ("app_channel_mismatch", 400, "the named app does not send on this channel (an Official Account sends template messages and oa_subscribe notifications, a mini-program subscribe and form messages)"),
        DataKeysMismatch = ("data_keys_mismatch", 400, "the data keys are not the template's (`unknown`, `missing`, `expected`)"),
        InvalidData = ("invalid_data", 400, "a data value breaks WeChat's rule for its field (`field`, `rule`)"),
        InvalidCount = ("invalid_count", 400, "`count` is from 1 to 1000 (or 0 with `long_term`)"),
        InvalidFormId = ("invalid_form_id", 400, "a form_id or prepay_id is 1 to 128 printable ASCII characters"),
        InvalidLimit = ("invalid_limit", 400, "`limit` is out of the route's range"),
        InvalidQuery = ("invalid_query", 400, "the query string cannot be read, or a value in it is out of range"),
        InvalidPath = ("invalid_path", 400, "a path parameter cannot be read (not UTF-8 once percent-decoded)"),
        JsCodeInvalid = ("js_code_invalid", 400, "WeChat does not know the `wx.login` code (40029, 42003, 41008; also a malformed code, refused before WeChat is asked): call `wx.login` again"),
        MissingApiKey = ("missing_api_key", 401, "no `Authorization: Bearer <api key>`"),
        InvalidApiKey = ("invalid_api_key", 401, "the API key is not one of `[[api_keys]]`"),
        UserBlocked = ("user_blocked", 403, "WeChat's risk control blocks this person's mini-program login (40226)"),
        MissingScope = ("missing_scope", 403, "the API key lacks the scope the route needs (`scope` names it; see `[[api_keys]] scopes`)"),
        AppNotAllowed = ("app_not_allowed", 403, "the API key may not act on this app (`app`), or the route spans every app and the key is limited to some (`[[api_keys]] apps`)"),
        UnknownApp = ("unknown_app", 404, "no app of that name is configured"),
        NoSuchRoute = ("no_such_route", 404, "no route has this method and path"),
        UserNotFound = ("user_not_found", 404, "no identity is bound to that user"),
        IdentityNotFound = ("identity_not_found", 404, "that identity cannot be bound (a snapshot-mode identity)"),
        IdentityNotBound = ("identity_not_bound", 404, "that identity is not bound to that user"),
        IdentityGone = ("identity_gone", 404, "the identity a login code named is no longer stored"),
        LoginCodeUnknown = ("login_code_unknown", 404, "no such `wxlink_code`"),
        MessageNotFound = ("message_not_found", 404, "no message has that id"),
        IdentityUnknown = ("identity_unknown", 404, "no identity with that openid is stored for the app"),
        WechatUnknownOpenid = ("wechat_unknown_openid", 404, "WeChat does not know this openid for the app (40003): it is another app's, or mistyped"),
        NoFollowerImport = ("no_follower_import", 404, "no import of this app's followers was started"),
        UnknownWebhook = ("unknown_webhook", 404, "no `[[webhooks]]` endpoint of that name is configured"),
        WebhookEventNotFound = ("webhook_event_not_found", 404, "no outgoing event has that id"),
        NoIdentity = ("no_identity", 404, "the user has no identity in the app (`app`)"),
        UnknownTemplate = ("unknown_template", 404, "the app has no such template on that channel"),
        MethodNotAllowed = ("method_not_allowed", 405, "the route does not take this method (`Allow` lists those it takes)"),
        IdentityConflict = ("identity_conflict", 409, "the identity is bound to another user through the openid or the unionid (`existing_user_id`, `requested_user_id`, `via`), or its unionid is bound to several users (`user_ids`)"),
        Muted = ("muted", 409, "the user muted the message's category (`category`)"),
        NoSubscription = ("no_subscription", 409, "no subscription to the template is left: record the person's acceptance first"),
        NoFormId = ("no_form_id", 409, "no usable form_id or prepay_id is left (each lasts 7 days)"),
        CustomWindowClosed = ("custom_window_closed", 409, "`custom`: the person has not interacted with the Official Account within the window WeChat allows (48 h after a message of theirs, 1 minute after a menu click, follow or scan), or unfollowed since; `last_interaction`, `last_interaction_at`, `window_closed_at`, `unfollowed_at` say what wxlink saw (null: nothing)"),
        NoChannel = ("no_channel", 409, "`auto`: neither channel reaches the person (`reasons`)"),
        UserinfoAuthorizationNeeded = ("userinfo_authorization_needed", 409, "the identity was authorized with `snsapi_base` only: WeChat gives its profile after a `snsapi_userinfo` authorization (`ticket_url`, `ticket_expires_at` when the app can mint one)"),
        ProfileStale = ("profile_stale", 409, "the profile can no longer be refreshed (refresh token expired, refused or not kept): the person must authorize again; `ticket_url` and `ticket_expires_at` give them a fresh snsapi_userinfo link"),
        IdempotencyConflict = ("idempotency_conflict", 409, "the `Idempotency-Key` was used for a different request (`existing_id`)"),
        FollowerImportRunning = ("follower_import_running", 409, "an import of this app's followers is running already (`import` holds its progress)"),
        LoginCodeUsed = ("login_code_used", 410, "the `wxlink_code` was redeemed already"),
        LoginCodeExpired = ("login_code_expired", 410, "the `wxlink_code` expired"),
        JsCodeUsed = ("js_code_used", 410, "the `wx.login` code was exchanged already (40163): call `wx.login` again"),
        BodyTooLarge = ("body_too_large", 413, "the body is over `max_body_bytes`"),
        UnsupportedMediaType = ("unsupported_media_type", 415, "send the body with `Content-Type: application/json`"),
        ForceRefreshBudget = ("force_refresh_budget", 429, "the stable token's forced refreshes are spent: 20 a day, 30 s apart (`Retry-After` when only too soon)"),
        InvalidationLimit = ("invalidation_limit", 429, "this API key's reports already caused `tokens.invalidations_per_key_per_day` forced refreshes of the app's token today (`Retry-After`: until midnight in Beijing)"),
        LoginRateLimited = ("login_rate_limited", 429, "WeChat allows 100 logins per person per minute (45011), `Retry-After: 60`"),
        InternalError = ("internal_error", 500, "a fault of ours; the cause is in the service log only"),
        WechatError = ("wechat_error", 502, "WeChat is busy, unreachable or answered an error (`errcode` when it gave one); a retry may work"),
        WechatRefused = ("wechat_refused", 502, "WeChat refused the app's credentials or this server's IP (`errcode`, e.g. 40013, 40125, 40164): configuration"),
        WechatQuota = ("wechat_quota", 502, "WeChat's quota is reached (45009 daily, 45011 per minute; `errcode`)"),
        DatabaseUnavailable = ("database_unavailable", 503, "the database is not answering (the message names the cause); the service heals by itself when it is back"),
        StorageFull = ("storage_full", 503, "the database's disk is full (or its size cap reached): nothing was stored; the service heals by itself once there is room"),
        TokenUnavailable = ("token_unavailable", 503, "no valid access token, and WeChat cannot give one now (the message says why)"),
        TicketUnavailable = ("ticket_unavailable", 503, "no valid JS-SDK ticket, and WeChat cannot give one now (the message says why)"),
        TemplatesUnavailable = ("templates_unavailable", 503, "the app's template list cannot be fetched, and none was before"),
        StorageKeyMissing = ("storage_key_missing", 503, "no `storage_key` is configured, so session keys cannot be stored"),
        IdempotencyRace = ("idempotency_race", 503, "the message stored under the `Idempotency-Key` vanished meanwhile; try again"),
    }
}

catalogue! {
    /// The push endpoint's refusals, answered as plain text `code: reason`. Checks run
    /// cheapest first, and the signature before anything that depends on the body.
    pub enum PushCode {
        UnknownApp = ("unknown_app", 404, "no app of that name is configured"),
        NotConfigured = ("push_not_configured", 404, "the app has no `push_token`"),
        MissingParameter = ("missing_parameter", 400, "the query lacks `timestamp`, `nonce`, `signature`, `echostr` or `msg_signature`"),
        BadTimestamp = ("bad_timestamp", 400, "`timestamp` is not a number"),
        BadNonce = ("bad_nonce", 400, "`nonce` is over 64 characters"),
        BadQuery = ("bad_query", 400, "the query string cannot be read"),
        BadEncryptType = ("bad_encrypt_type", 400, "`encrypt_type` is neither `aes` nor `raw`"),
        TooLarge = ("body_too_large", 413, "the body is over `push.max_body_bytes`"),
        UnreadableBody = ("unreadable_body", 400, "the body cannot be read"),
        NotUtf8 = ("not_utf8", 400, "the body, or the decrypted message, is not UTF-8"),
        MalformedXml = ("malformed_xml", 400, "not WeChat's XML: one `<xml>` root, no DOCTYPE or unknown entities, bounded depth and size, no repeated top-level field"),
        MissingEncrypt = ("missing_encrypt", 400, "`encrypt_type=aes` without `<Encrypt>`"),
        BadSignature = ("bad_signature", 401, "`signature` or `msg_signature` does not match (a tampered ciphertext ends here)"),
        EncryptionRequired = ("encryption_required", 400, "a plain push to an app in `safe` mode"),
        StaleTimestamp = ("stale_timestamp", 401, "`timestamp` is further than `push.timestamp_window_secs` from our clock"),
        NoEncodingAesKey = ("no_encoding_aes_key", 400, "an encrypted push to an app without `encoding_aes_key`"),
        BadKey = ("bad_key", 400, "the app's `encoding_aes_key` is not 43 characters of base64"),
        BadBase64 = ("bad_base64", 400, "the ciphertext is not base64"),
        BadLength = ("bad_length", 400, "the ciphertext is not whole AES blocks"),
        BadPadding = ("bad_padding", 400, "the ciphertext does not open with either key (its padding is wrong)"),
        BadFraming = ("bad_framing", 400, "the decrypted message's length prefix does not fit"),
        WrongAppid = ("wrong_appid", 400, "the message is for another appid"),
        MalformedPush = ("malformed_push", 400, "the message has no `<MsgType>`"),
        Replayed = ("replayed", 409, "this (timestamp, nonce, signature) came before with another event"),
        DatabaseUnavailable = ("database_unavailable", 503, "not stored: the database is not answering; WeChat retries"),
        StorageFull = ("storage_full", 503, "not stored: the database's disk is full; WeChat retries"),
        InternalError = ("internal_error", 503, "not stored: a fault of ours (the cause is in the log); WeChat retries"),
    }
}

catalogue! {
    /// The `wxlink_error` a browser brings back to a valid `return_to` instead of stopping
    /// on a wxlink page. The status is the one of the page shown when there is no
    /// `return_to` to go back to.
    pub enum ReturnError {
        Declined = ("declined", 200, "the person declined the consent page (`snsapi_userinfo`): show your own page, offer to try again"),
        InvalidScope = ("invalid_scope", 400, "the authorize link's `scope` is neither `snsapi_base` nor `snsapi_userinfo`: a bug in the link"),
        InvalidQuery = ("invalid_query", 400, "the authorize link's query cannot be read (a parameter given twice): a bug in the link"),
        StateExpired = ("state_expired", 400, "the person took longer than `oauth.state_ttl_secs` at WeChat: start again"),
        StateUsed = ("state_used", 400, "this authorization had already been completed with another code: the earlier `wxlink_code` stands"),
        CodeReused = ("code_reused", 400, "the callback's code was claimed by another browser's sign-in: start again"),
        CodeInvalid = ("code_invalid", 400, "WeChat refused the authorization code (used or expired, 40163 or 42003): start again"),
        TicketUnknown = ("ticket_unknown", 404, "the link ticket is not known (or belongs to another app): create a new one"),
        TicketUsed = ("ticket_used", 410, "the link ticket was used already: the first use bound it; create a new one to bind again"),
        TicketExpired = ("ticket_expired", 410, "the link ticket expired (`oauth.ticket_ttl_secs`) before the person came back: create a new one"),
        IdentityConflict = ("identity_conflict", 409, "the person's WeChat identity is bound to another user: nothing changed; the details are in the log and `GET /api/v1/users/{id}`"),
        TicketOtherPerson = ("ticket_other_person", 409, "the link ticket's user has a mini-program identity with another unionid: someone else opened a forwarded link; nothing was bound and the ticket stays usable by its person"),
        WechatError = ("wechat_error", 502, "WeChat could not be reached or answered oddly: try again in a moment"),
    }
}

/// A Markdown table of codes: code, status, meaning.
fn table<C: Copy>(
    codes: &[C],
    code: fn(C) -> &'static str,
    status: fn(C) -> StatusCode,
    meaning: fn(C) -> &'static str,
) -> String {
    let mut out = String::from("| code | status | meaning |\n|---|---|---|\n");
    for &c in codes {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            code(c),
            status(c).as_u16(),
            meaning(c).replace('|', "\\|")
        ));
    }
    out
}

/// The API's codes as README.md shows them.
pub fn api_table() -> String {
    table(
        ErrorCode::ALL,
        ErrorCode::code,
        ErrorCode::status,
        ErrorCode::meaning,
    )
}

/// The push endpoint's codes as README.md shows them.
pub fn push_table() -> String {
    table(
        PushCode::ALL,
        PushCode::code,
        PushCode::status,
        PushCode::meaning,
    )
}

/// The `wxlink_error` codes as README.md shows them.
pub fn return_table() -> String {
    table(
        ReturnError::ALL,
        ReturnError::code,
        ReturnError::status,
        ReturnError::meaning,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_code_is_listed_once() {
        let api: HashSet<_> = ErrorCode::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(api.len(), ErrorCode::ALL.len());
        let push: HashSet<_> = PushCode::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(push.len(), PushCode::ALL.len());
        let back: HashSet<_> = ReturnError::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(back.len(), ReturnError::ALL.len());
        for c in ErrorCode::ALL {
            assert!(
                c.status().is_client_error() || c.status().is_server_error(),
                "{c:?}"
            );
        }
    }

    /// Where the text between `<!-- {marker}:begin -->` and `<!-- {marker}:end -->` is.
    fn section(readme: &str, marker: &str) -> (usize, usize) {
        let begin = format!("<!-- {marker}:begin -->\n");
        let end = format!("<!-- {marker}:end -->");
        let start = readme
            .find(&begin)
            .unwrap_or_else(|| panic!("README.md has no {begin:?}"))
            + begin.len();
        let stop = start
            + readme[start..]
                .find(&end)
                .unwrap_or_else(|| panic!("README.md has no {end:?}"));
        (start, stop)
    }

    /// README.md's error tables are the catalogue's. `WXLINK_WRITE_README=1 cargo test
    /// readme_error_tables` writes them in.
    #[test]
    fn readme_error_tables_are_the_catalogue() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
        let mut readme = std::fs::read_to_string(&path).unwrap();
        let write = std::env::var_os("WXLINK_WRITE_README").is_some();
        for (marker, table) in [
            ("error-codes:api", api_table()),
            ("error-codes:push", push_table()),
            ("error-codes:return", return_table()),
        ] {
            let (start, stop) = section(&readme, marker);
            if write {
                readme.replace_range(start..stop, &table);
            } else {
                assert_eq!(
                    readme[start..stop],
                    table,
                    "README.md's {marker} table differs from src/http/error/catalogue.rs: \
                     run `WXLINK_WRITE_README=1 cargo test readme_error_tables` to write it"
                );
            }
        }
        if write {
            std::fs::write(&path, readme).unwrap();
        }
    }
}
