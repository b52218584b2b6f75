//! The OPA-Envoy input document, built from the request facts the policy reads and nothing
//! else.
//!
//! OPA-Envoy feeds its policies Envoy's ext_authz `CheckRequest` as protojson plus a few parsed
//! fields, so existing policies expect this shape (the field names are OPA-Envoy's; `input.rs`'s
//! tests pin them):
//!
//! ```text
//! input.attributes.request.http.{id, method, path, host, scheme, protocol, headers, body}
//! input.attributes.request.time                      RFC 3339, UTC
//! input.attributes.source.address.socketAddress.{address, portValue}
//! input.attributes.source.principal                  the peer certificate's URI SAN (mTLS)
//! input.attributes.destination.address.socketAddress.{address, portValue}
//! input.attributes.destination.principal             the local certificate's URI SAN
//! input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].<name>
//! input.parsed_path, input.parsed_query, input.parsed_body, input.truncated_body, input.version
//! ```
//!
//! Header names are lowercase and a header sent more than once is one value joined with `,`,
//! as ext_authz sends them; pseudo-headers (`:authority`, `:method`, `:path`, `:scheme`) are in
//! the map too. `id` is the request's `x-request-id` (Envoy's internal stream id is not
//! visible to a wasm filter). The verified JWT payloads are the ones the JWT filter (or the
//! pipeline's JWT stage) wrote, by `payloadInMetadata` name ([`VerifiedClaims`]); no header is
//! ever read for them.
//!
//! Only the parts the policy reads ([`crate::reads`]) are built: a policy that reads the
//! method, the path and the claims costs two header reads and one property read, and the
//! document it sees is small enough to key the decision cache with. Leaving the rest out is
//! sound because the policy cannot reach it (see [`crate::reads`]).

use std::collections::BTreeMap;

use regorus::Value;

use crate::body::{self, Body};
use crate::cache::Clock;
use crate::reads::ReadSet;
use crate::url;

/// The request as the proxy sees it. The builder asks each fact at most once per decision, and
/// only the facts the policy reads; implementations read from the host on demand.
pub trait RequestFacts {
    /// A request header by lowercase name (pseudo-headers included), its first value.
    fn header(&mut self, name: &str) -> Option<String>;
    /// Every request header in order, pseudo-headers included.
    fn headers(&mut self) -> Vec<(String, String)>;
    /// An Envoy attribute such as `["source", "address"]` or `["request", "protocol"]`.
    fn property(&mut self, path: &[&str]) -> Option<Vec<u8>>;
}

/// The JWT payloads verified for this request.
pub trait VerifiedClaims {
    /// The payloads by their `payloadInMetadata` name; `None` when no token was verified.
    fn payloads(&mut self) -> Option<Claims>;
}

/// Verified payloads by `payloadInMetadata` name.
#[derive(Debug, Clone, PartialEq)]
pub enum Claims {
    /// The JSON object the JWT filter wrote to filter state
    /// ([`meshguard_filter_core::claims::encode`]); parsed once per distinct value and worker.
    Json(Vec<u8>),
    /// An object already in hand (the pipeline's JWT stage).
    Document(Value),
}

/// No verified claims (a request the JWT stage let through without a token).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoClaims;

impl VerifiedClaims for NoClaims {
    fn payloads(&mut self) -> Option<Claims> {
        None
    }
}

/// The `metadataContext` part of the input by the claims' JSON text, per worker: a user's
/// token arrives again and again, and parsing its payload, then keeping the parts the policy
/// reads, is most of what building the input costs. Keyed by the whole text (no collisions);
/// at most [`ClaimsMemo::SIZE`] entries, evicted as the decision cache's. What is remembered
/// depends on the policy's [`Need`]: given another, the memo starts afresh (a memo serves one
/// policy; it tells needs apart by address first, and by value only when that changed).
#[derive(Debug)]
pub struct ClaimsMemo {
    contexts: Clock<Value>,
    /// The `metadataContext` need the remembered documents were built for, and its address.
    need: Option<(Need, usize)>,
}

