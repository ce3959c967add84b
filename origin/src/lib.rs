//! The Skyrelay origin: RTMP ingest in, CMAF low-latency HLS out.
//!
//! Layout (sans-IO cores first, the thin tokio layer last):
//! - [`rtmp`]: RTMP server protocol (handshake, chunk stream, AMF0, session state machine).
//! - [`flv`]: FLV tag bodies (and FLV files) to codec-level frames.
//! - [`codec`]: H.264 (avcC, SPS) and AAC (AudioSpecificConfig) configuration records.
//! - [`cmaf`]: fMP4/CMAF box writing: init segments and fragments.
//! - [`packager`]: frames in, [`skyrelay_common::media::MediaEvent`]s out (parts, segments).

pub mod cmaf;
pub mod codec;
pub mod flv;
pub mod packager;
pub mod rtmp;
