//! The simulator's HTTP side: routing, auth, query parsing, JSON building.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::sim::delay::delay;
use crate::sim::records::{Fault, SimMessage, SimPhoneNumber, Stored};
use crate::sim::render::{
    activity_json, decode_cursor, message_json, page, parse_fields, phone_json, render_page,
    template_json, urlencode,
};
use crate::sim::store::Simulator;

impl Simulator {
    /// Binds `127.0.0.1:0`, serves in a background task, returns the base URL.
    pub async fn start(&self) -> std::io::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let app = router(self.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "simulator stopped");
            }
        });
        Ok(format!("http://{addr}"))
    }
}

fn router(sim: Simulator) -> Router {
    Router::new()
        .route("/{version}/{id}/{edge}", get(handle))
        .route("/{version}/{id}", get(handle_node))
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

/// A read of a node itself: only `fields=health_status` (counted as the
/// `health_status` edge).
async fn handle_node(
    State(sim): State<Simulator>,
    Path((version, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let edge = match q.get("fields").map(String::as_str) {
        Some("health_status") => "health_status",
        _ => "node",
    };
    handle(
        State(sim),
        Path((version, id, edge.to_string())),
        Query(q),
        headers,
    )
    .await
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
        // A fault of this edge of the target comes before one of the whole target.
        let key = Some(format!("{edge}:{id}"))
            .filter(|k| d.faults.contains_key(k))
            .unwrap_or_else(|| id.clone());
        match d.faults.get_mut(&key) {
            Some(Fault::Sequence(queue)) => {
                let next = queue.pop_front();
                if queue.is_empty() {
                    d.faults.remove(&key);
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
        Some(Fault::Delay(d)) => delay(d).await,
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
            let items: Vec<Stored<(String, SimPhoneNumber)>> = listing(
                d.listed
                    .get(&id)
                    .into_iter()
                    .flatten()
                    .map(|(phone, info)| (phone.clone(), info.clone())),
            );
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
        "health_status" => {
            if !d.phones.contains_key(&id) {
                return unknown_object(&id);
            }
            let status = d.health.get(&id).cloned().unwrap_or_else(|| {
                json!({"can_send_message": "AVAILABLE", "entities": [
                    {"entity_type": "PHONE_NUMBER", "id": id, "can_send_message": "AVAILABLE"}]})
            });
            Ok(json!({"health_status": status, "id": id}).to_string())
        }
        "message_templates" => {
            if !d.wabas.contains_key(&id) {
                return unknown_object(&id);
            }
            let items = listing(d.templates.get(&id).into_iter().flatten().rev().cloned());
            let fields: Vec<String> = match q.get("fields") {
                Some(f) => parse_fields(f).into_iter().map(|(n, _)| n).collect(),
                None => vec!["id".into(), "name".into()],
            };
            drop(d);
            page(
                &items,
                after,
                limit,
                |t| template_json(t, &fields),
                &next_base,
            )
        }
        "node" => {
            let f = q.get("fields").cloned().unwrap_or_default();
            return graph_error(
                400,
                100,
                &format!("(#100) Tried accessing nonexisting field ({f})"),
                false,
            );
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

/// A listing's items (oldest first) as records, numbered in that order, so
/// a page shows the last first.
fn listing<T>(oldest_first: impl Iterator<Item = T>) -> Vec<Stored<T>> {
    oldest_first
        .enumerate()
        .map(|(i, item)| Stored {
            seq: i as u64 + 1,
            item,
        })
        .collect()
}

fn unknown_object(id: &str) -> Response {
    graph_error(
        400,
        100,
        &format!("Unsupported get request. Object with ID '{id}' does not exist"),
        false,
    )
}
