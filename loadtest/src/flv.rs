//! A small FLV file reader for replaying recordings: the whole (bounded) file is read into
//! tags, and [`FlvRecording`] keeps the codec configuration and the media tags in order.

use bytes::Bytes;

/// Largest FLV file a publisher loads into memory.
pub const MAX_FILE_BYTES: usize = 512 * 1024 * 1024;

/// Why an FLV file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FlvError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("file of {0} bytes is larger than the limit")]
    TooLarge(usize),
    /// The file does not start with an FLV header.
    #[error("not an FLV file")]
    BadSignature,
    /// A tag is cut short.
    #[error("truncated tag at offset {0}")]
    Truncated(usize),
    /// The file has no H.264 sequence header (the stamp needs the NAL length size).
    #[error("no H.264 (AVC) sequence header in the file")]
    NoAvcConfig,
    /// The file has no media tags.
    #[error("no media tags in the file")]
    Empty,
}

/// Kind of a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    /// Type 8.
    Audio,
    /// Type 9.
    Video,
    /// Type 18 (script data, e.g. onMetaData).
    Script,
}

impl TagKind {
    /// The RTMP message type id carrying this kind of tag.
    pub fn message_type(self) -> u8 {
        match self {
            TagKind::Audio => 8,
            TagKind::Video => 9,
            TagKind::Script => 18,
        }
    }
}

/// One FLV tag: kind, timestamp (ms) and body.
#[derive(Debug, Clone)]
pub struct Tag {
    /// The tag kind.
    pub kind: TagKind,
    /// Timestamp in milliseconds.
    pub ts_ms: u32,
    /// The tag body (as carried in an RTMP message).
    pub body: Bytes,
}

impl Tag {
    /// Whether this is a codec configuration tag (AVC or AAC sequence header).
    pub fn is_sequence_header(&self) -> bool {
        match self.kind {
            TagKind::Video => self.body.len() > 1 && self.body[0] & 0x0f == 7 && self.body[1] == 0,
            TagKind::Audio => self.body.len() > 1 && self.body[0] >> 4 == 10 && self.body[1] == 0,
            TagKind::Script => false,
        }
    }

    /// Whether this is an AVC video frame (NAL units, AVCPacketType 1).
    pub fn is_avc_frame(&self) -> bool {
        self.kind == TagKind::Video && self.body.len() > 5 && self.body[0] & 0x0f == 7 && self.body[1] == 1
    }
}

/// A recording ready for replay.
#[derive(Debug, Clone)]
pub struct FlvRecording {
    /// Sequence headers (video first), sent once at the start of a publish.
    pub headers: Vec<Tag>,
    /// Media tags in file order, timestamps rebased to start at 0.
    pub media: Vec<Tag>,
    /// NAL length size from the avcC (1, 2 or 4).
    pub nal_length_size: usize,
    /// Duration of one loop in ms (last timestamp + one video frame interval).
    pub loop_ms: u32,
}

impl FlvRecording {
    /// Reads and parses a file.
    pub fn open(path: &std::path::Path) -> Result<Self, FlvError> {
        let data = std::fs::read(path)
            .map_err(|source| FlvError::Io { path: path.display().to_string(), source })?;
        Self::parse(Bytes::from(data))
    }

