//! A media session the PBX holds with one phone, for the applications that talk
//! with a caller (voicemail): prompts played to it, the keys it presses and what it
//! says, as one stream of [`Input`]s an application awaits in order.
//!
//! Underneath is pbxkit-rtp's [`Conference`] with a single participant: the
//! phone's channel (latching, RFC 4733 keys, RTP timeout), its jitter buffer and
//! codec, prompts played at 16 kHz, and its input recorded frame by frame.

use crate::conference::Joining;
use pbxkit_rtp::channel::{Event as ChannelEvent, TransmitKind};
use pbxkit_rtp::conference::{Conference, ConferenceConfig, ConferenceEvent};
use pbxkit_rtp::relay::ChannelId;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

/// The rate prompts are given in and frames recorded at.
pub(crate) const RATE: u32 = 16_000;

/// The one participant.
const PHONE: ChannelId = ChannelId(1);

/// What an application waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    /// A key pressed (`0`–`9`, `*`, `#`).
    Key(char),
    /// 20 ms of what the phone said, while recording.
    Frame(Vec<i16>),
    /// What was played is over.
    PlayedOut,
    /// The deadline given to [`Session::next`] passed.
    Deadline,
    /// The call is over (the caller hung up, or its phone went silent).
    HungUp,
}

/// One phone's media, driven by the application that awaits it.
pub(crate) struct Session {
    room: Conference,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    hangup: oneshot::Receiver<()>,
    hung_up: bool,
    playing: bool,
    inputs: VecDeque<Input>,
    buf: Vec<u8>,
    rtcp_buf: Vec<u8>,
}

impl Session {
    /// A session on `joining`'s sockets and channel; `hangup` fires when the call
    /// ends.
    pub(crate) fn new(joining: Joining, hangup: oneshot::Receiver<()>) -> Option<Session> {
        let mut room = Conference::new(
            ConferenceConfig {
                max_participants: 1,
                ..ConferenceConfig::default()
            },
            Instant::now(),
        );
        room.join(PHONE, joining.channel, joining.codec).ok()?;
        Some(Session {
            room,
            rtp: joining.rtp,
            rtcp: joining.rtcp,
            hangup,
            hung_up: false,
            playing: false,
            inputs: VecDeque::new(),
            buf: vec![0; 2048],
            rtcp_buf: vec![0; 2048],
        })
    }

    /// Plays `pcm` (at [`RATE`]) after what is playing.
    pub(crate) fn play(&mut self, pcm: &[i16]) {
        if !pcm.is_empty() {
            self.room.play(PHONE, pcm);
            self.playing = true;
        }
    }

    /// Plays the built-in prompts `words`, one after the other.
    pub(crate) fn say(&mut self, words: &[&str]) {
        let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        self.play(&crate::prompts::pcm(&words, RATE));
    }

    /// Stops what plays.
    pub(crate) fn stop(&mut self) {
        self.room.stop_playing(PHONE);
        self.playing = false;
    }

    /// Starts or stops recording what the phone says ([`Input::Frame`]s).
    pub(crate) fn record(&mut self, on: bool) {
        self.room.set_recording(PHONE, on);
    }

    /// Waits for what was played to end: [`Input::PlayedOut`], or the key that
    /// interrupted it (the prompt stopped), or [`Input::HungUp`].
    pub(crate) async fn played(&mut self) -> Input {
        if !self.playing {
            return Input::PlayedOut;
        }
        loop {
            match self.next(None).await {
                Input::Frame(_) => {}
                Input::Key(key) => {
                    self.stop();
                    return Input::Key(key);
                }
                other => return other,
            }
        }
    }

    /// Waits for the keys the caller types up to `#` (not included), `max` keys or
    /// `wait` without a key; `None` when the call is over.
    pub(crate) async fn digits(&mut self, max: usize, wait: Duration) -> Option<String> {
        let mut typed = String::new();
        loop {
            match self.next(Some(Instant::now() + wait)).await {
                Input::Key('#') | Input::Deadline => return Some(typed),
                Input::Key(key) => {
                    // Typing stops a prompt that asked for it.
                    self.stop();
                    typed.push(key);
                    if typed.len() >= max {
                        return Some(typed);
                    }
                }
                Input::HungUp => return None,
                Input::Frame(_) | Input::PlayedOut => {}
            }
        }
    }

    /// The next input, running the media meanwhile; [`Input::Deadline`] at
    /// `deadline`.
    pub(crate) async fn next(&mut self, deadline: Option<Instant>) -> Input {
        loop {
            if let Some(input) = self.inputs.pop_front() {
                return input;
            }
            if self.hung_up {
                return Input::HungUp;
            }
            let wake = tokio::time::Instant::from_std(self.room.poll_timeout());
            let until = deadline.map(tokio::time::Instant::from_std);
            tokio::select! {
                got = self.rtp.recv_from(&mut self.buf) => {
                    if let Ok((n, from)) = got {
                        let datagram = bytes::Bytes::copy_from_slice(self.buf.get(..n).unwrap_or_default());
                        self.room.receive(PHONE, datagram, from, Instant::now());
                    }
                }
                got = self.rtcp.recv_from(&mut self.rtcp_buf) => {
                    if let Ok((n, from)) = got {
                        let datagram = bytes::Bytes::copy_from_slice(self.rtcp_buf.get(..n).unwrap_or_default());
                        self.room.receive_rtcp(PHONE, datagram, from, Instant::now());
                    }
                }
                () = tokio::time::sleep_until(wake) => self.room.handle_timeout(Instant::now()),
                () = async {
                    match until {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => return Input::Deadline,
                _ = &mut self.hangup, if !self.hung_up => {
                    self.hung_up = true;
                }
            }
            self.drain();
        }
    }

    /// Sends what the room made, and turns its events into inputs.
    fn drain(&mut self) {
        while let Some((_, transmit)) = self.room.poll_transmit() {
            let socket = match transmit.kind {
                TransmitKind::Rtp => &self.rtp,
                TransmitKind::Rtcp => &self.rtcp,
            };
            // UDP: a full socket buffer drops the datagram, as the network would.
            let _ = socket.try_send_to(&transmit.payload, transmit.to);
        }
        while let Some((_, event)) = self.room.poll_event() {
            match event {
                ConferenceEvent::Channel(ChannelEvent::Dtmf { digit, .. }) => {
                    if let Some(key) = digit.to_char() {
                        self.inputs.push_back(Input::Key(key));
                    }
                }
                // A phone gone silent: the call is as good as over.
                ConferenceEvent::Channel(ChannelEvent::RtpTimeout) => self.hung_up = true,
                _ => {}
            }
        }
        while let Some((_, frame)) = self.room.poll_recorded() {
            self.inputs.push_back(Input::Frame(frame));
        }
        if self.playing && !self.room.is_playing(PHONE) {
            self.playing = false;
            self.inputs.push_back(Input::PlayedOut);
        }
    }
}
