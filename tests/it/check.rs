//! `wxlink check` against the simulator: good credentials pass, a wrong secret and an
//! unreachable api_base fail with a line naming the app and the cause, bad configuration
//! names the setting; no secret is printed and nothing is changed (no database file
//! created, no classic token fetched, no stable token forced).

use serde_json::json;
use std::path::Path;
use std::process::Command;
use wxlink::sim::Sim;

pub(crate) const STABLE: &str = "wxcheckstable0001";
const CLASSIC: &str = "wxcheckclassic002";
const KEY: &str = "ce2b5b8f15e2d2b6a0e2d63c4a0c52f1a8e9a0f8fd7b3c1f5f0d7b46d1c6a7e0";

pub(crate) async fn simulator() -> (Sim, String) {
    let (sim, simulator) = crate::support::sim::standalone().await;
    for (appid, secret) in [(STABLE, "stable-secret-1"), (CLASSIC, "classic-secret-2")] {
        simulator
            .add_app(json!({"appid": appid, "secret": secret, "kind": "official_account"}))
            .await;
    }
    (sim, simulator.base().to_owned())
}

pub(crate) fn app(id: &str, appid: &str, secret: &str, mode: &str, api_base: &str) -> String {
    format!(
        "[[apps]]\nid = \"{id}\"\nkind = \"official_account\"\nappid = \"{appid}\"\nsecret = \"{secret}\"\n\
         token_mode = \"{mode}\"\napi_base = \"{api_base}\"\nopen_base = \"{api_base}\"\n"
    )
}

/// Runs `wxlink check` on a configuration; returns (success, stdout + stderr).
pub(crate) fn check(dir: &Path, toml: &str) -> (bool, String) {
    let path = dir.join("wxlink.toml");
    std::fs::write(&path, toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wxlink"))
        .args(["--config", path.to_str().unwrap(), "check"])
        .env_remove("DATABASE_URL")
        .env_remove("WXLINK_DATABASE_URL")
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

pub(crate) fn head(dir: &Path) -> String {
    format!(
        "database_url = \"sqlite://{}\"\nstorage_key = \"3333333333333333333333333333333333333333333333333333333333333333\"\n[[api_keys]]\nname = \"a\"\nkey_sha256 = \"{KEY}\"\n",
        dir.join("never-created.db").display()
    )
}

#[tokio::test]
async fn good_credentials_pass_and_nothing_changes() {
    let (sim, base) = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "{}{}{}",
        head(dir.path()),
        app("oa", STABLE, "stable-secret-1", "stable", &base),
        app("cl", CLASSIC, "classic-secret-2", "classic", &base),
    );
    let (ok, out) = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || check(&dir, &toml)
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(
        out.contains("configuration: ok (2 apps, 1 API key)"),
        "{out}"
    );
    assert!(out.contains("database: ok"), "{out}");
    assert!(out.contains("does not exist yet"), "{out}");
    // A key without `scopes` may do everything: said, without failing the check.
    assert!(
        out.contains("api_keys[0] (\"a\"): warning: no `scopes`"),
        "{out}"
    );
    let line = |id: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("app {id} ")))
            .unwrap_or_else(|| panic!("no line for {id}: {out}"))
            .to_owned()
    };
    assert!(line("oa").contains(": ok"), "{out}");
    assert!(line("cl").contains(": ok"), "{out}");
    assert!(line("cl").contains("cgi-bin/token not called"), "{out}");
    for secret in ["stable-secret-1", "classic-secret-2"] {
        assert!(!out.contains(secret), "{out}");
    }
    // Nothing changed: no database file, no classic fetch, no forced stable token.
    assert!(!dir.path().join("never-created.db").exists());
    let stats = sim.stats();
    let n = |k: String| stats.get(&k).copied().unwrap_or(0);
    assert_eq!(n(format!("token_fetches:{CLASSIC}")), 0);
    assert_eq!(n(format!("stable_token_forced:{STABLE}")), 0);
    assert_eq!(n(format!("stable_token_calls:{STABLE}")), 1);
}