    /// Parses an FLV file held in memory.
    pub fn parse(data: Bytes) -> Result<Self, FlvError> {
        if data.len() > MAX_FILE_BYTES {
            return Err(FlvError::TooLarge(data.len()));
        }
        if data.len() < 9 || &data[..3] != b"FLV" {
            return Err(FlvError::BadSignature);
        }
        let offset = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize;
        let mut at = offset + 4; // header, then PreviousTagSize0
        let mut headers: Vec<Tag> = Vec::new();
        let mut media = Vec::new();
        while at + 11 <= data.len() {
            let kind = data[at] & 0x1f;
            let size = u32::from_be_bytes([0, data[at + 1], data[at + 2], data[at + 3]]) as usize;
            let ts = u32::from_be_bytes([data[at + 7], data[at + 4], data[at + 5], data[at + 6]]);
            let body_start = at + 11;
            let body_end = body_start + size;
            if body_end > data.len() {
                return Err(FlvError::Truncated(at));
            }
            let kind = match kind {
                8 => Some(TagKind::Audio),
                9 => Some(TagKind::Video),
                18 => Some(TagKind::Script),
                _ => None,
            };
            if let Some(kind) = kind {
                let tag = Tag { kind, ts_ms: ts, body: data.slice(body_start..body_end) };
                if tag.is_sequence_header() {
                    if !headers.iter().any(|h| h.kind == kind) {
                        headers.push(tag);
                    }
                } else if kind != TagKind::Script && tag.body.len() > 1 {
                    media.push(tag);
                }
            }
            at = body_end + 4;
        }
        headers.sort_by_key(|t| t.kind != TagKind::Video);
        let avcc = headers.iter().find(|t| t.kind == TagKind::Video).ok_or(FlvError::NoAvcConfig)?;
        // body: 5-byte video header, then AVCDecoderConfigurationRecord (byte 4: length size - 1).
        let nal_length_size = usize::from(avcc.body.get(9).ok_or(FlvError::NoAvcConfig)? & 3) + 1;
        let first = media.iter().map(|t| t.ts_ms).min().ok_or(FlvError::Empty)?;
        for t in &mut media {
            t.ts_ms -= first;
        }
        let video: Vec<u32> = media.iter().filter(|t| t.kind == TagKind::Video).map(|t| t.ts_ms).collect();
        let frame_ms = match video.as_slice() {
            [.., a, b] if b > a => b - a,
            _ => 33,
        };
        let last = media.iter().map(|t| t.ts_ms).max().unwrap_or(0);
        Ok(Self { headers, media, nal_length_size, loop_ms: last + frame_ms })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds an FLV file from (type, ts, body) tags.
    pub(crate) fn build_flv(tags: &[(u8, u32, Vec<u8>)]) -> Vec<u8> {
        let mut out = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        for (kind, ts, body) in tags {
            let size = body.len() as u32;
            out.push(*kind);
            out.extend_from_slice(&size.to_be_bytes()[1..]);
            out.extend_from_slice(&ts.to_be_bytes()[1..]);
            out.push((ts >> 24) as u8);
            out.extend_from_slice(&[0, 0, 0]);
            out.extend_from_slice(body);
            out.extend_from_slice(&(size + 11).to_be_bytes());
        }
        out
    }

    /// A minimal recording: avcC (length size 4), AAC config, two frames.
    pub(crate) fn sample_flv() -> Vec<u8> {
        build_flv(&[
            (18, 0, b"\x02\x00\x0aonMetaData".to_vec()),
            (9, 0, vec![0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1]),
            (8, 0, vec![0xaf, 0, 0x11, 0x90]),
            (9, 100, vec![0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88]),
            (8, 110, vec![0xaf, 1, 0x21]),
            (9, 133, vec![0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9a]),
        ])
    }

    #[test]
    fn parses_headers_media_and_rebases() {
        let rec = FlvRecording::parse(Bytes::from(sample_flv())).unwrap();
        assert_eq!(rec.headers.len(), 2);
        assert_eq!(rec.headers[0].kind, TagKind::Video);
        assert_eq!(rec.nal_length_size, 4);
        assert_eq!(rec.media.len(), 3);
        assert_eq!(rec.media[0].ts_ms, 0);
        assert_eq!(rec.media[2].ts_ms, 33);
        assert_eq!(rec.loop_ms, 66);
        assert!(rec.media[0].is_avc_frame());
    }

    #[test]
    fn rejects_bad_files() {
        assert!(matches!(FlvRecording::parse(Bytes::from_static(b"GIF89a...")), Err(FlvError::BadSignature)));
        let mut f = sample_flv();
        f.truncate(f.len() - 8);
        assert!(matches!(FlvRecording::parse(Bytes::from(f)), Err(FlvError::Truncated(_))));
        let audio_only = build_flv(&[(8, 0, vec![0xaf, 1, 1])]);
        assert!(matches!(FlvRecording::parse(Bytes::from(audio_only)), Err(FlvError::NoAvcConfig)));
    }
}
