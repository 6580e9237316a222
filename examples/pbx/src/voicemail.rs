//! Voicemail (`[[voicemails]]`, a user's `voicemail = "<box>"`): callers who reach a
//! user's no-answer or busy case leave a message; users listen with `*98` (their
//! own box) or `*99<box>` (any box, with its PIN).
//!
//! Leaving a message: the box's greeting (a recorded `greetings/unavailable.wav` or
//! `busy.wav`, else the built-in "the person you are calling is not available /
//! busy", then "please leave your message after the tone"), `#` skipping it; the
//! tone; what the caller says until `#`, its hang-up or the box's
//! `max_message_seconds`. Messages under a second are not kept. A full box
//! (`max_messages`, new and old together) says so and hangs up.
//!
//! Listening: the PIN when asked (a box without a PIN is reached only from its
//! owner's phone), how many new and old messages, then each message (new ones
//! first, oldest first) followed by the menu: 5 replay, 6 next, 4 previous,
//! 7 delete, 9 save (into the old ones), 0 greetings, `#` or `*` to leave. A new
//! message heard to its end is old from then on. In the greetings menu (also
//! offered by a box without messages), 1 records the unavailable greeting and 2
//! the busy one, after the tone until `#`.
//!
//! Storage, under `data_dir/voicemail/<box>/`: `INBOX/` (new) and `Old/`, each
//! message a 16 kHz mono WAV and a JSON sidecar (`caller`, `caller_name`, `date`
//! as Unix seconds, `duration` in seconds). Each file is written to a temporary
//! name, fsynced and renamed, then the directory fsynced, the WAV before its
//! sidecar: a message is listed only once both are whole, so a crash never shows
//! half a message. Messages and greetings survive restarts.

use crate::session::{Input, RATE, Session};
use crate::subscriptions::Counts;
use pbxkit::engine::{CallId, Command};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// New messages.
const INBOX: &str = "INBOX";
/// Messages heard or saved.
const OLD: &str = "Old";

/// Messages shorter than this are not kept (a caller who hung up at the tone).
const MIN_MESSAGE: Duration = Duration::from_secs(1);

/// How long the menu waits for a key before it says itself again, and then
/// hangs up.
const MENU_WAIT: Duration = Duration::from_secs(8);

/// Wrong PINs before the PBX hangs up.
const PIN_TRIES: u32 = 3;

/// The longest greeting.
const GREETING: Duration = Duration::from_secs(60);

/// A box's settings, from `[[voicemails]]`.
#[derive(Debug, Clone)]
pub(crate) struct BoxSetup {
    pub(crate) number: String,
    pub(crate) pin: Option<String>,
    pub(crate) max_messages: usize,
    pub(crate) max_message: Duration,
    /// Where new messages are mailed, and how.
    pub(crate) email: Option<(String, std::sync::Arc<crate::mail::Mailer>)>,
}

/// What is kept with a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub(crate) caller: String,
    #[serde(default)]
    pub(crate) caller_name: String,
    /// Unix seconds.
    pub(crate) date: u64,
    /// Seconds.
    pub(crate) duration: f64,
}

/// A message in a box: its folder and its file stem.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Message {
    pub(crate) folder: &'static str,
    pub(crate) id: String,
    pub(crate) envelope: Envelope,
}

/// A box's directory.
#[derive(Debug, Clone)]
pub(crate) struct Mailbox {
    dir: PathBuf,
}

impl Mailbox {
    /// Box `number` under `data_dir`.
    pub(crate) fn new(data_dir: &Path, number: &str) -> Mailbox {
        Mailbox {
            dir: data_dir.join("voicemail").join(number),
        }
    }

    /// The messages of `folder`, oldest first; a sidecar that does not read (or
    /// whose WAV is missing) is skipped.
    pub(crate) fn messages(&self, folder: &'static str) -> Vec<Message> {
        let Ok(entries) = std::fs::read_dir(self.dir.join(folder)) else {
            return Vec::new();
        };
        let mut messages: Vec<Message> = entries
            .filter_map(|e| {
                let path = e.ok()?.path();
                if path.extension()? != "json" {
                    return None;
                }
                let id = path.file_stem()?.to_str()?.to_owned();
                if !path.with_extension("wav").is_file() {
                    return None;
                }
                let envelope = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
                Some(Message {
                    folder,
                    id,
                    envelope,
                })
            })
            .collect();
        messages.sort_by(|a, b| (a.envelope.date, &a.id).cmp(&(b.envelope.date, &b.id)));
        messages
    }

