//! Sans-IO FLV file reader: feed bytes, take tags.
//!
//! The reader owns a bounded buffer. [`FlvReader::feed`] copies in as many bytes as fit and
//! says how many it took; [`FlvReader::next_tag`] returns `Ok(None)` when it needs more
//! bytes. Tag bodies are zero-copy slices of the buffer. After an error the reader stays
//! failed (every later call returns the same error).

use bytes::{Buf, Bytes, BytesMut};

use super::FlvError;

/// Size of the FLV file header.
const HEADER_LEN: usize = 9;
/// Tag header size (type, size, timestamp, stream id).
const TAG_HEADER_LEN: usize = 11;
/// Extra room kept in the buffer beyond one maximal tag, so feeding in large reads works.
const SLACK: usize = 64 * 1024;

/// The FLV file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlvHeader {
    /// FLV version (1).
    pub version: u8,
    /// The header says the file has audio tags.
    pub has_audio: bool,
    /// The header says the file has video tags.
    pub has_video: bool,
}

/// What a tag carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    /// 8: audio.
    Audio,
    /// 9: video.
    Video,
    /// 18: script data (onMetaData).
    Script,
    /// Anything else (kept so a caller can skip it).
    Other(u8),
}

/// One tag of an FLV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    /// The tag type.
    pub kind: TagKind,
    /// Timestamp in milliseconds (24 bits + the extension byte).
    pub timestamp_ms: u32,
    /// The tag body (what an RTMP message of the same type carries).
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Header,
    /// Waiting for PreviousTagSize + a tag; the value is the size the previous tag had.
    Tags {
        expected_prev: Option<u32>,
    },
    Failed(FlvError),
}

/// Incremental FLV file reader with a bounded buffer.
#[derive(Debug)]
pub struct FlvReader {
    buf: BytesMut,
    state: State,
    header: Option<FlvHeader>,
    max_tag_size: usize,
    capacity: usize,
}

impl FlvReader {
    /// A reader that rejects tags whose body exceeds `max_tag_size` bytes.
    pub fn new(max_tag_size: usize) -> Self {
        let capacity = max_tag_size.saturating_add(HEADER_LEN + TAG_HEADER_LEN + 4).saturating_add(SLACK);
        Self { buf: BytesMut::new(), state: State::Header, header: None, max_tag_size, capacity }
    }

    /// Copies as much of `data` as fits into the buffer; returns the number of bytes taken.
    /// Drain tags with [`Self::next_tag`] and feed the rest.
    pub fn feed(&mut self, data: &[u8]) -> usize {
        let room = self.capacity.saturating_sub(self.buf.len());
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        n
    }

    /// Bytes buffered and not yet returned as tags.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Checks that the input ended cleanly: nothing but the last PreviousTagSize (which
    /// must match the last tag) is left.
    pub fn finish(&self) -> Result<(), FlvError> {
        match (&self.state, self.buf.len()) {
            (State::Failed(e), _) => Err(e.clone()),
            (State::Tags { .. }, 0) => Ok(()),
            (State::Tags { expected_prev }, 4) => {
                let found = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                match expected_prev {
                    Some(expected) if *expected != found => {
                        Err(FlvError::SizeMismatch { expected: *expected, found })
                    }
                    _ => Ok(()),
                }
            }
            (_, have) => Err(FlvError::Truncated { what: "FLV file", need: have + 1, have }),
        }
    }

    /// The file header, once read.
    pub fn header(&self) -> Option<FlvHeader> {
        self.header
    }

    /// The next complete tag, `Ok(None)` if more bytes are needed.
    pub fn next_tag(&mut self) -> Result<Option<FlvTag>, FlvError> {
        match self.step() {
            Ok(tag) => Ok(tag),
            Err(e) => {
                self.state = State::Failed(e.clone());
                Err(e)
            }
        }
    }

