//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded to JSON.
//!
//! kubectl 1.32+ sends the objects of its typed commands (`create configmap|secret|
//! deployment|…`, `auth can-i`, `create token`) as protobuf and never retries with JSON.
//! The body is the magic `k8s\0` followed by a `runtime.Unknown`: `{1: TypeMeta{1:
//! apiVersion, 2: kind}, 2: raw, 3: contentEncoding, 4: contentType}`, where `raw` is the
//! object encoded per k8s.io/api's `generated.proto`. [`decode`] turns that into the
//! object's Kubernetes JSON, which the registry works on.
//!
//! The decoder is generic: it walks the wire format with a table, `protobuf/schema.rs`,
//! that lists for each message every field's tag, type and JSON name. The table is generated
//! by `deploy/gen-protobuf-schema.py` from the k8s-pb crate (prost types of every
//! Kubernetes message) and k8s-openapi (the JSON names); see the script for how zero values
//! are told apart from unset ones. A few messages have a JSON form of their own
//! ([`Shape`]): Quantity, Time, MicroTime, IntOrString, RawExtension/FieldsV1 and the
//! `[]string` wrappers (`ExtraValue`).

mod schema;

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use rkube_api::{ApiError, Reason};
use serde_json::{Map, Number, Value};

/// The media type of protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The 4 bytes every Kubernetes protobuf body starts with.
const MAGIC: &[u8] = b"k8s\0";

/// How deep messages may nest; deeper bodies are refused rather than overflowing the stack.
const MAX_DEPTH: usize = 64;

/// The type of a decoded object, from the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeMeta {
    /// `apps/v1`, or `v1` for the core group.
    pub api_version: String,
    /// `Deployment`.
    pub kind: String,
}

/// Decodes a protobuf request body into the object's type and its Kubernetes JSON, with
/// `apiVersion` and `kind` set.
///
/// Errors: `BadRequest` when the body is not a well-formed protobuf object, naming the
/// field at fault; `UnsupportedMediaType` when rkube has no protobuf schema for the kind
/// (the client should send JSON).
pub fn decode(body: &[u8]) -> Result<(TypeMeta, Value), ApiError> {
    let envelope = body.strip_prefix(MAGIC).ok_or_else(|| {
        ApiError::bad_request(format!(
            "the protobuf body does not start with the Kubernetes magic number \"k8s\\x00\" (content type {CONTENT_TYPE})"
        ))
    })?;
    let unknown = Unknown::decode(envelope).map_err(|e| e.into_api_error("envelope"))?;
    if !unknown.content_encoding.is_empty() {
        return Err(ApiError::new(
            Reason::UnsupportedMediaType,
            format!("protobuf bodies with content encoding {:?} are not supported", unknown.content_encoding),
        ));
    }
    let type_meta = unknown.type_meta;
    let Some(root) = root_message(&type_meta) else {
        return Err(ApiError::new(
            Reason::UnsupportedMediaType,
            format!(
                "cannot decode {} {:?} from protobuf - accepted media types include: application/json, application/yaml",
                if type_meta.api_version.is_empty() { "<no apiVersion>" } else { &type_meta.api_version },
                type_meta.kind
            ),
        ));
    };
    let mut object = Map::new();
    decode_object(&schema::MESSAGES[usize::from(root)], unknown.raw, &mut object, 0)
        .map_err(|e| e.into_api_error(&type_meta.kind))?;
    object.insert("apiVersion".into(), Value::String(type_meta.api_version.clone()));
    object.insert("kind".into(), Value::String(type_meta.kind.clone()));
    Ok((type_meta, Value::Object(object)))
}

/// Whether [`decode`] knows the protobuf form of this kind.
pub fn supports(api_version: &str, kind: &str) -> bool {
    root_message(&TypeMeta { api_version: api_version.into(), kind: kind.into() }).is_some()
}

fn root_message(type_meta: &TypeMeta) -> Option<u16> {
    let key = (type_meta.api_version.as_str(), type_meta.kind.as_str());
    schema::ROOTS
        .binary_search_by(|&(api_version, kind, _)| (api_version, kind).cmp(&key))
        .ok()
        .map(|i| schema::ROOTS[i].2)
}

// ---------------------------------------------------------------- the schema's vocabulary

/// One protobuf message of the generated table.
#[derive(Debug)]
struct Message {
    /// The Go type name, for error messages.
    name: &'static str,
    shape: Shape,
    /// Sorted by tag; empty unless `shape` is `Object`.
    fields: &'static [Field],
}

/// How a message appears in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A JSON object of its fields.
    Object,
    /// `resource.Quantity{1: string}`: a JSON string.
    Quantity,
    /// `metav1.Time{1: seconds, 2: nanos}`: RFC 3339 at second precision; empty means unset.
    Time,
    /// `metav1.MicroTime`: RFC 3339 with microseconds.
    MicroTime,
    /// `intstr.IntOrString{1: type, 2: intVal, 3: strVal}`: a JSON number or string.
    IntOrString,
    /// `runtime.RawExtension{1: raw}`, `metav1.FieldsV1{1: raw}`: raw holds JSON.
    RawJson,
    /// `{1: repeated string items}` (e.g. `ExtraValue`): a JSON array of strings.
    StringList,
}