    /// New and old messages.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.messages(INBOX).len(), self.messages(OLD).len())
    }

    fn wav(&self, m: &Message) -> PathBuf {
        self.dir.join(m.folder).join(format!("{}.wav", m.id))
    }

    /// A message's audio at [`RATE`].
    pub(crate) fn audio(&self, m: &Message) -> std::io::Result<Vec<i16>> {
        let file = std::fs::File::open(self.wav(m))?;
        pbxkit_rtp::wav::read_mono(std::io::BufReader::new(file), RATE)
            .map_err(std::io::Error::other)
    }

    /// The recorded greeting, if there is one.
    fn greeting(&self, busy: bool) -> Option<Vec<i16>> {
        let name = if busy { "busy.wav" } else { "unavailable.wav" };
        let file = std::fs::File::open(self.dir.join("greetings").join(name)).ok()?;
        pbxkit_rtp::wav::read_mono(std::io::BufReader::new(file), RATE).ok()
    }

    /// Keeps a greeting recorded by the box's owner (`busy`, else unavailable),
    /// written as messages are.
    pub(crate) fn save_greeting(&self, busy: bool, pcm: &[i16]) -> std::io::Result<()> {
        let dir = self.dir.join("greetings");
        std::fs::create_dir_all(&dir)?;
        let mut wav = std::io::Cursor::new(Vec::new());
        pbxkit_rtp::wav::write_mono(&mut wav, RATE, pcm).map_err(std::io::Error::other)?;
        let name = if busy { "busy.wav" } else { "unavailable.wav" };
        write_durably(&dir.join(name), &wav.into_inner())
    }

    /// Keeps a new message (see the [module docs](self) for how it is written).
    pub(crate) fn save(&self, pcm: &[i16], envelope: &Envelope) -> std::io::Result<Message> {
        let folder = self.dir.join(INBOX);
        std::fs::create_dir_all(&folder)?;
        let id = format!(
            "msg-{}-{:08x}",
            envelope.date,
            crate::ids::random_u64() as u32
        );
        let mut wav = std::io::Cursor::new(Vec::new());
        pbxkit_rtp::wav::write_mono(&mut wav, RATE, pcm).map_err(std::io::Error::other)?;
        write_durably(&folder.join(format!("{id}.wav")), &wav.into_inner())?;
        let json = serde_json::to_vec_pretty(envelope).map_err(std::io::Error::other)?;
        write_durably(&folder.join(format!("{id}.json")), &json)?;
        Ok(Message {
            folder: INBOX,
            id,
            envelope: envelope.clone(),
        })
    }

    /// Moves a new message into the old ones.
    pub(crate) fn keep(&self, m: &Message) -> std::io::Result<Message> {
        if m.folder == OLD {
            return Ok(m.clone());
        }
        let old = self.dir.join(OLD);
        std::fs::create_dir_all(&old)?;
        // The WAV first: a sidecar is listed only next to its WAV.
        for ext in ["wav", "json"] {
            let from = self.dir.join(m.folder).join(format!("{}.{ext}", m.id));
            std::fs::rename(from, old.join(format!("{}.{ext}", m.id)))?;
        }
        sync_dir(&old)?;
        sync_dir(&self.dir.join(m.folder))?;
        Ok(Message {
            folder: OLD,
            ..m.clone()
        })
    }

    /// Deletes a message (its sidecar first: it is no longer listed).
    pub(crate) fn delete(&self, m: &Message) -> std::io::Result<()> {
        let dir = self.dir.join(m.folder);
        std::fs::remove_file(dir.join(format!("{}.json", m.id)))?;
        std::fs::remove_file(dir.join(format!("{}.wav", m.id)))?;
        sync_dir(&dir)
    }
}

