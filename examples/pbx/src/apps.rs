//! Applications the PBX answers itself, on its own media ports:
//!
//! - the echo test sends every RTP packet back where it came from (as Asterisk's
//!   `Echo()` does), so that a user hears their own voice with the network's
//!   round-trip delay;
//! - the playback test plays a prompt (a WAV file, converted to the call's codec with
//!   pbxkit-rtp) and hangs up, so that a user hears that audio reaches the phone.

use crate::config::App;
use crate::ids;
use pbxkit_rtp::codec::Codec;
use pbxkit_rtp::{PayloadType, RtpPacket, RtpTimestamp, SeqNo, Ssrc};
use pbxkit_sip::sdp::{
    self, AnswerPolicy, Codec as SdpCodec, Connection, Direction, Origin, Session,
};
use pbxkit_sip::{ByteStr, StatusCode};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

/// One 20 ms frame per packet, as phones send.
const PTIME: Duration = Duration::from_millis(20);

/// Opus as phones offer it.
const OPUS: SdpCodec = SdpCodec {
    name: "opus",
    clock_rate: 48000,
    channels: Some(2),
};

/// Our SDP answer to `offer`, with media on `port` of `ip`: G.711, G.722 and Opus,
/// and telephone-event, in the caller's order of the ones we share.
/// Opus only when `opus` (the echo reflects any codec; a prompt needs an encoder).
pub(crate) fn answer_sdp(offer: &Session, ip: IpAddr, port: u16, opus: bool) -> Session {
    let addr_type = ByteStr::from_static(if ip.is_ipv4() { "IP4" } else { "IP6" });
    let address = ByteStr::from(ip.to_string());
    let policy = AnswerPolicy {
        preferred: vec![],
        accepted: [SdpCodec::PCMU, SdpCodec::PCMA, SdpCodec::G722]
            .into_iter()
            .chain(opus.then_some(OPUS))
            .collect(),
        telephone_event: true,
        direction: Direction::SendRecv,
        rtcp_mux: false,
        origin: Origin {
            username: ByteStr::from_static("pbxkit"),
            session_id: ByteStr::from(ids::numeric_id()),
            session_version: 1,
            addr_type: addr_type.clone(),
            address: address.clone(),
        },
        connection: Connection { addr_type, address },
    };
    // Only the first audio stream gets media.
    let mut first_audio = true;
    let ports: Vec<Option<u16>> = offer
        .media
        .iter()
        .map(|m| {
            let take = first_audio && m.kind.as_str() == "audio" && m.port != 0;
            first_audio &= !take;
            take.then_some(port)
        })
        .collect();
    sdp::answer(offer, &policy, &ports)
}

/// The audio stream of a session: its first codec (payload type and encoding
/// name), and where the peer receives it.
pub(crate) fn audio_of(session: &Session) -> Option<(u8, &'static str, Option<SocketAddr>)> {
    let m = session
        .media
        .iter()
        .find(|m| m.kind.as_str() == "audio" && m.port != 0)?;
    let (pt, name) = m.payload_types().find_map(|pt| {
        let name = match (pt, m.rtpmap(pt)) {
            (_, Some(r)) if r.encoding.eq_ignore_ascii_case("opus") => "opus",
            (0, _) => "PCMU",
            (8, _) => "PCMA",
            (9, _) => "G722",
            _ => return None,
        };
        Some((pt, name))
    })?;
    let addr = session
        .media_address(m)
        .and_then(|a| a.parse::<IpAddr>().ok())
        .filter(|ip| !ip.is_unspecified())
        .map(|ip| SocketAddr::new(ip, m.port));
    Some((pt, name, addr))
}

/// A prompt being played: PCM in, RTP packets out, one per [`PTIME`].
pub(crate) struct Player {
    codec: Box<dyn Codec + Send>,
    payload_type: PayloadType,
    samples: Vec<i16>,
    at: usize,
    frame: usize,
    sequence: SeqNo,
    timestamp: RtpTimestamp,
    step: u32,
    ssrc: Ssrc,
    /// Where the phone receives: its SDP address, then where its RTP comes from.
    peer: Option<SocketAddr>,
}

