//! The thin IO layer shared by the relay server and client: reading frames from quinn
//! streams into a bounded buffer and decoding them with the sans-IO codec.

use bytes::{Bytes, BytesMut};
use quinn::{RecvStream, SendStream, VarInt};

use super::codec::{self, CodecError, ControlMessage, StreamDecoder, StreamFrame};

/// Largest read from a stream at once.
const READ_CHUNK: usize = 64 * 1024;

/// Why reading or writing a relay stream failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The peer sent bytes that do not decode: the connection must be closed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The stream or its connection failed (reset, closed, lost).
    #[error("read: {0}")]
    Read(#[from] quinn::ReadError),
    /// Writing failed.
    #[error("write: {0}")]
    Write(#[from] quinn::WriteError),
}

impl StreamError {
    /// The reset code, when the peer reset the stream.
    pub fn reset_code(&self) -> Option<VarInt> {
        match self {
            StreamError::Read(quinn::ReadError::Reset(code)) => Some(*code),
            _ => None,
        }
    }
}

/// Reads the next control message; `Ok(None)` when the peer finished the stream cleanly.
pub(crate) async fn read_control(
    recv: &mut RecvStream,
    buf: &mut BytesMut,
) -> Result<Option<ControlMessage>, StreamError> {
    loop {
        if let Some(m) = codec::decode_control(buf)? {
            return Ok(Some(m));
        }
        match recv.read_chunk(READ_CHUNK, true).await? {
            Some(chunk) => buf.extend_from_slice(&chunk.bytes),
            None if buf.is_empty() => return Ok(None),
            None => return Err(CodecError::BadOrder("control stream finished inside a frame").into()),
        }
    }
}

/// Reads the next media frame; `Ok(None)` when the peer finished the stream after a
/// complete part or segment.
pub(crate) async fn read_frame(
    recv: &mut RecvStream,
    dec: &mut StreamDecoder,
    buf: &mut BytesMut,
) -> Result<Option<StreamFrame>, StreamError> {
    loop {
        if let Some(f) = dec.decode(buf)? {
            return Ok(Some(f));
        }
        match recv.read_chunk(READ_CHUNK, true).await? {
            Some(chunk) => buf.extend_from_slice(&chunk.bytes),
            None if buf.is_empty() => {
                dec.finish()?;
                return Ok(None);
            }
            None => return Err(CodecError::BadOrder("media stream finished inside a frame").into()),
        }
    }
}

/// Writes one control message.
pub(crate) async fn write_control(send: &mut SendStream, msg: &ControlMessage) -> Result<(), StreamError> {
    let mut buf = BytesMut::new();
    codec::encode_control(msg, &mut buf)?;
    send.write_all(&buf).await?;
    Ok(())
}

/// Writes one media frame; chunks go out without a copy.
pub(crate) async fn write_frame(send: &mut SendStream, frame: &StreamFrame) -> Result<usize, StreamError> {
    let mut buf = BytesMut::new();
    match frame {
        StreamFrame::Chunk(b) => {
            codec::encode_chunk_header(b.len(), &mut buf)?;
            let n = buf.len() + b.len();
            send.write_all_chunks(&mut [buf.freeze(), b.clone()]).await?;
            Ok(n)
        }
        other => {
            codec::encode_stream_frame(other, &mut buf)?;
            let n = buf.len();
            send.write_all_chunks(&mut [Bytes::from(buf)]).await?;
            Ok(n)
        }
    }
}
