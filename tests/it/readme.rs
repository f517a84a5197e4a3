//! README.md's commands run as written: every fenced block tagged `sh`, in order, in one
//! shell against a fresh sandbox, with `KEY` as the README's first `sh` block sets it (and
//! `BASE` pointed at the sandbox's port). Blocks tagged `text` are excerpts; an untagged or
//! indented code block is refused, so every block says which it is.

use crate::support::peers::{Sandbox, path_with_wxlink, root, skipped};

/// The README's fenced blocks: (the line it starts on, its tag, its text).
fn fenced_blocks(readme: &str) -> Vec<(usize, String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String, String)> = None;
    for (n, line) in readme.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(tag)) => open = Some((n + 1, tag.trim().to_owned(), String::new())),
            (Some(_), Some("")) => blocks.push(open.take().unwrap()),
            (Some((_, _, text)), _) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "README.md ends inside a fenced block");
    blocks
}

#[test]
fn every_code_block_says_whether_it_runs() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for (line, tag, _) in fenced_blocks(&readme) {
        assert!(
            ["sh", "text", "toml", "json", "python", "js", "java", "go"].contains(&tag.as_str()),
            "README.md:{line}: a fenced block tagged {tag:?}: tag shell commands `sh` (run by this test) or `text` (an excerpt)"
        );
    }
    // An indented code block (four spaces after a blank line, outside a list and a fence).
    let lines: Vec<&str> = readme.lines().collect();
    let mut in_fence = false;
    let mut last_text = "";
    for (n, line) in lines.iter().enumerate() {
        if line.starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || line.is_empty() {
            continue;
        }
        let in_list = last_text.starts_with(' ')
            || last_text.starts_with("- ")
            || last_text
                .split_once(". ")
                .is_some_and(|(d, _)| d.parse::<u32>().is_ok());
        assert!(
            !(line.starts_with("    ") && lines[n - 1].is_empty() && !in_list),
            "README.md:{}: an indented code block; fence it as ```sh or ```text",
            n + 1
        );
        last_text = line;
    }
}

#[tokio::test]
async fn the_readme_shell_blocks_run_against_a_fresh_sandbox() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let blocks: Vec<String> = fenced_blocks(&readme)
        .into_iter()
        .filter(|(_, tag, _)| tag == "sh")
        .map(|(_, _, text)| text)
        .collect();
    let first = blocks.first().expect("README.md has sh blocks");
    let key = first
        .split_whitespace()
        .find_map(|w| w.strip_prefix("KEY="))
        .expect("the first sh block sets KEY");
    assert!(first.contains("BASE="), "the first sh block sets BASE");
    for tool in ["curl", "jq"] {
        let here = tokio::process::Command::new(tool)
            .arg("--version")
            .output()
            .await
            .is_ok_and(|o| o.status.success());
        if !here {
            skipped(&format!("no {tool}"), "README.md's shell blocks");
            return;
        }
    }
    let sandbox = Sandbox::start(key).await;
    // The first block as written, then BASE moved to the port this sandbox got.
    let script = format!(
        "{first}export BASE={}\n{}",
        sandbox.base,
        blocks[1..].join("")
    );
    let out = tokio::process::Command::new("bash")
        .args(["-xeuo", "pipefail", "-c", &script])
        .current_dir(sandbox.dir.path())
        .env("PATH", path_with_wxlink())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "a README.md command failed ({}); the trace ends:\n{}",
        out.status,
        stderr
            .lines()
            .rev()
            .take(25)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    // What the walk-through ends with: user 1001 joined across the mini-program and the
    // Official Account, the message sent, the key hashed.
    assert!(
        stdout.contains(&wxlink::domain::hash_token("my-api-key")),
        "{stdout}"
    );
    assert!(stdout.contains("\"sent\""), "{stdout}");
    assert!(
        stdout.trim_end().ends_with("[\n  \"mp\",\n  \"oa\"\n]"),
        "{stdout}"
    );
}