/// One field of an `Object` message.
#[derive(Debug)]
struct Field {
    tag: u32,
    /// The JSON name; empty for `Inline`.
    json: &'static str,
    /// The type of the value (of a map: the type of its values; keys are strings).
    ty: Ty,
    card: Card,
    /// Whether a zero value is kept in JSON: the field is a pointer in Go or required.
    /// Otherwise zero means unset, as Go's `omitempty` would have it.
    keep_zero: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    String,
    Bytes,
    Bool,
    Int32,
    Int64,
    /// No decoded kind has a `double` field yet; the generator emits it when one does.
    #[allow(dead_code)]
    Double,
    /// An index into `schema::MESSAGES`.
    Message(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Card {
    Single,
    Repeated,
    /// `map<string, ty>`.
    Map,
    /// A message whose fields Go inlines into the parent (`json:",inline"`).
    Inline,
}

// ---------------------------------------------------------------- errors

/// What went wrong, and where: the JSON path, innermost segment first.
#[derive(Debug)]
struct WireError {
    path: Vec<String>,
    what: String,
}

impl WireError {
    fn new(what: impl Into<String>) -> Self {
        WireError { path: Vec::new(), what: what.into() }
    }

    fn at(mut self, segment: impl Into<String>) -> Self {
        self.path.push(segment.into());
        self
    }

    fn into_api_error(self, root: &str) -> ApiError {
        let mut path = String::new();
        for segment in self.path.iter().rev() {
            if !path.is_empty() && !segment.starts_with('[') {
                path.push('.');
            }
            path.push_str(segment);
        }
        let at = if path.is_empty() { String::new() } else { format!(" at {path}") };
        ApiError::bad_request(format!("the protobuf body of the {root} is malformed{at}: {}", self.what))
    }
}

type WireResult<T> = Result<T, WireError>;

// ---------------------------------------------------------------- the wire format

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// Reads protobuf wire-format values from a byte slice; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn varint(&mut self) -> WireResult<u64> {
        let mut value = 0u64;
        for (i, &byte) in self.buf.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(WireError::new(if self.buf.len() < 10 { "truncated varint" } else { "varint longer than 10 bytes" }))
    }

    fn take(&mut self, n: usize) -> WireResult<&'a [u8]> {
        if n > self.buf.len() {
            return Err(WireError::new(format!("truncated: {n} bytes announced, {} left", self.buf.len())));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn len_delimited(&mut self) -> WireResult<&'a [u8]> {
        let n = self.varint()?;
        self.take(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn fixed64(&mut self) -> WireResult<[u8; 8]> {
        let bytes = self.take(8)?;
        Ok(bytes.try_into().expect("take(8) returns 8 bytes"))
    }

    /// The next field's tag and wire type.
    fn key(&mut self) -> WireResult<(u32, u8)> {
        let key = self.varint()?;
        let tag =
            u32::try_from(key >> 3).map_err(|_| WireError::new(format!("field number {} too large", key >> 3)))?;
        if tag == 0 {
            return Err(WireError::new("field number 0"));
        }
        Ok((tag, (key & 7) as u8))
    }

    fn skip(&mut self, wire: u8) -> WireResult<()> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.len_delimited().map(drop),
            FIXED32 => self.take(4).map(drop),
            other => Err(WireError::new(format!("unsupported wire type {other}"))),
        }
    }
}

fn utf8(bytes: &[u8]) -> WireResult<&str> {
    std::str::from_utf8(bytes).map_err(|_| WireError::new("string is not valid UTF-8"))
}

/// `runtime.Unknown`, the envelope.
struct Unknown<'a> {
    type_meta: TypeMeta,
    raw: &'a [u8],
    content_encoding: String,
}

impl<'a> Unknown<'a> {
    fn decode(buf: &'a [u8]) -> WireResult<Self> {
        let mut unknown = Unknown {
            type_meta: TypeMeta { api_version: String::new(), kind: String::new() },
            raw: &[],
            content_encoding: String::new(),
        };
        let mut r = Reader::new(buf);
        while !r.is_empty() {
            match r.key()? {
                (1, LEN) => {
                    let mut t = Reader::new(r.len_delimited()?);
                    while !t.is_empty() {
                        match t.key()? {
                            (1, LEN) => unknown.type_meta.api_version = utf8(t.len_delimited()?)?.to_owned(),
                            (2, LEN) => unknown.type_meta.kind = utf8(t.len_delimited()?)?.to_owned(),
                            (_, wire) => t.skip(wire)?,
                        }
                    }
                }
                (2, LEN) => unknown.raw = r.len_delimited()?,
                (3, LEN) => unknown.content_encoding = utf8(r.len_delimited()?)?.to_owned(),
                (_, wire) => r.skip(wire)?,
            }
        }
        if unknown.type_meta.kind.is_empty() {
            return Err(WireError::new("no kind in the envelope's TypeMeta"));
        }
        Ok(unknown)
    }
}

// ---------------------------------------------------------------- the object walker

