//! The protocol doc's vectors through the whole receive path, every refusal with the code
//! the push route answers, and arbitrary input that must be refused without a panic.

use crate::config::{AppConfig, AppKind, PushMode, TokenMode};
use crate::domain::{AppId, WxAppId};
use crate::push::Refusal as PushError;
use crate::push::inbound::{Inbound, PushQuery, encrypted_reply, open, verify_echo};
use crate::push::xml;
use crate::wechat::AppCredentials;
use crate::wechat::crypto::{MessageCrypto, signature};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use secrecy::{ExposeSecret, SecretString};

fn app(appid: &str, token: &str, key: Option<&str>, mode: PushMode) -> AppConfig {
    AppConfig {
        id: AppId::parse("oa").unwrap(),
        kind: AppKind::OfficialAccount,
        wechat: AppCredentials {
            appid: WxAppId::parse(appid).unwrap(),
            secret: SecretString::from("s"),
            api_base: "http://127.0.0.1:1".into(),
            open_base: "http://127.0.0.1:1".into(),
        },
        push_token: Some(SecretString::from(token)),
        encoding_aes_key: key.map(SecretString::from),
        encoding_aes_key_previous: None,
        push_mode: mode,
        token_mode: TokenMode::Stable,
        forward: None,
        js_safe_domains: Default::default(),
    }
}

fn query(pairs: &[(&str, &str)]) -> PushQuery {
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    };
    PushQuery {
        signature: get("signature"),
        timestamp: get("timestamp"),
        nonce: get("nonce"),
        echostr: get("echostr"),
        openid: get("openid"),
        encrypt_type: get("encrypt_type"),
        msg_signature: get("msg_signature"),
    }
}

const V3_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const V3_ENCRYPT: &str = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=";
const V4_ENCRYPT: &str = "D7yzvUNAL930rd28wf21s4hvXhz0L6Uit/p2Di6C5DHyYGpEgdBRnKjBec34JwoQXicwaZC7fOVihW80F4VtsdvE//1vr7oAbqjDv8KenVp+ajKYpJnyQ4zMRhIC+a31fCVOMC03FfzV/QuC94kBP55a+Za3sJgvAn+ZbsNqZI5DkyuzkhQN8OBqCzFhizGmy0xpM0MEA4agpvE+RuNO1rhHTtuJB5yltw1FiYzecSXJ+y/D2r81VkRn2eYjh2ltsoyfbDR7Is6ookXIFxTfyeNyeHxMeT4KN5WpCDmSbTcUYrbBUlkGLJ9n/rU8YOywma6G7aTb7KZKOqCxgfoUlYEZPk4FUL/TK7ShriFDMVCLyjQJ15Ob++agDWtcxhfUfe6HIoIpRW8mKNBQiY/Jd1svvuskA1wLef1RTtzKfMpagSCX/laZINmdnX4zrF6kIaR9P4xQrWXbsTFHTYe0Mg==";

fn envelope(encrypt: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    )
}

fn code(r: Result<Inbound, PushError>) -> &'static str {
    r.map(|_| "ok")
        .unwrap_or_else(|e| super::PushError::from(e).code().code())
}

#[test]
fn v1_v2_verification_echoes_only_for_a_valid_signature() {
    let a = app("wx2c2769f8efd9abc2", "test", None, PushMode::Plain);
    let q = query(&[
        ("signature", "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff"),
        ("timestamp", "1410685589"),
        ("nonce", "test"),
        ("echostr", "hello"),
    ]);
    assert_eq!(verify_echo(&a, &q).unwrap(), "hello");
    let mut forged = q.clone();
    forged.signature = Some("f21891de399b4e33a1a93c9a7b8a8fffb5a443fe".into());
    assert!(matches!(
        verify_echo(&a, &forged),
        Err(PushError::BadSignature)
    ));

    let a = app("wx2c2769f8efd9abc2", "AAAAA", None, PushMode::Plain);
    let q = query(&[
        ("signature", "899cf89e464efb63f54ddac96b0a0a235f53aa78"),
        ("timestamp", "1714037059"),
        ("nonce", "486452656"),
        ("echostr", "e"),
    ]);
    assert_eq!(verify_echo(&a, &q).unwrap(), "e");
}

