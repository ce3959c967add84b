//! AMF0 values: a bounded decoder and an encoder.
//!
//! The decoder never panics and never trusts a count or a length from the input: nesting is
//! limited by `max_depth`, the number of values per decode by [`MAX_VALUES`], and every
//! length is checked against the bytes actually present before anything is allocated.
//! References (marker 0x07), movie clips, record sets and the AMF3 switch are rejected.

use bytes::{BufMut, BytesMut};

/// Most values (at any depth) one [`Decoder`] accepts, so a small message cannot expand
/// into a large tree.
pub const MAX_VALUES: usize = 65_536;

/// Hard ceiling for any configured nesting depth (keeps the recursive decoder's stack small).
pub const DEPTH_CEILING: usize = 64;

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const REFERENCE: u8 = 0x07;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0A;
const DATE: u8 = 0x0B;
const LONG_STRING: u8 = 0x0C;
const UNSUPPORTED: u8 = 0x0D;
const XML_DOCUMENT: u8 = 0x0F;
const TYPED_OBJECT: u8 = 0x10;

/// One AMF0 value. Long strings and XML documents decode to [`Amf0Value::String`]; typed
/// objects decode to [`Amf0Value::Object`] (the class name is dropped); the "unsupported"
/// marker decodes to [`Amf0Value::Undefined`].
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    /// A string; encoded as a long string when longer than 65535 bytes.
    String(String),
    /// Anonymous object: ordered properties.
    Object(Vec<(String, Amf0Value)>),
    Null,
    Undefined,
    /// Associative array: ordered properties.
    EcmaArray(Vec<(String, Amf0Value)>),
    StrictArray(Vec<Amf0Value>),
    /// Milliseconds since the Unix epoch and a (reserved) time zone offset.
    Date {
        millis: f64,
        timezone: i16,
    },
}

impl Amf0Value {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The properties of an object or ECMA array.
    pub fn properties(&self) -> Option<&[(String, Amf0Value)]> {
        match self {
            Amf0Value::Object(p) | Amf0Value::EcmaArray(p) => Some(p),
            _ => None,
        }
    }

    /// The first property named `key` of an object or ECMA array.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.properties()?.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Shorthand for an object from `(&str, value)` pairs.
    pub fn object<const N: usize>(props: [(&str, Amf0Value); N]) -> Self {
        Amf0Value::Object(props.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    /// Shorthand for a string value.
    pub fn string(s: impl Into<String>) -> Self {
        Amf0Value::String(s.into())
    }
}

/// Why AMF0 input was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmfError {
    /// The input ended inside a value.
    #[error("AMF0 value truncated")]
    Truncated,
    /// Objects/arrays nested deeper than the configured limit.
    #[error("AMF0 nesting deeper than {0}")]
    TooDeep(usize),
    /// More values than [`MAX_VALUES`] in one decode.
    #[error("AMF0 input holds more than {0} values")]
    TooManyValues(usize),
    /// A reference marker (0x07); references are not supported.
    #[error("AMF0 references are not supported")]
    Reference,
    /// A marker this decoder does not accept (movie clip, record set, AMF3 switch, unknown).
    #[error("unsupported AMF0 marker 0x{0:02x}")]
    UnsupportedMarker(u8),
    /// An object-end marker where a value was expected.
    #[error("AMF0 object-end marker outside an object")]
    UnexpectedObjectEnd,
}

/// Decodes consecutive AMF0 values from a byte slice.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    max_depth: usize,
    values: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder over `buf`; `max_depth` is clamped to [`DEPTH_CEILING`].
    pub fn new(buf: &'a [u8], max_depth: usize) -> Self {
        Decoder { buf, pos: 0, max_depth: max_depth.min(DEPTH_CEILING), values: 0 }
    }

