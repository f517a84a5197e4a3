//! The thin WeChat client's OAuth half against the simulator: exchange, refresh, userinfo,
//! token check, and typed errors.

use crate::support::*;
use secrecy::SecretString;
use wxlink::domain::{OpenId, WxAppId};
use wxlink::wechat::{AppCredentials, ErrCode, WechatClient, WechatError};

fn creds(t: &TestApp, secret: &str) -> AppCredentials {
    AppCredentials {
        appid: WxAppId::parse(OA_APPID).unwrap(),
        secret: SecretString::from(secret.to_owned()),
        api_base: t.simulator.base().to_owned(),
        open_base: t.simulator.base().to_owned(),
    }
}

async fn fresh_code(t: &TestApp, scope: &str) -> (String, String) {
    let p = t.simulator.person("a").await;
    let b = wechat_browser();
    let cb = t
        .through_wechat(
            &b,
            &t.url(&format!("/oauth/oa/authorize?scope={scope}")),
            p["id"].as_str().unwrap(),
            "allow",
        )
        .await;
    (
        query_param(&cb, "code").unwrap(),
        p["openids"][OA_APPID].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn exchange_refresh_userinfo_and_check() {
    let t = TestApp::spawn().await;
    let client = WechatClient::new().unwrap();
    let app = creds(&t, "oa-secret");
    let (code, openid) = fresh_code(&t, "snsapi_userinfo").await;
    let openid = OpenId::parse(&openid).unwrap();

    let tok = client.exchange_code(&app, &code).await.unwrap();
    assert_eq!(tok.openid, openid.as_str());
    assert_eq!(tok.expires_in, 7200);
    let info = client
        .userinfo(&app, &tok.access_token, &openid)
        .await
        .unwrap();
    assert_eq!(info.openid, openid.as_str());
    assert!(
        client
            .check_web_token(&app, &tok.access_token, &openid)
            .await
            .unwrap()
    );

    // The web token dies after 2 h; the refresh token gives a new one.
    t.sim_clock.advance(7201);
    assert!(
        !client
            .check_web_token(&app, &tok.access_token, &openid)
            .await
            .unwrap()
    );
    let again = client
        .refresh_web_token(&app, &tok.refresh_token)
        .await
        .unwrap();
    assert_ne!(again.access_token, tok.access_token);
    assert!(
        client
            .check_web_token(&app, &again.access_token, &openid)
            .await
            .unwrap()
    );

    // After 30 days the refresh token is gone too.
    t.sim_clock.advance(30 * 24 * 3600);
    let err = client
        .refresh_web_token(&app, &tok.refresh_token)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrCode::RefreshTokenExpired));
}

#[tokio::test]
async fn errors_are_typed_and_never_carry_the_secret() {
    let t = TestApp::spawn().await;
    let client = WechatClient::new().unwrap();
    let (code, _) = fresh_code(&t, "snsapi_base").await;

    let err = client
        .exchange_code(&creds(&t, "wrong-secret"), &code)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrCode::InvalidAppSecret));
    // WeChat ends errmsg in ` rid: ...` (the simulator too, and over /sns/*'s text/plain):
    // the client keeps the message and the request id apart.
    let WechatError::Api { errmsg, rid, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(!errmsg.contains("rid"), "{errmsg}");
    let rid = rid.as_deref().expect("the request id");
    assert_eq!(rid.len(), 26, "{rid}");
    assert!(err.to_string().contains(rid), "{err}");
    let err = client
        .exchange_code(&creds(&t, "oa-secret"), "nosuchcode")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrCode::InvalidCode));

    // Unreachable WeChat: a transport error whose text has neither secret nor code.
    let mut down = creds(&t, "super-secret-value");
    down.api_base = "http://127.0.0.1:9".into();
    let err = client
        .exchange_code(&down, "code-value-123")
        .await
        .unwrap_err();
    assert!(matches!(err, WechatError::Transport { .. }));
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains("super-secret-value") && !text.contains("code-value-123"),
        "{text}"
    );
}