/// Decodes the fields of `message` from `buf` into `out`.
fn decode_object(message: &Message, buf: &[u8], out: &mut Map<String, Value>, depth: usize) -> WireResult<()> {
    if depth > MAX_DEPTH {
        return Err(WireError::new(format!("messages nested deeper than {MAX_DEPTH}")));
    }
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (tag, wire) = r.key()?;
        let Ok(i) = message.fields.binary_search_by_key(&tag, |f| f.tag) else {
            r.skip(wire)?;
            continue;
        };
        let field = &message.fields[i];
        match field.card {
            Card::Inline => {
                let bytes = expect_len(wire).and_then(|()| r.len_delimited())?;
                decode_object(message_at(field.ty), bytes, out, depth + 1)?;
            }
            Card::Single => match decode_value(field.ty, wire, &mut r, depth).map_err(|e| e.at(field.json))? {
                Some(value) if field.keep_zero || !is_zero(&value) => {
                    out.insert(field.json.into(), value);
                }
                _ => {
                    out.remove(field.json);
                }
            },
            Card::Repeated => {
                let Value::Array(items) = out.entry(field.json).or_insert_with(|| Value::Array(Vec::new())) else {
                    unreachable!("repeated fields are only ever set to arrays")
                };
                let at = |e: WireError, n: usize| e.at(format!("[{n}]")).at(field.json);
                if wire == LEN && is_numeric(field.ty) {
                    // A packed run of numbers.
                    let mut packed = Reader::new(r.len_delimited().map_err(|e| e.at(field.json))?);
                    while !packed.is_empty() {
                        let value = decode_value(field.ty, numeric_wire(field.ty), &mut packed, depth)
                            .map_err(|e| at(e, items.len()))?;
                        items.push(value.unwrap_or(Value::Null));
                    }
                } else {
                    let value = decode_value(field.ty, wire, &mut r, depth).map_err(|e| at(e, items.len()))?;
                    items.push(value.unwrap_or(Value::Null));
                }
            }
            Card::Map => {
                let entry = expect_len(wire).and_then(|()| r.len_delimited()).map_err(|e| e.at(field.json))?;
                let (key, value) = decode_map_entry(field.ty, entry, depth).map_err(|e| e.at(field.json))?;
                let Value::Object(map) = out.entry(field.json).or_insert_with(|| Value::Object(Map::new())) else {
                    unreachable!("map fields are only ever set to objects")
                };
                map.insert(key, value);
            }
        }
    }
    Ok(())
}

/// A `map<string, ty>` entry: `{1: key, 2: value}`; a missing value is the zero value.
fn decode_map_entry(ty: Ty, buf: &[u8], depth: usize) -> WireResult<(String, Value)> {
    let mut r = Reader::new(buf);
    let (mut key, mut value) = (String::new(), None);
    while !r.is_empty() {
        match r.key()? {
            (1, LEN) => key = utf8(r.len_delimited()?)?.to_owned(),
            (2, wire) => value = decode_value(ty, wire, &mut r, depth).map_err(|e| e.at(format!("[{key:?}]")))?,
            (_, wire) => r.skip(wire)?,
        }
    }
    let value = match value {
        Some(value) => value,
        None => zero_value(ty, depth)?,
    };
    Ok((key, value))
}

/// Decodes one value of type `ty`; `None` means "unset" (an empty Time, a zero IntOrString).
fn decode_value(ty: Ty, wire: u8, r: &mut Reader<'_>, depth: usize) -> WireResult<Option<Value>> {
    let expected = numeric_wire(ty);
    if wire != expected {
        return Err(WireError::new(format!("wire type {wire}, expected {expected}")));
    }
    Ok(Some(match ty {
        Ty::String => Value::String(utf8(r.len_delimited()?)?.to_owned()),
        Ty::Bytes => base64(r.len_delimited()?),
        Ty::Bool => Value::Bool(r.varint()? != 0),
        // int32 is sign-extended to 64 bits on the wire; truncating restores it.
        Ty::Int32 => Value::from(r.varint()? as i64 as i32),
        Ty::Int64 => Value::from(r.varint()? as i64),
        Ty::Double => {
            let x = f64::from_le_bytes(r.fixed64()?);
            Value::Number(Number::from_f64(x).ok_or_else(|| WireError::new(format!("{x} has no JSON form")))?)
        }
        Ty::Message(_) => return decode_message(message_at(ty), r.len_delimited()?, depth + 1),
    }))
}

/// The value a map entry without one stands for: the zero value of `ty`.
fn zero_value(ty: Ty, depth: usize) -> WireResult<Value> {
    Ok(match ty {
        Ty::String | Ty::Bytes => Value::String(String::new()),
        Ty::Bool => Value::Bool(false),
        Ty::Int32 | Ty::Int64 => Value::from(0),
        Ty::Double => Value::from(0.0),
        Ty::Message(_) => decode_message(message_at(ty), &[], depth + 1)?.unwrap_or(Value::Null),
    })
}