#[test]
fn v3_safe_mode_push_opens() {
    let a = app(
        "wx2c2769f8efd9abc2",
        "spamtest",
        Some(V3_KEY),
        PushMode::Safe,
    );
    let q = query(&[
        ("timestamp", "1409735669"),
        ("nonce", "1320562132"),
        ("encrypt_type", "aes"),
        ("msg_signature", "5d197aaffba7e9b25a30732f161a50dee96bd5fa"),
    ]);
    let body = envelope(V3_ENCRYPT);
    let p = open(&a, &q, body.as_bytes(), 1409735669, 300).unwrap();
    assert!(p.encrypted);
    assert_eq!(p.envelope.kind, "text");
    assert_eq!(p.envelope.dedup_key, "msg:6054768590064713728");
    assert_eq!(p.root.field("Content"), Some("abcdteT"));
    assert_eq!(p.signature, "5d197aaffba7e9b25a30732f161a50dee96bd5fa");

    // The same push for another appid, with a forged signature, too late, or tampered.
    let other = app(
        "wx0000000000000001",
        "spamtest",
        Some(V3_KEY),
        PushMode::Safe,
    );
    assert_eq!(
        code(open(&other, &q, body.as_bytes(), 1409735669, 300)),
        "wrong_appid"
    );
    let mut forged = q.clone();
    forged.msg_signature = Some("5d197aaffba7e9b25a30732f161a50dee96bd5fb".into());
    assert_eq!(
        code(open(&a, &forged, body.as_bytes(), 1409735669, 300)),
        "bad_signature"
    );
    assert_eq!(
        code(open(&a, &q, body.as_bytes(), 1409735669 + 301, 300)),
        "stale_timestamp"
    );
    let tampered = envelope(&V3_ENCRYPT.replace("hyzA", "hyzB"));
    assert_eq!(
        code(open(&a, &q, tampered.as_bytes(), 1409735669, 300)),
        "bad_signature"
    );
}

#[test]
fn v4_push_opens_and_the_encrypted_reply_matches() {
    let key = "A".repeat(43);
    let a = app(
        "wx134c8103faa5a59e",
        "AAAAA",
        Some(&key),
        PushMode::Compatible,
    );
    let q = query(&[
        ("timestamp", "1715943329"),
        ("nonce", "1590219412"),
        ("encrypt_type", "aes"),
        ("msg_signature", "6c12a4205838198b8fa631b3220723bb07f1015c"),
    ]);
    let p = open(&a, &q, envelope(V4_ENCRYPT).as_bytes(), 1715943329, 300).unwrap();
    assert_eq!(p.envelope.kind, "debug_demo");
    assert_eq!(p.root.field("debug_str"), Some("hello world"));

    let reply = encrypted_reply(
        &MessageCrypto::new(&key).unwrap(),
        "AAAAA",
        "wx134c8103faa5a59e",
        "<xml><demo_resp>[CDATA[good luck]]</demo_resp></xml>",
        "1713424427",
        "415670741",
        b"999951349e8ee746",
    );
    let r = xml::parse(&reply).unwrap();
    assert_eq!(
        r.field("Encrypt"),
        Some(
            "hE8R6mGXHkJJjU72KxzKUd1GEkKJaEZq7vRL8XgK3o+00k8JGq6+pZJUIlTSyhsX+bxIBQ72g3GyvDdIZcr6+3HAZbSvPT9t/o11MI7d6WELwqrGd7jMnV0zv3Zc9Nq7"
        )
    );
    assert_eq!(
        r.field("MsgSignature"),
        Some("03e0812039325c2712ef5f0f980fd14c70d6e307")
    );
    assert_eq!(r.field("TimeStamp"), Some("1713424427"));
    assert_eq!(r.field("Nonce"), Some("415670741"));
}

