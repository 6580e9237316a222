//! Demultiplexing of the packets that share one port: RTP and RTCP multiplexed per
//! RFC 5761, STUN and DTLS per RFC 7983.
//!
//! ```
//! use pbxkit_rtp::demux::{classify, PacketClass};
//!
//! assert_eq!(classify(&[0x80, 0x00, 0, 1]), PacketClass::Rtp);       // PCMU
//! assert_eq!(classify(&[0x81, 201, 0, 7]), PacketClass::Rtcp);       // RR
//! assert_eq!(classify(&[0x00, 0x01, 0, 0]), PacketClass::Stun);      // Binding request
//! assert_eq!(classify(&[22, 0xFE, 0xFD]), PacketClass::Dtls);        // handshake
//! ```

/// What a datagram received on a multiplexed port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketClass {
    /// RTP (first byte 128–191, payload type not in 64–95).
    Rtp,
    /// RTCP (first byte 128–191, second byte 192–223 with or without the marker bit:
    /// RTP payload types 64–95 are not used with rtcp-mux, RFC 5761 §4).
    Rtcp,
    /// STUN (first byte 0–3).
    Stun,
    /// DTLS (first byte 20–63).
    Dtls,
    /// Anything else: ZRTP (16–19), TURN channel data (64–79), or garbage.
    Other,
}

/// Classifies a datagram by its first two bytes (RFC 7983 §7, RFC 5761 §4).
pub fn classify(datagram: &[u8]) -> PacketClass {
    match datagram {
        [0..=3, ..] => PacketClass::Stun,
        [20..=63, ..] => PacketClass::Dtls,
        [128..=191, second, ..] => {
            if (64..=95).contains(&(second & 0x7F)) {
                PacketClass::Rtcp
            } else {
                PacketClass::Rtp
            }
        }
        _ => PacketClass::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        for (bytes, class) in [
            (&[][..], PacketClass::Other),
            (&[0x80], PacketClass::Other),
            (&[3, 0], PacketClass::Stun),
            (&[4, 0], PacketClass::Other),
            (&[17, 0], PacketClass::Other),
            (&[20, 0], PacketClass::Dtls),
            (&[63, 0], PacketClass::Dtls),
            (&[64, 0], PacketClass::Other),
            (&[127, 0], PacketClass::Other),
            (&[128, 63], PacketClass::Rtp),
            (&[128, 64], PacketClass::Rtcp),
            (&[128, 95], PacketClass::Rtcp),
            (&[128, 96], PacketClass::Rtp),
            (&[128, 0x80 | 96], PacketClass::Rtp),
            (&[191, 200], PacketClass::Rtcp),
            (&[191, 223], PacketClass::Rtcp),
            (&[191, 224], PacketClass::Rtp),
            (&[192, 0], PacketClass::Other),
        ] {
            assert_eq!(classify(bytes), class, "{bytes:?}");
        }
    }
}
