//! G.711 µ-law (PCMU) and A-law (PCMA) for 16-bit linear PCM, bit-exact with the ITU-T
//! G.711 tables.
//!
//! The algorithms are the classic Sun Microsystems reference ones (`g711.c`, public
//! domain), which reproduce the ITU tables: µ-law works on the top 14 bits of a sample
//! and A-law on the top 13 bits, as the ITU encoders do. All conversions are table
//! lookups built at compile time: decoding reads a 256-entry table, encoding a table
//! indexed by the 14-bit (µ-law) or 13-bit (A-law) input.
//!
//! Decoded values are the ITU decoder outputs scaled to 16 bits (µ-law ×4, A-law ×8),
//! so `decode(encode(x))` is the centre of the quantisation interval that holds `x`.
//!
//! **Round trips.** `encode(decode(code)) == code` for all 256 A-law codes and for
//! 255 of the 256 µ-law codes. The exception is µ-law `0x7F`, the "negative zero": both
//! `0x7F` and `0xFF` decode to 0, and 0 encodes to `0xFF` (positive zero), as the ITU
//! encoder does.
//!
//! ```
//! use pbxkit_rtp::g711::{self, Law};
//!
//! assert_eq!(g711::ulaw_decode(0x00), -32124);
//! assert_eq!(g711::alaw_encode(0), 0xD5);
//!
//! let mut encoded = Vec::new();
//! Law::Alaw.encode(&[0, 1000, -1000], &mut encoded);
//! let mut decoded = Vec::new();
//! Law::Alaw.decode(&encoded, &mut decoded);
//! assert_eq!(decoded, [8, 1008, -1008]);
//! ```

/// One of the two G.711 companding laws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// µ-law (PCMU, RTP payload type 0): North America and Japan.
    Ulaw,
    /// A-law (PCMA, RTP payload type 8): the rest of the world.
    Alaw,
}

impl Law {
    /// The code for silence (a zero sample).
    pub fn silence(self) -> u8 {
        match self {
            Law::Ulaw => 0xFF,
            Law::Alaw => 0xD5,
        }
    }

    /// Encodes one sample.
    pub fn encode_sample(self, sample: i16) -> u8 {
        match self {
            Law::Ulaw => ulaw_encode(sample),
            Law::Alaw => alaw_encode(sample),
        }
    }

    /// Decodes one code.
    pub fn decode_sample(self, code: u8) -> i16 {
        match self {
            Law::Ulaw => ulaw_decode(code),
            Law::Alaw => alaw_decode(code),
        }
    }

    /// Appends the codes of `samples` to `out` (one byte per sample).
    pub fn encode(self, samples: &[i16], out: &mut Vec<u8>) {
        match self {
            Law::Ulaw => out.extend(samples.iter().map(|&s| ulaw_encode(s))),
            Law::Alaw => out.extend(samples.iter().map(|&s| alaw_encode(s))),
        }
    }

    /// Appends the samples of `codes` to `out`.
    pub fn decode(self, codes: &[u8], out: &mut Vec<i16>) {
        let table = match self {
            Law::Ulaw => &ULAW_DECODE,
            Law::Alaw => &ALAW_DECODE,
        };
        out.extend(codes.iter().map(|&c| table[usize::from(c)]));
    }
}

/// Encodes a 16-bit sample to µ-law (its 2 low bits are ignored).
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    // `sample >> 2` is in -8192..=8191.
    ULAW_ENCODE[((sample >> 2) + 8192) as usize]
}

/// Decodes a µ-law code to a 16-bit sample.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[usize::from(code)]
}

/// Encodes a 16-bit sample to A-law (its 3 low bits are ignored).
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    // `sample >> 3` is in -4096..=4095.
    ALAW_ENCODE[((sample >> 3) + 4096) as usize]
}

/// Decodes an A-law code to a 16-bit sample.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[usize::from(code)]
}

/// µ-law bias of the Sun reference, on the 16-bit scale.
const BIAS: i32 = 0x84;
/// The largest µ-law magnitude on the 14-bit scale.
const CLIP: i32 = 8159;
const ULAW_SEGMENT_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
const ALAW_SEGMENT_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

const fn segment(value: i32, ends: &[i32; 8]) -> i32 {
    let mut i = 0;
    while i < 8 {
        if value <= ends[i] {
            return i as i32;
        }
        i += 1;
    }
    8
}

/// Sun `linear2ulaw`, taking the 14-bit value `pcm = sample >> 2`.
const fn linear14_to_ulaw(pcm: i32) -> u8 {
    let (mut magnitude, mask) = if pcm < 0 { (-pcm, 0x7F) } else { (pcm, 0xFF) };
    if magnitude > CLIP {
        magnitude = CLIP;
    }
    magnitude += BIAS >> 2;
    let seg = segment(magnitude, &ULAW_SEGMENT_END);
    let code = if seg >= 8 {
        0x7F
    } else {
        (seg << 4) | ((magnitude >> (seg + 1)) & 0x0F)
    };
    (code ^ mask) as u8
}

/// Sun `ulaw2linear`.
const fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code as i32;
    let t = (((u & 0x0F) << 3) + BIAS) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { BIAS - t } else { t - BIAS }) as i16
}

/// Sun `linear2alaw`, taking the 13-bit value `pcm = sample >> 3`.
const fn linear13_to_alaw(pcm: i32) -> u8 {
    let (magnitude, mask) = if pcm >= 0 {
        (pcm, 0xD5)
    } else {
        (-pcm - 1, 0x55)
    };
    let seg = segment(magnitude, &ALAW_SEGMENT_END);
    let code = if seg >= 8 {
        0x7F
    } else if seg < 2 {
        (seg << 4) | ((magnitude >> 1) & 0x0F)
    } else {
        (seg << 4) | ((magnitude >> seg) & 0x0F)
    };
    (code ^ mask) as u8
}

