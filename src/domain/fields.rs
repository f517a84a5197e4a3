//! WeChat's value rules for typed data keys (`thing1`, `time2`, `amount3`...), checked before
//! a message is queued: a refused subscribe message wastes the person's subscription.
//!
//! Lengths count Unicode scalar values (characters). Whether WeChat counts an emoji made of
//! several code points as one is UNCONFIRMED; counting code points is the strict reading.
//! Truncation cuts at grapheme-cluster boundaries so no character is ever split.

use serde::Serialize;
use unicode_segmentation::UnicodeSegmentation;

/// The longest value we accept for a key without a type (classic `keyword1` templates).
const UNTYPED_MAX_CHARS: usize = 200;
const ELLIPSIS: char = '…';

/// The type of a data key, read from its name (`thing1` -> [`FieldKind::Thing`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    Thing,
    Number,
    Letter,
    Symbol,
    CharacterString,
    Time,
    Date,
    Amount,
    PhoneNumber,
    CarNumber,
    Name,
    Phrase,
    /// A key without a known type prefix (`keyword1`, `first`, `remark`).
    Untyped,
}

impl FieldKind {
    /// `thing12` -> Thing; `character_string3` -> CharacterString; `keyword1` -> Untyped.
    pub fn of_key(key: &str) -> Self {
        let prefix = key.trim_end_matches(|c: char| c.is_ascii_digit());
        if prefix.len() == key.len() {
            return Self::Untyped;
        }
        match prefix {
            "thing" => Self::Thing,
            "number" => Self::Number,
            "letter" => Self::Letter,
            "symbol" => Self::Symbol,
            "character_string" => Self::CharacterString,
            "time" => Self::Time,
            "date" => Self::Date,
            "amount" => Self::Amount,
            "phone_number" => Self::PhoneNumber,
            "car_number" => Self::CarNumber,
            "name" => Self::Name,
            "phrase" => Self::Phrase,
            _ => Self::Untyped,
        }
    }

    /// The rule in words, for error messages.
    pub fn rule(self) -> &'static str {
        match self {
            Self::Thing => "thing: at most 20 characters",
            Self::Number => "number: at most 32 digits, decimals allowed",
            Self::Letter => "letter: at most 32 letters",
            Self::Symbol => "symbol: at most 5 symbols",
            Self::CharacterString => "character_string: at most 32 digits, letters or symbols",
            Self::Time => {
                "time: 24-hour time (HH:MM[:SS]) with an optional date, a range joined by ~"
            }
            Self::Date => {
                "date: y年m月d日 or y-m-d (also / or .), optional 24-hour time, a range joined by ~"
            }
            Self::Amount => {
                "amount: an optional currency sign, at most 10 digits, decimals allowed, may end in 元"
            }
            Self::PhoneNumber => "phone_number: at most 17 digits and symbols",
            Self::CarNumber => "car_number: at most 8 characters; first and last may be Chinese",
            Self::Name => "name: at most 10 Chinese characters or 20 letters",
            Self::Phrase => "phrase: at most 5 Chinese characters",
            Self::Untyped => "at most 200 characters",
        }
    }

    /// Text fields may be shortened on request; shortening a number or a date changes it.
    fn truncatable_to(self) -> Option<usize> {
        match self {
            Self::Thing => Some(20),
            Self::Untyped => Some(UNTYPED_MAX_CHARS),
            _ => None,
        }
    }
}

/// A value that passed the rule of its key. Only [`FieldValue::check`] builds one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldValue {
    value: String,
    truncated: bool,
}

impl Serialize for FieldValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.value)
    }
}

/// A value that breaks its key's rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("data.{field}.value {problem} ({rule})")]
pub struct FieldError {
    pub field: String,
    pub problem: String,
    pub rule: &'static str,
}