    /// Whether every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Decodes the next value.
    pub fn decode(&mut self) -> Result<Amf0Value, AmfError> {
        self.value(0)
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], AmfError> {
        if self.remaining() < n {
            return Err(AmfError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, AmfError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, AmfError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, AmfError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self) -> Result<f64, AmfError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }

    fn utf8(&mut self, len: usize) -> Result<String, AmfError> {
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    fn short_string(&mut self) -> Result<String, AmfError> {
        let len = self.u16()? as usize;
        self.utf8(len)
    }

    fn long_string(&mut self) -> Result<String, AmfError> {
        let len = self.u32()? as usize;
        self.utf8(len)
    }

    fn value(&mut self, depth: usize) -> Result<Amf0Value, AmfError> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(AmfError::TooManyValues(MAX_VALUES));
        }
        let marker = self.u8()?;
        Ok(match marker {
            NUMBER => Amf0Value::Number(self.f64()?),
            BOOLEAN => Amf0Value::Boolean(self.u8()? != 0),
            STRING => Amf0Value::String(self.short_string()?),
            LONG_STRING | XML_DOCUMENT => Amf0Value::String(self.long_string()?),
            NULL => Amf0Value::Null,
            UNDEFINED | UNSUPPORTED => Amf0Value::Undefined,
            REFERENCE => return Err(AmfError::Reference),
            OBJECT_END => return Err(AmfError::UnexpectedObjectEnd),
            OBJECT => Amf0Value::Object(self.properties(depth + 1, false)?),
            TYPED_OBJECT => {
                let _class = self.short_string()?;
                Amf0Value::Object(self.properties(depth + 1, false)?)
            }
            ECMA_ARRAY => {
                let _count = self.u32()?;
                Amf0Value::EcmaArray(self.properties(depth + 1, true)?)
            }
            STRICT_ARRAY => {
                let count = self.u32()? as usize;
                self.enter(depth + 1)?;
                // Every value takes at least one byte: a count beyond the input is a lie.
                if count > self.remaining() {
                    return Err(AmfError::Truncated);
                }
                let mut items = Vec::with_capacity(count.min(1024));
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Amf0Value::StrictArray(items)
            }
            DATE => {
                let millis = self.f64()?;
                let timezone = self.u16()? as i16;
                Amf0Value::Date { millis, timezone }
            }
            other => return Err(AmfError::UnsupportedMarker(other)),
        })
    }

    fn enter(&self, depth: usize) -> Result<(), AmfError> {
        if depth > self.max_depth { Err(AmfError::TooDeep(self.max_depth)) } else { Ok(()) }
    }

    /// Properties up to the object-end marker. ECMA arrays may also end with the input
    /// (some encoders omit the end marker).
    fn properties(&mut self, depth: usize, lenient_end: bool) -> Result<Vec<(String, Amf0Value)>, AmfError> {
        self.enter(depth)?;
        let mut props = Vec::new();
        loop {
            if lenient_end && self.is_empty() {
                return Ok(props);
            }
            let key = self.short_string()?;
            if key.is_empty() && self.buf.get(self.pos) == Some(&OBJECT_END) {
                self.pos += 1;
                return Ok(props);
            }
            let value = self.value(depth)?;
            props.push((key, value));
        }
    }
}

/// Decodes every value in `buf`.
pub fn decode_all(buf: &[u8], max_depth: usize) -> Result<Vec<Amf0Value>, AmfError> {
    let mut d = Decoder::new(buf, max_depth);
    let mut out = Vec::new();
    while !d.is_empty() {
        out.push(d.decode()?);
    }
    Ok(out)
}

/// Appends the encoding of `value` to `out`.
pub fn encode(value: &Amf0Value, out: &mut BytesMut) {
    match value {
        Amf0Value::Number(n) => {
            out.put_u8(NUMBER);
            out.put_f64(*n);
        }
        Amf0Value::Boolean(b) => {
            out.put_u8(BOOLEAN);
            out.put_u8(u8::from(*b));
        }
        Amf0Value::String(s) => match u16::try_from(s.len()) {
            Ok(len) => {
                out.put_u8(STRING);
                out.put_u16(len);
                out.put_slice(s.as_bytes());
            }
            Err(_) => {
                out.put_u8(LONG_STRING);
                let bytes = &s.as_bytes()[..s.len().min(u32::MAX as usize)];
                out.put_u32(bytes.len() as u32);
                out.put_slice(bytes);
            }
        },
        Amf0Value::Object(props) => {
            out.put_u8(OBJECT);
            encode_properties(props, out);
        }
        Amf0Value::Null => out.put_u8(NULL),
        Amf0Value::Undefined => out.put_u8(UNDEFINED),
        Amf0Value::EcmaArray(props) => {
            out.put_u8(ECMA_ARRAY);
            out.put_u32(u32::try_from(props.len()).unwrap_or(u32::MAX));
            encode_properties(props, out);
        }
        Amf0Value::StrictArray(items) => {
            out.put_u8(STRICT_ARRAY);
            out.put_u32(u32::try_from(items.len()).unwrap_or(u32::MAX));
            for item in items {
                encode(item, out);
            }
        }
        Amf0Value::Date { millis, timezone } => {
            out.put_u8(DATE);
            out.put_f64(*millis);
            out.put_u16(*timezone as u16);
        }
    }
}