/// Sun `alaw2linear`.
const fn alaw_to_linear(code: u8) -> i16 {
    let a = (code ^ 0x55) as i32;
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

static ULAW_DECODE: [i16; 256] = {
    let mut table = [0; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = ulaw_to_linear(i as u8);
        i += 1;
    }
    table
};

static ALAW_DECODE: [i16; 256] = {
    let mut table = [0; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = alaw_to_linear(i as u8);
        i += 1;
    }
    table
};

static ULAW_ENCODE: [u8; 16384] = {
    let mut table = [0; 16384];
    let mut i = 0;
    while i < 16384 {
        table[i] = linear14_to_ulaw(i as i32 - 8192);
        i += 1;
    }
    table
};

static ALAW_ENCODE: [u8; 8192] = {
    let mut table = [0; 8192];
    let mut i = 0;
    while i < 8192 {
        table[i] = linear13_to_alaw(i as i32 - 4096);
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_except_ulaw_negative_zero() {
        for code in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(code)), code, "A-law {code:#04x}");
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(
                ulaw_encode(ulaw_decode(code)),
                expected,
                "µ-law {code:#04x}"
            );
        }
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0xFF), 0);
    }

    /// Decoder outputs from the ITU-T G.711 tables (Table 1a/1b for A-law on the 13-bit
    /// scale, Table 2a/2b for µ-law on the 14-bit scale), scaled to 16 bits.
    #[test]
    fn itu_table_values() {
        // µ-law: code (after the ITU's bit inversion) → decoder output ×4.
        for (code, value) in [
            (0x80u8, 8031 * 4), // largest positive
            (0x00, -8031 * 4),  // largest negative
            (0xFF, 0),          // positive zero
            (0x7F, 0),          // negative zero
            (0xFE, 2 * 4),      // first step
            (0xF0, 30 * 4),     // end of segment 0 (steps of 2)
            (0xEF, 33 * 4),     // start of segment 1 (steps of 4)
            (0xE0, 93 * 4),     // end of segment 1
            (0x8F, 4191 * 4),   // start of segment 7 (steps of 256)
            (0x7E, -(2 * 4)),   // negative first step
        ] {
            assert_eq!(i32::from(ulaw_decode(code)), value, "µ-law {code:#04x}");
        }
        // A-law: even bits inverted on the wire; decoder output ×8.
        for (code, value) in [
            (0xD5u8, 8),       // smallest positive (1 on the 13-bit scale)
            (0x55, -8),        // smallest negative
            (0xAA, 4032 * 8),  // largest positive
            (0x2A, -4032 * 8), // largest negative
            (0xDA, 31 * 8),    // end of segment 0 (steps of 2)
            (0xC5, 33 * 8),    // segment 1 starts where segment 0 left off
            (0xF5, 66 * 8),    // segment 2 (steps of 4)
            (0xA5, 2112 * 8),  // segment 7 (steps of 128)
        ] {
            assert_eq!(i32::from(alaw_decode(code)), value, "A-law {code:#04x}");
        }
    }

    #[test]
    fn encoder_decision_values() {
        // µ-law: the first decision value is 1 on the 14-bit scale (4 on ours).
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(3), 0xFF);
        assert_eq!(ulaw_encode(4), 0xFE);
        assert_eq!(ulaw_encode(-4), 0x7E);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        // A-law: 0..=15 → first positive code, -1..=-16 → first negative code.
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(15), 0xD5);
        assert_eq!(alaw_encode(16), 0xD4);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
    }

    fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
        bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    /// FNV-1a hashes of the complete tables as produced by CPython 3.11's `audioop`
    /// (`lin2ulaw`/`lin2alaw` over every 16-bit sample, `ulaw2lin`/`alaw2lin` over every
    /// code, samples little-endian), an independent implementation.
    #[test]
    fn whole_tables_match_cpython_audioop() {
        let all = || i16::MIN..=i16::MAX;
        assert_eq!(fnv1a(all().map(ulaw_encode)), 0xd5ee_23f7_d0ff_ae91);
        assert_eq!(fnv1a(all().map(alaw_encode)), 0xf030_666e_b780_cf25);
        let le = |f: fn(u8) -> i16| (0..=255u8).flat_map(move |c| f(c).to_le_bytes());
        assert_eq!(fnv1a(le(ulaw_decode)), 0xb91e_65d6_8481_a1a8);
        assert_eq!(fnv1a(le(alaw_decode)), 0x693a_40ca_62a3_d2a5);
    }

    #[test]
    fn encoding_is_monotonic() {
        let mut last = i32::MIN;
        for s in i16::MIN..=i16::MAX {
            let d = i32::from(ulaw_decode(ulaw_encode(s)));
            assert!(d >= last, "µ-law {s}");
            last = d;
        }
        let mut last = i32::MIN;
        for s in i16::MIN..=i16::MAX {
            let d = i32::from(alaw_decode(alaw_encode(s)));
            assert!(d >= last, "A-law {s}");
            last = d;
        }
    }

    #[test]
    fn frames() {
        let mut out = Vec::new();
        Law::Ulaw.encode(&[0; 160], &mut out);
        assert_eq!(out, [Law::Ulaw.silence(); 160]);
        let mut pcm = Vec::new();
        Law::Ulaw.decode(&out, &mut pcm);
        assert_eq!(pcm, [0; 160]);
    }
}
