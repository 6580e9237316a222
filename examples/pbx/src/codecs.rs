//! Codecs across the two legs of a call. The PBX offers the callee what the caller
//! offered and then the codecs it can transcode; when the callee picks one the caller
//! did not offer, the caller is answered with its own first transcodable codec and
//! the relay transcodes between the two (see [`pbxkit_rtp::transcode`]).
//!
//! Transcodable: PCMU, PCMA, G.722, and Opus when built with the `opus` feature.

use pbxkit_rtp::codec::{Codec, G722};
use pbxkit_rtp::g711::Law;
use pbxkit_rtp::transcode::Side;
use pbxkit_sip::ByteStr;
use pbxkit_sip::sdp::{Attribute, Media, Session};

/// What a leg sends and receives: its audio payload type and codec name, and its
/// telephone-event payload type and clock rate when it negotiated events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Format {
    pub(crate) payload_type: u8,
    pub(crate) codec: &'static str,
    pub(crate) events: Option<(u8, u32)>,
}

impl Format {
    /// The format a phone's own description says it receives: its first codec the
    /// PBX can code (what a tone is played to it in).
    pub(crate) fn received_by(sdp: &Session) -> Option<Format> {
        let m = audio(sdp)?;
        m.payload_types().find_map(|pt| {
            Some(Format {
                payload_type: pt,
                codec: transcodable(m, pt)?,
                events: None,
            })
        })
    }

    /// A codec object for this format.
    pub(crate) fn codec(&self) -> Option<Box<dyn Codec + Send>> {
        codec(self.codec)
    }

    /// The transcoder side of this format.
    pub(crate) fn side(&self) -> Option<Side> {
        let pt = pbxkit_rtp::PayloadType::new(self.payload_type)?;
        let side = Side::new(pt, codec(self.codec)?);
        Some(match self.events {
            Some((te, clock)) => side.with_events(pbxkit_rtp::PayloadType::new(te)?, clock),
            None => side,
        })
    }
}

/// The formats of the two legs of a call that is transcoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transcoding {
    pub(crate) a: Format,
    pub(crate) b: Format,
}

/// The codecs the PBX transcodes: encoding name (as in SDP), clock rate, and the
/// payload type it offers them with when it adds them.
const TRANSCODABLE: &[(&str, u32, u8)] = &[
    ("PCMU", 8000, 0),
    ("PCMA", 8000, 8),
    ("G722", 8000, 9),
    #[cfg(feature = "opus")]
    ("opus", 48000, 111),
];

/// A codec object for an encoding name the PBX transcodes.
pub(crate) fn codec(name: &str) -> Option<Box<dyn Codec + Send>> {
    Some(match name {
        "PCMU" => Box::new(Law::Ulaw),
        "PCMA" => Box::new(Law::Alaw),
        "G722" => Box::new(G722::new()),
        #[cfg(feature = "opus")]
        "opus" => {
            Box::new(pbxkit_rtp::opus::Opus::new(pbxkit_rtp::opus::OpusConfig::default()).ok()?)
        }
        _ => return None,
    })
}

/// The transcodable codec a payload type of `m` stands for.
fn transcodable(m: &Media, pt: u8) -> Option<&'static str> {
    let map = m.rtpmap(pt)?;
    TRANSCODABLE
        .iter()
        .find(|(name, rate, _)| map.encoding.eq_ignore_ascii_case(name) && map.clock_rate == *rate)
        .map(|(name, _, _)| *name)
}

/// The telephone-event payload type of `m` to use with an audio codec clocked at
/// `clock`, and its clock rate: the one at the codec's rate (RFC 4733 §2.1; a
/// phone offering several, as linphone does with 48000, 16000 and 8000, sends no
/// events at all when answered with another), else the first offered.
fn events(m: &Media, clock: u32) -> Option<(u8, u32)> {
    let offered = || {
        m.rtpmaps()
            .filter(|r| r.encoding.eq_ignore_ascii_case("telephone-event"))
    };
    offered()
        .find(|r| r.clock_rate == clock)
        .or_else(|| offered().next())
        .map(|r| (r.payload_type, r.clock_rate))
}

/// Whether `pt` of `m` is a telephone-event format.
fn is_event(m: &Media, pt: u8) -> bool {
    m.rtpmap(pt)
        .is_some_and(|r| r.encoding.eq_ignore_ascii_case("telephone-event"))
}

/// The RTP clock rate of `pt` in `m` (8000 when it has no rtpmap: the static G.711
/// and G.722 types).
fn clock_of(m: &Media, pt: u8) -> u32 {
    m.rtpmap(pt).map_or(8000, |r| r.clock_rate)
}

fn audio(sdp: &Session) -> Option<&Media> {
    sdp.media
        .iter()
        .find(|m| m.kind.as_str() == "audio" && m.port != 0)
}