/// A push signed and encrypted as WeChat would, for the refusal tests.
fn safe_push(a: &AppConfig, key: &str, encrypt: Option<String>, xml: &str) -> (PushQuery, String) {
    let token = a.push_token.as_ref().unwrap().expose_secret();
    let encrypt = encrypt.unwrap_or_else(|| {
        MessageCrypto::new(key)
            .unwrap()
            .encrypt(xml, a.wechat.appid.as_str())
    });
    let q = query(&[
        ("timestamp", "1000"),
        ("nonce", "42"),
        ("signature", &signature(&[token, "1000", "42"])),
        ("encrypt_type", "aes"),
        (
            "msg_signature",
            &signature(&[token, "1000", "42", &encrypt]),
        ),
    ]);
    (q, envelope(&encrypt))
}

const EVENT: &str = "<xml><FromUserName>oA</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>subscribe</Event></xml>";

#[test]
fn malformed_encrypted_pushes_are_refused_with_their_reason() {
    let key = "B".repeat(43);
    let a = app("wx134c8103faa5a59e", "tok", Some(&key), PushMode::Safe);
    let cases = [
        (Some("not base64 !!".to_owned()), "bad_base64"),
        (Some(STANDARD.encode([1u8; 17])), "bad_length"),
        (Some(STANDARD.encode([0u8; 32])), "bad_padding"),
    ];
    for (encrypt, expected) in cases {
        let (q, body) = safe_push(&a, &key, encrypt, EVENT);
        assert_eq!(code(open(&a, &q, body.as_bytes(), 1000, 300)), expected);
    }
    // Another app's key and appid.
    let other = MessageCrypto::new(&key)
        .unwrap()
        .encrypt(EVENT, "wx0000000000000009");
    let (q, body) = safe_push(&a, &key, Some(other), EVENT);
    assert_eq!(
        code(open(&a, &q, body.as_bytes(), 1000, 300)),
        "wrong_appid"
    );
    // Decrypts, but is not XML.
    let (q, body) = safe_push(&a, &key, None, "<xml><unclosed>");
    assert_eq!(
        code(open(&a, &q, body.as_bytes(), 1000, 300)),
        "malformed_xml"
    );
    // No MsgType.
    let (q, body) = safe_push(&a, &key, None, "<xml><A>1</A></xml>");
    assert_eq!(
        code(open(&a, &q, body.as_bytes(), 1000, 300)),
        "malformed_push"
    );
    // Good.
    let (q, body) = safe_push(&a, &key, None, EVENT);
    assert_eq!(code(open(&a, &q, body.as_bytes(), 1000, 300)), "ok");
    // Safe mode refuses a plain push, even correctly signed.
    let mut plain = q.clone();
    plain.encrypt_type = None;
    assert_eq!(
        code(open(&a, &plain, EVENT.as_bytes(), 1000, 300)),
        "encryption_required"
    );
    // Missing parameters.
    let mut missing = q.clone();
    missing.nonce = None;
    assert_eq!(
        code(open(&a, &missing, body.as_bytes(), 1000, 300)),
        "missing_parameter"
    );
    let mut bad_ts = q.clone();
    bad_ts.timestamp = Some("12a".into());
    assert_eq!(
        code(open(&a, &bad_ts, body.as_bytes(), 1000, 300)),
        "bad_timestamp"
    );
}

#[test]
fn the_previous_key_still_opens_pushes_during_rotation() {
    let old = "C".repeat(43);
    let new = "D".repeat(43);
    let mut a = app("wx134c8103faa5a59e", "tok", Some(&new), PushMode::Safe);
    let (q, body) = safe_push(&a, &old, None, EVENT);
    assert_eq!(
        code(open(&a, &q, body.as_bytes(), 1000, 300)),
        "bad_padding"
    );
    a.encoding_aes_key_previous = Some(SecretString::from(old.clone()));
    assert_eq!(code(open(&a, &q, body.as_bytes(), 1000, 300)), "ok");
    let (q, body) = safe_push(&a, &new, None, EVENT);
    assert_eq!(code(open(&a, &q, body.as_bytes(), 1000, 300)), "ok");
}

