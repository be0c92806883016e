//! The Graph API response shapes the exporter reads.
//!
//! Every field is optional: a record missing a field is data to report
//! (`unknown` label, or skipped and counted as invalid), never a panic.
//! Unknown fields are ignored so new API versions keep working. Ids and
//! timestamps are accepted as JSON strings or numbers.
//!
//! The records of message_history, the pages there are many of, are
//! generic over their strings ([`Text`]): `String` for records built in
//! memory, `Cow<'body, str>` for records decoded from a response
//! ([`Record::decode_borrowed`]), whose strings point into the body unless
//! the JSON escaped them: a page is decoded without a copy of every field.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

use serde::de::{DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A string of a decoded record: `String`, or a `Cow<str>` borrowed from
/// the response body.
pub trait Text: Deref<Target = str> + fmt::Debug + Send + Sync {}

impl Text for String {}
impl Text for Cow<'_, str> {}

/// A [`Text`] that can be decoded from input that lives for `'de`.
pub trait TextFrom<'de>: Text + Sized {
    /// From a string of the input itself.
    fn borrowed(s: &'de str) -> Self;
    /// From a string made while decoding (unescaped, or a number's digits).
    fn owned(s: String) -> Self;
}

impl<'de> TextFrom<'de> for String {
    fn borrowed(s: &'de str) -> Self {
        s.to_string()
    }
    fn owned(s: String) -> Self {
        s
    }
}

impl<'de: 'a, 'a> TextFrom<'de> for Cow<'a, str> {
    fn borrowed(s: &'de str) -> Self {
        Cow::Borrowed(s)
    }
    fn owned(s: String) -> Self {
        Cow::Owned(s)
    }
}

/// One page of an edge: `{"data": [...], "paging": {...}}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Page<T> {
    /// The records of this page.
    pub data: Vec<T>,
    /// Pagination, absent on the last page.
    #[serde(default)]
    pub paging: Option<Paging>,
    /// Why records (or nested events) that could not be decoded were left
    /// out of `data` ([`Page::decode`]).
    #[serde(skip)]
    pub invalid: Vec<&'static str>,
}

/// A record of an edge's `data`: decoded on its own when its page is not
/// decoded whole, so one bad record is one skipped record.
pub trait Record: DeserializeOwned + Send + Sync {
    /// This record with strings of type `S`: itself for `S = String` (a
    /// record without a generic form ignores `S`).
    type With<S: Text>: Send + Sync;

    /// Drops the parts of `v` that cannot be decoded and can be left out
    /// (a nested event), pushing why onto `invalid`.
    fn salvage(_v: &mut Value, _invalid: &mut Vec<&'static str>) {}

    /// Decodes a page as [`Page::decode`] does, its strings borrowed from
    /// `body` where they can be.
    fn decode_borrowed(body: &str) -> Result<Page<Self::With<Cow<'_, str>>>, serde_json::Error>;

    /// `page` as a page of [`Record::With`] `String` (which it is).
    fn as_with(page: &Page<Self>) -> &Page<Self::With<String>>;
}

/// [`Record`] for a record without a generic form: decoded owned.
macro_rules! owned_record {
    ($t:ty) => {
        type With<S: Text> = $t;

        fn decode_borrowed(body: &str) -> Result<Page<$t>, serde_json::Error> {
            Page::<$t>::decode(body.as_bytes())
        }

        fn as_with(page: &Page<$t>) -> &Page<$t> {
            page
        }
    };
}

/// Why a record value does not decode (the `reason` label of
/// `whatsapp_invalid_records_total`).
fn reason(v: &Value) -> &'static str {
    let Some(o) = v.as_object() else {
        return "not_an_object";
    };
    match o.get("timestamp") {
        Some(Value::Number(n)) if !(n.is_i64() || n.is_u64()) => "bad_timestamp",
        Some(Value::String(t)) if t.trim().parse::<i64>().is_err() => "bad_timestamp",
        Some(Value::Number(_) | Value::String(_) | Value::Null) | None => "wrong_type",
        Some(_) => "bad_timestamp",
    }
}