/// `bytes` into `path`: a temporary file, fsynced, renamed, the directory fsynced.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Mails message `m` of box `number` to `to`, its WAV attached; a failure is
/// logged (the message stays in the box).
async fn mail(
    mailbox: &Mailbox,
    m: &Message,
    number: &str,
    to: &str,
    mailer: &crate::mail::Mailer,
) {
    let path = mailbox.wav(m);
    let wav = match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
        Ok(Ok(wav)) => wav,
        _ => {
            tracing::error!(mailbox = %number, id = %m.id, "voicemail message unreadable: not mailed");
            return;
        }
    };
    let file = format!("{}.wav", m.id);
    let letter = crate::mail::Letter {
        to,
        mailbox: number,
        caller: &m.envelope.caller,
        caller_name: &m.envelope.caller_name,
        date: m.envelope.date,
        duration: m.envelope.duration,
        file: &file,
        wav: &wav,
    };
    match mailer.send(&letter).await {
        Ok(()) => tracing::debug!(mailbox = %number, id = %m.id, "voicemail message mailed"),
        Err(e) => {
            tracing::error!(mailbox = %number, id = %m.id, error = %e, "voicemail message not mailed")
        }
    }
}

/// The tone before the recording: 1 kHz for a quarter of a second.
fn beep() -> Vec<i16> {
    let n = RATE as usize / 4;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(RATE);
            // Within i16: 8000 × sin.
            ((2.0 * std::f64::consts::PI * 1000.0 * t).sin() * 8000.0) as i16
        })
        .collect()
}

/// Sends the counts of box `number` (under `data_dir`) to its message-waiting
/// subscribers.
pub(crate) async fn announce(data_dir: &Path, number: &str, mwi: &mpsc::Sender<Counts>) {
    let mailbox = Mailbox::new(data_dir, number);
    changed(&mailbox, number, mwi).await;
}

/// A box changed: its counts to the message-waiting subscribers, read off the
/// runtime's threads.
async fn changed(mailbox: &Mailbox, number: &str, mwi: &mpsc::Sender<Counts>) {
    let box_ = mailbox.clone();
    if let Ok((new, old)) = tokio::task::spawn_blocking(move || box_.counts()).await {
        let counts = Counts {
            mailbox: number.to_owned(),
            new,
            old,
        };
        let _ = mwi.send(counts).await;
    }
}

/// A caller leaves a message in `setup`'s box; the PBX hangs up at the end.
/// `caller` is its number and display name.
#[allow(clippy::too_many_arguments, reason = "one call's whole context")]
pub(crate) async fn leave_message(
    mut session: Session,
    mailbox: Mailbox,
    setup: BoxSetup,
    busy: bool,
    (caller, caller_name): (String, String),
    call: CallId,
    commands: mpsc::Sender<(CallId, Command)>,
    mwi: mpsc::Sender<Counts>,
) {
    let hang_up = async |session: &mut Session| {
        if session.played().await != Input::HungUp {
            let _ = commands.send((call, Command::HangUp)).await;
        }
    };
    let box_ = mailbox.clone();
    let (new, old) = tokio::task::spawn_blocking(move || box_.counts())
        .await
        .unwrap_or((0, 0));
    if new + old >= setup.max_messages {
        session.say(&["vm-full"]);
        hang_up(&mut session).await;
        return;
    }
    let box_ = mailbox.clone();
    let greeting = tokio::task::spawn_blocking(move || box_.greeting(busy))
        .await
        .ok()
        .flatten();
    match greeting {
        Some(pcm) => session.play(&pcm),
        None => session.say(&[if busy { "vm-busy" } else { "vm-unavailable" }, "vm-leave"]),
    }
    // Any key skips the greeting.
    if session.played().await == Input::HungUp {
        return;
    }
    session.play(&beep());
    if session.played().await == Input::HungUp {
        return;
    }
    session.record(true);
    let started = unix_now();
    let deadline = Instant::now() + setup.max_message;
    let max_samples = RATE as usize * setup.max_message.as_secs() as usize;
    let mut pcm = Vec::new();
    let hung_up = loop {
        match session.next(Some(deadline)).await {
            Input::Frame(frame) => {
                pcm.extend_from_slice(&frame);
                if pcm.len() >= max_samples {
                    break false;
                }
            }
            Input::Key('#') | Input::Deadline => break false,
            Input::HungUp => break true,
            Input::Key(_) | Input::PlayedOut => {}
        }
    };
    session.record(false);
    let kept = pcm.len() >= RATE as usize * MIN_MESSAGE.as_secs() as usize;
    if kept {
        let envelope = Envelope {
            caller,
            caller_name,
            date: started,
            duration: pcm.len() as f64 / f64::from(RATE),
        };
        let box_ = mailbox.clone();
        match tokio::task::spawn_blocking(move || box_.save(&pcm, &envelope)).await {
            Ok(Ok(m)) => {
                tracing::debug!(mailbox = %setup.number, id = %m.id, "voicemail message left");
                changed(&mailbox, &setup.number, &mwi).await;
                if let Some((to, mailer)) = &setup.email {
                    mail(&mailbox, &m, &setup.number, to, mailer).await;
                }
            }
            Ok(Err(e)) => {
                tracing::error!(mailbox = %setup.number, error = %e, "voicemail message not saved");
            }
            Err(e) => tracing::error!(error = %e, "voicemail save task failed"),
        }
    }
    if hung_up {
        return;
    }
    session.say(&[if kept { "vm-saved" } else { "vm-goodbye" }]);
    hang_up(&mut session).await;
}