    fn step(&mut self) -> Result<Option<FlvTag>, FlvError> {
        loop {
            match &self.state {
                State::Failed(e) => return Err(e.clone()),
                State::Header => {
                    if self.buf.len() < HEADER_LEN {
                        if self.buf.len() >= 3 && &self.buf[..3] != b"FLV" {
                            return Err(FlvError::BadSignature);
                        }
                        return Ok(None);
                    }
                    if &self.buf[..3] != b"FLV" {
                        return Err(FlvError::BadSignature);
                    }
                    let flags = self.buf[4];
                    let offset = u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]);
                    if (offset as usize) < HEADER_LEN || offset as usize > HEADER_LEN + SLACK {
                        return Err(FlvError::BadHeaderOffset(offset));
                    }
                    if self.buf.len() < offset as usize {
                        return Ok(None);
                    }
                    self.header = Some(FlvHeader {
                        version: self.buf[3],
                        has_audio: flags & 0x04 != 0,
                        has_video: flags & 0x01 != 0,
                    });
                    self.buf.advance(offset as usize);
                    self.state = State::Tags { expected_prev: None };
                }
                State::Tags { expected_prev } => {
                    let expected_prev = *expected_prev;
                    if self.buf.len() < 4 + TAG_HEADER_LEN {
                        return Ok(None);
                    }
                    let b = &self.buf[..4 + TAG_HEADER_LEN];
                    let prev = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                    if let Some(expected) = expected_prev
                        && prev != expected
                    {
                        return Err(FlvError::SizeMismatch { expected, found: prev });
                    }
                    let kind = match b[4] & 0x1f {
                        8 => TagKind::Audio,
                        9 => TagKind::Video,
                        18 => TagKind::Script,
                        other => TagKind::Other(other),
                    };
                    let size = u32::from_be_bytes([0, b[5], b[6], b[7]]) as usize;
                    if size > self.max_tag_size {
                        return Err(FlvError::TagTooLarge { size, max: self.max_tag_size });
                    }
                    let timestamp_ms = u32::from_be_bytes([b[11], b[8], b[9], b[10]]);
                    if self.buf.len() < 4 + TAG_HEADER_LEN + size {
                        return Ok(None);
                    }
                    self.buf.advance(4 + TAG_HEADER_LEN);
                    let body = self.buf.split_to(size).freeze();
                    self.state = State::Tags { expected_prev: Some((TAG_HEADER_LEN + size) as u32) };
                    return Ok(Some(FlvTag { kind, timestamp_ms, body }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(kind: u8, ts: u32, body: &[u8], prev: u32) -> Vec<u8> {
        let mut v = prev.to_be_bytes().to_vec();
        v.push(kind);
        v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        v.extend_from_slice(&ts.to_be_bytes()[1..]);
        v.push((ts >> 24) as u8);
        v.extend_from_slice(&[0, 0, 0]);
        v.extend_from_slice(body);
        v
    }

    fn file() -> Vec<u8> {
        let mut f = b"FLV\x01\x05\x00\x00\x00\x09".to_vec();
        f.extend(tag(9, 0x0102_0304, &[1, 2, 3], 0));
        f.extend(tag(8, 5, &[4], 14));
        f
    }

    #[test]
    fn reads_byte_by_byte() {
        let data = file();
        let mut r = FlvReader::new(1024);
        let mut tags = Vec::new();
        for b in &data {
            assert_eq!(r.feed(std::slice::from_ref(b)), 1);
            while let Some(t) = r.next_tag().unwrap() {
                tags.push(t);
            }
        }
        let h = r.header().unwrap();
        assert!(h.has_audio && h.has_video);
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0].kind, TagKind::Video);
        assert_eq!(tags[0].timestamp_ms, 0x0102_0304);
        assert_eq!(&tags[0].body[..], &[1, 2, 3]);
        assert_eq!(tags[1].kind, TagKind::Audio);
        assert_eq!(r.buffered(), 0);
        assert_eq!(r.finish(), Ok(()));
        r.feed(&15u32.to_be_bytes());
        assert!(r.finish().is_err(), "wrong last PreviousTagSize");
    }

    #[test]
    fn rejects_lies_and_oversize() {
        let mut bad = b"FLV\x01\x05\x00\x00\x00\x09".to_vec();
        bad.extend(tag(9, 0, &[1, 2, 3], 0));
        bad.extend(tag(8, 5, &[4], 99));
        let mut r = FlvReader::new(1024);
        r.feed(&bad);
        assert!(r.next_tag().unwrap().is_some());
        assert!(matches!(r.next_tag(), Err(FlvError::SizeMismatch { .. })));
        assert!(r.next_tag().is_err(), "stays failed");

        let mut r = FlvReader::new(2);
        r.feed(&file());
        assert!(matches!(r.next_tag(), Err(FlvError::TagTooLarge { .. })));

        let mut r = FlvReader::new(2);
        r.feed(b"MP4 garbage");
        assert_eq!(r.next_tag(), Err(FlvError::BadSignature));
    }

    #[test]
    fn feed_is_bounded() {
        let mut r = FlvReader::new(10);
        let big = vec![0u8; 1 << 20];
        let took = r.feed(&big);
        assert!(took < big.len());
        assert_eq!(r.feed(&big), 0);
    }
}
