//! An RTP echo service behind a jitter buffer, over real UDP sockets on 127.0.0.1.
//!
//! A "phone" socket sends 50 packets of 20 ms of PCMU to an "echo" socket, with the
//! trouble a network brings: packet 5 arrives after 6, packet 30 arrives 40 ms late,
//! packet 17 is lost and packet 40 arrives twice. The echo side pushes every datagram
//! into a [`JitterBuffer`], pulls one frame per 20 ms tick, and sends it back as its own
//! RTP stream (its own SSRC and sequence numbers), a frame of silence in place of the
//! lost packet. The phone checks that it got every frame back once, in order, with the
//! gap filled; both sides print their RFC 3550 reception statistics.
//!
//! Time is simulated: tick `k` is `t0 + 20 ms × k`, so the run is deterministic and
//! takes milliseconds; only the datagrams go through the kernel. Every read has a
//! timeout and the loop a fixed number of ticks, so nothing can hang.
//!
//! Run it with `cargo run -p pbxkit-rtp --example echo`.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pbxkit_rtp::g711::Law;
use pbxkit_rtp::jitter::{JitterBuffer, JitterConfig, Playout};
use pbxkit_rtp::packet::{PayloadType, RtpPacket, RtpTimestamp, SeqNo, Ssrc};
use pbxkit_rtp::stats::SourceStats;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const PACKETS: u16 = 50;
const FRAME: Duration = Duration::from_millis(20);
/// Samples per 20 ms frame at 8 kHz: the RTP timestamp step.
const SAMPLES: u32 = 160;
/// Enough ticks to send everything and drain the buffer, and a bound on the loop.
const TICKS: u64 = PACKETS as u64 + 20;
const LOST: u16 = 17;
/// Packets that arrive late: (index, tick of arrival, after that tick's own packet).
const LATE: [(u16, u64); 2] = [(5, 6), (30, 32)];
/// A packet that the network delivers a second time, and when.
const DUPLICATE: (u16, u64) = (40, 42);

/// One 20 ms µ-law frame: silence, except that the phone's frames carry their index in
/// their first two bytes, so that the phone can tell which frame came back.
fn frame(index: Option<u16>) -> Bytes {
    let mut payload = vec![Law::Ulaw.silence(); SAMPLES as usize];
    if let Some(index) = index {
        payload[..2].copy_from_slice(&index.to_be_bytes());
    }
    Bytes::from(payload)
}

/// The index carried by a frame of [`frame`], `None` for plain silence.
fn index_of(payload: &[u8]) -> Option<u16> {
    let silent = payload.iter().all(|&b| b == Law::Ulaw.silence());
    match payload {
        [hi, lo, ..] if !silent => Some(u16::from_be_bytes([*hi, *lo])),
        _ => None,
    }
}

/// Receives one RTP datagram: with a read timeout set, never blocks for ever.
fn receive(socket: &UdpSocket) -> Result<(RtpPacket, std::net::SocketAddr)> {
    let mut buf = [0u8; 1500];
    let (len, from) = socket.recv_from(&mut buf)?;
    Ok((RtpPacket::parse(Bytes::copy_from_slice(&buf[..len]))?, from))
}