/// The shape every page has, records left undecoded.
#[derive(Deserialize)]
struct RawPage {
    data: Vec<Value>,
    #[serde(default)]
    paging: Option<Paging>,
}

impl<T: Record> Page<T> {
    /// Decodes a page: whole when it can be, else record by record, the
    /// records that do not decode left out and counted in `invalid`. Fails
    /// only on a body that is not JSON or has no `data` array (or bad `paging`).
    pub fn decode(body: &[u8]) -> Result<Page<T>, serde_json::Error> {
        let body = std::str::from_utf8(body).map_err(serde::de::Error::custom)?;
        Page::decode_salvaging(body, T::salvage)
    }
}

impl<'de, R: Deserialize<'de>> Page<R> {
    /// [`Page::decode`] of records `R` (which may borrow from `body`), with
    /// `salvage` dropping the undecodable parts of a record.
    fn decode_salvaging(
        body: &'de str,
        salvage: fn(&mut Value, &mut Vec<&'static str>),
    ) -> Result<Page<R>, serde_json::Error> {
        let whole = match serde_json::from_str::<Page<R>>(body) {
            Ok(p) => return Ok(p),
            Err(e) => e,
        };
        let raw = serde_json::from_str::<RawPage>(body).map_err(|_| whole)?;
        let mut invalid = Vec::new();
        let mut data = Vec::with_capacity(raw.data.len());
        for mut v in raw.data {
            salvage(&mut v, &mut invalid);
            let why = reason(&v);
            match R::deserialize(v) {
                Ok(r) => data.push(r),
                Err(_) => invalid.push(why),
            }
        }
        Ok(Page {
            data,
            paging: raw.paging,
            invalid,
        })
    }
}

/// A whole response body the client decodes: a page of an edge, or a node.
pub trait Body: Sized {
    /// Decodes the body; fails on a body that does not answer the request.
    fn decode(body: &[u8]) -> Result<Self, serde_json::Error>;
}

impl<T: Record> Body for Page<T> {
    fn decode(body: &[u8]) -> Result<Self, serde_json::Error> {
        Page::<T>::decode(body)
    }
}

impl Record for Activity {
    owned_record!(Activity);
}
impl Record for PhoneNumber {
    owned_record!(PhoneNumber);
}
impl Record for Template {
    owned_record!(Template);
}

impl Record for MessageHistory {
    type With<S: Text> = MessageHistory<S>;

    fn decode_borrowed(
        body: &str,
    ) -> Result<Page<MessageHistory<Cow<'_, str>>>, serde_json::Error> {
        // The direct reader when it is sure; serde_json decides the rest.
        if let Some(page) = crate::graph::history_json::read(body) {
            return Ok(page);
        }
        Page::decode_salvaging(body, MessageHistory::salvage)
    }

    fn as_with(page: &Page<MessageHistory>) -> &Page<MessageHistory> {
        page
    }

    /// Events that do not decode are left out of their message; `events`
    /// that is not an object (or whose `data` is not an array) leaves the
    /// whole record to be skipped.
    fn salvage(v: &mut Value, invalid: &mut Vec<&'static str>) {
        let Some(events) = v.get_mut("events") else {
            return;
        };
        let Some(list) = events.get_mut("data").and_then(Value::as_array_mut) else {
            return;
        };
        list.retain(|e| {
            let ok = StatusEvent::<String>::deserialize(e).is_ok();
            if !ok {
                invalid.push(reason(e));
            }
            ok
        });
    }
}

/// `paging` object.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Paging {
    /// Opaque cursors.
    #[serde(default)]
    pub cursors: Option<Cursors>,
    /// URL of the next page; only its presence is used, it is never followed.
    #[serde(default)]
    pub next: Option<String>,
}

/// `paging.cursors`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Cursors {
    /// Cursor of the next page.
    #[serde(default)]
    pub after: Option<String>,
}

