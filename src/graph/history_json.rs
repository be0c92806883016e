//! A direct reader of message_history pages, the pages there are many of.
//!
//! `serde_json` through the derived visitors spends most of a page's decode
//! in its generic machinery (a visitor call per field, keys matched by
//! visitor, `deserialize_any` for every lenient field). This reader walks
//! the page's bytes once and builds the same [`Page`] of
//! [`MessageHistory`]`<Cow<str>>`, its strings borrowed from the body.
//!
//! It is a fast path, never a second opinion: it reads only what it is sure
//! `serde_json` reads the same way (the page shape the API sends, with any
//! unknown fields), and answers `None` at the first thing it is not sure of
//! (a duplicate key, an escaped key, a float where an id goes, a record of
//! the wrong type, deep nesting, anything malformed). The caller then
//! decodes the page with `serde_json` as before, which is what decides and
//! salvages. So a page this reader accepts decodes to exactly what
//! `serde_json` makes of it (the differential test below checks that on
//! generated pages), and a page it refuses loses nothing.

use std::borrow::Cow;

use crate::graph::model::{Application, EventList, MessageHistory, Page, Paging, StatusEvent};

/// The page `body` decoded, or `None` when `serde_json` must decide.
pub fn read(body: &str) -> Option<Page<MessageHistory<Cow<'_, str>>>> {
    let mut r = Reader {
        s: body,
        b: body.as_bytes(),
        i: 0,
    };
    let page = r.page()?;
    r.ws();
    (r.i == r.b.len()).then_some(page)
}