#[tokio::test]
async fn a_wrong_secret_and_an_unreachable_wechat_fail_naming_the_app() {
    let (_sim, base) = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "{}{}{}{}",
        head(dir.path()),
        app("good", STABLE, "stable-secret-1", "stable", &base),
        app("bad", CLASSIC, "not-the-secret", "classic", &base),
        app(
            "gone",
            STABLE,
            "stable-secret-1",
            "stable",
            "http://127.0.0.1:1"
        ),
    );
    let (ok, out) = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || check(&dir, &toml)
    })
    .await
    .unwrap();
    assert!(!ok, "{out}");
    let line = |id: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("app {id} ")))
            .unwrap_or_else(|| panic!("no line for {id}: {out}"))
            .to_owned()
    };
    assert!(line("good").contains(": ok"), "{out}");
    let bad = line("bad");
    assert!(bad.contains("FAILED"), "{bad}");
    assert!(bad.contains("40125"), "{bad}");
    assert!(bad.contains("`secret`"), "{bad}");
    let gone = line("gone");
    assert!(gone.contains("FAILED"), "{gone}");
    assert!(gone.contains("cannot reach WeChat"), "{gone}");
    assert!(!out.contains("not-the-secret"), "{out}");
}

#[test]
fn invalid_configuration_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    // [rate_limits] last: a table takes every key after it.
    let toml = format!(
        "{}{}[rate_limits]\ntrusted_proxies = [\"10.0.0.0/33\"]\n",
        head(dir.path()),
        app("oa", STABLE, "s", "stable", "http://127.0.0.1:1"),
    );
    let (ok, out) = check(dir.path(), &toml);
    assert!(!ok);
    assert!(
        out.contains(
            "configuration: FAILED: configuration error in `rate_limits.trusted_proxies[0]`"
        ),
        "{out}"
    );
}

#[test]
fn the_storage_key_is_required_and_a_rotation_in_progress_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let oa = app("oa", STABLE, "s", "stable", "http://127.0.0.1:1");
    let without = head(dir.path()).replace(
        "storage_key = \"3333333333333333333333333333333333333333333333333333333333333333\"\n",
        "",
    );
    let (ok, out) = check(dir.path(), &format!("{without}{oa}"));
    assert!(!ok);
    assert!(
        out.contains("configuration: FAILED: configuration error in `storage_key`: is required"),
        "{out}"
    );

    let rotating = head(dir.path()).replace(
        "[[api_keys]]",
        &format!(
            "storage_key_previous = \"{}\"\n[[api_keys]]",
            "44".repeat(32)
        ),
    );
    let (_, out) = check(dir.path(), &format!("{rotating}{oa}"));
    assert!(
        out.contains("storage key: ok (storage_key seals; storage_key_previous still opens"),
        "{out}"
    );
    assert!(out.contains("run `wxlink reseal`"), "{out}");
}

#[test]
fn an_unusable_database_fails() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "database_url = \"sqlite://{}/no/such/dir/x.db\"\nstorage_key = \"3333333333333333333333333333333333333333333333333333333333333333\"\n[[api_keys]]\nname = \"a\"\nkey_sha256 = \"{KEY}\"\n{}",
        dir.path().display(),
        app("oa", STABLE, "s", "stable", "http://127.0.0.1:1"),
    );
    let (ok, out) = check(dir.path(), &toml);
    assert!(!ok);
    assert!(out.contains("database: FAILED"), "{out}");
}

#[tokio::test]
async fn a_migrated_database_is_up_to_date() {
    let (_sim, base) = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("never-created.db");
    wxlink::store::Store::connect(
        &format!("sqlite://{}", db.display()),
        &wxlink::config::DatabaseSettings::default(),
    )
    .await
    .unwrap();
    let toml = format!(
        "{}{}",
        head(dir.path()),
        app("oa", STABLE, "stable-secret-1", "stable", &base)
    );
    let (ok, out) = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || check(&dir, &toml)
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("schema up to date"), "{out}");
}
