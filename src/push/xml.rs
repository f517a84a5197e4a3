//! The small XML dialect WeChat pushes: one `<xml>` root, elements holding text (often
//! CDATA) or further elements, no attributes that matter. Anything else is refused with a
//! reason, never a panic: no DOCTYPE (so no entity expansion), bounded depth and size, no
//! duplicate top-level fields (two `<Encrypt>` or `<MsgType>` would be ambiguous).

use quick_xml::Reader;
use quick_xml::events::Event;
use serde_json::{Map, Value};

/// Deeper nesting than WeChat ever sends (`<xml><SubscribeMsgPopupEvent><List><TemplateId>`).
const MAX_DEPTH: usize = 6;
/// More elements than any push has.
const MAX_ELEMENTS: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct XmlError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, XmlError> {
    Err(XmlError(msg.into()))
}

/// An element's content: text, or child elements in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Text(String),
    Children(Vec<(String, Node)>),
}

impl Node {
    pub fn text(&self) -> Option<&str> {
        match self {
            Node::Text(t) => Some(t),
            Node::Children(c) if c.is_empty() => Some(""),
            Node::Children(_) => None,
        }
    }

    /// Children named `name`, in order (empty for text nodes).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        let children: &[(String, Node)] = match self {
            Node::Children(c) => c,
            Node::Text(_) => &[],
        };
        children
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v)
    }

    pub fn child(&self, name: &str) -> Option<&Node> {
        match self {
            Node::Children(c) => c.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            Node::Text(_) => None,
        }
    }

    /// The text of child `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.child(name)?.text()
    }

    /// JSON for the events API: text as strings, elements as objects, repeated names as arrays.
    pub fn to_json(&self) -> Value {
        match self {
            Node::Text(t) => Value::String(t.clone()),
            Node::Children(children) => {
                let mut map = Map::new();
                for (name, node) in children {
                    let v = node.to_json();
                    match map.get_mut(name) {
                        // Values are strings or objects, so an array here is a repetition.
                        Some(Value::Array(items)) => items.push(v),
                        Some(existing) => {
                            let first = existing.take();
                            *existing = Value::Array(vec![first, v]);
                        }
                        None => {
                            map.insert(name.clone(), v);
                        }
                    }
                }
                Value::Object(map)
            }
        }
    }
}

/// An element being read: name, children so far, text so far.
type Open = (String, Vec<(String, Node)>, String);

/// Parses a push body; returns the content of its `<xml>` root.
pub fn parse(input: &str) -> Result<Node, XmlError> {
    let mut reader = Reader::from_str(input);
    reader.config_mut().check_end_names = true;
    // (name, children, text) of each open element; the root is stack[0].
    let mut stack: Vec<Open> = Vec::new();
    let mut elements = 0usize;
    let mut root: Option<Node> = None;
    loop {
        let event = match reader.read_event() {
            Ok(e) => e,
            Err(e) => return err(format!("malformed XML: {e}")),
        };
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return err("content after the root element");
            }
            Event::Start(start) => {
                let name = element_name(start.name().as_ref(), stack.is_empty())?;
                elements += 1;
                if stack.len() >= MAX_DEPTH || elements > MAX_ELEMENTS {
                    return err("XML nested too deep or too many elements");
                }
                stack.push((name, Vec::new(), String::new()));
            }
            Event::Empty(start) => {
                let name = element_name(start.name().as_ref(), stack.is_empty())?;
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return err("too many XML elements");
                }
                match stack.last_mut() {
                    Some((_, children, _)) => children.push((name, Node::Text(String::new()))),
                    None => root = Some(Node::Children(Vec::new())),
                }
            }
            Event::End(_) => {
                let Some((name, children, text)) = stack.pop() else {
                    return err("unbalanced end tag");
                };
                let node = if children.is_empty() {
                    Node::Text(text)
                } else if text.trim().is_empty() {
                    Node::Children(children)
                } else {
                    return err(format!("<{name}> mixes text and elements"));
                };
                match stack.last_mut() {
                    Some((_, siblings, _)) => siblings.push((name, node)),
                    None => {
                        root = Some(match node {
                            Node::Text(t) if t.trim().is_empty() => Node::Children(Vec::new()),
                            Node::Text(_) => return err("<xml> holds text, not fields"),
                            children => children,
                        })
                    }
                }
            }
            Event::Text(t) => match stack.last_mut() {
                Some((_, _, text)) => text.push_str(&t.xml10_content()),
                None if t.xml10_content().trim().is_empty() => {}
                None => return err("text outside the root element"),
            },
            Event::CData(c) => match stack.last_mut() {
                Some((_, _, text)) => text.push_str(&c.into_inner()),
                None => return err("CDATA outside the root element"),
            },
            Event::GeneralRef(r) => {
                let Some((_, _, text)) = stack.last_mut() else {
                    return err("entity outside the root element");
                };
                match r.resolve_char_ref() {
                    Ok(Some(c)) => text.push(c),
                    Ok(None) => match predefined(&r.into_inner()) {
                        Some(c) => text.push(c),
                        None => return err("unknown XML entity"),
                    },
                    Err(_) => return err("invalid character reference"),
                }
            }
            Event::DocType(_) => return err("a DOCTYPE is not allowed in a push"),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return err("XML ends inside an element");
    }
    let root = root.ok_or_else(|| XmlError("no <xml> root element".into()))?;
    if let Node::Children(fields) = &root {
        for (i, (name, _)) in fields.iter().enumerate() {
            if fields[..i].iter().any(|(n, _)| n == name) {
                return err(format!("field <{name}> appears twice"));
            }
        }
    }
    Ok(root)
}

