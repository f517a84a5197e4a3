//! The whole receive path (query checks, signature, decryption, XML, envelope) on arbitrary
//! bodies, signed correctly so the fuzzer gets past the signature: in plain mode the body is
//! the message; in safe mode the fuzzer's bytes are the ciphertext.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wxlink::config::{AppConfig, AppKind, PushMode, TokenMode};
use wxlink::domain::{AppId, WxAppId};
use wxlink::push::inbound::{PushQuery, open};
use wxlink::wechat::AppCredentials;
use wxlink::wechat::crypto::signature;

fn app(mode: PushMode) -> AppConfig {
    AppConfig {
        id: AppId::parse("oa").unwrap(),
        kind: AppKind::OfficialAccount,
        wechat: AppCredentials {
            appid: WxAppId::parse("wx134c8103faa5a59e").unwrap(),
            secret: secrecy::SecretString::from("s"),
            api_base: "http://127.0.0.1:1".into(),
            open_base: "http://127.0.0.1:1".into(),
        },
        push_token: Some(secrecy::SecretString::from("tok")),
        encoding_aes_key: Some(secrecy::SecretString::from("A".repeat(43))),
        encoding_aes_key_previous: None,
        push_mode: mode,
        token_mode: TokenMode::Stable,
        forward: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut q = PushQuery {
        timestamp: Some("1000".into()),
        nonce: Some("7".into()),
        signature: Some(signature(&["tok", "1000", "7"])),
        ..Default::default()
    };
    let _ = open(&app(PushMode::Plain), &q, data, 1000, 300);

    use base64::Engine;
    let encrypt = base64::engine::general_purpose::STANDARD.encode(data);
    q.encrypt_type = Some("aes".into());
    q.msg_signature = Some(signature(&["tok", "1000", "7", &encrypt]));
    let body = format!("<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>");
    let _ = open(&app(PushMode::Safe), &q, body.as_bytes(), 1000, 300);
});