/// Decodes a message by its shape.
fn decode_message(message: &Message, buf: &[u8], depth: usize) -> WireResult<Option<Value>> {
    match message.shape {
        Shape::Object => {
            let mut object = Map::new();
            decode_object(message, buf, &mut object, depth)?;
            Ok(Some(Value::Object(object)))
        }
        Shape::Quantity => {
            let mut quantity = None;
            for_each_field(buf, |tag, wire, r| match (tag, wire) {
                (1, LEN) => {
                    quantity = Some(utf8(r.len_delimited()?)?.to_owned());
                    Ok(())
                }
                (_, wire) => r.skip(wire),
            })?;
            // Go's zero Quantity marshals as "0".
            Ok(Some(Value::String(quantity.unwrap_or_else(|| "0".into()))))
        }
        Shape::Time | Shape::MicroTime => {
            if buf.is_empty() {
                return Ok(None); // Go marshals the zero time as an empty message.
            }
            let (mut seconds, mut nanos) = (0i64, 0i32);
            for_each_field(buf, |tag, wire, r| match (tag, wire) {
                (1, VARINT) => {
                    seconds = r.varint()? as i64;
                    Ok(())
                }
                (2, VARINT) => {
                    nanos = r.varint()? as i64 as i32;
                    Ok(())
                }
                (_, wire) => r.skip(wire),
            })?;
            let at = Timestamp::new(seconds, nanos)
                .map_err(|e| WireError::new(format!("time {seconds}s {nanos}ns out of range: {e}")))?;
            let json = if message.shape == Shape::Time {
                serde_json::to_value(Time(at))
            } else {
                serde_json::to_value(MicroTime(at))
            };
            json.map(Some).map_err(|e| WireError::new(format!("time {seconds}s {nanos}ns: {e}")))
        }
        Shape::IntOrString => {
            let (mut is_string, mut int, mut string) = (false, 0i32, String::new());
            for_each_field(buf, |tag, wire, r| match (tag, wire) {
                (1, VARINT) => {
                    is_string = r.varint()? == 1;
                    Ok(())
                }
                (2, VARINT) => {
                    int = r.varint()? as i64 as i32;
                    Ok(())
                }
                (3, LEN) => {
                    string = utf8(r.len_delimited()?)?.to_owned();
                    Ok(())
                }
                (_, wire) => r.skip(wire),
            })?;
            Ok(Some(if is_string { Value::String(string) } else { Value::from(int) }))
        }
        Shape::RawJson => {
            let mut raw: &[u8] = &[];
            for_each_field(buf, |tag, wire, r| match (tag, wire) {
                (1, LEN) => {
                    raw = r.len_delimited()?;
                    Ok(())
                }
                (_, wire) => r.skip(wire),
            })?;
            if raw.is_empty() {
                return Ok(None);
            }
            serde_json::from_slice(raw)
                .map(Some)
                .map_err(|e| WireError::new(format!("{} does not hold JSON: {e}", message.name)))
        }
        Shape::StringList => {
            let mut items = Vec::new();
            for_each_field(buf, |tag, wire, r| match (tag, wire) {
                (1, LEN) => {
                    items.push(Value::String(utf8(r.len_delimited()?)?.to_owned()));
                    Ok(())
                }
                (_, wire) => r.skip(wire),
            })?;
            Ok(Some(Value::Array(items)))
        }
    }
}

/// Calls `f(tag, wire, reader)` for each field of a message; `f` must consume the value.
fn for_each_field<'a>(buf: &'a [u8], mut f: impl FnMut(u32, u8, &mut Reader<'a>) -> WireResult<()>) -> WireResult<()> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (tag, wire) = r.key()?;
        f(tag, wire, &mut r)?;
    }
    Ok(())
}

fn message_at(ty: Ty) -> &'static Message {
    match ty {
        Ty::Message(index) => &schema::MESSAGES[usize::from(index)],
        _ => unreachable!("the schema only gives Inline fields message types"),
    }
}

fn expect_len(wire: u8) -> WireResult<()> {
    if wire == LEN { Ok(()) } else { Err(WireError::new(format!("wire type {wire}, expected {LEN}"))) }
}

fn is_numeric(ty: Ty) -> bool {
    matches!(ty, Ty::Bool | Ty::Int32 | Ty::Int64 | Ty::Double)
}

/// The wire type values of `ty` are written with (unpacked).
fn numeric_wire(ty: Ty) -> u8 {
    match ty {
        Ty::Bool | Ty::Int32 | Ty::Int64 => VARINT,
        Ty::Double => FIXED64,
        Ty::String | Ty::Bytes | Ty::Message(_) => LEN,
    }
}