impl FieldValue {
    /// Checks `value` against the rule of `key`'s type; with `truncate`, an over-long text
    /// field is shortened (at a character boundary, ending in `…`) instead of refused.
    pub fn check(key: &str, value: &str, truncate: bool) -> Result<Self, FieldError> {
        let kind = FieldKind::of_key(key);
        let fail = |problem: &str| FieldError {
            field: key.to_owned(),
            problem: problem.to_owned(),
            rule: kind.rule(),
        };
        if value.is_empty() {
            return Err(fail("is empty"));
        }
        if value.chars().any(char::is_control) {
            return Err(fail(
                "contains a control character (newline, tab...), which WeChat refuses",
            ));
        }
        let chars = value.chars().count();
        if let Some(max) = kind.truncatable_to()
            && chars > max
        {
            if truncate {
                return Ok(Self {
                    value: shorten(value, max),
                    truncated: true,
                });
            }
            return Err(fail(&format!(
                "is {chars} characters long (send \"truncate\": true to shorten it)"
            )));
        }
        if !kind_accepts(kind, value) {
            return Err(fail("breaks the rule"));
        }
        Ok(Self {
            value: value.to_owned(),
            truncated: false,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }

    pub fn was_truncated(&self) -> bool {
        self.truncated
    }
}

/// The longest prefix of whole grapheme clusters that, with `…`, fits in `max` characters.
fn shorten(value: &str, max: usize) -> String {
    let budget = max.saturating_sub(1);
    let mut out = String::new();
    let mut used = 0;
    for g in value.graphemes(true) {
        let n = g.chars().count();
        if used + n > budget {
            break;
        }
        out.push_str(g);
        used += n;
    }
    out.push(ELLIPSIS);
    out
}

fn is_chinese(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{20000}'..='\u{2A6DF}' | '\u{F900}'..='\u{FAFF}')
}

fn kind_accepts(kind: FieldKind, v: &str) -> bool {
    let n = v.chars().count();
    match kind {
        // Length already checked above; anything printable is fine.
        FieldKind::Thing | FieldKind::Untyped => true,
        FieldKind::Number => is_decimal(v, 32),
        FieldKind::Letter => n <= 32 && v.chars().all(|c| c.is_ascii_alphabetic()),
        FieldKind::Symbol => n <= 5 && v.chars().all(|c| c.is_ascii_punctuation()),
        FieldKind::CharacterString => n <= 32 && v.chars().all(|c| c.is_ascii_graphic()),
        FieldKind::PhoneNumber => {
            n <= 17
                && v.chars().any(|c| c.is_ascii_digit())
                && v.chars()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_punctuation() || c == ' ')
        }
        FieldKind::CarNumber => {
            let cs: Vec<char> = v.chars().collect();
            n <= 8
                && cs.iter().enumerate().all(|(i, &c)| {
                    c.is_ascii_alphanumeric() || (is_chinese(c) && (i == 0 || i == cs.len() - 1))
                })
        }
        FieldKind::Name => {
            (n <= 10 && v.chars().all(is_chinese))
                || (n <= 20
                    && v.chars()
                        .all(|c| c.is_ascii_alphabetic() || c == ' ' || c == '.'))
        }
        FieldKind::Phrase => n <= 5 && v.chars().all(is_chinese),
        FieldKind::Amount => is_amount(v),
        FieldKind::Time => range(v, |p| date_time(p, false)),
        FieldKind::Date => range(v, |p| date_time(p, true)),
    }
}

/// Digits with at most one decimal point, at most `max_digits` digits in all.
fn is_decimal(v: &str, max_digits: usize) -> bool {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    !int.is_empty()
        && digits(int)
        && digits(frac)
        && (frac.is_empty() != v.contains('.'))
        && int.len() + frac.len() <= max_digits
}

/// `¥12.50`, `$3`, `100元`, `￥8.8元`. UNCONFIRMED whether WeChat demands the sign; we allow
/// it to be absent, as real templates commonly send `100.00元`.
fn is_amount(v: &str) -> bool {
    let v = v.strip_suffix('元').unwrap_or(v);
    let v = v
        .strip_prefix(['¥', '￥', '$', '€', '£', '₩', '₹'])
        .unwrap_or(v);
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    is_decimal(v, 12) && int.len() <= 10 && frac.len() <= 2
}

/// One value or a range `a~b` of values, each accepted by `part`.
fn range(v: &str, part: impl Fn(&str) -> bool) -> bool {
    let parts: Vec<&str> = v.split('~').map(str::trim).collect();
    parts.len() <= 2 && parts.iter().all(|p| part(p))
}

/// `[date] time` (time required) or `date [time]` (date required).
fn date_time(v: &str, date_required: bool) -> bool {
    let v = v.trim();
    if let Some((d, t)) = v.split_once(' ') {
        return is_date(d.trim()) && is_time(t.trim());
    }
    if date_required {
        is_date(v)
    } else {
        is_time(v) || is_date_with_cjk_time(v)
    }
}

/// `2019年10月1日15:01` (no space between date and time).
fn is_date_with_cjk_time(v: &str) -> bool {
    v.split_once('日')
        .is_some_and(|(d, t)| is_date(&format!("{d}日")) && is_time(t))
}

fn is_time(v: &str) -> bool {
    let parts: Vec<&str> = v.split(':').collect();
    if !(2..=3).contains(&parts.len())
        || parts
            .iter()
            .any(|p| p.is_empty() || p.len() > 2 || !p.chars().all(|c| c.is_ascii_digit()))
    {
        return false;
    }
    let n: Vec<u32> = parts.iter().map(|p| p.parse().unwrap_or(99)).collect();
    n[0] < 24 && n[1] < 60 && n.get(2).is_none_or(|s| *s < 60)
}

fn is_date(v: &str) -> bool {
    let fields: Vec<&str> = if let Some(rest) = v.strip_suffix('日') {
        let Some((y, rest)) = rest.split_once('年') else {
            return false;
        };
        let Some((m, d)) = rest.split_once('月') else {
            return false;
        };
        vec![y, m, d]
    } else {
        let Some(sep) = ['-', '/', '.'].into_iter().find(|s| v.contains(*s)) else {
            return false;
        };
        v.split(sep).collect()
    };
    if fields.len() != 3
        || fields
            .iter()
            .any(|f| f.is_empty() || !f.chars().all(|c| c.is_ascii_digit()))
    {
        return false;
    }
    let (y, m, d) = (
        fields[0].parse::<u32>().unwrap_or(0),
        fields[1].parse::<u32>().unwrap_or(0),
        fields[2].parse::<u32>().unwrap_or(0),
    );
    fields[0].len() == 4 && (1..=12).contains(&m) && (1..=31).contains(&d) && y >= 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(key: &str, v: &str) -> bool {
        FieldValue::check(key, v, false).is_ok()
    }

    #[test]
    fn kinds_come_from_the_key_name() {
        assert_eq!(FieldKind::of_key("thing1"), FieldKind::Thing);
        assert_eq!(
            FieldKind::of_key("character_string12"),
            FieldKind::CharacterString
        );
        assert_eq!(FieldKind::of_key("phone_number3"), FieldKind::PhoneNumber);
        assert_eq!(FieldKind::of_key("keyword1"), FieldKind::Untyped);
        assert_eq!(FieldKind::of_key("thing"), FieldKind::Untyped);
        assert_eq!(FieldKind::of_key("first"), FieldKind::Untyped);
    }

    #[test]
    fn the_rules_of_the_protocol_doc() {
        assert!(ok("thing1", "您的订单已发货"));
        assert!(ok("thing1", &"字".repeat(20)));
        assert!(!ok("thing1", &"字".repeat(21)));
        assert!(ok("number2", "12345.67"));
        assert!(!ok("number2", "12a"));
        assert!(!ok("number2", &"1".repeat(33)));
        assert!(ok("letter3", "abcXYZ"));
        assert!(!ok("letter3", "abc1"));
        assert!(ok("symbol4", "%$#"));
        assert!(!ok("symbol4", "%%%%%%"));
        assert!(ok("character_string5", "SF1234567890-X"));
        assert!(!ok("character_string5", "有中文"));
        assert!(ok("time6", "15:01"));
        assert!(ok("time6", "2019年10月1日 15:01"));
        assert!(ok("time6", "2019-10-01 15:01:02"));
        assert!(ok("time6", "15:01 ~ 16:30"));
        assert!(!ok("time6", "25:00"));
        assert!(!ok("time6", "3pm"));
        assert!(ok("date7", "2019年10月1日"));
        assert!(ok("date7", "2019-10-01"));
        assert!(ok("date7", "2019/10/01 15:01"));
        assert!(ok("date7", "2019.10.01~2019.10.07"));
        assert!(!ok("date7", "2019-13-01"));
        assert!(!ok("date7", "yesterday"));
        assert!(ok("amount8", "¥100.50"));
        assert!(ok("amount8", "100元"));
        assert!(ok("amount8", "￥8.8元"));
        assert!(!ok("amount8", "¥12345678901"));
        assert!(!ok("amount8", "1.234"));
        assert!(ok("phone_number9", "+86-10-12345678"));
        assert!(!ok("phone_number9", "123456789012345678"));
        assert!(!ok("phone_number9", "call me"));
        assert!(ok("car_number10", "粤A8Z888挂"));
        assert!(!ok("car_number10", "A粤8Z888"));
        assert!(ok("name11", "张三"));
        assert!(ok("name11", "John Smith"));
        assert!(!ok("name11", &"张".repeat(11)));
        assert!(ok("phrase12", "已发货"));
        assert!(!ok("phrase12", "shipped"));
        assert!(ok("keyword1", "anything, 任何"));
    }

    #[test]
    fn control_characters_and_empty_values_are_refused_everywhere() {
        for key in ["thing1", "keyword1", "number2"] {
            let e = FieldValue::check(key, "a\nb", true).unwrap_err();
            assert!(e.problem.contains("control"), "{e}");
            assert!(FieldValue::check(key, "", true).is_err());
        }
    }

    #[test]
    fn truncation_is_opt_in_and_never_splits_a_character() {
        let long = "ab".to_owned() + &"🇨🇳".repeat(10);
        let e = FieldValue::check("thing1", &long, false).unwrap_err();
        assert_eq!(e.field, "thing1");
        assert!(e.to_string().contains("truncate"), "{e}");
        let v = FieldValue::check("thing1", &long, true).unwrap();
        assert!(v.was_truncated());
        // A flag is two code points: the 9th would need 20 with the ellipsis, so the cut
        // keeps 8 whole flags and never half of one.
        assert_eq!(v.as_str(), format!("ab{}…", "🇨🇳".repeat(8)));
        let v = FieldValue::check("thing1", "订单已经发货请注意查收快递单号稍后发送给您", true)
            .unwrap();
        assert_eq!(v.as_str(), "订单已经发货请注意查收快递单号稍后发送…");
        // Numbers are never shortened.
        assert!(FieldValue::check("number1", &"1".repeat(40), true).is_err());
    }

    proptest! {
        #[test]
        fn truncated_text_fits_and_is_a_prefix(s in "\\PC{1,60}") {
            if let Ok(v) = FieldValue::check("thing1", &s, true) {
                prop_assert!(v.as_str().chars().count() <= 20);
                let kept = v.as_str().strip_suffix('…').filter(|_| v.was_truncated()).unwrap_or(v.as_str());
                prop_assert!(s.starts_with(kept));
            }
        }
    }
}
