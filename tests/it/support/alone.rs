//! Tests that need the process to themselves. One binary runs every test, so what is
//! global to a process (the log subscriber, the metrics recorder) is shared by all the
//! tests running at the same time. Such a test runs again alone in a child process of this
//! binary; the parent passes only if the child ran that one test and it passed.

/// Set in the child to the name of the test it runs.
const CHILD: &str = "WXLINK_TEST_ALONE";

/// True in the child started for this test: run its body. Elsewhere, runs the test alone in
/// a child process, panics with the child's output unless it passed, and returns false.
/// `module` is the caller's `module_path!()`.
pub async fn in_own_process(module: &str, test: &str) -> bool {
    let module = module.split_once("::").map_or(module, |(_, rest)| rest);
    let name = format!("{module}::{test}");
    if std::env::var(CHILD).is_ok_and(|n| n == name) {
        return true;
    }
    let out = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([name.as_str(), "--exact"])
        .env(CHILD, &name)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&format!("test {name} ... ok")),
        "{name}, alone in a child process:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    false
}
