//! Starting the sandbox binary: a sandbox other machines could reach (its page shows the
//! API key) is refused unless said explicitly, and then announced loudly; extra
//! `return_to` entries from the environment, shown on the page.

use crate::support::process::{Starting, announced, command};
use std::process::Stdio;
use std::time::Duration;

fn sandbox_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("wxlink.toml");
    std::fs::write(
        &path,
        format!(
            "sandbox = true\ndatabase_url = \"sqlite://{}\"\n",
            dir.join("sb.db").display()
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn a_sandbox_on_a_public_address_is_refused_without_consent() {
    let dir = tempfile::tempdir().unwrap();
    let config = sandbox_config(dir.path());
    let out = command(&config)
        .env("WXLINK_LISTEN", "0.0.0.0:0")
        .stderr(Stdio::piped())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(15), out)
        .await
        .expect("wxlink exits at once")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("sandbox.allow_public") && stderr.contains("WXLINK_SANDBOX_ALLOW_PUBLIC"),
        "{stderr}"
    );
    assert!(stderr.contains("API key"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("dev_"),
        "no key printed"
    );
}

#[tokio::test]
async fn a_public_sandbox_with_consent_starts_and_says_so_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let config = sandbox_config(dir.path());
    let mut child = command(&config)
        .env("WXLINK_LISTEN", "0.0.0.0:0")
        .env("WXLINK_SANDBOX_ALLOW_PUBLIC", "true")
        .env(
            "WXLINK_SANDBOX_RETURN_TO_ALLOW",
            "http://localhost:3000/callback, https://dev.example.com/wx/",
        )
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let service = Starting::from_child(child).ready().await;
    let warning = tokio::time::timeout(
        Duration::from_secs(5),
        announced(stderr, |l| l.contains("WARNING").then(|| l.to_owned())),
    )
    .await
    .expect("a warning on standard error")
    .expect("a warning before the output ends");
    assert!(
        warning.contains("reachable from other machines"),
        "{warning}"
    );

    let page = reqwest::get(format!("{}/", service.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("data-public=\"1\""), "the page warns too");
    for entry in [
        "http://localhost:3000/callback",
        "https://dev.example.com/wx/",
    ] {
        assert!(
            page.contains(&format!("data-allow=\"{entry}\"")),
            "{entry} listed: {page}"
        );
    }
}

#[tokio::test]
async fn a_loopback_sandbox_starts_without_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let config = sandbox_config(dir.path());
    let mut child = command(&config).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut service = Starting::from_child(child).ready().await;
    let page = reqwest::get(format!("{}/", service.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("data-public"));
    service.kill().await;
    let warned = announced(stderr, |l| l.contains("WARNING").then_some(())).await;
    assert!(warned.is_none(), "no warning for a loopback sandbox");
}
