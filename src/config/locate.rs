//! Where a setting is in the configuration file: the line an error names beside the
//! setting's path (figment keeps no spans, so the file is read again with toml_edit).

use toml_edit::{ImDocument, Item, TableLike, Value};

/// One step of a setting's path: `apps[0].appid` is `apps`, `0`, `appid`.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        while let Some((n, after)) = rest.split_once(']') {
            if let Ok(i) = n.parse() {
                out.push(Step::Index(i));
            }
            rest = after.strip_prefix('[').unwrap_or("");
        }
    }
    out
}

/// What a step can land on.
enum Node<'a> {
    Table(&'a dyn TableLike),
    Item(&'a Item),
    Value(&'a Value),
}

/// The 1-based line of the setting `path` (`outbox.concurrency`, `apps[0].appid`) in the
/// TOML `text`: of its innermost part the file holds (the section's line when the key
/// itself is missing); `None` when not even the first part is there or the text is not TOML.
pub(super) fn line_of(text: &str, path: &str) -> Option<usize> {
    let doc = ImDocument::parse(text).ok()?;
    let mut node = Node::Table(doc.as_table());
    let mut found = None;
    for step in steps(path) {
        let next = match (step, node) {
            (Step::Key(k), Node::Table(t)) => t.get_key_value(k).map(|(key, item)| {
                found = key.span().or_else(|| item.span()).or(found.clone());
                Node::Item(item)
            }),
            (Step::Key(k), Node::Item(item)) => item
                .as_table_like()
                .and_then(|t| t.get_key_value(k))
                .map(|(key, item)| {
                    found = key.span().or_else(|| item.span()).or(found.clone());
                    Node::Item(item)
                }),
            (Step::Index(i), Node::Item(Item::ArrayOfTables(a))) => a.get(i).map(|t| {
                found = t.span().or(found.clone());
                Node::Table(t as &dyn TableLike)
            }),
            (Step::Index(i), Node::Item(Item::Value(Value::Array(a)))) => a.get(i).map(|v| {
                found = v.span().or(found.clone());
                Node::Value(v)
            }),
            (Step::Key(k), Node::Value(v)) => v
                .as_inline_table()
                .and_then(|t| t.get_key_value(k))
                .map(|(key, item)| {
                    found = key.span().or_else(|| item.span()).or(found.clone());
                    Node::Item(item)
                }),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    found.map(|span| text[..span.start].matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::line_of;

    const TOML: &str = "listen = \"x\"\n\n[outbox]\nconcurency = 64\n\n[[apps]]\nid = \"a\"\n\n[[apps]]\nid = \"b\"\nappid = \"nope\"\n\n[rate_limits]\ntrusted_proxies = [\"10.0.0.0/8\", \"bad\"]\nbrowser = { per_second = 1 }\n";

    #[test]
    fn finds_keys_sections_array_tables_and_inline_values() {
        assert_eq!(line_of(TOML, "listen"), Some(1));
        assert_eq!(line_of(TOML, "outbox.concurency"), Some(4));
        assert_eq!(
            line_of(TOML, "outbox.lease_secs"),
            Some(3),
            "the section's line"
        );
        assert_eq!(line_of(TOML, "apps[1].appid"), Some(11));
        assert_eq!(line_of(TOML, "apps[1]"), Some(9));
        assert_eq!(line_of(TOML, "rate_limits.trusted_proxies[1]"), Some(14));
        assert_eq!(line_of(TOML, "rate_limits.browser.per_second"), Some(15));
        assert_eq!(line_of(TOML, "storage_key"), None);
        assert_eq!(line_of("not = = toml", "not"), None);
    }
}
