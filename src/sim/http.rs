//! The simulator's HTTP side: routing, auth, query parsing, JSON building.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::{Fault, SimActivity, SimEvent, SimMessage, SimPhoneNumber, Simulator, Stored};

/// Bytes in front of every cursor, so cursors always contain `+` and `/`.
const CURSOR_PREFIX: &[u8] = &[0xfb, 0xef, 0xff];

pub(super) fn router(sim: Simulator) -> Router {
    Router::new()
        .route("/{version}/{id}/{edge}", get(handle))
        .with_state(sim)
}

fn graph_error(status: u16, code: i64, message: &str, is_transient: bool) -> Response {
    let body = json!({"error": {
        "message": message,
        "type": if code == 190 { "OAuthException" } else { "GraphMethodException" },
        "code": code,
        "is_transient": is_transient,
        "fbtrace_id": "AsimulatorTraceId",
    }});
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

fn encode_cursor(seq: u64) -> String {
    let mut raw = CURSOR_PREFIX.to_vec();
    raw.extend_from_slice(seq.to_string().as_bytes());
    STANDARD.encode(raw)
}

fn decode_cursor(c: &str) -> Option<u64> {
    let raw = STANDARD.decode(c).ok()?;
    std::str::from_utf8(raw.strip_prefix(CURSOR_PREFIX)?)
        .ok()?
        .parse()
        .ok()
}

/// A parsed `fields` value: top-level names with optional nested lists.
type Fields = Vec<(String, Option<Vec<String>>)>;

fn parse_fields(s: &str) -> Fields {
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

fn activity_json(a: &SimActivity, fields: &[String]) -> Result<Value, String> {
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

fn phone_json(id: &str, p: &SimPhoneNumber, fields: &[String]) -> Result<Value, String> {
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
            "status" => put(&mut o, f, &p.status),
            other => return Err(other.to_string()),
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

fn message_json(m: &SimMessage, fields: &Fields) -> Result<Value, String> {
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
fn page<T>(
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
    fn body(&self, next_base: &str) -> String {
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

fn render_page<T>(
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

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Counts a request as in flight until dropped.
struct InFlight(Simulator);

impl InFlight {
    fn new(sim: &Simulator) -> Self {
        let mut d = sim.lock();
        d.in_flight += 1;
        d.max_in_flight = d.max_in_flight.max(d.in_flight);
        InFlight(sim.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.lock().in_flight -= 1;
    }
}

async fn handle(
    State(sim): State<Simulator>,
    Path((version, id, edge)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let _in_flight = InFlight::new(&sim);
    let extra = sim.lock().headers.get(&id).cloned().unwrap_or_default();
    let mut resp = answer(&sim, &version, &id, &edge, &q, &headers).await;
    for (k, v) in extra {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::try_from(k),
            axum::http::HeaderValue::try_from(v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

async fn answer(
    sim: &Simulator,
    version: &str,
    id: &str,
    edge: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let (version, id, edge) = (version.to_string(), id.to_string(), edge.to_string());
    let fault = {
        let mut d = sim.lock();
        *d.requests.entry((edge.clone(), id.clone())).or_default() += 1;
        if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
            d.traceparents.push(tp.to_string());
        }
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !auth.is_some_and(|a| d.tokens.iter().any(|t| t == a)) {
            return graph_error(
                401,
                190,
                "Invalid OAuth access token - Cannot parse access token",
                false,
            );
        }
        match d.faults.get_mut(&id) {
            Some(Fault::Sequence(queue)) => {
                let next = queue.pop_front();
                if queue.is_empty() {
                    d.faults.remove(&id);
                }
                next.map(|(status, body)| Fault::Raw { status, body })
            }
            other => other.cloned(),
        }
    };
    match fault {
        Some(Fault::GraphError {
            status,
            code,
            message,
            is_transient,
        }) => return graph_error(status, code, &message, is_transient),
        Some(Fault::Raw { status, body }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::Sequence(_)) | None => {}
    }
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 25,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => {
            return graph_error(
                400,
                100,
                "(#100) Param limit must be an integer between 1 and 100",
                false,
            );
        }
    };
    let after = match q.get("after") {
        None => None,
        Some(c) => match decode_cursor(c) {
            Some(seq) => Some(seq),
            None => return graph_error(400, 100, "(#100) Invalid cursor", false),
        },
    };
    let mut next_base = format!("https://graph.facebook.com/{version}/{id}/{edge}?limit={limit}");
    if let Some(f) = q.get("fields") {
        next_base.push_str(&format!("&fields={}", urlencode(f)));
    }
    let d = sim.lock();
    let result = match edge.as_str() {
        "activities" => {
            let Some(items) = d.wabas.get(&id) else {
                return unknown_object(&id);
            };
            let fields: Vec<String> = match q.get("fields") {
                Some(f) => parse_fields(f).into_iter().map(|(n, _)| n).collect(),
                None => vec!["event_type".into(), "timestamp".into()],
            };
            page(
                items,
                after,
                limit,
                |a| activity_json(a, &fields),
                &next_base,
            )
        }
        "message_history" => {
            let Some(items) = d.phones.get(&id) else {
                return unknown_object(&id);
            };
            let fields = match q.get("fields") {
                Some(f) => parse_fields(f),
                None => vec![("id".into(), None), ("message_id".into(), None)],
            };
            match q.get("message_id") {
                Some(wamid) => {
                    let filtered: Vec<Stored<SimMessage>> = items
                        .iter()
                        .filter(|m| &m.item.message_id == wamid)
                        .cloned()
                        .collect();
                    page(
                        &filtered,
                        after,
                        limit,
                        |m| message_json(m, &fields),
                        &next_base,
                    )
                }
                None => {
                    // Phone numbers sharing a history (add_phones_like) share
                    // its rendered pages until anything changes.
                    let key = (
                        Arc::as_ptr(items) as usize,
                        d.version,
                        after,
                        limit,
                        q.get("fields").cloned().unwrap_or_default(),
                    );
                    let items = items.clone();
                    let cached = d.page_cache.get(&key).cloned();
                    drop(d);
                    let rendered = match cached {
                        Some(r) => Ok(r),
                        None => render_page(&items, after, limit, |m| message_json(m, &fields))
                            .map(Arc::new),
                    };
                    rendered.map(|r| {
                        let body = r.body(&next_base);
                        let mut d = sim.lock();
                        if d.version == key.1 {
                            if d.page_cache.len() > 10_000 {
                                d.page_cache.clear();
                            }
                            d.page_cache.insert(key, r);
                        }
                        body
                    })
                }
            }
        }
        "phone_numbers" => {
            if !d.wabas.contains_key(&id) {
                return unknown_object(&id);
            }
            let items: Vec<Stored<(String, SimPhoneNumber)>> = d
                .listed
                .get(&id)
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(i, (phone, info))| Stored {
                    seq: i as u64 + 1,
                    item: (phone.clone(), info.clone()),
                })
                .collect();
            let fields: Vec<String> = match q.get("fields") {
                Some(f) => parse_fields(f).into_iter().map(|(n, _)| n).collect(),
                None => vec!["id".into(), "display_phone_number".into()],
            };
            drop(d);
            page(
                &items,
                after,
                limit,
                |(phone, info)| phone_json(phone, info, &fields),
                &next_base,
            )
        }
        _ => return unknown_object(&format!("{id}/{edge}")),
    };
    match result {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(field) => graph_error(
            400,
            100,
            &format!("(#100) Tried accessing nonexisting field ({field})"),
            false,
        ),
    }
}

fn unknown_object(id: &str) -> Response {
    graph_error(
        400,
        100,
        &format!("Unsupported get request. Object with ID '{id}' does not exist"),
        false,
    )
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