/// The bytes of `word` (little-endian) that end a string (`"`), start an
/// escape (`\\`) or may not be in one (a control character), flagged by
/// their high bit: the has-zero-byte and has-less-than tests, a word at a time.
fn specials(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = zero_in(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_in(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    quote | backslash | control
}

/// Deepest nesting a skipped value may have (`serde_json` allows 128 in all).
const MAX_SKIP_DEPTH: u32 = 64;

struct Reader<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

/// The fields of one object seen so far, to refuse a duplicate key
/// (`serde_json` fails a struct with one).
#[derive(Default)]
struct Fields(u8);

impl Fields {
    fn first(&mut self, bit: u8) -> Option<()> {
        if self.0 & bit != 0 {
            return None;
        }
        self.0 |= bit;
        Some(())
    }
}

/// Reads an object's members into the fields of `$out`: each known key at
/// most once (its bit in a [`Fields`]), its value by the reader method
/// named; unknown keys skipped.
macro_rules! members {
    ($r:expr, $out:ident: $($key:literal / $bit:literal => $field:ident: $read:ident),+ $(,)?) => {{
        let mut fields = Fields::default();
        $r.object(|r, key| match key {
            $($key => {
                fields.first($bit)?;
                $out.$field = r.$read()?;
                Some(())
            })+
            _ => r.skip(1),
        })
    }};
}

impl<'a> Reader<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte after white space, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// `null`, consumed, when it is next.
    fn null(&mut self) -> bool {
        if self.peek() == Some(b'n') && self.b.get(self.i..self.i + 4) == Some(b"null") {
            self.i += 4;
            return true;
        }
        false
    }

    /// The members of an object: `member` reads each value after its key.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.list(b'{', b'}', |r| {
            let key = r.key()?;
            r.eat(b':')?;
            member(r, key)
        })
    }

    /// The elements of an array: `element` reads each.
    fn array(&mut self, element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.list(b'[', b']', element)
    }

    /// Items between `open` and `close`, separated by commas (none after the last).
    fn list(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.eat(open)?;
        if self.peek()? == close {
            self.i += 1;
            return Some(());
        }
        loop {
            item(self)?;
            match self.peek()? {
                b',' => self.i += 1,
                c if c == close => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A key: a string without escapes.
    fn key(&mut self) -> Option<&'a str> {
        match self.string()? {
            Cow::Borrowed(k) => Some(k),
            Cow::Owned(_) => None,
        }
    }

    /// A string, borrowed unless it has escapes (which `serde_json` undoes).
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.i;
        let mut j = start;
        // Eight bytes at a time while none ends the string or needs a look.
        while let Some(chunk) = self.b.get(j..j + 8) {
            let word = u64::from_le_bytes(chunk.try_into().ok()?);
            let special = specials(word);
            if special != 0 {
                // The lowest flag is the first such byte (a false flag can
                // only follow a true one).
                j += (special.trailing_zeros() / 8) as usize;
                break;
            }
            j += 8;
        }
        loop {
            match *self.b.get(j)? {
                b'"' => {
                    self.i = j + 1;
                    return Some(Cow::Borrowed(self.s.get(start..j)?));
                }
                b'\\' => break,
                c if c < 0x20 => return None,
                _ => j += 1,
            }
        }
        // Escapes: find the closing quote past escaped ones, and let
        // serde_json unescape (and check) the string.
        loop {
            match *self.b.get(j)? {
                b'"' => break,
                b'\\' => j += 2,
                _ => j += 1,
            }
        }
        let quoted = self.s.get(start - 1..j + 1)?;
        self.i = j + 1;
        serde_json::from_str::<String>(quoted).ok().map(Cow::Owned)
    }

    /// A string or `null`.
    fn text(&mut self) -> Option<Option<Cow<'a, str>>> {
        self.or_null(Self::string)
    }

    /// `null` as `None`, else what `read` reads.
    fn or_null<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.null() {
            return Some(None);
        }
        read(self).map(Some)
    }

    /// A string, an integer (as its digits, which are what `serde_json`
    /// prints it as) or `null`.
    fn lenient_text(&mut self) -> Option<Option<Cow<'a, str>>> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => {
                let (digits, _) = self.integer()?;
                Some(Some(Cow::Borrowed(digits)))
            }
            _ => self.text(),
        }
    }

    /// Unix seconds: an integer that fits `i64`, a string of one, or `null`.
    fn time(&mut self) -> Option<Option<i64>> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => {
                let (_, v) = self.integer()?;
                Some(Some(v))
            }
            _ => match self.text()? {
                None => Some(None),
                Some(t) => t.trim().parse().ok().map(Some),
            },
        }
    }

    /// A JSON integer that fits `i64`, with no fraction or exponent: its
    /// text and its value. Anything else is refused, an id past `i64`
    /// included (`serde_json` reads it, as rarely as it comes).
    fn integer(&mut self) -> Option<(&'a str, i64)> {
        let start = self.i;
        let negative = self.b.get(self.i) == Some(&b'-');
        if negative {
            self.i += 1;
        }
        let first = self.i;
        let mut value: u64 = 0;
        while let Some(&c @ b'0'..=b'9') = self.b.get(self.i) {
            value = value.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            self.i += 1;
        }
        let digits = self.i - first;
        // No digits, a leading zero, "-0", or a fraction or exponent next.
        if digits == 0
            || (digits > 1 && self.b[first] == b'0')
            || (negative && value == 0)
            || matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        let v = if negative {
            0i64.checked_sub_unsigned(value)?
        } else {
            i64::try_from(value).ok()?
        };
        Some((self.s.get(start..self.i)?, v))
    }

    /// Skips any JSON value, checking it as `serde_json` would.
    fn skip(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_SKIP_DEPTH {
            return None;
        }
        match self.peek()? {
            b'{' => self.object(|r, _| r.skip(depth + 1)),
            b'[' => self.array(|r| r.skip(depth + 1)),
            b'"' => self.string().map(drop),
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        (self.b.get(self.i..self.i + word.len())? == word).then(|| self.i += word.len())
    }

    /// A number of any JSON form: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.b.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.i;
        self.digits();
        (self.i > start).then_some(())
    }

    fn page(&mut self) -> Option<Page<MessageHistory<Cow<'a, str>>>> {
        let mut data = None;
        let mut paging = None;
        let mut fields = Fields::default();
        self.object(|r, key| match key {
            "data" => {
                fields.first(1)?;
                let mut messages = Vec::with_capacity(100);
                r.array(|r| {
                    // Built where it is kept: a record is not moved after.
                    messages.push(MessageHistory::default());
                    r.message(messages.last_mut()?)
                })?;
                data = Some(messages);
                Some(())
            }
            "paging" => {
                fields.first(2)?;
                // Once a page, and with its own optional parts: serde_json
                // reads the value itself.
                let start = r.i;
                r.skip(1)?;
                paging = serde_json::from_str::<Option<Paging>>(r.s.get(start..r.i)?).ok()?;
                Some(())
            }
            _ => r.skip(1),
        })?;
        Some(Page {
            data: data?,
            paging,
            invalid: Vec::new(),
        })
    }

    fn message(&mut self, m: &mut MessageHistory<Cow<'a, str>>) -> Option<()> {
        members!(self, m: "id" / 1 => id: lenient_text,
            "message_id" / 2 => message_id: text,
            "events" / 4 => events: events)
    }

    fn events(&mut self) -> Option<Option<EventList<Cow<'a, str>>>> {
        self.or_null(|r| {
            let mut list = EventList::default();
            let mut fields = Fields::default();
            r.object(|r, key| match key {
                "data" => {
                    fields.first(1)?;
                    r.array(|r| {
                        list.data.push(StatusEvent::default());
                        r.event(list.data.last_mut()?)
                    })
                }
                _ => r.skip(1),
            })?;
            Some(list)
        })
    }

    fn event(&mut self, e: &mut StatusEvent<Cow<'a, str>>) -> Option<()> {
        members!(self, e: "id" / 1 => id: lenient_text,
            "delivery_status" / 2 => delivery_status: text,
            "timestamp" / 4 => timestamp: time,
            "webhook_update_state" / 8 => webhook_update_state: text,
            "application" / 16 => application: application,
            "error_description" / 32 => error_description: text)
    }

    fn application(&mut self) -> Option<Option<Application<Cow<'a, str>>>> {
        self.or_null(|r| {
            let mut app = Application::default();
            members!(r, app: "id" / 1 => id: lenient_text)?;
            Some(app)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `serde_json` makes of `body` through the derived visitors (the
    /// whole page at once, as `Page::decode` first tries).
    fn serde(body: &str) -> Option<Page<MessageHistory<Cow<'_, str>>>> {
        serde_json::from_str(body).ok()
    }

    /// The reader agrees with serde_json wherever it answers.
    fn agrees(body: &str) -> Result<bool, TestCaseError> {
        let Some(direct) = read(body) else {
            return Ok(false);
        };
        prop_assert_eq!(Some(direct), serde(body), "{}", body);
        Ok(true)
    }

    /// A value of the shapes a field may meet: valid ones for its type and
    /// the ones that make serde_json fail or read it another way.
    fn value(valid: bool) -> BoxedStrategy<String> {
        let strings = prop_oneof![
            "[a-zA-Z0-9_. éü日本😀]{0,12}".prop_map(|s| format!("\"{s}\"")),
            Just(r#""esc\"aped\\ \/ \u00e9 \ud83d\ude00 \n""#.to_string()),
            Just(r#"" 1795000000 ""#.to_string()),
            Just("null".to_string()),
        ];
        if valid {
            return strings.boxed();
        }
        prop_oneof![
            strings,
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            prop_oneof![
                Just("-0"),
                Just("012"),
                Just("1.5"),
                Just("1e3"),
                Just("-"),
                Just("99999999999999999999999"),
                Just("true"),
                Just("nul"),
                Just("[]"),
                Just(r#"["x"]"#),
                Just(r#"{"id":"1"}"#),
                Just(r#""bad \x escape""#),
                Just(r#""\ud800""#),
                Just("\"ctl\u{1}\""),
                Just(r#""12x""#),
            ]
            .prop_map(String::from),
        ]
        .boxed()
    }

    /// An object of `keys` (each maybe twice), values from `value`, and an
    /// unknown member of any shape.
    fn object(
        keys: &'static [&'static str],
        value: impl Fn(&'static str) -> BoxedStrategy<String>,
        valid: bool,
    ) -> BoxedStrategy<String> {
        let members: Vec<BoxedStrategy<String>> = keys
            .iter()
            .map(|k| {
                (value(k), 0..if valid { 2usize } else { 3 })
                    .prop_map(move |(v, n)| {
                        (0..n)
                            .map(|_| format!("\"{k}\":{v}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .boxed()
            })
            .collect();
        let unknown = prop_oneof![
            Just(String::new()),
            Just(r#""extra":{"deep":[1,2.5e-3,"s",null,true,{"a":[]}]}"#.to_string()),
            Just(r#""paging":{"cursors":{"after":"X"}}"#.to_string()),
        ];
        (members, unknown, any::<bool>())
            .prop_map(|(members, unknown, spaced)| {
                let mut parts: Vec<String> =
                    members.into_iter().filter(|m| !m.is_empty()).collect();
                if !unknown.is_empty() {
                    parts.push(unknown);
                }
                let sep = if spaced { " ,\n\t" } else { "," };
                format!("{{{}}}", parts.join(sep))
            })
            .boxed()
    }

    fn event(valid: bool) -> BoxedStrategy<String> {
        const KEYS: &[&str] = &[
            "id",
            "delivery_status",
            "timestamp",
            "webhook_update_state",
            "application",
            "error_description",
        ];
        object(
            KEYS,
            move |k| match k {
                "id" => prop_oneof![value(valid), any::<u32>().prop_map(|n| n.to_string())].boxed(),
                "timestamp" => prop_oneof![
                    value(valid).prop_filter("a time", move |v| !valid || v == "null"),
                    (1_700_000_000i64..1_800_000_000).prop_map(|n| n.to_string()),
                ]
                .boxed(),
                "application" => prop_oneof![
                    Just("null".to_string()),
                    object(&["id"], move |_| value(valid), valid),
                    value(valid).prop_filter("an object", move |v| !valid || v == "null"),
                ]
                .boxed(),
                _ => value(valid),
            },
            valid,
        )
    }

    fn message(valid: bool) -> BoxedStrategy<String> {
        let events = prop_oneof![
            prop::collection::vec(event(valid), 0..5)
                .prop_map(|e| format!(r#"{{"data":[{}]}}"#, e.join(","))),
            Just("null".to_string()),
            Just("{}".to_string()),
        ];
        let events = if valid {
            events.boxed()
        } else {
            prop_oneof![events, value(false)].boxed()
        };
        object(
            &["id", "message_id", "events"],
            move |k| match k {
                "events" => events.clone(),
                _ => value(valid),
            },
            valid,
        )
    }

    fn page(valid: bool) -> BoxedStrategy<String> {
        let paging = prop_oneof![
            Just(r#"{"cursors":{"before":"A","after":"B"},"next":"https:\/\/x"}"#.to_string()),
            Just("null".to_string()),
            Just(r#"{"cursors":{}}"#.to_string()),
        ];
        let messages =
            prop::collection::vec(message(valid), 0..4).prop_map(|m| format!("[{}]", m.join(",")));
        let body = (messages, paging, any::<bool>()).prop_map(|(data, paging, first)| {
            if first {
                format!(r#"{{"data":{data},"paging":{paging}}}"#)
            } else {
                format!(r#" {{ "paging" : {paging} , "data" : {data} }} "#)
            }
        });
        if valid {
            return body.boxed();
        }
        // Cut short, or one byte changed.
        (body, any::<prop::sample::Index>(), 0..3u8, any::<u8>())
            .prop_map(|(b, at, how, byte)| {
                let at = at.index(b.len().max(1));
                match how {
                    0 => b,
                    1 => b.get(..at).unwrap_or(&b).to_string(),
                    _ => {
                        let mut bytes = b.into_bytes();
                        if let Some(c) = bytes.get_mut(at) {
                            *c = byte & 0x7f;
                        }
                        String::from_utf8(bytes).unwrap_or_default()
                    }
                }
            })
            .boxed()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// A page of the shapes the API sends is read, as serde_json reads it.
        #[test]
        fn reads_every_page_of_valid_shapes_as_serde_json_does(body in page(true)) {
            prop_assert!(agrees(&body)?, "refused {}", body);
        }

        /// Whatever it is given, an answer is serde_json's answer.
        #[test]
        fn answers_only_what_serde_json_answers(body in page(false)) {
            agrees(&body)?;
        }
    }

    #[test]
    fn refuses_what_serde_json_must_decide() {
        let ok = r#"{"data":[{"id":"1","events":{"data":[{"id":"e","timestamp":5}]}}]}"#;
        assert!(read(ok).is_some());
        for body in [
            // A duplicate key, an escaped key, a float id, trailing bytes,
            // a record that is not an object, a time past i64.
            r#"{"data":[],"data":[]}"#,
            r#"{"d\u0061ta":[]}"#,
            r#"{"data":[{"id":1.5}]}"#,
            r#"{"data":[]} x"#,
            r#"{"data":[null]}"#,
            r#"{"data":[{"events":{"data":[{"timestamp":9223372036854775808}]}}]}"#,
            r#"{"paging":null}"#,
        ] {
            assert!(read(body).is_none(), "{body}");
        }
    }
}