impl Default for ClaimsMemo {
    fn default() -> Self {
        Self {
            contexts: Clock::new(Self::SIZE),
            need: None,
        }
    }
}

impl ClaimsMemo {
    /// Distinct payload sets remembered: as many as the decision cache's default, so a
    /// working set of users that fits one fits the other (a decision-cache hit still builds
    /// the input, claims included).
    pub const SIZE: usize = 1024;
    /// Texts longer than this are parsed every time.
    pub const MAX_TEXT: usize = 8192;

    /// Payload sets remembered.
    pub fn len(&self) -> usize {
        self.contexts.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.contexts.is_empty()
    }

    /// `input.attributes.metadataContext` as `need` asks for it, for these verified payloads
    /// (a text that is not an object of objects is no verified claims).
    fn context(&mut self, claims: Option<Claims>, need: &Need) -> Value {
        let address = std::ptr::from_ref(need) as usize;
        match &mut self.need {
            Some((_, known)) if *known == address => {}
            Some((known, at)) if known == need => *at = address,
            _ => {
                self.contexts = Clock::new(Self::SIZE);
                self.need = Some((need.clone(), address));
            }
        }
        let json = match claims {
            None => return metadata_context(need, None),
            Some(Claims::Document(value)) => return metadata_context(need, valid_claims(value)),
            Some(Claims::Json(json)) => json,
        };
        if let Some(context) = self.contexts.get(&json) {
            return context;
        }
        let payloads = std::str::from_utf8(&json)
            .ok()
            // The exponent bound first: regorus would expand `1e999999999` for minutes.
            .filter(|text| meshguard_rego_compat::numbers::check_json(text).is_ok())
            .and_then(|text| Value::from_json_str(text).ok())
            .and_then(valid_claims);
        let Some(payloads) = payloads else {
            return metadata_context(need, None);
        };
        let context = metadata_context(need, Some(payloads));
        if json.len() <= Self::MAX_TEXT {
            self.contexts.insert(&json, context.clone());
        }
        context
    }
}

/// `metadataContext`: the verified payloads under the JWT filter's namespace, or an empty
/// `filterMetadata` when there are none.
fn metadata_context(need: &Need, payloads: Option<Value>) -> Value {
    let mut context = Object::default();
    context.put_with(need, "filterMetadata", |need| {
        let Some(payloads) = payloads else {
            return Value::new_object();
        };
        let mut filter_metadata = Object::default();
        filter_metadata.put_with(need, meshguard_filter_core::claims::NAMESPACE, |need| {
            need.prune(payloads)
        });
        filter_metadata.into_value()
    });
    context.into_value()
}

fn valid_claims(value: Value) -> Option<Value> {
    match &value {
        Value::Object(object) if object.values().all(|v| matches!(v, Value::Object(_))) => {
            Some(value)
        }
        _ => None,
    }
}

/// Why the input document could not be built; the request is then decided by `onError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// `:path` could not be parsed as OPA-Envoy parses it.
    #[error(transparent)]
    Path(#[from] url::PathError),
    /// The buffered body could not be read the way its content type says.
    #[error(transparent)]
    Body(#[from] body::BodyError),
    /// A string the policy may read as a number has an exponent regorus would expand for
    /// minutes ([`check_numbers`]).
    #[error("input.{0}")]
    Number(#[from] meshguard_rego_compat::numbers::StringNumber),
}

/// Every string of `input` (keys too) within the exponent bound, for a policy that calls a
/// builtin reading strings as numbers ([`crate::reads::ReadSet::reads_numbers`]): a header
/// `1e999999999` handed to `to_number` would hold the worker for minutes inside one builtin
/// call, past any instruction budget.
pub fn check_numbers(input: &Value) -> Result<(), InputError> {
    Ok(meshguard_rego_compat::numbers::check_strings(input)?)
}

/// What the policy reads, as a tree: `All` below a path it reads whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// The whole value.
    All,
    /// Only these fields (and what the tree says below each).
    Fields(BTreeMap<String, Field>),
}

/// A field the policy reads: its key as the document's (made once, shared by every request's
/// document) and what is needed below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field's name as a document key.
    pub key: Value,
    /// What is needed below it.
    pub need: Need,
}