/// What a player plays.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sound<'a> {
    /// The built-in beeps.
    Beeps,
    /// A WAV file, any rate.
    File(&'a Path),
    /// Prompts built into the PBX ([`crate::prompts`]), by name.
    Prompts(&'a [String]),
}

impl Player {
    /// A player for payload type `pt` of codec `name` (PCMU, PCMA, G722, opus
    /// with the `opus` feature) of `sound`.
    fn new(
        pt: u8,
        name: &str,
        sound: Sound<'_>,
        peer: Option<SocketAddr>,
    ) -> Result<Player, String> {
        let codec = crate::codecs::codec(name).ok_or_else(|| format!("no {name} encoder"))?;
        let payload_type =
            PayloadType::new(pt).ok_or_else(|| format!("payload type {pt} out of range"))?;
        let rate = codec.sample_rate();
        let samples = match sound {
            Sound::File(path) => {
                let f =
                    std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
                pbxkit_rtp::wav::read_mono(std::io::BufReader::new(f), rate)
                    .map_err(|e| format!("{}: {e}", path.display()))?
            }
            Sound::Beeps => beeps(rate),
            Sound::Prompts(words) => crate::prompts::pcm(words, rate),
        };
        let frame = usize::try_from(rate / 50).unwrap_or(160);
        Ok(Player {
            step: codec.clock_rate() / 50,
            codec,
            payload_type,
            samples,
            at: 0,
            frame,
            sequence: SeqNo(u16::try_from(ids::random_u64() & 0x7fff).unwrap_or(0)),
            timestamp: RtpTimestamp(u32::try_from(ids::random_u64() >> 33).unwrap_or(0)),
            ssrc: Ssrc(u32::try_from(ids::random_u64() >> 32).unwrap_or(1)),
            peer,
        })
    }

    /// The next packet, or `None` at the end of the prompt.
    fn next_packet(&mut self) -> Option<Vec<u8>> {
        if self.at >= self.samples.len() {
            return None;
        }
        let end = (self.at + self.frame).min(self.samples.len());
        let mut pcm = self.samples.get(self.at..end)?.to_vec();
        // The last frame is padded with silence to a whole frame.
        pcm.resize(self.frame, 0);
        self.at = end;
        let mut payload = Vec::with_capacity(self.frame);
        self.codec.encode(&pcm, &mut payload).ok()?;
        let packet = RtpPacket::new(
            self.payload_type,
            self.sequence,
            self.timestamp,
            self.ssrc,
            payload.into(),
        );
        self.sequence = self.sequence.next();
        self.timestamp = self.timestamp.wrapping_add(self.step);
        let mut out = Vec::with_capacity(packet.encoded_len());
        packet.write_to(&mut out);
        Some(out)
    }
}

/// The built-in prompt: three 440 Hz beeps of 250 ms, 250 ms apart, at −12 dBFS.
fn beeps(rate: u32) -> Vec<i16> {
    let quarter = usize::try_from(rate / 4).unwrap_or(2000);
    let mut out = Vec::with_capacity(quarter * 6);
    for beep in 0..3 {
        for i in 0..quarter {
            let t = i as f64 / f64::from(rate);
            let v = (2.0 * std::f64::consts::PI * 440.0 * t).sin() * 8192.0;
            // |v| <= 8192: fits in i16.
            out.push(v as i16);
        }
        if beep < 2 {
            out.resize(out.len() + quarter, 0);
        }
    }
    out
}

/// Our answer to `offer` for `app` with media on `port` of `ip`, and the prompt
/// player (none for the echo): 488 when no codec is shared, 500 when the prompt
/// cannot be read.
pub(crate) fn prepare(
    app: App,
    sound: Sound<'_>,
    offer: &Session,
    ip: IpAddr,
    port: u16,
) -> Result<(Session, Option<Player>), StatusCode> {
    let opus = app == App::Echo || cfg!(feature = "opus");
    let sdp = answer_sdp(offer, ip, port, opus);
    let Some((pt, name, _)) = audio_of(&sdp) else {
        return Err(StatusCode::NOT_ACCEPTABLE_HERE);
    };
    let player = match app {
        App::Echo => None,
        App::Playback => {
            let peer = audio_of(offer).and_then(|(_, _, addr)| addr);
            match Player::new(pt, name, sound, peer) {
                Ok(player) => Some(player),
                Err(e) => {
                    tracing::error!(error = %e, "cannot load the prompt");
                    return Err(StatusCode::SERVER_INTERNAL_ERROR);
                }
            }
        }
    };
    Ok((sdp, player))
}

/// How long the last packet of a prompt is given to play out before the PBX hangs
/// up: a packet time plus the phone's jitter buffer.
const DRAIN: Duration = Duration::from_millis(200);

/// An application's media on its ports: with no player, every RTP packet back to
/// where it came from, until dropped; with one, the prompt played once to the
/// phone (its SDP address, then where its RTP comes from), returning once it has
/// played out. The packets received and sent.
pub(crate) async fn run_media(
    rtp: tokio::net::UdpSocket,
    rtcp: tokio::net::UdpSocket,
    mut player: Option<Player>,
) -> (u64, u64) {
    let mut tick = tokio::time::interval(PTIME);
    let mut buf = vec![0u8; 2048];
    let mut rtcp_buf = vec![0u8; 2048];
    let (mut received, mut sent): (u64, u64) = (0, 0);
    loop {
        tokio::select! {
            got = rtp.recv_from(&mut buf) => {
                if let Ok((n, from)) = got {
                    let packet = buf.get(..n).unwrap_or_default();
                    // Only RTP (version 2) counts: anything else on a media port is noise.
                    if packet.len() >= 12 && packet[0] >> 6 == 2 {
                        received += 1;
                        match player.as_mut() {
                            // Echo: straight back to where it came from.
                            None => {
                                let _ = rtp.send_to(packet, from).await;
                                sent += 1;
                            }
                            // Playback: the phone's RTP source is where it listens (comedia).
                            Some(p) => p.peer = Some(from),
                        }
                    }
                }
            }
            _ = tick.tick(), if player.is_some() => {
                let Some(p) = player.as_mut() else { continue };
                match p.next_packet() {
                    Some(packet) => {
                        if let Some(peer) = p.peer {
                            let _ = rtp.send_to(&packet, peer).await;
                            sent += 1;
                        }
                    }
                    None => {
                        // The last beep plays out at the phone before the BYE.
                        tokio::time::sleep(DRAIN).await;
                        return (received, sent);
                    }
                }
            }
            // RTCP is read so that the socket does not fill, and not answered.
            _ = rtcp.recv_from(&mut rtcp_buf) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_player_sends_the_prompt_in_20_ms_packets_then_stops() {
        let mut p = Player::new(0, "PCMU", Sound::Beeps, None).unwrap();
        let mut packets = Vec::new();
        while let Some(pkt) = p.next_packet() {
            packets.push(RtpPacket::parse(pkt).unwrap());
        }
        // 1.25 s of prompt at 8 kHz: 62.5 frames, the last one padded.
        assert_eq!(packets.len(), 63);
        for pair in packets.windows(2) {
            assert_eq!(pair[1].sequence(), pair[0].sequence().next());
            assert_eq!(pair[1].timestamp(), pair[0].timestamp().wrapping_add(160));
        }
        assert!(packets.iter().all(|p| p.payload().len() == 160));
        assert_eq!(packets[0].payload_type(), PayloadType::PCMU);
        // G.722: 20 ms is 320 samples in, 160 bytes out, and 160 timestamp units.
        let mut g722 = Player::new(9, "G722", Sound::Beeps, None).unwrap();
        let a = RtpPacket::parse(g722.next_packet().unwrap()).unwrap();
        let b = RtpPacket::parse(g722.next_packet().unwrap()).unwrap();
        assert_eq!(a.payload().len(), 160);
        assert_eq!(b.timestamp(), a.timestamp().wrapping_add(160));
        let missing = Sound::File(Path::new("/nonexistent.wav"));
        assert!(Player::new(8, "PCMA", missing, None).is_err());
        // A built-in prompt: speech, in whole packets.
        let words = ["agent-incorrect".to_owned()];
        let mut said = Player::new(0, "PCMU", Sound::Prompts(&words), None).unwrap();
        let mut n = 0;
        while said.next_packet().is_some() {
            n += 1;
        }
        assert!(n > 25, "{n}");
    }

    #[test]
    fn an_opus_only_phone_gets_the_echo_and_the_prompt_only_with_an_encoder() {
        let offer = Session::parse(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n",
        )
        .unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (sdp, player) = prepare(App::Echo, Sound::Beeps, &offer, ip, 30000).unwrap();
        assert!(player.is_none());
        assert_eq!(sdp.media[0].payload_types().collect::<Vec<_>>(), [111]);
        let playback = prepare(App::Playback, Sound::Beeps, &offer, ip, 30000);
        if cfg!(feature = "opus") {
            let (_, player) = playback.unwrap();
            let mut player = player.unwrap();
            let first = RtpPacket::parse(player.next_packet().unwrap()).unwrap();
            let second = RtpPacket::parse(player.next_packet().unwrap()).unwrap();
            assert_eq!(Some(first.payload_type()), PayloadType::new(111));
            // 20 ms at Opus's 48 kHz clock.
            assert_eq!(second.timestamp(), first.timestamp().wrapping_add(960));
        } else {
            assert_eq!(playback.err(), Some(StatusCode::NOT_ACCEPTABLE_HERE));
        }
    }
}
