//! The simulator's JSON: opaque cursors, the `fields` parameter, the
//! records as Graph renders them (only the fields asked for; an unknown one
//! is an error), and pages with Graph's `paging` object.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::sim::records::{SimActivity, SimEvent, SimMessage, SimPhoneNumber, Stored};

/// Bytes in front of every cursor, so cursors always contain `+` and `/`.
const CURSOR_PREFIX: &[u8] = &[0xfb, 0xef, 0xff];

pub(super) fn encode_cursor(seq: u64) -> String {
    let mut raw = CURSOR_PREFIX.to_vec();
    raw.extend_from_slice(seq.to_string().as_bytes());
    STANDARD.encode(raw)
}

pub(super) fn decode_cursor(c: &str) -> Option<u64> {
    let raw = STANDARD.decode(c).ok()?;
    std::str::from_utf8(raw.strip_prefix(CURSOR_PREFIX)?)
        .ok()?
        .parse()
        .ok()
}

/// A parsed `fields` value: top-level names with optional nested lists.
pub(super) type Fields = Vec<(String, Option<Vec<String>>)>;

pub(super) fn parse_fields(s: &str) -> Fields {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    let mut push = |cur: &mut String| {
        let t = cur.trim();
        if !t.is_empty() {
            match t.split_once('{') {
                Some((name, rest)) => out.push((
                    name.trim().to_string(),
                    Some(
                        rest.trim_end_matches('}')
                            .split(',')
                            .map(|f| f.trim().to_string())
                            .filter(|f| !f.is_empty())
                            .collect(),
                    ),
                )),
                None => out.push((t.to_string(), None)),
            }
        }
        cur.clear();
    };
    for ch in s.chars() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                push(&mut cur);
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    push(&mut cur);
    out
}

fn put(obj: &mut Map<String, Value>, key: &str, v: &Option<String>) {
    if let Some(v) = v {
        obj.insert(key.to_string(), Value::String(v.clone()));
    }
}

pub(super) fn activity_json(a: &SimActivity, fields: &[String]) -> Result<Value, String> {
    let mut o = Map::new();
    for f in fields {
        match f.as_str() {
            "id" => put(&mut o, "id", &a.id),
            "event_type" => put(&mut o, "event_type", &a.event_type),
            "category" => put(&mut o, "category", &a.category),
            "actor_id" => put(&mut o, "actor_id", &a.actor_id),
            "actor_business_id" => put(&mut o, "actor_business_id", &a.actor_business_id),
            "timestamp" => {
                o.insert("timestamp".into(), json!(a.timestamp));
            }
            other => return Err(other.to_string()),
        }
    }
    Ok(Value::Object(o))
}

pub(super) fn phone_json(id: &str, p: &SimPhoneNumber, fields: &[String]) -> Result<Value, String> {
    let mut o = Map::new();
    for f in fields {
        match f.as_str() {
            "id" => {
                o.insert("id".into(), json!(id));
            }
            "display_phone_number" => put(&mut o, f, &p.display_phone_number),
            "verified_name" => put(&mut o, f, &p.verified_name),
            "quality_rating" => put(&mut o, f, &p.quality_rating),
            "messaging_limit_tier" => put(&mut o, f, &p.messaging_limit_tier),
            "whatsapp_business_manager_messaging_limit" => {
                put(&mut o, f, &p.whatsapp_business_manager_messaging_limit)
            }
            "status" => put(&mut o, f, &p.status),
            other => return Err(other.to_string()),
        }
    }
    Ok(Value::Object(o))
}

/// A template with the requested fields only; a value that is not an
/// object (a malformed record a test put in) is sent as is.
pub(super) fn template_json(t: &Value, fields: &[String]) -> Result<Value, String> {
    const KNOWN: [&str; 6] = [
        "id",
        "name",
        "language",
        "category",
        "status",
        "quality_score",
    ];
    let Some(all) = t.as_object() else {
        return Ok(t.clone());
    };
    let mut o = Map::new();
    for f in fields {
        if !KNOWN.contains(&f.as_str()) {
            return Err(f.clone());
        }
        if let Some(v) = all.get(f) {
            o.insert(f.clone(), v.clone());
        }
    }
    Ok(Value::Object(o))
}