impl Need {
    /// The tree of a read set; nothing read gives an empty `Fields`.
    pub fn of(reads: &ReadSet) -> Self {
        let mut root = Need::Fields(BTreeMap::new());
        for path in &reads.paths {
            root.insert(path);
        }
        root
    }

    fn insert(&mut self, path: &[String]) {
        let Need::Fields(fields) = self else {
            return;
        };
        let Some((first, rest)) = path.split_first() else {
            *self = Need::All;
            return;
        };
        let child = &mut fields
            .entry(first.clone())
            .or_insert_with(|| Field {
                key: Value::from(first.as_str()),
                need: Need::Fields(BTreeMap::new()),
            })
            .need;
        if rest.is_empty() {
            *child = Need::All;
        } else {
            child.insert(rest);
        }
    }

    /// What is needed below `name`, if anything.
    pub fn child(&self, name: &str) -> Option<&Need> {
        match self {
            Need::All => Some(&Need::All),
            Need::Fields(fields) => fields.get(name).map(|field| &field.need),
        }
    }

    /// The document key of `name` and what is needed below it, if anything.
    fn field(&self, name: &str) -> Option<(Value, &Need)> {
        match self {
            Need::All => Some((Value::from(name), &Need::All)),
            // The builder asks for every field OPA-Envoy has, and a policy reads a few: most
            // asks miss, and a scan that compares lengths first answers a miss without
            // comparing text (a map lookup compares text at every key it passes).
            Need::Fields(fields) if fields.len() <= 8 => fields
                .iter()
                .find(|(key, _)| key.len() == name.len() && key.as_str() == name)
                .map(|(_, field)| (field.key.clone(), &field.need)),
            Need::Fields(fields) => fields
                .get(name)
                .map(|field| (field.key.clone(), &field.need)),
        }
    }

    /// Keeps only the needed parts of `value` (values that are not objects are kept whole).
    pub fn prune(&self, value: Value) -> Value {
        let Need::Fields(fields) = self else {
            return value;
        };
        let Value::Object(object) = &value else {
            return value;
        };
        let mut kept = BTreeMap::new();
        for Field { key, need } in fields.values() {
            if let Some(child) = object.get(key) {
                kept.insert(key.clone(), need.prune(child.clone()));
            }
        }
        Value::from(kept)
    }
}

/// The facts a decision gathered, each read from the host at most once.
struct Gathered<'a> {
    facts: &'a mut dyn RequestFacts,
    claims: &'a mut dyn VerifiedClaims,
    memo: &'a mut ClaimsMemo,
    body: Option<&'a Body>,
    headers: Option<BTreeMap<String, String>>,
    pseudo: BTreeMap<&'static str, Option<String>>,
}

