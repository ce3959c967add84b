//! What a [`super::ServerSession`] tells the application.

use std::fmt;

use bytes::Bytes;

use super::amf0::Amf0Value;

/// An event for the application, in the order the peer's messages arrived.
#[derive(Clone, PartialEq)]
pub enum SessionEvent {
    /// The peer sent `connect`; the server already replied with success.
    Connected { app: String, tc_url: Option<String> },
    /// The peer wants to publish: answer with [`super::ServerSession::accept_publish`] or
    /// [`super::ServerSession::reject_publish`]. Media is dropped until accepted.
    /// `Debug` redacts the stream key.
    PublishRequested { app: String, stream_key: String, stream_id: u32 },
    /// `onMetaData` (directly or through `@setDataFrame`) while publishing, when its useful
    /// fields differ from the last one reported for this publish (some muxers repeat it).
    Metadata(StreamMetadata),
    /// A video message: the raw FLV video tag body, absolute timestamp in ms (wraps at 2^32).
    Video { timestamp: u32, data: Bytes },
    /// An audio message: the raw FLV audio tag body, absolute timestamp in ms.
    Audio { timestamp: u32, data: Bytes },
    /// The publishing (or publish-requested) stream ended: `FCUnpublish`, `deleteStream` or
    /// `closeStream`. Follows a `PublishRequested`, at most once per publish.
    Unpublished,
    /// The peer sent `play`; it got `NetStream.Play.Failed` (this is an ingest endpoint).
    PlayRefused { stream: String },
}

impl fmt::Debug for SessionEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionEvent::Connected { app, tc_url } => {
                f.debug_struct("Connected").field("app", app).field("tc_url", tc_url).finish()
            }
            SessionEvent::PublishRequested { app, stream_id, .. } => f
                .debug_struct("PublishRequested")
                .field("app", app)
                .field("stream_key", &"<redacted>")
                .field("stream_id", stream_id)
                .finish(),
            SessionEvent::Metadata(m) => f.debug_tuple("Metadata").field(m).finish(),
            SessionEvent::Video { timestamp, data } => {
                f.debug_struct("Video").field("timestamp", timestamp).field("len", &data.len()).finish()
            }
            SessionEvent::Audio { timestamp, data } => {
                f.debug_struct("Audio").field("timestamp", timestamp).field("len", &data.len()).finish()
            }
            SessionEvent::Unpublished => f.write_str("Unpublished"),
            SessionEvent::PlayRefused { stream } => {
                f.debug_struct("PlayRefused").field("stream", stream).finish()
            }
        }
    }
}

/// A codec id from metadata: FLV numeric ids (7 = AVC, 10 = AAC) or a FourCC string.
#[derive(Debug, Clone, PartialEq)]
pub enum CodecId {
    Number(f64),
    Name(String),
}

/// The useful fields of `onMetaData`; absent or mistyped fields are `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamMetadata {
    pub width: Option<f64>,
    pub height: Option<f64>,
    /// `framerate` (or `fps`).
    pub framerate: Option<f64>,
    /// Kilobits per second.
    pub videodatarate: Option<f64>,
    /// Kilobits per second.
    pub audiodatarate: Option<f64>,
    pub videocodecid: Option<CodecId>,
    pub audiocodecid: Option<CodecId>,
    pub audiosamplerate: Option<f64>,
    pub stereo: Option<bool>,
    pub encoder: Option<String>,
}

impl StreamMetadata {
    /// Reads the fields from an `onMetaData` object or ECMA array.
    pub fn from_amf(value: &Amf0Value) -> Self {
        let num = |k: &str| value.get(k).and_then(Amf0Value::as_number);
        let codec = |k: &str| match value.get(k) {
            Some(Amf0Value::Number(n)) => Some(CodecId::Number(*n)),
            Some(Amf0Value::String(s)) => Some(CodecId::Name(s.clone())),
            _ => None,
        };
        StreamMetadata {
            width: num("width"),
            height: num("height"),
            framerate: num("framerate").or_else(|| num("fps")),
            videodatarate: num("videodatarate"),
            audiodatarate: num("audiodatarate"),
            videocodecid: codec("videocodecid"),
            audiocodecid: codec("audiocodecid"),
            audiosamplerate: num("audiosamplerate"),
            stereo: match value.get("stereo") {
                Some(Amf0Value::Boolean(b)) => Some(*b),
                _ => None,
            },
            encoder: value.get("encoder").and_then(Amf0Value::as_str).map(str::to_owned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_stream_key() {
        let ev = SessionEvent::PublishRequested {
            app: "live".into(),
            stream_key: "sk_secret_123".into(),
            stream_id: 1,
        };
        let s = format!("{ev:?}");
        assert!(!s.contains("sk_secret_123"), "{s}");
        assert!(s.contains("redacted"));
    }

    #[test]
    fn metadata_fields() {
        let v = Amf0Value::EcmaArray(vec![
            ("width".into(), Amf0Value::Number(640.0)),
            ("fps".into(), Amf0Value::Number(30.0)),
            ("videocodecid".into(), Amf0Value::string("avc1")),
            ("audiocodecid".into(), Amf0Value::Number(10.0)),
            ("encoder".into(), Amf0Value::string("Lavf")),
            ("height".into(), Amf0Value::string("not a number")),
        ]);
        let m = StreamMetadata::from_amf(&v);
        assert_eq!(m.width, Some(640.0));
        assert_eq!(m.height, None);
        assert_eq!(m.framerate, Some(30.0));
        assert_eq!(m.videocodecid, Some(CodecId::Name("avc1".into())));
        assert_eq!(m.audiocodecid, Some(CodecId::Number(10.0)));
        assert_eq!(m.encoder.as_deref(), Some("Lavf"));
    }
}
