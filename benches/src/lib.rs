//! Benchmarks for the pbxkit crates live in `benches/` (one file per library crate);
//! this library holds what they share: the sample inputs, so that benches and tests
//! measure the same bytes.
#![forbid(unsafe_code)]

/// A typical INVITE from a desk phone, with an SDP offer (G.722, G.711, telephone-event).
pub const INVITE: &[u8] = b"INVITE sip:1001@192.0.2.10 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bK1d6a7c3e;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Alice Martin\" <sip:1000@192.0.2.10>;tag=3f2a9b1c\r\n\
To: <sip:1001@192.0.2.10>\r\n\
Call-ID: 4a1b7c2d-9e8f-4a3b-b2c1-0d9e8f7a6b5c@192.0.2.21\r\n\
CSeq: 102 INVITE\r\n\
Contact: <sip:1000@192.0.2.21:5060;transport=udp>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-805ec0112233>\"\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY, UPDATE\r\n\
Supported: replaces, timer, 100rel\r\n\
User-Agent: Yealink SIP-T46S 66.84.0.15\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Min-SE: 90\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 283\r\n\
\r\n\
v=0\r\n\
o=- 20518 0 IN IP4 192.0.2.21\r\n\
s=SDP data\r\n\
c=IN IP4 192.0.2.21\r\n\
t=0 0\r\n\
m=audio 11780 RTP/AVP 9 0 8 101\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
a=rtcp:11781 IN IP4 192.0.2.21\r\n";

/// A 200 OK to a REGISTER.
pub const OK_200: &[u8] = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bK5a6b7c8d;rport=5060;received=192.0.2.21\r\n\
From: <sip:1000@192.0.2.10>;tag=8b7c6d5e\r\n\
To: <sip:1000@192.0.2.10>;tag=as5c1e0f2a\r\n\
Call-ID: 7d6e5f4a-3b2c-1d0e-9f8a-7b6c5d4e3f2a@192.0.2.21\r\n\
CSeq: 7 REGISTER\r\n\
Contact: <sip:1000@192.0.2.21:5060>;expires=120\r\n\
Server: pbxkit\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, PUBLISH, MESSAGE\r\n\
Date: Mon, 23 Nov 2026 16:00:00 GMT\r\n\
Content-Length: 0\r\n\
\r\n";

/// A REGISTER with digest credentials.
pub const REGISTER: &[u8] = b"REGISTER sip:192.0.2.10 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bK9a8b7c6d;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:1000@192.0.2.10>;tag=8b7c6d5e\r\n\
To: <sip:1000@192.0.2.10>\r\n\
Call-ID: 7d6e5f4a-3b2c-1d0e-9f8a-7b6c5d4e3f2a@192.0.2.21\r\n\
CSeq: 8 REGISTER\r\n\
Contact: <sip:1000@192.0.2.21:5060>;expires=120\r\n\
Authorization: Digest username=\"1000\", realm=\"pbxkit\", nonce=\"6743f2a1b3c4d5e6f7a8b9c0\", uri=\"sip:192.0.2.10\", response=\"2f5c3a1b4e6d8f0a1c3e5b7d9f1a3c5e\", algorithm=MD5, cnonce=\"0a4f113b\", qop=auth, nc=00000001\r\n\
Expires: 120\r\n\
User-Agent: Yealink SIP-T46S 66.84.0.15\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY\r\n\
Content-Length: 0\r\n\
\r\n";

/// The ACD set-up the `acd` benches and the `acd_cold` example share.
pub mod acd {
    use pbxkit_acd::queue_log::{Line, LineRef, Sink};
    use pbxkit_acd::{Acd, AcdError, Input, QueueConfig, SeededRng, Strategy};
    use std::hint::black_box;
    use std::time::Instant;

    /// A sink that drops the `queue_log` lines: what is measured is decisions, not
    /// logging.
    #[derive(Debug, Default)]
    pub struct Discard;

    impl Sink for Discard {
        fn write(&mut self, line: Line) {
            black_box(line);
        }

        // The engine writes by reference: dropping the line copies nothing.
        fn write_ref(&mut self, line: LineRef<'_>) {
            black_box(line);
        }
    }

    /// One queue `q0` of `strategy` with `agents` agents (`Agent/<n>` on `SIP/<n>`)
    /// logged in at penalty 0, as `scripts/bench-queue` sets it up; outputs drained.
    pub fn one_queue(
        strategy: Strategy,
        agents: usize,
        now: Instant,
    ) -> Result<Acd<Discard, SeededRng>, AcdError> {
        let mut acd = Acd::new(Discard, SeededRng::new(1), now, 1_700_000_000);
        acd.add_queue(QueueConfig::new("q0", strategy))?;
        for a in 0..agents {
            let line = format!("SIP/{a}");
            acd.add_line(&line);
            let login = Input::AgentLogin {
                agent: format!("Agent/{a}").as_str().into(),
                channel: line,
                queues: vec![("q0".into(), 0)],
            };
            acd.handle_input(now, login)?;
        }
        while acd.poll_output().is_some() {}
        Ok(acd)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn samples_parse_with_exact_content_length() {
        for sample in [super::INVITE, super::OK_200, super::REGISTER] {
            let m = pbxkit_sip::Message::parse(sample).unwrap();
            assert_eq!(m.to_bytes().len(), sample.len());
        }
    }
}