fn audio_mut(sdp: &mut Session) -> Option<&mut Media> {
    sdp.media
        .iter_mut()
        .find(|m| m.kind.as_str() == "audio" && m.port != 0)
}

/// The offer for the callee: `offer` with the transcodable codecs it lacks added
/// after its own (so that a codec both phones have is preferred). Offers without any
/// transcodable codec are left alone: the PBX could not answer their caller.
pub(crate) fn widen(offer: &Session) -> Session {
    let mut out = offer.clone();
    let Some(m) = audio_mut(&mut out) else {
        return out;
    };
    let pts: Vec<u8> = m.payload_types().collect();
    if !pts.iter().any(|pt| transcodable(m, *pt).is_some()) {
        return out;
    }
    for (name, rate, preferred) in TRANSCODABLE {
        if pts.iter().any(|pt| transcodable(m, *pt) == Some(*name)) {
            continue;
        }
        // Static payload types are fixed; a dynamic one must not collide.
        let taken: Vec<u8> = m.payload_types().collect();
        let Some(pt) = std::iter::once(*preferred)
            .chain(96..=127)
            .find(|pt| !taken.contains(pt))
        else {
            continue;
        };
        m.formats.push(ByteStr::from(pt.to_string()));
        if pt >= 96 {
            let channels = if *name == "opus" { "/2" } else { "" };
            m.attributes.push(Attribute {
                name: ByteStr::from_static("rtpmap"),
                value: Some(ByteStr::from(format!("{pt} {name}/{rate}{channels}"))),
            });
        }
    }
    out
}

/// Settles the codecs when the callee's `answer` comes back for the caller's `offer`:
/// the answer to give the caller, and the transcoding needed (`None` when the callee
/// chose a codec the caller offered, or nothing the PBX knows).
pub(crate) fn settle(offer: &Session, answer: &Session) -> (Session, Option<(Format, Format)>) {
    let mut out = answer.clone();
    let (Some(offered), Some(answered)) = (audio(offer), audio(answer)) else {
        return (out, None);
    };
    let offered_pts: Vec<u8> = offered.payload_types().collect();
    // The callee's codec: its first format that is not an event or comfort noise.
    let chosen = answered.payload_types().find(|pt| {
        !is_event(answered, *pt)
            && !answered
                .rtpmap(*pt)
                .is_some_and(|r| r.encoding.eq_ignore_ascii_case("CN"))
    });
    let Some(chosen) = chosen else {
        return (out, None);
    };
    let Some(m) = audio_mut(&mut out) else {
        return (out, None);
    };
    if offered_pts.contains(&chosen) {
        // Both phones have it: the caller hears only of formats it offered.
        keep_formats(m, |pt| offered_pts.contains(&pt));
        return (out, None);
    }
    let (Some(callee_codec), Some((caller_pt, caller_codec))) = (
        transcodable(answered, chosen),
        offered_pts
            .iter()
            .find_map(|pt| Some((*pt, transcodable(offered, *pt)?))),
    ) else {
        return (out, None);
    };
    // Events pass only when both legs have them, each leg's at its codec's clock.
    let te_offer = events(offered, clock_of(offered, caller_pt));
    let te_answer = events(answered, clock_of(answered, chosen));
    let both_events = te_offer.is_some() && te_answer.is_some();
    let caller = Format {
        payload_type: caller_pt,
        codec: caller_codec,
        events: te_offer.filter(|_| both_events),
    };
    let callee = Format {
        payload_type: chosen,
        codec: callee_codec,
        events: te_answer.filter(|_| both_events),
    };
    // The caller's answer lists its own codec (and events), with its rtpmap and fmtp.
    m.formats = std::iter::once(caller_pt)
        .chain(caller.events.map(|(te, _)| te))
        .map(|pt| ByteStr::from(pt.to_string()))
        .collect();
    m.attributes
        .retain(|a| !matches!(a.name.as_str(), "rtpmap" | "fmtp"));
    for pt in std::iter::once(caller_pt).chain(caller.events.map(|(te, _)| te)) {
        for name in ["rtpmap", "fmtp"] {
            let line = offered.attributes.iter().find(|a| {
                a.name.as_str() == name
                    && a.value.as_deref().and_then(|v| v.split(' ').next())
                        == Some(&*pt.to_string())
            });
            if let Some(line) = line {
                m.attributes.push(line.clone());
            }
        }
    }
    (out, Some((caller, callee)))
}

/// An answer to `offer` that accepts only `format` (the PBX's own media, a tone).
pub(crate) fn answer_with(offer: &Session, format: &Format) -> Session {
    let mut out = offer.clone();
    if let Some(m) = audio_mut(&mut out) {
        keep_formats(m, |pt| pt == format.payload_type);
    }
    out
}