impl Gathered<'_> {
    fn pseudo(&mut self, name: &'static str) -> Option<String> {
        if let Some(value) = self.pseudo.get(name) {
            return value.clone();
        }
        let value = match &self.headers {
            Some(map) => map.get(name).cloned(),
            None => self.facts.header(name),
        };
        self.pseudo.insert(name, value.clone());
        value
    }

    /// The header map as ext_authz builds it: lowercase names, repeated headers joined by `,`.
    fn headers(&mut self) -> &BTreeMap<String, String> {
        let facts = &mut self.facts;
        self.headers.get_or_insert_with(|| {
            let mut map: BTreeMap<String, String> = BTreeMap::new();
            for (name, value) in facts.headers() {
                let name = name.to_ascii_lowercase();
                match map.get_mut(&name) {
                    Some(joined) => {
                        joined.push(',');
                        joined.push_str(&value);
                    }
                    None => {
                        map.insert(name, value);
                    }
                }
            }
            map
        })
    }

    fn text_property(&mut self, path: &[&str]) -> Option<String> {
        self.facts
            .property(path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Builds the part of the input document `need` asks for.
pub fn build(
    need: &Need,
    facts: &mut dyn RequestFacts,
    claims: &mut dyn VerifiedClaims,
    memo: &mut ClaimsMemo,
    body: Option<&Body>,
) -> Result<Value, InputError> {
    let mut gathered = Gathered {
        facts,
        claims,
        memo,
        body,
        headers: None,
        pseudo: BTreeMap::new(),
    };
    let mut input = Object::default();
    input.field(need, "attributes", |need| {
        attributes(need, &mut gathered).map(Some)
    })?;
    input.field(need, "parsed_path", |_| {
        let path = gathered.pseudo(":path").unwrap_or_default();
        let segments = url::path_segments(&path)?;
        Ok(Some(Value::from(
            segments
                .iter()
                .map(|segment| Value::from(segment.as_ref()))
                .collect::<Vec<_>>(),
        )))
    })?;
    input.field(need, "parsed_query", |need| {
        let path = gathered.pseudo(":path").unwrap_or_default();
        let query = url::parsed_query(&path)
            .into_iter()
            .map(|(key, values)| {
                let values: Vec<Value> = values.into_iter().map(Value::from).collect();
                (Value::from(key), Value::from(values))
            })
            .collect::<BTreeMap<_, _>>();
        Ok(Some(need.prune(Value::from(query))))
    })?;
    input.field(need, "parsed_body", |need| {
        let parsed = match gathered.body {
            Some(body) => {
                let content_type = gathered.headers().get("content-type").cloned();
                body.parsed(content_type.as_deref())?
            }
            None => Value::Null,
        };
        Ok(Some(need.prune(parsed)))
    })?;
    input.field(need, "truncated_body", |_| Ok(Some(Value::from(false))))?;
    input.field(need, "version", |need| {
        let mut version = Object::default();
        version.put(need, "encoding", Value::from("protojson"));
        version.put(need, "ext_authz", Value::from("v3"));
        Ok(Some(version.into_value()))
    })?;
    Ok(input.into_value())
}

fn attributes(need: &Need, gathered: &mut Gathered<'_>) -> Result<Value, InputError> {
    let mut attributes = Object::default();
    attributes.field(need, "request", |need| {
        let mut request = Object::default();
        request.field(need, "http", |need| http(need, gathered).map(Some))?;
        request.field(need, "time", |_| {
            Ok(gathered
                .facts
                .property(&["request", "time"])
                .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
                .map(|bytes| Value::from(rfc3339(i64::from_le_bytes(bytes)))))
        })?;
        Ok(Some(request.into_value()))
    })?;
    for (side, address, principal) in [
        (
            "source",
            ["source", "address"],
            ["connection", "uri_san_peer_certificate"],
        ),
        (
            "destination",
            ["destination", "address"],
            ["connection", "uri_san_local_certificate"],
        ),
    ] {
        attributes.field(need, side, |need| {
            let mut peer = Object::default();
            peer.field(need, "address", |need| {
                let Some(text) = gathered.text_property(&address) else {
                    return Ok(None);
                };
                let (host, port) = split_address(&text);
                let mut wrapper = Object::default();
                wrapper.field(need, "socketAddress", |need| {
                    let mut socket = Object::default();
                    socket.put(need, "address", Value::from(host));
                    if let Some(port) = port {
                        socket.put(need, "portValue", Value::from(u64::from(port)));
                    }
                    Ok(Some(socket.into_value()))
                })?;
                Ok(Some(wrapper.into_value()))
            })?;
            peer.field(need, "principal", |_| {
                Ok(gathered
                    .text_property(&principal)
                    .filter(|p| !p.is_empty())
                    .map(Value::from))
            })?;
            Ok(Some(peer.into_value()))
        })?;
    }
    attributes.put_with(need, "metadataContext", |need| {
        let claims = gathered.claims.payloads();
        gathered.memo.context(claims, need)
    });
    Ok(attributes.into_value())
}

fn http(need: &Need, gathered: &mut Gathered<'_>) -> Result<Value, InputError> {
    let mut http = Object::default();
    for (field, header) in [
        ("method", ":method"),
        ("path", ":path"),
        ("host", ":authority"),
        ("scheme", ":scheme"),
    ] {
        http.field(need, field, |_| {
            Ok(gathered.pseudo(header).map(Value::from))
        })?;
    }
    http.field(need, "id", |_| {
        Ok(gathered
            .headers()
            .get("x-request-id")
            .map(|id| Value::from(id.as_str())))
    })?;
    http.field(need, "protocol", |_| {
        Ok(gathered
            .text_property(&["request", "protocol"])
            .map(Value::from))
    })?;
    http.field(need, "headers", |need| {
        let map: BTreeMap<Value, Value> = gathered
            .headers()
            .iter()
            .map(|(name, value)| (Value::from(name.as_str()), Value::from(value.as_str())))
            .collect();
        Ok(Some(need.prune(Value::from(map))))
    })?;
    // protojson leaves an empty body out, as it leaves every empty string out.
    http.field(need, "body", |_| {
        Ok(gathered
            .body
            .filter(|body| !body.0.is_empty())
            .map(|body| body.text().map(Value::from))
            .transpose()?)
    })?;
    Ok(http.into_value())
}

/// `host:port`, `[v6]:port`, or a path (a pipe) without a port.
fn split_address(text: &str) -> (&str, Option<u16>) {
    if let Some(rest) = text.strip_prefix('[')
        && let Some((host, port)) = rest.split_once("]:")
    {
        return (host, port.parse().ok());
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (text, None),
        },
        _ => (text, None),
    }
}

/// Nanoseconds since the epoch as protojson writes a `Timestamp` (UTC, `Z`, nanoseconds when
/// there are any).
fn rfc3339(nanos: i64) -> String {
    let seconds = nanos.div_euclid(1_000_000_000);
    let fraction = nanos.rem_euclid(1_000_000_000);
    let days = seconds.div_euclid(86_400);
    let time = seconds.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let clock = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        time / 3600,
        time / 60 % 60,
        time % 60
    );
    if fraction == 0 {
        format!("{clock}Z")
    } else {
        format!("{clock}.{fraction:09}Z")
    }
}