/// A record of `GET /{WABA-ID}/activities`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Activity {
    /// Record id (may be absent).
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: Option<String>,
    /// E.g. `PHONE_NUMBER_ADDED`.
    #[serde(default)]
    pub event_type: Option<String>,
    /// E.g. `PHONE_NUMBER`.
    #[serde(default)]
    pub category: Option<String>,
    /// Unix seconds.
    #[serde(default, deserialize_with = "lenient_i64")]
    pub timestamp: Option<i64>,
    /// Who did it.
    #[serde(default, deserialize_with = "lenient_string")]
    pub actor_id: Option<String>,
    /// The actor's business.
    #[serde(default, deserialize_with = "lenient_string")]
    pub actor_business_id: Option<String>,
}

/// A record of `GET /{Phone-Number-ID}/message_history`, its strings `S`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(bound(deserialize = "S: TextFrom<'de>"))]
pub struct MessageHistory<S = String> {
    /// History entry id.
    #[serde(default, deserialize_with = "lenient_text")]
    pub id: Option<S>,
    /// The WAMID.
    #[serde(default, deserialize_with = "text")]
    pub message_id: Option<S>,
    /// Delivery-status events of the message.
    #[serde(default)]
    pub events: Option<EventList<S>>,
}

/// The nested `events` edge.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(bound(deserialize = "S: TextFrom<'de>"))]
pub struct EventList<S = String> {
    /// The events.
    #[serde(default)]
    pub data: Vec<StatusEvent<S>>,
}

/// One delivery-status event.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Hash)]
#[serde(bound(deserialize = "S: TextFrom<'de>"))]
pub struct StatusEvent<S = String> {
    /// Event id (the reference's `fields` list omits it; may be absent).
    #[serde(default, deserialize_with = "lenient_text")]
    pub id: Option<S>,
    /// `SENT`, `DELIVERED`, `READ`, `FAILED`, ...
    #[serde(default, deserialize_with = "text")]
    pub delivery_status: Option<S>,
    /// Unix seconds.
    #[serde(default, deserialize_with = "lenient_i64")]
    pub timestamp: Option<i64>,
    /// State of Meta's webhook delivery to the business.
    #[serde(default, deserialize_with = "text")]
    pub webhook_update_state: Option<S>,
    /// The app whose webhook got the update.
    #[serde(default)]
    pub application: Option<Application<S>>,
    /// Why delivery failed.
    #[serde(default, deserialize_with = "text")]
    pub error_description: Option<S>,
}

/// One entry of `GET /{WABA-ID}/phone_numbers`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct PhoneNumber {
    /// Phone number id.
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: Option<String>,
    /// `+1 555-...`.
    #[serde(default)]
    pub display_phone_number: Option<String>,
    /// The business name shown to users.
    #[serde(default)]
    pub verified_name: Option<String>,
    /// `GREEN`, `YELLOW`, `RED`, `UNKNOWN`, ...
    #[serde(default)]
    pub quality_rating: Option<String>,
    /// `TIER_1K`, ... (older field).
    #[serde(default)]
    pub messaging_limit_tier: Option<String>,
    /// The successor of `messaging_limit_tier`: a tier string, or an object
    /// holding one; read leniently.
    #[serde(default)]
    pub whatsapp_business_manager_messaging_limit: Option<serde_json::Value>,
    /// `CONNECTED`, `FLAGGED`, ...
    #[serde(default)]
    pub status: Option<String>,
}

impl PhoneNumber {
    /// The messaging limit tier, from whichever field carries it.
    pub fn tier(&self) -> Option<String> {
        let from_successor = match &self.whatsapp_business_manager_messaging_limit {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Object(o)) => ["tier", "value", "current_limit"]
                .iter()
                .find_map(|k| o.get(*k)?.as_str().map(String::from)),
            _ => None,
        };
        from_successor.or_else(|| self.messaging_limit_tier.clone())
    }
}

/// One entry of `GET /{WABA-ID}/message_templates`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Template {
    /// Template id.
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: Option<String>,
    /// Template name.
    #[serde(default)]
    pub name: Option<String>,
    /// Language code, e.g. `en_US`.
    #[serde(default)]
    pub language: Option<String>,
    /// `MARKETING`, `UTILITY`, `AUTHENTICATION`.
    #[serde(default)]
    pub category: Option<String>,
    /// `APPROVED`, `PENDING`, `REJECTED`, `PAUSED`, `DISABLED`, ...
    #[serde(default)]
    pub status: Option<String>,
    /// `{"score": "GREEN", ...}` (or a bare string); absent before Meta rates it.
    #[serde(default)]
    pub quality_score: Option<Value>,
}