fn element_name(raw: &str, is_root: bool) -> Result<String, XmlError> {
    if is_root && raw != "xml" {
        return err("the root element must be <xml>");
    }
    if raw.is_empty() || raw.len() > 64 {
        return err("element name too long");
    }
    Ok(raw.to_owned())
}

fn predefined(name: &str) -> Option<char> {
    Some(match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "apos" => '\'',
        "quot" => '"',
        _ => return None,
    })
}

/// `<![CDATA[..]]>` for a value, splitting any `]]>` inside it.
pub fn cdata(value: &str) -> String {
    format!("<![CDATA[{}]]>", value.replace("]]>", "]]]]><![CDATA[>"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_delivery_report_parses() {
        let x = parse(
            "<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[OPENID]]></FromUserName>\n<CreateTime>1395658920</CreateTime><MsgType><![CDATA[event]]></MsgType>\n<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>200163836</MsgID><Status><![CDATA[failed: system failed]]></Status></xml>",
        )
        .unwrap();
        assert_eq!(x.field("MsgID"), Some("200163836"));
        assert_eq!(x.field("Status"), Some("failed: system failed"));
        assert_eq!(x.field("FromUserName"), Some("OPENID"));
        assert_eq!(x.field("Nope"), None);
    }

    #[test]
    fn nested_lists_and_entities() {
        let x = parse(
            "<?xml version=\"1.0\"?><xml><Content>a &lt; b &#x263A;</Content><E><List><T>1</T></List><List><T>2</T></List></E><Empty/></xml>",
        )
        .unwrap();
        assert_eq!(x.field("Content"), Some("a < b ☺"));
        assert_eq!(x.field("Empty"), Some(""));
        let ts: Vec<_> = x
            .child("E")
            .unwrap()
            .all("List")
            .map(|l| l.field("T").unwrap())
            .collect();
        assert_eq!(ts, ["1", "2"]);
        let json = x.to_json();
        assert_eq!(json["E"]["List"][1]["T"], "2");
        assert_eq!(json["Content"], "a < b ☺");
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            "not xml",
            "<xml>",
            "<xml><a></b></xml>",
            "<root><a>1</a></root>",
            "<xml><a>1</a></xml><xml/>",
            "<!DOCTYPE xml [<!ENTITY e \"boom\">]><xml><a>&e;</a></xml>",
            "<xml><a>&e;</a></xml>",
            "<xml><a>&#0;</a></xml>",
            "<xml><MsgType>a</MsgType><MsgType>b</MsgType></xml>",
            "<xml><a>text<b/></a></xml>",
            "<xml>text</xml>",
            "<xml><a><b><c><d><e><f><g>deep</g></f></e></d></c></b></a></xml>",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn cdata_escapes_its_terminator() {
        let x = parse(&format!("<xml><a>{}</a></xml>", cdata("x]]>y"))).unwrap();
        assert_eq!(x.field("a"), Some("x]]>y"));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(s in "\\PC{0,400}") {
            let _ = parse(&s);
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse(&String::from_utf8_lossy(&data));
        }

        #[test]
        fn never_panics_on_xml_like_soup(parts in proptest::collection::vec(
            prop_oneof![
                Just("<xml>"), Just("</xml>"), Just("<a>"), Just("</a>"), Just("<b/>"),
                Just("<![CDATA["), Just("]]>"), Just("&amp;"), Just("&#x"), Just("text"),
                Just("<!--"), Just("-->"), Just("<?pi?>"), Just("<!DOCTYPE"), Just("\n"),
            ], 0..40)) {
            let _ = parse(&parts.concat());
        }

        #[test]
        fn cdata_values_round_trip(v in "\\PC{0,100}") {
            let x = parse(&format!("<xml><v>{}</v></xml>", cdata(&v))).unwrap();
            prop_assert_eq!(x.field("v"), Some(v.as_str()));
        }
    }
}
