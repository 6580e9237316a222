//! Property tests: RTP and RTCP serialise and parse back to the same value, arbitrary
//! bytes never make a parser panic, and DTMF survives a sender → receiver trip.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use bytes::Bytes;
use pbxkit_rtp::dtmf::{
    DtmfEvent, DtmfReceiver, DtmfSender, EventCode, SenderConfig, TelephoneEvent,
};
use pbxkit_rtp::packet::{
    ExtensionElement, HeaderExtension, PayloadType, RtpPacket, RtpTimestamp, SeqNo, Ssrc,
};
use pbxkit_rtp::rtcp::{
    self, App, CumulativeLost, Goodbye, NtpTime, ReceiverReport, ReportBlock, RtcpPacket,
    SdesChunk, SdesItem, SdesItemType, SenderReport, SourceDescription, UnknownPacket,
};
use proptest::prelude::*;
use std::time::{Duration, Instant};

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

fn bytes_between(min: usize, max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), min..=max).prop_map(Bytes::from)
}

fn extension() -> impl Strategy<Value = HeaderExtension> {
    prop_oneof![
        proptest::collection::vec(
            (1u8..=14, bytes_between(1, 16)).prop_map(|(id, d)| ExtensionElement::new(id, d)),
            0..6
        )
        .prop_map(HeaderExtension::OneByte),
        (
            0u8..16,
            proptest::collection::vec(
                (1u8..=255, bytes(40)).prop_map(|(id, d)| ExtensionElement::new(id, d)),
                0..6
            )
        )
            .prop_map(|(app_bits, elements)| HeaderExtension::TwoByte { app_bits, elements }),
        (
            any::<u16>().prop_filter("not an RFC 8285 profile", |p| {
                *p != 0xBEDE && p & 0xFFF0 != 0x1000
            }),
            proptest::collection::vec(any::<[u8; 4]>(), 0..8)
        )
            .prop_map(|(profile, words)| HeaderExtension::Other {
                profile,
                data: Bytes::from(words.concat()),
            }),
    ]
}

fn rtp_packet() -> impl Strategy<Value = RtpPacket> {
    (
        (
            0u8..128,
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            any::<bool>(),
        ),
        proptest::collection::vec(any::<u32>(), 0..=15),
        proptest::option::of(extension()),
        bytes(200),
        any::<u8>(),
    )
        .prop_map(
            |((pt, seq, ts, ssrc, marker), csrcs, ext, payload, padding)| {
                let mut b = RtpPacket::builder(
                    PayloadType::new(pt).unwrap(),
                    SeqNo(seq),
                    RtpTimestamp(ts),
                    Ssrc(ssrc),
                )
                .marker(marker)
                .payload(payload)
                .padding(padding);
                for c in csrcs {
                    b = b.csrc(Ssrc(c));
                }
                if let Some(ext) = ext {
                    b = b.extension(ext);
                }
                b.build().unwrap()
            },
        )
}

fn report_block() -> impl Strategy<Value = ReportBlock> {
    (
        any::<u32>(),
        any::<u8>(),
        CumulativeLost::MIN..=CumulativeLost::MAX,
        any::<[u32; 4]>(),
    )
        .prop_map(
            |(ssrc, fraction_lost, lost, [seq, jitter, lsr, dlsr])| ReportBlock {
                ssrc: Ssrc(ssrc),
                fraction_lost,
                cumulative_lost: CumulativeLost::new(lost).unwrap(),
                extended_highest_seq: seq,
                jitter,
                last_sr: lsr,
                delay_since_last_sr: dlsr,
            },
        )
}

fn rtcp_packet() -> impl Strategy<Value = RtcpPacket> {
    let blocks = || proptest::collection::vec(report_block(), 0..=31);
    prop_oneof![
        (any::<[u32; 5]>(), any::<u32>(), blocks(), bytes(12)).prop_map(
            |([ssrc, ntp_hi, rtp, packets, octets], ntp_lo, reports, extension)| {
                RtcpPacket::SenderReport(SenderReport {
                    ssrc: Ssrc(ssrc),
                    ntp_time: NtpTime(u64::from(ntp_hi) << 32 | u64::from(ntp_lo)),
                    rtp_time: RtpTimestamp(rtp),
                    packet_count: packets,
                    octet_count: octets,
                    reports,
                    extension,
                })
            }
        ),
        (any::<u32>(), blocks(), bytes(12)).prop_map(|(ssrc, reports, extension)| {
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: Ssrc(ssrc),
                reports,
                extension,
            })
        }),
        proptest::collection::vec(
            (
                any::<u32>(),
                proptest::collection::vec(
                    (1u8..=255, bytes(255)).prop_map(|(t, value)| SdesItem {
                        kind: SdesItemType(t),
                        value
                    }),
                    0..4
                )
            )
                .prop_map(|(ssrc, items)| SdesChunk {
                    ssrc: Ssrc(ssrc),
                    items
                }),
            0..=31
        )
        .prop_map(|chunks| RtcpPacket::SourceDescription(SourceDescription { chunks })),
        (
            proptest::collection::vec(any::<u32>().prop_map(Ssrc), 0..=31),
            proptest::option::of(bytes(255))
        )
            .prop_map(|(sources, reason)| RtcpPacket::Goodbye(Goodbye { sources, reason })),
        (0u8..32, any::<u32>(), any::<[u8; 4]>(), bytes(40)).prop_map(
            |(subtype, ssrc, name, data)| RtcpPacket::App(App {
                subtype,
                ssrc: Ssrc(ssrc),
                name,
                data
            })
        ),
        (
            any::<u8>().prop_filter("a modelled type", |t| !(200..=204).contains(t)),
            0u8..32,
            bytes(40)
        )
            .prop_map(|(packet_type, count, body)| {
                RtcpPacket::Unknown(UnknownPacket {
                    packet_type,
                    count,
                    body,
                })
            }),
    ]
}