fn event_json(e: &SimEvent, fields: &[String]) -> Result<Value, String> {
    let mut o = Map::new();
    for f in fields {
        match f.as_str() {
            "id" => put(&mut o, "id", &e.id),
            "delivery_status" => put(&mut o, "delivery_status", &e.delivery_status),
            "webhook_update_state" => put(&mut o, "webhook_update_state", &e.webhook_update_state),
            "webhook_uri" => put(&mut o, "webhook_uri", &e.webhook_uri),
            "error_description" => put(&mut o, "error_description", &e.error_description),
            "timestamp" => {
                o.insert("timestamp".into(), json!(e.timestamp));
            }
            "application" => {
                if let Some(app) = &e.application_id {
                    o.insert("application".into(), json!({"id": app}));
                }
            }
            other => return Err(other.to_string()),
        }
    }
    Ok(Value::Object(o))
}

pub(super) fn message_json(m: &SimMessage, fields: &Fields) -> Result<Value, String> {
    let mut o = Map::new();
    for (f, sub) in fields {
        match f.as_str() {
            "id" => {
                o.insert("id".into(), json!(m.id));
            }
            "message_id" => {
                o.insert("message_id".into(), json!(m.message_id));
            }
            "events" => {
                let default = ["id", "delivery_status", "timestamp", "webhook_update_state"]
                    .map(String::from)
                    .to_vec();
                let sub = sub.as_ref().unwrap_or(&default);
                let data = m
                    .events
                    .iter()
                    .map(|e| event_json(e, sub))
                    .collect::<Result<Vec<_>, _>>()?;
                o.insert("events".into(), json!({ "data": data }));
            }
            other => return Err(other.to_string()),
        }
    }
    Ok(Value::Object(o))
}

/// One page of `items` (stored oldest first), newest first, after `after`.
pub(super) fn page<T>(
    items: &[Stored<T>],
    after: Option<u64>,
    limit: usize,
    render: impl Fn(&T) -> Result<Value, String>,
    next_base: &str,
) -> Result<String, String> {
    Ok(render_page(items, after, limit, render)?.body(next_base))
}

/// A page's `data`, serialized, and where it sits in the list: what a
/// response needs besides its own `next` URL, so it can be cached.
#[derive(Debug)]
pub(super) struct RenderedPage {
    data: String,
    /// (newest, oldest) sequence numbers shown.
    span: Option<(u64, u64)>,
    more: bool,
}

impl RenderedPage {
    pub(super) fn body(&self, next_base: &str) -> String {
        let Some((first, last)) = self.span else {
            return format!("{{\"data\":{}}}", self.data);
        };
        let after = encode_cursor(last);
        let mut paging = json!({"cursors": {
            "before": encode_cursor(first + 1),
            "after": after,
        }});
        if self.more {
            // Graph's absolute `next` URL; the exporter must never follow it.
            paging["next"] = json!(format!("{next_base}&after={}", urlencode(&after)));
        }
        format!("{{\"data\":{},\"paging\":{paging}}}", self.data)
    }
}

pub(super) fn render_page<T>(
    items: &[Stored<T>],
    after: Option<u64>,
    limit: usize,
    render: impl Fn(&T) -> Result<Value, String>,
) -> Result<RenderedPage, String> {
    let selected: Vec<&Stored<T>> = items
        .iter()
        .rev()
        .filter(|s| after.is_none_or(|a| s.seq < a))
        .take(limit + 1)
        .collect();
    let more = selected.len() > limit;
    let shown = &selected[..selected.len().min(limit)];
    let data = shown
        .iter()
        .map(|s| render(&s.item))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RenderedPage {
        data: Value::Array(data).to_string(),
        span: shown.first().zip(shown.last()).map(|(f, l)| (f.seq, l.seq)),
        more,
    })
}

pub(super) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_opaque_round_trips_with_url_specials() {
        let c = encode_cursor(42);
        assert!(c.contains('+') && c.contains('/'), "{c}");
        assert_eq!(decode_cursor(&c), Some(42));
        assert_eq!(decode_cursor("MAZDZD"), None);
    }

    #[test]
    fn fields_with_nested_events() {
        let f = parse_fields("id,message_id,events{id,delivery_status}");
        assert_eq!(f[2].0, "events");
        assert_eq!(
            f[2].1.as_deref(),
            Some(&["id".to_string(), "delivery_status".to_string()][..])
        );
    }
}