/// An object under construction that only takes the fields its [`Need`] asks for.
///
/// Built as regorus' own object and handed over as it is: `Value::from` a map would copy the
/// entries into regorus' compact read-only form, which costs more than the lookups the
/// policy makes in an object of a few fields (the form is regorus' private detail: equality,
/// order and lookups are the same either way).
#[derive(Default)]
struct Object(regorus::value::Object);

impl Object {
    /// Computes and adds field `name` if `need` asks for it (`compute` returning `None`: the
    /// field is absent, as in the full document).
    fn field(
        &mut self,
        need: &Need,
        name: &str,
        compute: impl FnOnce(&Need) -> Result<Option<Value>, InputError>,
    ) -> Result<(), InputError> {
        if let Some((key, child)) = need.field(name)
            && let Some(value) = compute(child)?
        {
            self.0.insert(key, value);
        }
        Ok(())
    }

    /// Computes and adds field `name`, which is never absent, if `need` asks for it.
    fn put_with(&mut self, need: &Need, name: &str, compute: impl FnOnce(&Need) -> Value) {
        if let Some((key, child)) = need.field(name) {
            self.0.insert(key, compute(child));
        }
    }

    /// Adds a value already at hand if `need` asks for it.
    fn put(&mut self, need: &Need, name: &str, value: Value) {
        if let Some((key, _)) = need.field(name) {
            self.0.insert(key, value);
        }
    }

    fn into_value(self) -> Value {
        Value::Object(regorus::Rc::new(self.0))
    }
}

#[cfg(test)]
mod tests;