proptest! {
    #[test]
    fn rtp_round_trip(packet in rtp_packet()) {
        let wire = packet.to_bytes();
        prop_assert_eq!(wire.len(), packet.encoded_len());
        prop_assert_eq!(RtpPacket::parse(wire.clone()).unwrap(), packet);
        pbxkit_rtp::fuzzing::rtp_packet(&wire);
    }

    #[test]
    fn rtcp_round_trip(packets in proptest::collection::vec(rtcp_packet(), 1..5)) {
        let wire = rtcp::serialize_compound(&packets).unwrap();
        prop_assert_eq!(wire.len() % 4, 0);
        prop_assert_eq!(rtcp::parse_compound(wire.clone()).unwrap(), packets.clone());
        let each: Vec<_> = rtcp::CompoundIter::new(wire.clone()).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(each, packets);
        pbxkit_rtp::fuzzing::rtcp_packet(&wire);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        pbxkit_rtp::fuzzing::rtp_packet(&data);
        pbxkit_rtp::fuzzing::rtcp_packet(&data);
        let _ = pbxkit_rtp::classify(&data);
        let _ = TelephoneEvent::parse(&data);
        pbxkit_rtp::fuzzing::rtp_g722(&data);
        pbxkit_rtp::fuzzing::rtp_resample(&data);
        pbxkit_rtp::fuzzing::rtp_wav(&data);
        #[cfg(feature = "opus")]
        pbxkit_rtp::fuzzing::rtp_opus(&data);
    }

    /// Valid packets with one byte overwritten: reaches deeper than random bytes.
    #[test]
    fn corrupted_packets_never_panic(
        rtp in rtp_packet(),
        rtcp in proptest::collection::vec(rtcp_packet(), 1..4),
        at in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let mut wire = rtp.to_bytes().to_vec();
        let i = at.index(wire.len());
        wire[i] = value;
        pbxkit_rtp::fuzzing::rtp_packet(&wire);
        let mut wire = rtcp::serialize_compound(&rtcp).unwrap().to_vec();
        let i = at.index(wire.len());
        wire[i] = value;
        pbxkit_rtp::fuzzing::rtcp_packet(&wire);
    }

    /// Whatever the duration and packet interval, the receiver reports the event once
    /// with the sender's duration, even when packets are duplicated.
    #[test]
    fn dtmf_sender_to_receiver(
        millis in 0u64..20_000,
        interval in 5u64..60,
        start_ts in any::<u32>(),
        code in 0u8..17,
        duplicate in any::<bool>(),
    ) {
        let start = Instant::now();
        let config = SenderConfig { packet_interval: Duration::from_millis(interval), ..SenderConfig::default() };
        let mut sender = DtmfSender::new(config);
        sender.start(start, RtpTimestamp(start_ts), EventCode(code), Duration::from_millis(millis)).unwrap();
        let mut receiver = DtmfReceiver::new();
        let mut events = Vec::new();
        while let Some(deadline) = sender.poll_timeout() {
            while let Some(p) = sender.poll_packet(deadline) {
                for _ in 0..=u8::from(duplicate) {
                    receiver.handle_event(p.timestamp, p.event);
                }
                events.extend(std::iter::from_fn(|| receiver.poll_event()));
            }
        }
        prop_assert_eq!(
            events,
            vec![
                DtmfEvent::Started { event: EventCode(code), timestamp: RtpTimestamp(start_ts) },
                DtmfEvent::Ended { event: EventCode(code), timestamp: RtpTimestamp(start_ts), duration: millis * 8 },
            ]
        );
    }

    /// Any sequence of packets gives balanced events: an end for every start.
    #[test]
    fn dtmf_receiver_events_are_balanced(
        packets in proptest::collection::vec((0u32..5000, 0u8..4, any::<bool>(), any::<u16>()), 0..40)
    ) {
        let mut receiver = DtmfReceiver::new();
        let mut events = Vec::new();
        for (ts, code, end, duration) in packets {
            receiver.handle_event(RtpTimestamp(ts), TelephoneEvent { event: EventCode(code), end, volume: 10, duration });
            events.extend(std::iter::from_fn(|| receiver.poll_event()));
        }
        receiver.flush();
        events.extend(std::iter::from_fn(|| receiver.poll_event()));
        let mut open = None;
        for e in events {
            match e {
                DtmfEvent::Started { event, timestamp } => {
                    prop_assert!(open.is_none());
                    open = Some((event, timestamp));
                }
                DtmfEvent::Ended { event, timestamp, .. } => {
                    prop_assert_eq!(open.take(), Some((event, timestamp)));
                }
            }
        }
        prop_assert!(open.is_none());
    }
}
