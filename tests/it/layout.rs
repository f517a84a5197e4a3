//! The layout holds: the module list in `src/lib.rs` names what exists, the top-level
//! modules import each other without a loop, the core never imports the HTTP layer, and the
//! two migration folders describe the same tables.

use crate::support::database::{fresh_postgres_database, postgres_url};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use wxlink::config::DatabaseSettings;
use wxlink::store::Store;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`src/store/push.rs` -> `store`).
fn top_module(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(root().join("src")).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// `crate::x` paths in code, comments left out: module -> module -> where.
fn import_graph() -> BTreeMap<String, BTreeMap<String, String>> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in files {
        let Some(from) = top_module(&file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for (at, _) in code.match_indices("crate::") {
                let to: String = code[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !to.is_empty() && to != from {
                    graph
                        .entry(from.clone())
                        .or_default()
                        .entry(to)
                        .or_insert_with(|| format!("{}:{}", file.display(), n + 1));
                }
            }
        }
    }
    graph
}

#[test]
fn lib_rs_layout_names_every_top_level_module_and_nothing_else() {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let declared: BTreeSet<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    let named: BTreeSet<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//! - [`"))
        .filter_map(|l| l.split('`').next())
        .collect();
    assert!(!declared.is_empty() && !named.is_empty());
    let unnamed: Vec<_> = declared.difference(&named).collect();
    let missing: Vec<_> = named.difference(&declared).collect();
    assert!(
        unnamed.is_empty() && missing.is_empty(),
        "src/lib.rs's layout list is out of date: modules not in the list {unnamed:?}, \
         listed modules that do not exist {missing:?}"
    );
}

#[test]
fn top_level_modules_import_each_other_without_a_loop() {
    let graph = import_graph();
    // Depth-first search for a back edge; the path to it is the loop.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(|m| m.keys()) {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            let edges: Vec<String> = cycle
                .windows(2)
                .map(|w| format!("{} -> {} ({})", w[0], w[1], graph[&w[0]][&w[1]]))
                .collect();
            panic!("an import loop between modules:\n  {}", edges.join("\n  "));
        }
    }
}

#[test]
fn the_core_never_imports_the_http_layer() {
    let graph = import_graph();
    for core in ["outbox", "push", "store", "wechat", "identity", "token"] {
        if let Some(at) = graph.get(core).and_then(|m| m.get("http")) {
            panic!("{core} imports the HTTP layer at {at}");
        }
    }
}

#[test]
fn both_migration_folders_hold_the_same_files() {
    let names = |dir: &str| -> BTreeSet<String> {
        std::fs::read_dir(root().join("migrations").join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    };
    let (sqlite, postgres) = (names("sqlite"), names("postgres"));
    assert!(!sqlite.is_empty());
    assert_eq!(
        sqlite, postgres,
        "migrations/sqlite and migrations/postgres must hold the same migrations"
    );
}

type Columns = BTreeSet<(String, String)>;

async fn sqlite_columns() -> Columns {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("layout.db").display());
    Store::connect(&url, &DatabaseSettings::default())
        .await
        .unwrap();
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    rows.into_iter().collect()
}

async fn postgres_columns(server: &str) -> Columns {
    let url = fresh_postgres_database(server).await;
    Store::connect(&url, &DatabaseSettings::default())
        .await
        .unwrap();
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name NOT LIKE '_sqlx%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    rows.into_iter().collect()
}

#[tokio::test]
async fn both_migration_folders_make_the_same_tables_and_columns() {
    let sqlite = sqlite_columns().await;
    assert!(sqlite.contains(&("messages".to_owned(), "request_hash".to_owned())));
    let Some(server) = postgres_url() else {
        return;
    };
    let postgres = postgres_columns(&server).await;
    let only_sqlite: Vec<_> = sqlite.difference(&postgres).collect();
    let only_postgres: Vec<_> = postgres.difference(&sqlite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "the migrations differ: only on SQLite {only_sqlite:?}, only on PostgreSQL {only_postgres:?}"
    );
}

#[test]
fn the_readme_contents_list_every_section() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let (_, after) = readme
        .split_once("## Contents\n")
        .expect("README.md has a ## Contents section");
    let contents = after.split("\n## ").next().unwrap();
    let missing: Vec<&str> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("### ").or_else(|| l.strip_prefix("## ")))
        .filter(|title| *title != "Contents")
        .filter(|title| !contents.contains(&format!("[{title}](#")))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md's contents miss these sections: {missing:?}"
    );
}