/// The greetings menu: 1 records the unavailable greeting, 2 the busy one, after
/// the tone until `#` (a minute at most). `key` is one already pressed. `None`
/// when the caller hung up.
async fn greetings(
    session: &mut Session,
    mailbox: &Mailbox,
    number: &str,
    key: Option<char>,
) -> Option<()> {
    let key = match key {
        Some(k) => k,
        None => {
            session.say(&["vm-options"]);
            match session.played().await {
                Input::HungUp => return None,
                Input::Key(k) => k,
                _ => match session.next(Some(Instant::now() + MENU_WAIT)).await {
                    Input::HungUp => return None,
                    Input::Key(k) => k,
                    _ => return Some(()),
                },
            }
        }
    };
    let busy = match key {
        '1' => false,
        '2' => true,
        _ => return Some(()),
    };
    session.play(&beep());
    if session.played().await == Input::HungUp {
        return None;
    }
    session.record(true);
    let deadline = Instant::now() + GREETING;
    let mut pcm = Vec::new();
    let hung_up = loop {
        match session.next(Some(deadline)).await {
            Input::Frame(frame) => pcm.extend_from_slice(&frame),
            Input::Key('#') | Input::Deadline => break false,
            Input::HungUp => break true,
            _ => {}
        }
    };
    session.record(false);
    if pcm.len() >= RATE as usize * MIN_MESSAGE.as_secs() as usize {
        let box_ = mailbox.clone();
        match tokio::task::spawn_blocking(move || box_.save_greeting(busy, &pcm)).await {
            Ok(Ok(())) => tracing::debug!(mailbox = %number, busy, "voicemail greeting recorded"),
            _ => tracing::error!(mailbox = %number, busy, "voicemail greeting not saved"),
        }
    }
    if hung_up {
        return None;
    }
    session.say(&["vm-greeting-saved"]);
    (session.played().await != Input::HungUp).then_some(())
}

/// The words for a count: "5 new messages".
fn count_words(n: usize, kind: &'static str) -> Vec<String> {
    let mut words = crate::prompts::number(u32::try_from(n).unwrap_or(u32::MAX));
    words.push(kind.to_owned());
    words.push(if n == 1 { "vm-message" } else { "vm-messages" }.to_owned());
    words
}

/// A user listens to `setup`'s box, after its PIN when `ask_pin`; the box's
/// message-waiting subscribers hear of what changed when the user leaves.
#[allow(clippy::too_many_arguments, reason = "one call's whole context")]
pub(crate) async fn listen(
    session: Session,
    mailbox: Mailbox,
    setup: BoxSetup,
    ask_pin: bool,
    call: CallId,
    commands: mpsc::Sender<(CallId, Command)>,
    mwi: mpsc::Sender<Counts>,
) {
    let number = setup.number.clone();
    let (box_, counts) = (mailbox.clone(), mwi.clone());
    let changed_any = menu(session, mailbox, setup, ask_pin, call, commands).await;
    if changed_any {
        changed(&box_, &number, &counts).await;
    }
}