fn main() -> Result<()> {
    let phone = UdpSocket::bind("127.0.0.1:0")?;
    let echo = UdpSocket::bind("127.0.0.1:0")?;
    for socket in [&phone, &echo] {
        socket.set_read_timeout(Some(Duration::from_secs(1)))?;
    }
    let echo_addr = echo.local_addr()?;

    // When each datagram reaches the echo side, in order of arrival.
    let mut arrivals: Vec<(u64, u16)> = (0..PACKETS)
        .filter(|&i| i != LOST)
        .map(|i| match LATE.iter().find(|(late, _)| *late == i) {
            Some(&(_, tick)) => (tick, i),
            None => (u64::from(i), i),
        })
        .chain([(DUPLICATE.1, DUPLICATE.0)])
        .collect();
    // Within a tick, the packet due then comes before the late ones.
    arrivals.sort_by_key(|&(tick, i)| (tick, u64::from(i) != tick));

    let (phone_ssrc, echo_ssrc) = (Ssrc(0x0000_1111), Ssrc(0x0000_2222));
    let mut buffer = JitterBuffer::new(JitterConfig::default())?;
    let mut echo_stats = SourceStats::new(phone_ssrc, 8000); // what the echo receives
    let mut phone_stats = SourceStats::new(echo_ssrc, 8000); // what the phone receives
    let (mut echo_seq, mut first_ts) = (SeqNo(7000), None);
    let mut echoed: Vec<Option<u16>> = Vec::new(); // frame indices back at the phone
    let t0 = Instant::now();
    let mut next = arrivals.iter().peekable();
    let mut peer = None;

    for tick in 0..TICKS {
        let now = t0 + FRAME * u32::try_from(tick)?;
        // The phone's side of the network: this tick's datagrams.
        let mut sent = 0;
        while let Some(&(_, i)) = next.next_if(|(at, _)| *at == tick) {
            let ts = RtpTimestamp(SAMPLES * u32::from(i));
            let packet =
                RtpPacket::new(PayloadType::PCMU, SeqNo(i), ts, phone_ssrc, frame(Some(i)));
            phone.send_to(&packet.to_bytes(), echo_addr)?;
            sent += 1;
        }

        // The echo side: everything that arrived, into the buffer and the statistics.
        for _ in 0..sent {
            let (packet, from) = receive(&echo)?;
            peer = Some(from); // reply where the phone sends from
            let seq = packet.sequence().0;
            echo_stats.update(packet.sequence(), packet.timestamp(), now);
            let outcome = buffer.push(packet, now);
            if u64::from(seq) != tick {
                let late = tick.saturating_sub(u64::from(seq)) * 20;
                println!("tick {tick:2}: packet {seq}, due {late} ms ago: {outcome:?}");
            }
        }
        // One frame per tick, whatever arrived: the buffer decides what is due.
        let reply = match buffer.pop(now) {
            Some(Playout::Packet(p)) => Some((p.timestamp(), p.payload().clone())),
            // Concealment is the decoder's job; G.711 has none, so play silence.
            Some(lost @ Playout::Conceal { .. }) => {
                println!(
                    "tick {tick:2}: echo conceals lost packet {}",
                    lost.sequence().0
                );
                Some((lost.timestamp(), frame(None)))
            }
            None => None,
        };
        if let Some((ts, payload)) = reply {
            // The echo's own stream: its SSRC, sequence numbers and timestamp origin,
            // the timestamps keeping the spacing of the frames played.
            let origin = *first_ts.get_or_insert(ts.0);
            let ts = RtpTimestamp(90_000u32.wrapping_add(ts.0.wrapping_sub(origin)));
            let packet = RtpPacket::new(PayloadType::PCMU, echo_seq, ts, echo_ssrc, payload);
            echo_seq = echo_seq.next();
            let peer = peer.ok_or("no packet from the phone yet")?;
            echo.send_to(&packet.to_bytes(), peer)?;

            // Back at the phone.
            let (back, _) = receive(&phone)?;
            assert_eq!(back.ssrc(), echo_ssrc);
            phone_stats.update(back.sequence(), back.timestamp(), now);
            echoed.push(index_of(back.payload()));
        }
        if next.peek().is_none() && buffer.is_empty() {
            println!("tick {tick:2}: all sent and played");
            break;
        }
    }

    // Every frame once, in order, and silence exactly where packet 17 was lost.
    let expected: Vec<Option<u16>> = (0..PACKETS).map(|i| (i != LOST).then_some(i)).collect();
    assert_eq!(echoed, expected, "echoed frames");
    let s = buffer.stats();
    assert_eq!(
        (s.played, s.concealed, s.duplicates, s.late),
        (49, 1, 1, 0),
        "{s:?}"
    );

    println!("\njitter buffer: {s:?}");
    println!("  playout delay now {:?}", buffer.delay());
    for (who, stats) in [
        ("echo <- phone", &mut echo_stats),
        ("phone <- echo", &mut phone_stats),
    ] {
        let block = stats.report_block(t0 + FRAME * u32::try_from(TICKS)?);
        println!(
            "RFC 3550 {who}: expected {}, received {}, lost {} (fraction {}/256), \
             jitter {} ts units = {:?}",
            stats.expected(),
            stats.received(),
            block.cumulative_lost.get(),
            block.fraction_lost,
            block.jitter,
            stats.jitter_duration(),
        );
    }
    // RFC 3550 counts from the packet that ends the source's probation (A.1), hence 49
    // expected, and counts the duplicate as received (A.3), which cancels the loss in
    // the report: the jitter buffer's counters are the ones that see both.
    println!(
        "\nchecked: {} frames echoed in order, 1 concealed",
        echoed.len()
    );
    Ok(())
}

// `cargo test` runs the example too (`test = true` in Cargo.toml): it asserts what
// it shows.
#[test]
fn runs() -> Result<()> {
    main()
}
