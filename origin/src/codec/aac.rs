//! AAC `AudioSpecificConfig` (ISO/IEC 14496-3): object type, sample rate, channels.

use bytes::Bytes;

use super::CodecError;

const RATES: [u32; 13] =
    [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/// A parsed AudioSpecificConfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacConfig {
    /// Signalled audio object type (2 = AAC-LC, 5 = SBR, 29 = PS); used in the codec string.
    pub object_type: u8,
    /// Sample rate of the core AAC stream, in Hz (the track timescale).
    pub sample_rate: u32,
    /// Channel count (channel configuration 0, defined by a PCE, is reported as 2).
    pub channels: u16,
    /// Samples per AAC frame at `sample_rate` (1024, or 960 with frameLengthFlag).
    pub frame_samples: u32,
    asc: Bytes,
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: u32) -> Result<u32, CodecError> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.pos / 8).ok_or(CodecError::Truncated("AudioSpecificConfig"))?;
            let bit = (byte >> (7 - (self.pos % 8))) & 1;
            v = (v << 1) | bit as u32;
            self.pos += 1;
        }
        Ok(v)
    }

    fn object_type(&mut self) -> Result<u8, CodecError> {
        let t = self.read(5)?;
        Ok(if t == 31 { 32 + self.read(6)? } else { t } as u8)
    }

    fn rate(&mut self) -> Result<u32, CodecError> {
        let idx = self.read(4)? as usize;
        if idx == 15 {
            return self.read(24);
        }
        RATES.get(idx).copied().ok_or(CodecError::UnsupportedAudio("reserved sampling frequency index"))
    }
}

impl AacConfig {
    /// Parses an AudioSpecificConfig (the body of an AAC sequence header tag).
    pub fn parse(asc: &Bytes) -> Result<Self, CodecError> {
        let mut b = Bits { data: asc, pos: 0 };
        let object_type = b.object_type()?;
        if object_type == 0 {
            return Err(CodecError::UnsupportedAudio("object type 0"));
        }
        let sample_rate = b.rate()?;
        if !(1000..=192_000).contains(&sample_rate) {
            return Err(CodecError::UnsupportedAudio("sample rate out of range"));
        }
        let channels = match b.read(4)? {
            0 => 2,
            c @ 1..=6 => c as u16,
            7 => 8,
            11 => 7,
            12 | 14 => 8,
            _ => return Err(CodecError::UnsupportedAudio("reserved channel configuration")),
        };
        let mut core_type = object_type;
        if object_type == 5 || object_type == 29 {
            b.rate()?; // extension sampling frequency
            core_type = b.object_type()?;
        }
        let mut frame_samples = 1024;
        if matches!(core_type, 1..=4 | 6 | 7 | 17 | 19..=23) && b.read(1)? == 1 {
            frame_samples = 960;
        }
        Ok(Self { object_type, sample_rate, channels, frame_samples, asc: asc.clone() })
    }

    /// RFC 6381 codec string, `mp4a.40.N`.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }

    /// The AudioSpecificConfig bytes as received (for the `esds` box).
    pub fn asc(&self) -> &Bytes {
        &self.asc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aac_lc_48k_stereo() {
        let c = AacConfig::parse(&Bytes::from_static(&[0x11, 0x90])).unwrap();
        assert_eq!((c.object_type, c.sample_rate, c.channels), (2, 48000, 2));
        assert_eq!(c.frame_samples, 1024);
        assert_eq!(c.codec_string(), "mp4a.40.2");
        let c = AacConfig::parse(&Bytes::from_static(&[0x12, 0x10])).unwrap();
        assert_eq!((c.sample_rate, c.channels), (44100, 2));
    }

    #[test]
    fn explicit_rate_and_he_aac() {
        // object type 2, index 15, explicit 0x00bb80 (48000), 1 channel.
        let c = AacConfig::parse(&Bytes::from_static(&[0x17, 0x80, 0x5d, 0xc0, 0x08])).unwrap();
        assert_eq!((c.sample_rate, c.channels), (48000, 1));
        // object type 5 (SBR), 24 kHz core, stereo, ext 48 kHz, core type 2.
        let c = AacConfig::parse(&Bytes::from_static(&[0x2b, 0x11, 0x88, 0x00])).unwrap();
        assert_eq!((c.object_type, c.sample_rate), (5, 24000));
        assert_eq!(c.codec_string(), "mp4a.40.5");
    }

    #[test]
    fn rejects_garbage() {
        assert!(AacConfig::parse(&Bytes::new()).is_err());
        assert!(AacConfig::parse(&Bytes::from_static(&[0x00, 0x00])).is_err());
        assert!(AacConfig::parse(&Bytes::from_static(&[0x16, 0x90])).is_err());
    }
}