/// Whether Go would have written this value for an unset non-pointer field.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Null => true,
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// Bytes as Kubernetes JSON has them: standard base64.
fn base64(bytes: &[u8]) -> Value {
    serde_json::to_value(ByteString(bytes.to_vec())).expect("a ByteString always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::{apps::v1 as apps, authorization::v1 as authz, batch::v1 as batch, core::v1 as core};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use k8s_pb::api::{
        apps::v1 as pb_apps, authentication::v1 as pb_authn, authorization::v1 as pb_authz, batch::v1 as pb_batch,
        core::v1 as pb,
    };
    use k8s_pb::apimachinery::pkg::api::resource::Quantity as PbQuantity;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;
    use k8s_pb::apimachinery::pkg::runtime as pb_runtime;
    use k8s_pb::apimachinery::pkg::util::intstr::IntOrString as PbIntOrString;
    use prost::Message as _;
    use std::collections::BTreeMap;

    /// A body as client-go sends it: magic, then `runtime.Unknown` around the object.
    fn body(api_version: &str, kind: &str, object: &impl prost::Message) -> Vec<u8> {
        let unknown = pb_runtime::Unknown {
            type_meta: Some(pb_runtime::TypeMeta { api_version: Some(api_version.into()), kind: Some(kind.into()) }),
            raw: Some(object.encode_to_vec()),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut out = MAGIC.to_vec();
        out.extend(unknown.encode_to_vec());
        out
    }

    /// Decodes and checks the result against kubectl's JSON for the same object.
    fn assert_decodes_to(body: &[u8], expected: impl serde::Serialize) {
        let (type_meta, json) = decode(body).unwrap();
        let expected = serde_json::to_value(expected).unwrap();
        assert_eq!(json, expected, "\n got: {json:#}\nwant: {expected:#}");
        assert_eq!(json["apiVersion"], type_meta.api_version.as_str());
        assert_eq!(json["kind"], type_meta.kind.as_str());
    }

    fn s(v: &str) -> Option<String> {
        Some(v.into())
    }

    fn map<V: Clone>(entries: &[(&str, V)]) -> BTreeMap<String, V> {
        entries.iter().map(|(k, v)| ((*k).into(), v.clone())).collect()
    }

    fn pb_meta(name: &str) -> Option<pb_meta::ObjectMeta> {
        Some(pb_meta::ObjectMeta { name: s(name), namespace: s("default"), ..Default::default() })
    }

    fn meta(name: &str) -> meta::ObjectMeta {
        meta::ObjectMeta { name: s(name), namespace: s("default"), ..Default::default() }
    }

    fn pb_quantity(q: &str) -> PbQuantity {
        PbQuantity { string: s(q) }
    }

    #[test]
    fn decodes_a_configmap_with_data_and_binary_data() {
        let cm = pb::ConfigMap {
            metadata: pb_meta("cfg"),
            data: map(&[("a", "1".to_string()), ("empty", String::new())]),
            binary_data: map(&[("bin", vec![0u8, 0xff, 0x10])]),
            immutable: None,
        };
        assert_decodes_to(
            &body("v1", "ConfigMap", &cm),
            core::ConfigMap {
                metadata: meta("cfg"),
                data: Some(map(&[("a", "1".to_string()), ("empty", String::new())])),
                binary_data: Some(map(&[("bin", k8s_openapi::ByteString(vec![0, 0xff, 0x10]))])),
                immutable: None,
            },
        );
    }

    #[test]
    fn decodes_secret_bytes_as_base64() {
        let secret = pb::Secret {
            metadata: pb_meta("creds"),
            data: map(&[("password", b"s3cr3t\n".to_vec())]),
            r#type: s("Opaque"),
            ..Default::default()
        };
        assert_decodes_to(
            &body("v1", "Secret", &secret),
            core::Secret {
                metadata: meta("creds"),
                data: Some(map(&[("password", k8s_openapi::ByteString(b"s3cr3t\n".to_vec()))])),
                type_: s("Opaque"),
                ..Default::default()
            },
        );
    }

    #[test]
    fn decodes_a_namespace_as_kubectl_create_namespace_sends_it() {
        // gogo-protobuf writes every non-pointer field, zero or not: empty strings, an empty
        // creationTimestamp, empty spec and status. None of them is set in kubectl's JSON.
        let ns = pb::Namespace {
            metadata: Some(pb_meta::ObjectMeta {
                name: s("team-a"),
                generate_name: s(""),
                namespace: s(""),
                self_link: s(""),
                uid: s(""),
                resource_version: s(""),
                generation: Some(0),
                creation_timestamp: Some(pb_meta::Time::default()),
                labels: map(&[("team", "a".to_string())]),
                ..Default::default()
            }),
            spec: Some(pb::NamespaceSpec::default()),
            status: Some(pb::NamespaceStatus { phase: s(""), conditions: vec![] }),
        };
        assert_decodes_to(
            &body("v1", "Namespace", &ns),
            core::Namespace {
                metadata: meta::ObjectMeta {
                    name: s("team-a"),
                    labels: Some(map(&[("team", "a".to_string())])),
                    ..Default::default()
                },
                spec: Some(core::NamespaceSpec::default()),
                status: Some(core::NamespaceStatus::default()),
            },
        );
    }

    fn pb_container() -> pb::Container {
        pb::Container {
            name: s("web"),
            image: s("nginx:1.27"),
            command: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
            working_dir: s(""),
            ports: vec![pb::ContainerPort {
                name: s("http"),
                container_port: Some(8080),
                protocol: s("TCP"),
                host_port: Some(0),
                host_ip: s(""),
            }],
            env: vec![
                pb::EnvVar { name: s("MODE"), value: s("prod"), value_from: None },
                pb::EnvVar {
                    name: s("POD_IP"),
                    value: s(""),
                    value_from: Some(pb::EnvVarSource {
                        field_ref: Some(pb::ObjectFieldSelector {
                            api_version: s("v1"),
                            field_path: s("status.podIP"),
                        }),
                        ..Default::default()
                    }),
                },
            ],
            resources: Some(pb::ResourceRequirements {
                limits: map(&[("cpu", pb_quantity("500m")), ("memory", pb_quantity("128Mi"))]),
                requests: map(&[("cpu", pb_quantity("250m"))]),
                claims: vec![],
            }),
            liveness_probe: Some(pb::Probe {
                handler: Some(pb::ProbeHandler {
                    http_get: Some(pb::HttpGetAction {
                        path: s("/healthz"),
                        port: Some(PbIntOrString { r#type: Some(0), int_val: Some(8080), str_val: s("") }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                initial_delay_seconds: Some(3),
                period_seconds: Some(0),
                ..Default::default()
            }),
            readiness_probe: Some(pb::Probe {
                handler: Some(pb::ProbeHandler {
                    tcp_socket: Some(pb::TcpSocketAction {
                        port: Some(PbIntOrString { r#type: Some(1), int_val: Some(0), str_val: s("http") }),
                        host: s(""),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            image_pull_policy: s("IfNotPresent"),
            tty: Some(false),
            ..Default::default()
        }
    }

    fn container() -> core::Container {
        core::Container {
            name: "web".into(),
            image: s("nginx:1.27"),
            command: Some(vec!["nginx".into(), "-g".into(), "daemon off;".into()]),
            ports: Some(vec![core::ContainerPort {
                name: s("http"),
                container_port: 8080,
                protocol: s("TCP"),
                ..Default::default()
            }]),
            env: Some(vec![
                core::EnvVar { name: "MODE".into(), value: s("prod"), value_from: None },
                core::EnvVar {
                    name: "POD_IP".into(),
                    value: None,
                    value_from: Some(core::EnvVarSource {
                        field_ref: Some(core::ObjectFieldSelector {
                            api_version: s("v1"),
                            field_path: "status.podIP".into(),
                        }),
                        ..Default::default()
                    }),
                },
            ]),
            resources: Some(core::ResourceRequirements {
                limits: Some(map(&[("cpu", Quantity("500m".into())), ("memory", Quantity("128Mi".into()))])),
                requests: Some(map(&[("cpu", Quantity("250m".into()))])),
                claims: None,
            }),
            liveness_probe: Some(core::Probe {
                http_get: Some(core::HTTPGetAction {
                    path: s("/healthz"),
                    port: IntOrString::Int(8080),
                    ..Default::default()
                }),
                initial_delay_seconds: Some(3),
                ..Default::default()
            }),
            readiness_probe: Some(core::Probe {
                tcp_socket: Some(core::TCPSocketAction { port: IntOrString::String("http".into()), host: None }),
                ..Default::default()
            }),
            image_pull_policy: s("IfNotPresent"),
            ..Default::default()
        }
    }

    #[test]
    fn decodes_a_deployment_with_a_full_pod_template() {
        let labels = map(&[("app", "web".to_string())]);
        let deployment = pb_apps::Deployment {
            metadata: pb_meta("web"),
            spec: Some(pb_apps::DeploymentSpec {
                // A pointer in Go: an explicit 0 must survive, unlike minReadySeconds' 0.
                replicas: Some(0),
                min_ready_seconds: Some(0),
                selector: Some(pb_meta::LabelSelector { match_labels: labels.clone(), match_expressions: vec![] }),
                template: Some(pb::PodTemplateSpec {
                    metadata: Some(pb_meta::ObjectMeta {
                        labels: labels.clone(),
                        creation_timestamp: Some(pb_meta::Time::default()),
                        ..Default::default()
                    }),
                    spec: Some(pb::PodSpec {
                        containers: vec![pb_container()],
                        restart_policy: s("Always"),
                        termination_grace_period_seconds: Some(0),
                        host_network: Some(false),
                        node_selector: map(&[("disk", "ssd".to_string())]),
                        ..Default::default()
                    }),
                }),
                strategy: Some(pb_apps::DeploymentStrategy {
                    r#type: s("RollingUpdate"),
                    rolling_update: Some(pb_apps::RollingUpdateDeployment {
                        max_surge: Some(PbIntOrString { r#type: Some(1), int_val: None, str_val: s("25%") }),
                        max_unavailable: Some(PbIntOrString { r#type: Some(0), int_val: Some(0), str_val: None }),
                    }),
                }),
                revision_history_limit: Some(10),
                ..Default::default()
            }),
            status: Some(pb_apps::DeploymentStatus { replicas: Some(0), ..Default::default() }),
        };
        assert_decodes_to(
            &body("apps/v1", "Deployment", &deployment),
            apps::Deployment {
                metadata: meta("web"),
                spec: Some(apps::DeploymentSpec {
                    replicas: Some(0),
                    selector: meta::LabelSelector { match_labels: Some(labels.clone()), match_expressions: None },
                    template: core::PodTemplateSpec {
                        metadata: Some(meta::ObjectMeta { labels: Some(labels), ..Default::default() }),
                        spec: Some(core::PodSpec {
                            containers: vec![container()],
                            restart_policy: s("Always"),
                            termination_grace_period_seconds: Some(0),
                            node_selector: Some(map(&[("disk", "ssd".to_string())])),
                            ..Default::default()
                        }),
                    },
                    strategy: Some(apps::DeploymentStrategy {
                        type_: s("RollingUpdate"),
                        rolling_update: Some(apps::RollingUpdateDeployment {
                            max_surge: Some(IntOrString::String("25%".into())),
                            max_unavailable: Some(IntOrString::Int(0)),
                        }),
                    }),
                    revision_history_limit: Some(10),
                    ..Default::default()
                }),
                status: Some(apps::DeploymentStatus::default()),
            },
        );
    }

    #[test]
    fn decodes_a_service_with_ports_and_target_ports() {
        let port = |name: &str, port: i32, target: PbIntOrString| pb::ServicePort {
            name: s(name),
            protocol: s("TCP"),
            port: Some(port),
            target_port: Some(target),
            node_port: Some(0),
            ..Default::default()
        };
        let service = pb::Service {
            metadata: pb_meta("web"),
            spec: Some(pb::ServiceSpec {
                ports: vec![
                    port("http", 80, PbIntOrString { r#type: Some(0), int_val: Some(8080), str_val: s("") }),
                    port("metrics", 9090, PbIntOrString { r#type: Some(1), int_val: Some(0), str_val: s("metrics") }),
                    // kubectl leaves the target port zero when it is the port itself.
                    port("dns", 53, PbIntOrString { r#type: Some(0), int_val: Some(0), str_val: s("") }),
                ],
                selector: map(&[("app", "web".to_string())]),
                r#type: s("ClusterIP"),
                cluster_ip: s(""),
                ..Default::default()
            }),
            status: Some(pb::ServiceStatus::default()),
        };
        let port = |name: &str, port: i32, target: Option<IntOrString>| core::ServicePort {
            name: s(name),
            protocol: s("TCP"),
            port,
            target_port: target,
            ..Default::default()
        };
        assert_decodes_to(
            &body("v1", "Service", &service),
            core::Service {
                metadata: meta("web"),
                spec: Some(core::ServiceSpec {
                    ports: Some(vec![
                        port("http", 80, Some(IntOrString::Int(8080))),
                        port("metrics", 9090, Some(IntOrString::String("metrics".into()))),
                        port("dns", 53, None),
                    ]),
                    selector: Some(map(&[("app", "web".to_string())])),
                    type_: s("ClusterIP"),
                    ..Default::default()
                }),
                status: Some(core::ServiceStatus::default()),
            },
        );
    }

    #[test]
    fn decodes_a_job_keeping_explicit_zero_pointers() {
        let job = pb_batch::Job {
            metadata: pb_meta("once"),
            spec: Some(pb_batch::JobSpec {
                backoff_limit: Some(0),
                completions: Some(1),
                ttl_seconds_after_finished: Some(0),
                template: Some(pb::PodTemplateSpec {
                    metadata: None,
                    spec: Some(pb::PodSpec {
                        containers: vec![pb::Container {
                            name: s("once"),
                            image: s("busybox"),
                            args: vec!["date".into()],
                            ..Default::default()
                        }],
                        restart_policy: s("Never"),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        };
        assert_decodes_to(
            &body("batch/v1", "Job", &job),
            batch::Job {
                metadata: meta("once"),
                spec: Some(batch::JobSpec {
                    backoff_limit: Some(0),
                    completions: Some(1),
                    ttl_seconds_after_finished: Some(0),
                    template: core::PodTemplateSpec {
                        metadata: None,
                        spec: Some(core::PodSpec {
                            containers: vec![core::Container {
                                name: "once".into(),
                                image: s("busybox"),
                                args: Some(vec!["date".into()]),
                                ..Default::default()
                            }],
                            restart_policy: s("Never"),
                            ..Default::default()
                        }),
                    },
                    ..Default::default()
                }),
                status: None,
            },
        );
    }

    #[test]
    fn decodes_a_self_subject_access_review() {
        let review = pb_authz::SelfSubjectAccessReview {
            metadata: Some(pb_meta::ObjectMeta::default()),
            spec: Some(pb_authz::SelfSubjectAccessReviewSpec {
                resource_attributes: Some(pb_authz::ResourceAttributes {
                    namespace: s("default"),
                    verb: s("create"),
                    group: s(""),
                    resource: s("deployments"),
                    subresource: s(""),
                    name: s(""),
                    version: s(""),
                    ..Default::default()
                }),
                non_resource_attributes: None,
            }),
            status: Some(pb_authz::SubjectAccessReviewStatus { allowed: Some(false), ..Default::default() }),
        };
        assert_decodes_to(
            &body("authorization.k8s.io/v1", "SelfSubjectAccessReview", &review),
            authz::SelfSubjectAccessReview {
                metadata: meta::ObjectMeta::default(),
                spec: authz::SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(authz::ResourceAttributes {
                        namespace: s("default"),
                        verb: s("create"),
                        resource: s("deployments"),
                        ..Default::default()
                    }),
                    non_resource_attributes: None,
                },
                // `allowed` is required: its false stays.
                status: Some(authz::SubjectAccessReviewStatus { allowed: false, ..Default::default() }),
            },
        );
    }

    #[test]
    fn decodes_a_token_request() {
        let request = pb_authn::TokenRequest {
            metadata: Some(pb_meta::ObjectMeta { name: s("builder"), namespace: s("ci"), ..Default::default() }),
            spec: Some(pb_authn::TokenRequestSpec {
                audiences: vec!["https://kubernetes.default.svc".into()],
                expiration_seconds: Some(600),
                bound_object_ref: Some(pb_authn::BoundObjectReference {
                    kind: s("Pod"),
                    api_version: s("v1"),
                    name: s("builder-1"),
                    u_id: s("0b5e4c1a-7a8e-4c3e-9d7f-1f2e3d4c5b6a"),
                }),
            }),
            status: Some(pb_authn::TokenRequestStatus {
                token: s(""),
                expiration_timestamp: Some(pb_meta::Time::default()),
            }),
        };
        let (_, json) = decode(&body("authentication.k8s.io/v1", "TokenRequest", &request)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "metadata": {"name": "builder", "namespace": "ci"},
                "spec": {
                    "audiences": ["https://kubernetes.default.svc"],
                    "expirationSeconds": 600,
                    "boundObjectRef": {
                        "kind": "Pod", "apiVersion": "v1", "name": "builder-1",
                        "uid": "0b5e4c1a-7a8e-4c3e-9d7f-1f2e3d4c5b6a"
                    }
                },
                // Both status fields are optional (k8s.io/api 1.37): zero means unset.
                "status": {}
            })
        );
    }

    #[test]
    fn renders_times_as_rfc3339() {
        let event = pb::Event {
            metadata: Some(pb_meta::ObjectMeta {
                name: s("e1"),
                namespace: s("default"),
                creation_timestamp: Some(pb_meta::Time { seconds: Some(1_700_000_000), nanos: Some(0) }),
                ..Default::default()
            }),
            involved_object: Some(pb::ObjectReference { kind: s("Pod"), name: s("p1"), ..Default::default() }),
            reason: s("Started"),
            first_timestamp: Some(pb_meta::Time { seconds: Some(1_700_000_001), nanos: Some(0) }),
            event_time: Some(pb_meta::MicroTime { seconds: Some(1_700_000_002), nanos: Some(123_456_000) }),
            count: Some(2),
            ..Default::default()
        };
        let (_, json) = decode(&body("v1", "Event", &event)).unwrap();
        assert_eq!(json["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(json["firstTimestamp"], "2023-11-14T22:13:21Z");
        assert_eq!(json["eventTime"], "2023-11-14T22:13:22.123456Z");
        assert_eq!(json["involvedObject"], serde_json::json!({"kind": "Pod", "name": "p1"}));
        assert_eq!(json["count"], 2);
    }

    #[test]
    fn accepts_packed_repeated_numbers() {
        // Go writes `repeated int64` unpacked; other encoders pack. Both read the same.
        let context = pb::PodSecurityContext { supplemental_groups: vec![1000, 2000], ..Default::default() };
        let unpacked = context.encode_to_vec();
        let packed = [0x22, 0x04, 0xe8, 0x07, 0xd0, 0x0f]; // field 4, LEN, varints 1000 2000
        let pod = |spec_context: &[u8]| {
            let mut spec = vec![0x72, spec_context.len() as u8]; // PodSpec.securityContext = 14
            spec.extend(spec_context);
            let mut pod = vec![0x12, spec.len() as u8]; // Pod.spec = 2
            pod.extend(spec);
            let mut out = MAGIC.to_vec();
            out.extend(
                pb_runtime::Unknown {
                    type_meta: Some(pb_runtime::TypeMeta { api_version: s("v1"), kind: s("Pod") }),
                    raw: Some(pod),
                    ..Default::default()
                }
                .encode_to_vec(),
            );
            decode(&out).unwrap().1["spec"]["securityContext"]["supplementalGroups"].clone()
        };
        assert_eq!(pod(&unpacked), serde_json::json!([1000, 2000]));
        assert_eq!(pod(&packed), serde_json::json!([1000, 2000]));
    }

    #[test]
    fn refuses_a_body_without_the_magic() {
        let cm = pb::ConfigMap { metadata: pb_meta("cfg"), ..Default::default() };
        let mut bad = body("v1", "ConfigMap", &cm);
        bad[3] = b'!';
        let err = decode(&bad).unwrap_err();
        assert_eq!(err.reason, Reason::BadRequest);
        assert!(err.message.contains("magic"), "{}", err.message);
        assert_eq!(decode(b"{\"kind\":\"ConfigMap\"}").unwrap_err().reason, Reason::BadRequest);
        assert_eq!(decode(b"").unwrap_err().reason, Reason::BadRequest);
    }

    #[test]
    fn refuses_a_truncated_body_naming_the_field() {
        let mut deployment = pb_apps::Deployment { metadata: pb_meta("web"), ..Default::default() };
        deployment.spec = Some(pb_apps::DeploymentSpec {
            template: Some(pb::PodTemplateSpec {
                metadata: None,
                spec: Some(pb::PodSpec { containers: vec![pb_container()], ..Default::default() }),
            }),
            ..Default::default()
        });
        let full = body("apps/v1", "Deployment", &deployment);
        let err = decode(&full[..full.len() - 1]).unwrap_err();
        assert_eq!(err.reason, Reason::BadRequest);
        assert!(err.message.contains("truncated"), "{}", err.message);

        // Cut inside the object (the envelope's length prefixes fixed up): the error names the path.
        let mut raw = deployment.encode_to_vec();
        raw.truncate(raw.len() - 3);
        let unknown = pb_runtime::Unknown {
            type_meta: Some(pb_runtime::TypeMeta { api_version: s("apps/v1"), kind: s("Deployment") }),
            raw: Some(raw),
            ..Default::default()
        };
        let mut cut = MAGIC.to_vec();
        cut.extend(unknown.encode_to_vec());
        let err = decode(&cut).unwrap_err();
        assert_eq!(err.reason, Reason::BadRequest);
        assert!(err.message.contains("Deployment is malformed at spec"), "{}", err.message);
    }

    #[test]
    fn never_panics_on_truncated_or_garbage_bodies() {
        let deployment = pb_apps::Deployment {
            metadata: pb_meta("web"),
            spec: Some(pb_apps::DeploymentSpec {
                template: Some(pb::PodTemplateSpec {
                    metadata: None,
                    spec: Some(pb::PodSpec { containers: vec![pb_container()], ..Default::default() }),
                }),
                ..Default::default()
            }),
            status: None,
        };
        let full = body("apps/v1", "Deployment", &deployment);
        for n in 0..full.len() {
            let _ = decode(&full[..n]);
        }
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..2000 {
            // Flip bytes of a valid body, and feed plain noise after the magic.
            let mut flipped = full.clone();
            for _ in 0..rng.usize(1..8) {
                let i = rng.usize(4..flipped.len());
                flipped[i] = rng.u8(..);
            }
            let _ = decode(&flipped);
            let mut noise = MAGIC.to_vec();
            noise.extend((0..rng.usize(0..200)).map(|_| rng.u8(..)));
            let _ = decode(&noise);
        }
    }

    #[test]
    fn answers_unsupported_media_type_for_an_unknown_kind() {
        let cm = pb::ConfigMap { metadata: pb_meta("cfg"), ..Default::default() };
        let err = decode(&body("example.com/v1", "Widget", &cm)).unwrap_err();
        assert_eq!(err.reason, Reason::UnsupportedMediaType);
        assert_eq!(err.code(), 415);
        assert!(err.message.contains("example.com/v1") && err.message.contains("Widget"), "{}", err.message);
        assert!(supports("apps/v1", "Deployment"));
        assert!(supports("authorization.k8s.io/v1", "SelfSubjectAccessReview"));
        assert!(!supports("example.com/v1", "Widget"));
    }

    #[test]
    fn every_stored_kind_has_a_protobuf_schema() {
        for info in rkube_api::resource::RESOURCES {
            assert!(supports(info.api_version, info.kind), "{} {}", info.api_version, info.kind);
        }
    }
}