/// An answer to `offer` that accepts only `format` and the telephone-event at its
/// clock (the PBX's own media that a call goes on from: a queue's caller).
pub(crate) fn answer_with_events(offer: &Session, format: &Format) -> Session {
    let mut out = offer.clone();
    if let Some(m) = audio_mut(&mut out) {
        let clock = clock_of(m, format.payload_type);
        let events = events(m, clock).map(|(pt, _)| pt);
        keep_formats(m, |pt| pt == format.payload_type || Some(pt) == events);
    }
    out
}

/// Keeps the formats `keep` accepts, with their rtpmap and fmtp lines.
fn keep_formats(m: &mut Media, keep: impl Fn(u8) -> bool) {
    m.formats.retain(|f| f.parse::<u8>().map_or(true, &keep));
    m.attributes.retain(|a| {
        if !matches!(a.name.as_str(), "rtpmap" | "fmtp") {
            return true;
        }
        a.value
            .as_deref()
            .and_then(|v| v.split(' ').next()?.parse::<u8>().ok())
            .is_none_or(&keep)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdp(formats: &str, extra: &str) -> Session {
        Session::parse(&format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP {formats}\r\n{extra}"
        ))
        .unwrap()
    }

    const TE: &str = "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n";

    #[test]
    fn the_callee_is_offered_the_callers_codecs_then_the_others() {
        let wide = widen(&sdp("9 101", TE));
        let m = &wide.media[0];
        let formats: Vec<&str> = m.formats.iter().map(|f| f.as_str()).take(4).collect();
        assert_eq!(formats, ["9", "101", "0", "8"]);
        // Nothing the PBX can transcode: nothing added.
        assert_eq!(widen(&sdp("18", "")).media[0].formats.len(), 1);
        #[cfg(feature = "opus")]
        assert!(
            m.rtpmaps()
                .any(|r| r.encoding == "opus" && r.payload_type == 111)
        );
    }

    #[test]
    fn a_common_codec_passes_through_and_the_callers_answer_keeps_to_its_offer() {
        let (answer, transcoding) = settle(&sdp("9 0 101", TE), &sdp("0 8 101", TE));
        assert_eq!(transcoding, None);
        let formats: Vec<&str> = answer.media[0].formats.iter().map(|f| f.as_str()).collect();
        assert_eq!(formats, ["0", "101"]);
    }

    #[test]
    fn a_callee_codec_the_caller_lacks_is_transcoded() {
        let (answer, transcoding) = settle(&sdp("9 101", TE), &sdp("0 101", TE));
        let (caller, callee) = transcoding.unwrap();
        assert_eq!((caller.payload_type, caller.codec), (9, "G722"));
        assert_eq!((callee.payload_type, callee.codec), (0, "PCMU"));
        assert_eq!(caller.events, Some((101, 8000)));
        let m = &answer.media[0];
        let formats: Vec<&str> = m.formats.iter().map(|f| f.as_str()).collect();
        assert_eq!(formats, ["9", "101"]);
        assert_eq!(m.fmtp(101), Some("0-16"));
        assert!(caller.side().is_some() && callee.side().is_some());
        // Events only when both legs have them.
        let (_, t) = settle(&sdp("9", ""), &sdp("0 101", TE));
        assert_eq!(t.unwrap().1.events, None);
    }

    #[test]
    fn each_leg_gets_the_telephone_event_at_its_codecs_clock() {
        // linphone offers events at 48000, 16000 and 8000 Hz, in that order.
        let linphone = "a=rtpmap:101 telephone-event/48000\r\n\
                        a=rtpmap:100 telephone-event/16000\r\n\
                        a=rtpmap:102 telephone-event/8000\r\n";
        let (answer, transcoding) = settle(&sdp("0 101 100 102", linphone), &sdp("9 101", TE));
        let (caller, callee) = transcoding.unwrap();
        assert_eq!((caller.codec, caller.events), ("PCMU", Some((102, 8000))));
        assert_eq!((callee.codec, callee.events), ("G722", Some((101, 8000))));
        let m = &answer.media[0];
        let formats: Vec<&str> = m.formats.iter().map(|f| f.as_str()).collect();
        assert_eq!(formats, ["0", "102"]);
        assert_eq!(m.rtpmap(102).map(|r| r.clock_rate), Some(8000));
        assert!(m.rtpmap(101).is_none(), "{answer}");
        // A callee answering with several: the one at its codec's clock.
        let two = "a=rtpmap:100 telephone-event/16000\r\na=rtpmap:101 telephone-event/8000\r\n";
        let (_, t) = settle(&sdp("9 101", TE), &sdp("0 100 101", two));
        assert_eq!(t.unwrap().1.events, Some((101, 8000)));
    }
}