/// The listening menu; whether a message moved or was deleted.
async fn menu(
    mut session: Session,
    mailbox: Mailbox,
    setup: BoxSetup,
    ask_pin: bool,
    call: CallId,
    commands: mpsc::Sender<(CallId, Command)>,
) -> bool {
    // Whether a message moved or was deleted.
    let mut touched = false;
    let bye = async |session: &mut Session, words: &[&str]| {
        session.say(words);
        if session.played().await != Input::HungUp {
            let _ = commands.send((call, Command::HangUp)).await;
        }
    };
    if ask_pin {
        let mut tries = 0;
        loop {
            session.say(&["vm-password"]);
            let Some(typed) = session.digits(16, MENU_WAIT).await else {
                return touched;
            };
            // A box without a PIN cannot be opened from another phone.
            if setup.pin.as_deref() == Some(typed.as_str()) {
                session.stop();
                break;
            }
            tries += 1;
            tracing::info!(mailbox = %setup.number, "voicemail PIN refused");
            session.stop();
            if tries >= PIN_TRIES {
                bye(&mut session, &["agent-incorrect", "vm-goodbye"]).await;
                return touched;
            }
            session.say(&["agent-incorrect"]);
            if session.played().await == Input::HungUp {
                return touched;
            }
        }
    }
    let box_ = mailbox.clone();
    let mut messages = tokio::task::spawn_blocking(move || {
        let mut all = box_.messages(INBOX);
        all.extend(box_.messages(OLD));
        all
    })
    .await
    .unwrap_or_default();
    let new = messages.iter().filter(|m| m.folder == INBOX).count();
    let old = messages.len() - new;
    if messages.is_empty() {
        session.say(&["vm-no-messages"]);
        // A key during it goes to the greetings menu.
        let key = match session.played().await {
            Input::HungUp => return touched,
            Input::Key(k) => Some(k),
            _ => None,
        };
        if greetings(&mut session, &mailbox, &setup.number, key)
            .await
            .is_none()
        {
            return touched;
        }
        bye(&mut session, &["vm-goodbye"]).await;
        return touched;
    }
    let mut words = vec!["vm-you-have".to_owned()];
    if new > 0 {
        words.extend(count_words(new, "vm-new"));
    }
    if new > 0 && old > 0 {
        words.push("vm-and".to_owned());
    }
    if old > 0 {
        words.extend(count_words(old, "vm-old"));
    }
    session.play(&crate::prompts::pcm(&words, RATE));
    // A key during the count skips it and acts on the first message.
    let mut key = match session.played().await {
        Input::HungUp => return touched,
        Input::Key(k) => Some(k),
        _ => None,
    };
    let mut at = 0;
    let mut play_message = key.is_none();
    let mut unanswered = 0;
    while let Some(message) = messages.get(at).cloned() {
        if play_message {
            let box_ = mailbox.clone();
            let m = message.clone();
            match tokio::task::spawn_blocking(move || box_.audio(&m)).await {
                Ok(Ok(pcm)) => session.play(&pcm),
                _ => {
                    tracing::warn!(mailbox = %setup.number, id = %message.id, "voicemail message unreadable")
                }
            }
            match session.played().await {
                Input::HungUp => return touched,
                Input::Key(k) => key = Some(k),
                _ => {
                    // Heard to its end: an old message from now on.
                    if message.folder == INBOX {
                        let box_ = mailbox.clone();
                        if let Ok(Ok(kept)) =
                            tokio::task::spawn_blocking(move || box_.keep(&message)).await
                            && let Some(slot) = messages.get_mut(at)
                        {
                            *slot = kept;
                            touched = true;
                        }
                    }
                }
            }
        }
        let pressed = match key.take() {
            Some(k) => k,
            None => {
                session.say(&["vm-menu"]);
                match session.played().await {
                    Input::HungUp => return touched,
                    Input::Key(k) => k,
                    _ => match session.next(Some(Instant::now() + MENU_WAIT)).await {
                        Input::Key(k) => k,
                        Input::HungUp => return touched,
                        _ => {
                            unanswered += 1;
                            if unanswered >= 2 {
                                break;
                            }
                            play_message = false;
                            continue;
                        }
                    },
                }
            }
        };
        unanswered = 0;
        play_message = true;
        match pressed {
            '5' => {}
            '6' => {
                if at + 1 < messages.len() {
                    at += 1;
                } else {
                    session.say(&["vm-no-more"]);
                    play_message = false;
                }
            }
            '4' => at = at.saturating_sub(1),
            '7' => {
                let m = messages.remove(at);
                let box_ = mailbox.clone();
                let _ = tokio::task::spawn_blocking(move || box_.delete(&m)).await;
                touched = true;
                session.say(&["vm-deleted"]);
                if messages.is_empty() {
                    break;
                }
                at = at.min(messages.len() - 1);
            }
            '9' => {
                // The message as it is now (heard to its end, it is old already).
                let Some(m) = messages.get(at).cloned() else {
                    break;
                };
                let box_ = mailbox.clone();
                if let Ok(Ok(kept)) = tokio::task::spawn_blocking(move || box_.keep(&m)).await
                    && let Some(slot) = messages.get_mut(at)
                {
                    *slot = kept;
                    touched = true;
                }
                session.say(&["vm-kept"]);
                if at + 1 < messages.len() {
                    at += 1;
                } else {
                    play_message = false;
                }
            }
            '0' => {
                if greetings(&mut session, &mailbox, &setup.number, None)
                    .await
                    .is_none()
                {
                    return touched;
                }
                play_message = false;
            }
            '#' | '*' => break,
            _ => play_message = false,
        }
        // A key during what was said next acts at once.
        if !play_message {
            match session.played().await {
                Input::HungUp => return touched,
                Input::Key(k) => key = Some(k),
                _ => {}
            }
        }
    }
    bye(&mut session, &["vm-goodbye"]).await;
    touched
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(name: &str) -> (Mailbox, PathBuf) {
        let dir = std::env::temp_dir().join(format!("pbxkit-vm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Mailbox::new(&dir, "1001"), dir)
    }

    fn envelope(date: u64) -> Envelope {
        Envelope {
            caller: "1000".into(),
            caller_name: "Alice".into(),
            date,
            duration: 1.5,
        }
    }

    #[test]
    fn messages_are_kept_listed_moved_and_deleted_on_disk() {
        let (mb, dir) = mailbox("store");
        assert_eq!(mb.counts(), (0, 0));
        let pcm: Vec<i16> = (0..24_000).map(|i| (i % 100) as i16 * 50).collect();
        let second = mb.save(&pcm, &envelope(200)).unwrap();
        let first = mb.save(&pcm, &envelope(100)).unwrap();
        assert_eq!(mb.counts(), (2, 0));
        // Oldest first, whatever the order they were written in.
        let listed = mb.messages(INBOX);
        assert_eq!(listed, [first.clone(), second.clone()]);
        assert_eq!(mb.audio(&first).unwrap(), pcm);
        // The files are what the module docs say: a WAV and its sidecar.
        let sidecar = dir
            .join("voicemail/1001/INBOX")
            .join(format!("{}.json", first.id));
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(sidecar).unwrap()).unwrap();
        assert_eq!(json["caller"], "1000");
        assert_eq!(json["caller_name"], "Alice");
        assert_eq!(json["date"], 100);
        let old = mb.keep(&first).unwrap();
        assert_eq!(old.folder, OLD);
        assert_eq!(mb.counts(), (1, 1));
        assert_eq!(mb.audio(&old).unwrap(), pcm);
        mb.delete(&old).unwrap();
        assert_eq!(mb.counts(), (1, 0));
        // A sidecar without its WAV (a crash between the two) is not listed.
        std::fs::remove_file(mb.wav(&second)).unwrap();
        assert_eq!(mb.counts(), (0, 0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn counts_are_said_in_words() {
        assert_eq!(
            count_words(1, "vm-new"),
            ["digits-1", "vm-new", "vm-message"]
        );
        assert_eq!(
            count_words(21, "vm-old"),
            ["digits-20", "digits-1", "vm-old", "vm-messages"]
        );
    }
}