fn encode_properties(props: &[(String, Amf0Value)], out: &mut BytesMut) {
    for (key, value) in props {
        // Keys are written by this crate and short; a longer one is cut to fit the u16 length.
        let bytes = &key.as_bytes()[..key.len().min(u16::MAX as usize)];
        out.put_u16(bytes.len() as u16);
        out.put_slice(bytes);
        encode(value, out);
    }
    out.put_u16(0);
    out.put_u8(OBJECT_END);
}

/// Encodes a sequence of values.
pub fn encode_all(values: &[Amf0Value]) -> BytesMut {
    let mut out = BytesMut::new();
    for v in values {
        encode(v, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(v: Amf0Value) {
        let bytes = encode_all(std::slice::from_ref(&v));
        assert_eq!(decode_all(&bytes, 16).unwrap(), vec![v]);
    }

    #[test]
    fn roundtrips_every_type() {
        roundtrip(Amf0Value::Number(1.5));
        roundtrip(Amf0Value::Boolean(true));
        roundtrip(Amf0Value::string("connect"));
        roundtrip(Amf0Value::string("x".repeat(70_000)));
        roundtrip(Amf0Value::Null);
        roundtrip(Amf0Value::Undefined);
        roundtrip(Amf0Value::object([("app", Amf0Value::string("live")), ("n", Amf0Value::Number(3.0))]));
        roundtrip(Amf0Value::EcmaArray(vec![("width".into(), Amf0Value::Number(640.0))]));
        roundtrip(Amf0Value::StrictArray(vec![Amf0Value::Null, Amf0Value::Boolean(false)]));
        roundtrip(Amf0Value::Date { millis: 1.0e12, timezone: -60 });
    }

    #[test]
    fn known_bytes() {
        // "_result" string.
        let b = [0x02, 0x00, 0x07, b'_', b'r', b'e', b's', b'u', b'l', b't'];
        assert_eq!(decode_all(&b, 4).unwrap(), vec![Amf0Value::string("_result")]);
        // Typed object with class "C" and one property.
        let b = [0x10, 0, 1, b'C', 0, 1, b'a', 0x05, 0, 0, 0x09];
        assert_eq!(decode_all(&b, 4).unwrap(), vec![Amf0Value::object([("a", Amf0Value::Null)])]);
        // ECMA array without the end marker.
        let b = [0x08, 0, 0, 0, 1, 0, 1, b'a', 0x01, 1];
        assert_eq!(
            decode_all(&b, 4).unwrap(),
            vec![Amf0Value::EcmaArray(vec![("a".into(), Amf0Value::Boolean(true))])]
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(decode_all(&[0x07, 0, 1], 4), Err(AmfError::Reference));
        assert_eq!(decode_all(&[0x11], 4), Err(AmfError::UnsupportedMarker(0x11)));
        assert_eq!(decode_all(&[0x09], 4), Err(AmfError::UnexpectedObjectEnd));
        assert_eq!(decode_all(&[0x00, 1, 2], 4), Err(AmfError::Truncated));
        assert_eq!(decode_all(&[0x02, 0xff, 0xff, b'a'], 4), Err(AmfError::Truncated));
        // A strict array that claims 4 billion elements.
        assert_eq!(decode_all(&[0x0A, 0xff, 0xff, 0xff, 0xff, 0x05], 4), Err(AmfError::Truncated));
    }

    #[test]
    fn absurd_nesting_is_an_error_not_a_stack_overflow() {
        let mut b = Vec::new();
        for _ in 0..100_000 {
            b.extend_from_slice(&[0x03, 0x00, 0x01, b'a']);
        }
        b.push(0x05);
        assert_eq!(decode_all(&b, 16), Err(AmfError::TooDeep(16)));
        // Same with strict arrays, and with a huge configured depth (clamped).
        let b: Vec<u8> = std::iter::repeat_n([0x0A, 0, 0, 0, 1], 100_000).flatten().collect();
        assert_eq!(decode_all(&b, usize::MAX), Err(AmfError::TooDeep(DEPTH_CEILING)));
    }

    #[test]
    fn value_count_is_bounded() {
        let mut b = vec![0x0A, 0x00, 0x02, 0x00, 0x00];
        b.extend(std::iter::repeat_n(0x05, 0x20000));
        assert_eq!(decode_all(&b, 4), Err(AmfError::TooManyValues(MAX_VALUES)));
    }
}