impl Template {
    /// The quality score, from the object or a bare string.
    pub fn score(&self) -> Option<&str> {
        match self.quality_score.as_ref()? {
            Value::String(s) => Some(s),
            Value::Object(o) => o.get("score")?.as_str(),
            _ => None,
        }
    }
}

/// `GET /{Phone-Number-ID}?fields=health_status`: whether messages can be
/// sent, for the number and each entity above it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthNode {
    /// The worst of the entities' values.
    pub can_send_message: Option<String>,
    /// The entities that decoded.
    pub entities: Vec<HealthEntity>,
    /// Why entities that could not be decoded were left out.
    pub invalid: Vec<&'static str>,
}

/// One entity of `health_status.entities`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct HealthEntity {
    /// `PHONE_NUMBER`, `WABA`, `BUSINESS`, `APP`, `MESSAGE_TEMPLATE`, ...
    #[serde(default)]
    pub entity_type: Option<String>,
    /// The entity's id.
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: Option<String>,
    /// `AVAILABLE`, `LIMITED`, `BLOCKED`, ...
    #[serde(default)]
    pub can_send_message: Option<String>,
    /// Why it is limited or blocked; read leniently ([`HealthEntity::error_codes`]).
    #[serde(default)]
    pub errors: Option<Value>,
}

impl HealthEntity {
    /// The `error_code` of each listed error (string or number); an error
    /// without one is `unknown`.
    pub fn error_codes(&self) -> Vec<String> {
        let Some(Value::Array(errors)) = &self.errors else {
            return Vec::new();
        };
        errors
            .iter()
            .map(|e| match e.get("error_code") {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
                _ => "unknown".to_string(),
            })
            .collect()
    }
}

/// The shape of a health answer, entities left undecoded.
#[derive(Deserialize)]
struct RawHealth {
    health_status: Option<RawHealthStatus>,
}

#[derive(Deserialize)]
struct RawHealthStatus {
    #[serde(default)]
    can_send_message: Option<Value>,
    #[serde(default)]
    entities: Option<Vec<Value>>,
}

impl Body for HealthNode {
    /// Entity by entity: one that does not decode, or has no id, is left
    /// out and counted in `invalid`. Fails only when there is no
    /// `health_status` object (or `entities` is not an array).
    fn decode(body: &[u8]) -> Result<Self, serde_json::Error> {
        use serde::de::Error;
        let raw: RawHealth = serde_json::from_slice(body)?;
        let status = raw
            .health_status
            .ok_or_else(|| serde_json::Error::custom("the answer has no health_status"))?;
        let mut node = HealthNode {
            can_send_message: status
                .can_send_message
                .as_ref()
                .and_then(Value::as_str)
                .map(String::from),
            ..HealthNode::default()
        };
        for v in status.entities.unwrap_or_default() {
            match HealthEntity::deserialize(&v) {
                Ok(e) if e.id.as_deref().is_some_and(|id| !id.trim().is_empty()) => {
                    node.entities.push(e)
                }
                Ok(_) => node.invalid.push("no_id"),
                Err(_) => node.invalid.push(reason(&v)),
            }
        }
        Ok(node)
    }
}

/// `application` object of an event.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Hash)]
#[serde(bound(deserialize = "S: TextFrom<'de>"))]
pub struct Application<S = String> {
    /// App id.
    #[serde(default, deserialize_with = "lenient_text")]
    pub id: Option<S>,
}

/// A GraphAPIError body: `{"error": {...}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    /// The error object.
    pub error: ErrorObject,
}

/// `error` object.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorObject {
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// Numeric code.
    pub code: i64,
    /// Sub-code.
    #[serde(default)]
    pub error_subcode: Option<i64>,
    /// Whether a retry may help.
    #[serde(default)]
    pub is_transient: Option<bool>,
}

