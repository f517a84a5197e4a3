//! Start-up configuration: bad settings stop the service with a message naming them.

use std::process::Command;

fn run_with_config(toml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wxlink.toml");
    std::fs::write(&path, toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wxlink"))
        .args(["--config", path.to_str().unwrap(), "serve"])
        .env_remove("DATABASE_URL")
        .env_remove("WXLINK_LISTEN")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const KEY: &str = "ce2b5b8f15e2d2b6a0e2d63c4a0c52f1a8e9a0f8fd7b3c1f5f0d7b46d1c6a7e0";

#[test]
fn invalid_settings_stop_start_up_naming_the_setting() {
    let oa = "[[apps]]\nid = \"oa\"\nkind = \"official_account\"\nappid = \"wx1234567890abcdef\"\nsecret = \"s\"\n";
    let cases = [
        ("listen = \"everywhere\"", "`listen`"),
        (
            &format!(
                "storage_key = \"3333333333333333333333333333333333333333333333333333333333333333\"\n[[api_keys]]\nname = \"a\"\nkey_sha256 = \"{KEY}\"\n[[apps]]\nid = \"oa\"\nkind = \"official_account\"\nappid = \"nope\"\nsecret = \"s\"\n"
            ),
            "`apps[0].appid`",
        ),
        (
            "[[apps]]\nid = \"oa\"\nkind = \"official_account\"\nappid = \"wx1234567890abcdef\"\nsecret = \"s\"\n",
            "`api_keys`",
        ),
        (
            &format!(
                "storage_key = \"3333333333333333333333333333333333333333333333333333333333333333\"\n[[api_keys]]\nname = \"a\"\nkey_sha256 = \"{KEY}\"\n[[apps]]\nid = \"oa\"\nkind = \"website\"\nappid = \"wx1234567890abcdef\"\nsecret = \"s\"\n"
            ),
            "`apps[0].kind`",
        ),
        ("return_to_allow = [\"not a url\"]", "`return_to_allow`"),
        (
            "[oauth]\nticket_ttl_secs = 3600\n",
            "`oauth.ticket_ttl_secs`",
        ),
        ("unknown_setting = 1", "unknown_setting"),
        ("[outbox]\nmax_attempts = 0\n", "`outbox.max_attempts`"),
        (
            "[outbox]\nbackoff_base_ms = 5000\nbackoff_max_ms = 1000\n",
            "`outbox.backoff_max_ms`",
        ),
        (
            "[outbox]\nconcurrency = 64\nrate_per_sec = 1\nlease_secs = 60\n",
            "`outbox.concurrency`",
        ),
        (
            &format!(
                "{oa}[[api_keys]]\nname = \"a\"\nkey_sha256 = \"{KEY}\"\nscopes = [\"send\", \"everything\"]\n"
            ),
            "`api_keys[0].scopes`: unknown scope \"everything\"",
        ),
        (
            &format!("{oa}[[api_keys]]\nname = \"a\"\nkey_sha256 = \"{KEY}\"\nscopes = []\n"),
            "`api_keys[0].scopes`: is empty",
        ),
        (
            &format!(
                "{oa}[[api_keys]]\nname = \"a\"\nkey_sha256 = \"{KEY}\"\nscopes = [\"send\"]\napps = [\"mp\"]\n"
            ),
            "`api_keys[0].apps`",
        ),
        (
            "[tokens]\ninvalidations_per_key_per_day = 0\n",
            "`tokens.invalidations_per_key_per_day`",
        ),
    ];
    for (toml, setting) in cases {
        let (ok, stderr) = run_with_config(toml);
        assert!(!ok, "{toml} should be refused");
        // The setting, then (after the file's line) what is wrong with it.
        let (name, what) = setting.split_once("`: ").unwrap_or((setting, ""));
        assert!(stderr.contains(name), "{toml}: {stderr}");
        assert!(stderr.contains(what), "{toml}: {stderr}");
    }
}

#[test]
fn a_missing_config_file_is_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_wxlink"))
        .args(["--config", "/nonexistent/wxlink.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/wxlink.toml"));
}

#[test]
fn secrets_come_from_the_environment() {
    let toml = format!(
        "listen = \"127.0.0.1:0\"\nstorage_key = \"3333333333333333333333333333333333333333333333333333333333333333\"\n[[api_keys]]\nname = \"a\"\nkey_sha256 = \"{KEY}\"\n[[apps]]\nid = \"shop-oa\"\nkind = \"official_account\"\nappid = \"wx1234567890abcdef\"\nsecret = \"env:WXLINK_TEST_UNSET_SECRET_VAR\"\n"
    );
    let (ok, stderr) = run_with_config(&toml);
    assert!(!ok);
    assert!(
        stderr.contains("`apps[0].secret`") && stderr.contains("WXLINK_TEST_UNSET_SECRET_VAR"),
        "{stderr}"
    );
}

/// A refusal names the setting by its full path (`outbox.concurency`, not `concurency`)
/// and the line of the file that holds it; a value from the environment gets no line.
#[test]
fn errors_name_the_full_path_and_the_line() {
    let apps = format!(
        "storage_key = \"3333333333333333333333333333333333333333333333333333333333333333\"\n[[api_keys]]\nname = \"a\"\nkey_sha256 = \"{KEY}\"\n\n[[apps]]\nid = \"oa\"\nkind = \"official_account\"\nappid = \"wx1234567890abcdef\"\nsecret = \"s\"\n"
    );
    let cases = [
        (
            format!("{apps}\n[outbox]\nconcurency = 64\n"),
            "`outbox.concurency` (",
            13,
        ),
        (
            format!("{apps}\n[outbox]\nconcurrency = \"many\"\n"),
            "`outbox.concurrency` (",
            13,
        ),
        (
            format!("{apps}push_tokn = \"x\"\n"),
            "`apps[0].push_tokn` (",
            11,
        ),
        (
            format!(
                "{apps}\n[[apps]]\nid = \"mp\"\nkind = \"official_account\"\nappid = \"nope\"\nsecret = \"s\"\n"
            ),
            "`apps[1].appid` (",
            15,
        ),
        (
            format!(
                "{apps}\n[rate_limits]\ntrusted_proxies = [\"10.0.0.0/8\",\n  \"10.0.0.0/33\"]\n"
            ),
            "`rate_limits.trusted_proxies[1]` (",
            14,
        ),
    ];
    for (toml, setting, line) in cases {
        let (ok, stderr) = run_with_config(&toml);
        assert!(!ok, "{toml} should be refused");
        assert!(stderr.contains(setting), "{toml}: {stderr}");
        assert!(
            stderr.contains(&format!("wxlink.toml line {line}): ")),
            "{toml}: {stderr}"
        );
    }
    // From the environment: the file's `listen` line would mislead.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wxlink.toml");
    std::fs::write(&path, format!("listen = \"127.0.0.1:0\"\n{apps}")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wxlink"))
        .args(["--config", path.to_str().unwrap(), "check"])
        .env("WXLINK_LISTEN", "everywhere")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("configuration error in `listen`: "), "{said}");
}