#[test]
fn plain_and_compatible_mode() {
    let key = "E".repeat(43);
    let token = "tok";
    let q = query(&[
        ("timestamp", "1000"),
        ("nonce", "7"),
        ("signature", &signature(&[token, "1000", "7"])),
    ]);
    let plain = app("wx134c8103faa5a59e", token, None, PushMode::Plain);
    assert_eq!(code(open(&plain, &q, EVENT.as_bytes(), 1000, 300)), "ok");
    assert_eq!(
        code(open(&plain, &q, EVENT.as_bytes(), 1000 - 301, 300)),
        "stale_timestamp"
    );
    let compat = app(
        "wx134c8103faa5a59e",
        token,
        Some(&key),
        PushMode::Compatible,
    );
    assert_eq!(code(open(&compat, &q, EVENT.as_bytes(), 1000, 300)), "ok");
    // Compatible body: plain fields and <Encrypt>; the encrypted copy is the one used.
    let enc = xml::parse(&safe_push(&compat, &key, None, EVENT).1).unwrap();
    let encrypt = enc.field("Encrypt").unwrap().to_owned();
    let (eq, _) = safe_push(&compat, &key, Some(encrypt.clone()), EVENT);
    let body = EVENT.replace(
        "</xml>",
        &format!("<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"),
    );
    let p = open(&compat, &eq, body.as_bytes(), 1000, 300).unwrap();
    assert!(p.encrypted);
    assert_eq!(p.root.field("Encrypt"), None);
    // A plain-mode app without a key cannot open an encrypted push.
    let (eq, body) = safe_push(&plain, &key, None, EVENT);
    assert_eq!(
        code(open(&plain, &eq, body.as_bytes(), 1000, 300)),
        "no_encoding_aes_key"
    );
}

proptest! {
    #[test]
    fn random_messages_and_keys_round_trip_through_open(
        key in proptest::collection::vec(any::<u8>(), 32),
        content in "\\PC{0,200}",
    ) {
        let ek = STANDARD.encode(&key)[..43].to_owned();
        let a = app("wx134c8103faa5a59e", "tok", Some(&ek), PushMode::Safe);
        let xml = format!(
            "<xml><FromUserName>oA</FromUserName><CreateTime>5</CreateTime><MsgType>text</MsgType><Content>{}</Content><MsgId>9</MsgId></xml>",
            xml::cdata(&content)
        );
        let (q, body) = safe_push(&a, &ek, None, &xml);
        let p = open(&a, &q, body.as_bytes(), 1000, 300).unwrap();
        prop_assert_eq!(p.xml, xml);
        prop_assert_eq!(p.root.field("Content"), Some(content.as_str()));
    }

    #[test]
    fn arbitrary_plain_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600)) {
        let a = app("wx134c8103faa5a59e", "tok", None, PushMode::Plain);
        let q = query(&[("timestamp", "1000"), ("nonce", "1"), ("signature", &signature(&["tok", "1000", "1"]))]);
        let _ = open(&a, &q, &body, 1000, 300);
    }

    #[test]
    fn arbitrary_ciphertexts_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let key = "A".repeat(43);
        let a = app("wx134c8103faa5a59e", "tok", Some(&key), PushMode::Safe);
        let (q, body) = safe_push(&a, &key, Some(STANDARD.encode(&data)), EVENT);
        let _ = open(&a, &q, body.as_bytes(), 1000, 300);
    }

    #[test]
    fn arbitrary_plaintexts_under_the_right_key_never_panic(inner in "\\PC{0,300}") {
        let key = "A".repeat(43);
        let a = app("wx134c8103faa5a59e", "tok", Some(&key), PushMode::Safe);
        let (q, body) = safe_push(&a, &key, None, &inner);
        let _ = open(&a, &q, body.as_bytes(), 1000, 300);
    }
}
