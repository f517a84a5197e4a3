//! What a push means: its envelope (type, sender, time), the key that recognises WeChat's
//! retries of it, and the typed events wxlink acts on.

use super::xml::Node;
use crate::domain::OpenId;
use sha2::{Digest, Sha256};

/// The fields every push has, and how to recognise a repeat of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `MsgType`: `event`, `text`, `image`...
    pub msg_type: String,
    /// `Event` for `MsgType = event`.
    pub event: Option<String>,
    /// What the events API filters on: the event name for events, else the message type.
    pub kind: String,
    /// `FromUserName`: the person's openid (unchecked: stored as WeChat sent it).
    pub openid: Option<String>,
    /// `CreateTime`, WeChat's seconds.
    pub create_time: Option<i64>,
    /// WeChat's retries of one push share it; distinct pushes do not.
    pub dedup_key: String,
}

/// Fields that identify the sender and time; the rest is the content.
const HEADER_FIELDS: [&str; 5] = [
    "ToUserName",
    "FromUserName",
    "CreateTime",
    "MsgType",
    "Event",
];

impl Envelope {
    /// Reads the envelope of a decrypted push. Only a missing `MsgType` is refused: anything
    /// else WeChat sends is stored.
    pub fn read(root: &Node) -> Result<Self, String> {
        let msg_type = root
            .field("MsgType")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or("the push has no <MsgType>")?
            .to_owned();
        let event = root
            .field("Event")
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty());
        let openid = root.field("FromUserName").map(|s| s.trim().to_owned());
        let create_time_text = root.field("CreateTime").map(str::trim).unwrap_or("");
        let create_time = create_time_text.parse::<i64>().ok();
        let kind = if msg_type == "event" {
            event.clone().unwrap_or_else(|| "event".to_owned())
        } else {
            msg_type.clone()
        };
        let from = openid.as_deref().unwrap_or("");
        // WeChat: deduplicate messages on MsgId, events on FromUserName + CreateTime (+ Event).
        // Reports and subscription events carry ids of their own: two reports for one person
        // within one second are two reports, so the content joins the key.
        let key = match (
            msg_type.as_str(),
            root.field("MsgId").or(root.field("MsgID")),
        ) {
            ("event", Some(id)) if kind == "TEMPLATESENDJOBFINISH" => {
                format!("report:{}", id.trim())
            }
            ("event", _) => format!(
                "event:{from}:{create_time_text}:{kind}:{}",
                content_digest(root)
            ),
            (_, Some(id)) => format!("msg:{}", id.trim()),
            (_, None) => format!(
                "msg:{from}:{create_time_text}:{msg_type}:{}",
                content_digest(root)
            ),
        };
        let dedup_key = if key.len() > 200 {
            format!("h:{}", hex::encode(Sha256::digest(key.as_bytes())))
        } else {
            key
        };
        Ok(Self {
            msg_type,
            event,
            kind,
            openid,
            create_time,
            dedup_key,
        })
    }
}

/// A short digest of everything but the header fields, independent of formatting.
fn content_digest(root: &Node) -> String {
    let mut json = root.to_json();
    if let Some(map) = json.as_object_mut() {
        for f in HEADER_FIELDS {
            map.remove(f);
        }
    }
    // serde_json's map is sorted, so equal content gives equal text.
    let digest = Sha256::digest(json.to_string().as_bytes());
    hex::encode(&digest[..8])
}

/// The events wxlink acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    /// `TEMPLATESENDJOBFINISH`: the fate of one template message.
    DeliveryReport { msgid: i64, status: String },
    /// `subscribe` / `unsubscribe`: the person followed or left the Official Account.
    Follow {
        openid: OpenId,
        follows: bool,
        at: i64,
    },
    /// `subscribe_msg_popup_event` / `subscribe_msg_change_event`: the person's choices.
    SubscriptionChoices {
        openid: OpenId,
        event: String,
        choices: Vec<SubscriptionChoice>,
    },
    /// `subscribe_msg_sent_event`: results of subscribe-message sends.
    SubscriptionSends {
        openid: OpenId,
        results: Vec<SubscriptionSend>,
    },
    /// Stored and visible through the API; no effect.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionChoice {
    pub template_id: String,
    /// `accept`, `reject`, `ban`, `filter`, `acceptWithAudio`... kept as WeChat sent it.
    pub status: String,
    /// `PopupScene` (popup events only).
    pub popup_scene: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionSend {
    pub template_id: String,
    pub msgid: i64,
    pub error_code: i64,
    pub error_status: String,
}