/// What a lenient field accepts: a string, and for [`Lenient::Integers`]
/// an integer too; `null` is absent. One visitor, so a number is read as a
/// number without first failing as a string.
#[derive(Clone, Copy)]
enum Lenient {
    /// A string only.
    Strings,
    /// A string or an integer, the integer as its digits.
    Integers,
}

/// The methods of a lenient field's visitor that read `null` (and an
/// absent `Option`) as `None`, and a present value as itself.
macro_rules! null_is_none {
    () => {
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    };
}

struct TextVisitor<S>(Lenient, std::marker::PhantomData<S>);

impl<'de, S: TextFrom<'de>> Visitor<'de> for TextVisitor<S> {
    type Value = Option<S>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.0 {
            Lenient::Strings => f.write_str("a string"),
            Lenient::Integers => f.write_str("a string or an integer"),
        }
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(S::borrowed(v)))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(S::owned(v.to_string())))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(S::owned(v)))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        match self.0 {
            Lenient::Integers => Ok(Some(S::owned(v.to_string()))),
            Lenient::Strings => Err(E::invalid_type(serde::de::Unexpected::Signed(v), &self)),
        }
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        match self.0 {
            Lenient::Integers => Ok(Some(S::owned(v.to_string()))),
            Lenient::Strings => Err(E::invalid_type(serde::de::Unexpected::Unsigned(v), &self)),
        }
    }

    null_is_none!();
}

/// A string field.
fn text<'de, D: Deserializer<'de>, S: TextFrom<'de>>(d: D) -> Result<Option<S>, D::Error> {
    d.deserialize_any(TextVisitor(Lenient::Strings, std::marker::PhantomData))
}

/// An id field: a string or an integer.
fn lenient_text<'de, D: Deserializer<'de>, S: TextFrom<'de>>(d: D) -> Result<Option<S>, D::Error> {
    d.deserialize_any(TextVisitor(Lenient::Integers, std::marker::PhantomData))
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    lenient_text(d)
}

struct TimeVisitor;

impl<'de> Visitor<'de> for TimeVisitor {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("unix seconds, as an integer or a string of one")
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v)
            .map(Some)
            .map_err(|_| E::custom("timestamp out of range"))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        v.trim()
            .parse()
            .map(Some)
            .map_err(|_| E::custom("timestamp is not an integer"))
    }

    null_is_none!();
}

fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_any(TimeVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The "message_history_with_events" example of the reference page, verbatim.
    const MH_FIXTURE: &str = include_str!("../../tests/fixtures/message_history_reference.json");
    /// The "recent_activities" example of the reference page, verbatim.
    const ACT_FIXTURE: &str = include_str!("../../tests/fixtures/activities_reference.json");

    #[test]
    fn decodes_reference_message_history() {
        let p: Page<MessageHistory> = serde_json::from_str(MH_FIXTURE).unwrap();
        assert_eq!(p.data.len(), 2);
        let ev = &p.data[0].events.as_ref().unwrap().data;
        assert_eq!(ev[0].id.as_deref(), Some("2345678901234567"));
        assert_eq!(ev[0].delivery_status.as_deref(), Some("SENT"));
        assert_eq!(ev[0].timestamp, Some(1640995200));
        assert_eq!(ev[0].webhook_update_state.as_deref(), Some("DELIVERED"));
        assert_eq!(
            ev[0].application.as_ref().unwrap().id.as_deref(),
            Some("9876543210987654")
        );
        let paging = p.paging.unwrap();
        assert_eq!(
            paging.cursors.unwrap().after.as_deref(),
            Some("MTAxNTExOTQ1MjAwNzI5NDE=")
        );
        assert!(paging.next.is_some());
    }

    #[test]
    fn decodes_reference_activities() {
        let p: Page<Activity> = serde_json::from_str(ACT_FIXTURE).unwrap();
        assert_eq!(p.data.len(), 2);
        assert_eq!(p.data[0].event_type.as_deref(), Some("PHONE_NUMBER_ADDED"));
        assert_eq!(p.data[1].category.as_deref(), Some("USER"));
        assert_eq!(p.data[1].timestamp, Some(1697374200));
        // The reference example has cursors but no `next`: that is the last page.
        assert!(p.paging.unwrap().next.is_none());
    }

    #[test]
    fn lenient_numbers_and_strict_types() {
        let e: StatusEvent =
            serde_json::from_str(r#"{"id": 12, "timestamp": "1700000000"}"#).unwrap();
        assert_eq!(e.id.as_deref(), Some("12"));
        assert_eq!(e.timestamp, Some(1_700_000_000));
        assert!(serde_json::from_str::<StatusEvent>(r#"{"timestamp": "soon"}"#).is_err());
        assert!(serde_json::from_str::<Page<Activity>>(r#"{"data": {}}"#).is_err());
        assert!(serde_json::from_str::<Page<Activity>>(r#"{"paging": {}}"#).is_err());
    }

    #[test]
    fn health_entities_decode_one_by_one() {
        let n = HealthNode::decode(
            br#"{"health_status": {"can_send_message": "BLOCKED", "entities": [
                {"entity_type": "PHONE_NUMBER", "id": 106540352242922, "can_send_message": "AVAILABLE"},
                {"entity_type": "WABA", "id": "102290129340398", "can_send_message": "BLOCKED",
                 "errors": [{"error_code": 141014, "error_description": "The WABA is banned."}, {"x": 1}, "odd"]},
                {"entity_type": "SOMETHING_NEW", "id": "7"},
                {"entity_type": "APP", "can_send_message": "AVAILABLE"},
                {"entity_type": ["APP"], "id": "8"},
                42
            ]}, "id": "106540352242922"}"#,
        )
        .unwrap();
        assert_eq!(n.can_send_message.as_deref(), Some("BLOCKED"));
        let ids: Vec<_> = n
            .entities
            .iter()
            .map(|e| e.id.as_deref().unwrap())
            .collect();
        assert_eq!(ids, ["106540352242922", "102290129340398", "7"]);
        assert_eq!(
            n.entities[1].error_codes(),
            ["141014", "unknown", "unknown"]
        );
        assert_eq!(n.entities[2].can_send_message, None);
        assert_eq!(n.invalid, ["no_id", "wrong_type", "not_an_object"]);
        assert!(HealthNode::decode(br#"{"id": "1"}"#).is_err());
        assert!(HealthNode::decode(br#"{"health_status": {"entities": {}}}"#).is_err());
        let t: Template = serde_json::from_str(
            r#"{"id": 5, "name": "n", "quality_score": {"score": "RED", "date": 1}}"#,
        )
        .unwrap();
        assert_eq!((t.id.as_deref(), t.score()), (Some("5"), Some("RED")));
        let t: Template = serde_json::from_str(r#"{"id": "6"}"#).unwrap();
        assert_eq!(t.score(), None);
    }

    /// A borrowed page as the same page of `String`s.
    fn owned(p: &Page<MessageHistory<Cow<'_, str>>>) -> Page<MessageHistory> {
        let s = |v: &Option<Cow<'_, str>>| v.as_deref().map(String::from);
        Page {
            data: p
                .data
                .iter()
                .map(|m| MessageHistory {
                    id: s(&m.id),
                    message_id: s(&m.message_id),
                    events: m.events.as_ref().map(|l| EventList {
                        data: l
                            .data
                            .iter()
                            .map(|e| StatusEvent {
                                id: s(&e.id),
                                delivery_status: s(&e.delivery_status),
                                timestamp: e.timestamp,
                                webhook_update_state: s(&e.webhook_update_state),
                                application: e
                                    .application
                                    .as_ref()
                                    .map(|a| Application { id: s(&a.id) }),
                                error_description: s(&e.error_description),
                            })
                            .collect(),
                    }),
                })
                .collect(),
            paging: p.paging.clone(),
            invalid: p.invalid.clone(),
        }
    }

    /// The borrowed decode reads every body as the owned one does: escaped
    /// strings, numbers as ids and times, nulls, bad records salvaged, and
    /// it borrows the strings that need no unescaping.
    #[test]
    fn borrowed_decode_agrees_with_owned() {
        let bodies: [&str; 6] = [
            MH_FIXTURE,
            r#"{"data": [{"id": 7, "message_id": "w\u00e9\"x", "events": {"data": [
                {"id": 18446744073709551615, "delivery_status": "SENT", "timestamp": "1700000000",
                 "webhook_update_state": null, "application": {"id": -3},
                 "error_description": "line\nbreak", "extra": [1, {"a": "b"}]}]}}]}"#,
            r#"{"data": [{"id": "m1", "events": {"data": [
                {"id": "e1", "timestamp": 1.5}, {"id": "e2", "timestamp": 1700000001},
                {"id": "e3", "delivery_status": 5, "timestamp": 1}, {"id": true}]}},
                {"id": [1]}, {"id": "m2", "events": {"data": "no"}}]}"#,
            r#"{"data": [{"events": {"data": [{"timestamp": 9223372036854775808}]}}],
                "paging": {"cursors": {"after": "QQ=="}, "next": "https://x"}}"#,
            r#"{"data": []}"#,
            r#"{"data": [{"id": "m1", "events": null}]}"#,
        ];
        for body in bodies {
            let want = Page::<MessageHistory>::decode(body.as_bytes()).unwrap();
            let got = MessageHistory::decode_borrowed(body).unwrap();
            assert_eq!(owned(&got), want, "{body}");
        }
        let p = MessageHistory::decode_borrowed(MH_FIXTURE).unwrap();
        let e = &p.data[0].events.as_ref().unwrap().data[0];
        assert!(matches!(e.delivery_status, Some(Cow::Borrowed("SENT"))));
        let p = MessageHistory::decode_borrowed(bodies[1]).unwrap();
        let e = &p.data[0].events.as_ref().unwrap().data[0];
        assert_eq!(e.error_description.as_deref(), Some("line\nbreak"));
        assert!(matches!(e.error_description, Some(Cow::Owned(_))));
        assert_eq!(e.id.as_deref(), Some("18446744073709551615"));
        for bad in ["{\"data\": {}}", "<html>", "{\"data\": [1]"] {
            assert!(MessageHistory::decode_borrowed(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bad_record_is_skipped_and_the_rest_of_the_page_kept() {
        let p = Page::<MessageHistory>::decode(
            br#"{"data": [
                {"id": "m1", "events": {"data": [
                    {"id": "e1", "delivery_status": "SENT", "timestamp": 1700000000},
                    {"id": "e2", "delivery_status": "READ", "timestamp": "soon"},
                    {"id": "e3", "delivery_status": {"x": 1}, "timestamp": 1700000001},
                    7
                ]}},
                {"id": "m2", "events": "none"},
                {"id": {"nested": true}},
                "text",
                {"id": "m3", "events": {"data": [{"id": "e4", "timestamp": 1700000002}]}}
            ], "paging": {"cursors": {"after": "A"}}}"#,
        )
        .unwrap();
        let ids: Vec<_> = p.data.iter().map(|m| m.id.as_deref().unwrap()).collect();
        assert_eq!(ids, vec!["m1", "m3"]);
        let events = &p.data[0].events.as_ref().unwrap().data;
        assert_eq!(events.len(), 1, "only e1 of m1 decodes");
        assert_eq!(
            p.invalid,
            vec![
                "bad_timestamp",
                "wrong_type",
                "not_an_object",
                "wrong_type",
                "wrong_type",
                "not_an_object"
            ]
        );
        assert!(p.paging.is_some());
        let a =
            Page::<Activity>::decode(br#"{"data": [{"timestamp": [1]}, {"id": "a"}]}"#).unwrap();
        assert_eq!((a.data.len(), a.invalid), (1, vec!["bad_timestamp"]));
        // Not JSON, no data array: the page fails.
        assert!(Page::<Activity>::decode(b"<html>").is_err());
        assert!(Page::<Activity>::decode(br#"{"data": {}}"#).is_err());
        assert!(Page::<Activity>::decode(br#"{"paging": {}}"#).is_err());
    }
}
