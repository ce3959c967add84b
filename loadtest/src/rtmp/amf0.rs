//! AMF0 values: the subset RTMP commands use (number, boolean, string, object, null,
//! ECMA array), encoded and decoded without IO.

use bytes::{Buf, BufMut, BytesMut};

/// An AMF0 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0 {
    /// Marker 0x00.
    Number(f64),
    /// Marker 0x01.
    Boolean(bool),
    /// Marker 0x02.
    String(String),
    /// Marker 0x03 (and 0x08, ECMA array, when decoding): ordered properties.
    Object(Vec<(String, Amf0)>),
    /// Marker 0x05 (and 0x06, undefined, when decoding).
    Null,
}

/// Why AMF0 bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Amf0Error {
    /// The input ended inside a value.
    #[error("truncated AMF0 value")]
    Truncated,
    /// A type marker this decoder does not handle.
    #[error("unsupported AMF0 marker {0:#04x}")]
    Unsupported(u8),
    /// Objects nested deeper than the limit.
    #[error("AMF0 nesting too deep")]
    TooDeep,
}

impl Amf0 {
    /// Appends the encoding of `self`.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Amf0::Number(n) => {
                out.put_u8(0);
                out.put_f64(*n);
            }
            Amf0::Boolean(b) => {
                out.put_u8(1);
                out.put_u8(u8::from(*b));
            }
            Amf0::String(s) => {
                out.put_u8(2);
                put_str(out, s);
            }
            Amf0::Object(props) => {
                out.put_u8(3);
                for (k, v) in props {
                    put_str(out, k);
                    v.encode(out);
                }
                out.put_slice(&[0, 0, 9]);
            }
            Amf0::Null => out.put_u8(5),
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Amf0::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// A property of an object.
    pub fn get(&self, key: &str) -> Option<&Amf0> {
        match self {
            Amf0::Object(props) => props.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

fn put_str(out: &mut BytesMut, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.put_u16(bytes.len() as u16);
    out.put_slice(bytes);
}

fn get_str(buf: &mut &[u8]) -> Result<String, Amf0Error> {
    if buf.len() < 2 {
        return Err(Amf0Error::Truncated);
    }
    let len = usize::from(buf.get_u16());
    if buf.len() < len {
        return Err(Amf0Error::Truncated);
    }
    let s = String::from_utf8_lossy(&buf[..len]).into_owned();
    buf.advance(len);
    Ok(s)
}

fn decode_one(buf: &mut &[u8], depth: usize) -> Result<Amf0, Amf0Error> {
    if depth > 8 {
        return Err(Amf0Error::TooDeep);
    }
    if buf.is_empty() {
        return Err(Amf0Error::Truncated);
    }
    let marker = buf.get_u8();
    Ok(match marker {
        0 => {
            if buf.len() < 8 {
                return Err(Amf0Error::Truncated);
            }
            Amf0::Number(buf.get_f64())
        }
        1 => {
            if buf.is_empty() {
                return Err(Amf0Error::Truncated);
            }
            Amf0::Boolean(buf.get_u8() != 0)
        }
        2 => Amf0::String(get_str(buf)?),
        3 | 8 => {
            if marker == 8 {
                if buf.len() < 4 {
                    return Err(Amf0Error::Truncated);
                }
                buf.advance(4); // approximate count; the end marker terminates
            }
            let mut props = Vec::new();
            loop {
                let key = get_str(buf)?;
                if key.is_empty() && buf.first() == Some(&9) {
                    buf.advance(1);
                    break;
                }
                props.push((key, decode_one(buf, depth + 1)?));
            }
            Amf0::Object(props)
        }
        5 | 6 => Amf0::Null,
        other => return Err(Amf0Error::Unsupported(other)),
    })
}

/// Decodes all values of a command message body.
pub fn decode_all(mut buf: &[u8]) -> Result<Vec<Amf0>, Amf0Error> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        out.push(decode_one(&mut buf, 0)?);
    }
    Ok(out)
}

/// Encodes a command: name, transaction id, then the arguments.
pub fn command(name: &str, txn: f64, args: &[Amf0]) -> BytesMut {
    let mut out = BytesMut::with_capacity(128);
    Amf0::String(name.to_owned()).encode(&mut out);
    Amf0::Number(txn).encode(&mut out);
    for a in args {
        a.encode(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let values = vec![
            Amf0::String("connect".into()),
            Amf0::Number(1.0),
            Amf0::Object(vec![
                ("app".into(), Amf0::String("live".into())),
                ("fpad".into(), Amf0::Boolean(false)),
                ("nested".into(), Amf0::Object(vec![("x".into(), Amf0::Null)])),
            ]),
            Amf0::Null,
        ];
        let mut out = BytesMut::new();
        for v in &values {
            v.encode(&mut out);
        }
        assert_eq!(decode_all(&out).unwrap(), values);
        assert_eq!(decode_all(&out).unwrap()[2].get("app").and_then(Amf0::as_str), Some("live"));
        assert_eq!(decode_all(&out[..out.len() - 2]), Err(Amf0Error::Truncated));
        assert_eq!(decode_all(&[0x0b]), Err(Amf0Error::Unsupported(0x0b)));
    }
}