impl PushEvent {
    /// The typed event of a push, or why its fields do not make sense.
    pub fn classify(root: &Node, env: &Envelope) -> Result<Self, String> {
        if env.msg_type != "event" {
            return Ok(Self::Other);
        }
        let openid = || {
            OpenId::parse(env.openid.as_deref().unwrap_or(""))
                .map_err(|e| format!("FromUserName: {e}"))
        };
        Ok(match env.kind.as_str() {
            "TEMPLATESENDJOBFINISH" => Self::DeliveryReport {
                msgid: int_field(root, "MsgID")?,
                status: root
                    .field("Status")
                    .ok_or("no <Status> in the delivery report")?
                    .to_owned(),
            },
            "subscribe" | "unsubscribe" => Self::Follow {
                openid: openid()?,
                follows: env.kind == "subscribe",
                at: env.create_time.ok_or("no numeric <CreateTime>")?,
            },
            "subscribe_msg_popup_event" | "subscribe_msg_change_event" => {
                let container = if env.kind == "subscribe_msg_popup_event" {
                    "SubscribeMsgPopupEvent"
                } else {
                    "SubscribeMsgChangeEvent"
                };
                let choices = list(root, container)?
                    .map(|item| {
                        Ok(SubscriptionChoice {
                            template_id: text_field(item, "TemplateId")?,
                            status: text_field(item, "SubscribeStatusString")?,
                            popup_scene: item
                                .field("PopupScene")
                                .and_then(|s| s.trim().parse().ok()),
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                Self::SubscriptionChoices {
                    openid: openid()?,
                    event: env.kind.clone(),
                    choices,
                }
            }
            "subscribe_msg_sent_event" => {
                let results = list(root, "SubscribeMsgSentEvent")?
                    .map(|item| {
                        Ok(SubscriptionSend {
                            template_id: text_field(item, "TemplateId")?,
                            msgid: int_field(item, "MsgID")?,
                            error_code: int_field(item, "ErrorCode")?,
                            error_status: item.field("ErrorStatus").unwrap_or("").to_owned(),
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                Self::SubscriptionSends {
                    openid: openid()?,
                    results,
                }
            }
            _ => Self::Other,
        })
    }
}

/// The `<List>` items of a subscription event's container.
fn list<'a>(root: &'a Node, container: &str) -> Result<impl Iterator<Item = &'a Node>, String> {
    let c = root
        .child(container)
        .ok_or_else(|| format!("no <{container}>"))?;
    if c.all("List").next().is_none() {
        return Err(format!("<{container}> has no <List>"));
    }
    Ok(c.all("List"))
}

fn text_field(node: &Node, name: &str) -> Result<String, String> {
    node.field(name)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("no <{name}>"))
}

/// A 64-bit integer field (msgids are i64, never floats).
fn int_field(node: &Node, name: &str) -> Result<i64, String> {
    let text = node.field(name).ok_or_else(|| format!("no <{name}>"))?;
    text.trim()
        .parse()
        .map_err(|_| format!("<{name}> is not a 64-bit integer"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::xml::parse;

    fn read(xml: &str) -> (Envelope, Result<PushEvent, String>) {
        let root = parse(xml).unwrap();
        let env = Envelope::read(&root).unwrap();
        let ev = PushEvent::classify(&root, &env);
        (env, ev)
    }

    #[test]
    fn delivery_reports_keep_the_full_64_bit_msgid() {
        let (env, ev) = read(
            "<xml><FromUserName><![CDATA[oX]]></FromUserName><CreateTime>1395658920</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>3717005636572528642</MsgID><Status><![CDATA[failed:user block]]></Status></xml>",
        );
        assert_eq!(env.kind, "TEMPLATESENDJOBFINISH");
        assert_eq!(env.dedup_key, "report:3717005636572528642");
        assert_eq!(
            ev.unwrap(),
            PushEvent::DeliveryReport {
                msgid: 3_717_005_636_572_528_642,
                status: "failed:user block".into()
            }
        );
        let (_, ev) = read(
            "<xml><MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH</Event><MsgID>1e5</MsgID><Status>success</Status></xml>",
        );
        assert!(ev.unwrap_err().contains("64-bit"));
    }

    #[test]
    fn follow_events_and_their_dedup_keys() {
        let (env, ev) = read(
            "<xml><FromUserName>oAbc</FromUserName><CreateTime>100</CreateTime><MsgType>event</MsgType><Event>subscribe</Event><EventKey></EventKey></xml>",
        );
        assert!(env.dedup_key.starts_with("event:oAbc:100:subscribe:"));
        assert!(matches!(
            ev.unwrap(),
            PushEvent::Follow {
                follows: true,
                at: 100,
                ..
            }
        ));
        // The same event formatted differently is the same event.
        let (env2, _) = read(
            "<xml>\n<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event><FromUserName><![CDATA[oAbc]]></FromUserName><CreateTime>100</CreateTime><EventKey><![CDATA[]]></EventKey></xml>",
        );
        assert_eq!(env.dedup_key, env2.dedup_key);
        let (env3, _) = read(
            "<xml><FromUserName>oAbc</FromUserName><CreateTime>100</CreateTime><MsgType>event</MsgType><Event>subscribe</Event><EventKey>qrscene_1</EventKey></xml>",
        );
        assert_ne!(env.dedup_key, env3.dedup_key);
    }

    #[test]
    fn messages_dedup_on_msgid() {
        let (env, ev) = read(
            "<xml><FromUserName>oA</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>hi</Content><MsgId>6054768590064713728</MsgId></xml>",
        );
        assert_eq!(env.dedup_key, "msg:6054768590064713728");
        assert_eq!(env.kind, "text");
        assert_eq!(ev.unwrap(), PushEvent::Other);
    }

    #[test]
    fn subscription_events() {
        let (_, ev) = read(
            "<xml><FromUserName>oMp</FromUserName><CreateTime>1620736526</CreateTime><MsgType>event</MsgType><Event>subscribe_msg_popup_event</Event><SubscribeMsgPopupEvent><List><TemplateId>T1</TemplateId><SubscribeStatusString>accept</SubscribeStatusString><PopupScene>2</PopupScene></List><List><TemplateId>T2</TemplateId><SubscribeStatusString>reject</SubscribeStatusString><PopupScene>2</PopupScene></List></SubscribeMsgPopupEvent></xml>",
        );
        let PushEvent::SubscriptionChoices { choices, event, .. } = ev.unwrap() else {
            panic!("not a choice event")
        };
        assert_eq!(event, "subscribe_msg_popup_event");
        assert_eq!(choices.len(), 2);
        assert_eq!(choices[1].status, "reject");
        assert_eq!(choices[0].popup_scene, Some(2));

        let (_, ev) = read(
            "<xml><FromUserName>oMp</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>subscribe_msg_sent_event</Event><SubscribeMsgSentEvent><List><TemplateId>T1</TemplateId><MsgID>1700827132819554304</MsgID><ErrorCode>0</ErrorCode><ErrorStatus>success</ErrorStatus></List></SubscribeMsgSentEvent></xml>",
        );
        let PushEvent::SubscriptionSends { results, .. } = ev.unwrap() else {
            panic!("not a sent event")
        };
        assert_eq!(results[0].msgid, 1_700_827_132_819_554_304);

        let (_, ev) = read(
            "<xml><FromUserName>oMp</FromUserName><MsgType>event</MsgType><Event>subscribe_msg_change_event</Event></xml>",
        );
        assert!(ev.is_err());
    }

    #[test]
    fn a_push_without_msgtype_is_refused() {
        assert!(Envelope::read(&parse("<xml><Event>x</Event></xml>").unwrap()).is_err());
    }
}
