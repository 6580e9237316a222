//! The PBX's spoken prompts: 8 kHz WAV files embedded in the binary
//! (`examples/pbx/prompts/`, made by `scripts/make-prompts` with espeak-ng and sox,
//! which the PBX itself does not need), and the sentences built from them.

use std::time::Duration;

/// The embedded WAV file of prompt `name`.
fn wav(name: &str) -> Option<&'static [u8]> {
    macro_rules! prompts {
        ($($name:literal),* $(,)?) => {
            match name {
                $($name => Some(include_bytes!(concat!("../prompts/", $name, ".wav"))),)*
                _ => None,
            }
        };
    }
    prompts!(
        "queue-first",
        "queue-caller",
        "queue-holdtime",
        "queue-less-than-a-minute",
        "minute",
        "minutes",
        "queue-thankyou",
        "agent-incorrect",
        "agent-loggedin",
        "agent-loggedoff",
        "digits-0",
        "digits-1",
        "digits-2",
        "digits-3",
        "digits-4",
        "digits-5",
        "digits-6",
        "digits-7",
        "digits-8",
        "digits-9",
        "digits-10",
        "digits-11",
        "digits-12",
        "digits-13",
        "digits-14",
        "digits-15",
        "digits-16",
        "digits-17",
        "digits-18",
        "digits-19",
        "digits-20",
        "digits-30",
        "digits-40",
        "digits-50",
        "digits-60",
        "digits-70",
        "digits-80",
        "digits-90",
        "digits-hundred",
        "conf-pin",
        "conf-invalid-pin",
        "conf-only-person",
        "conf-muted",
        "conf-unmuted",
        "vm-unavailable",
        "vm-busy",
        "vm-leave",
        "vm-saved",
        "vm-full",
        "vm-password",
        "vm-you-have",
        "vm-new",
        "vm-old",
        "vm-message",
        "vm-messages",
        "vm-and",
        "vm-no-messages",
        "vm-menu",
        "vm-deleted",
        "vm-kept",
        "vm-no-more",
        "vm-goodbye",
        "ivr-menu",
        "ivr-invalid",
        "vm-options",
        "vm-greeting-saved",
    )
}

/// The prompts that say `n` (at most 999: larger numbers are said as 999).
pub(crate) fn number(n: u32) -> Vec<String> {
    let n = n.min(999);
    let mut words = Vec::new();
    let (hundreds, rest) = (n / 100, n % 100);
    if hundreds > 0 {
        words.push(format!("digits-{hundreds}"));
        words.push("digits-hundred".to_owned());
        if rest == 0 {
            return words;
        }
    }
    if rest < 20 {
        words.push(format!("digits-{rest}"));
    } else {
        words.push(format!("digits-{}", rest / 10 * 10));
        if rest % 10 > 0 {
            words.push(format!("digits-{}", rest % 10));
        }
    }
    words
}

/// What a queue's caller hears (app_queue's `say_position`): its position, the
/// estimated hold time in minutes (rounded; a zero hold time, no call answered
/// yet, is not said), thanks.
pub(crate) fn queue_announcement(position: Option<u32>, hold: Option<Duration>) -> Vec<String> {
    let mut words = Vec::new();
    match position {
        Some(1) => words.push("queue-first".to_owned()),
        Some(n) => {
            words.push("queue-caller".to_owned());
            words.extend(number(n));
        }
        None => {}
    }
    if let Some(hold) = hold.filter(|h| !h.is_zero()) {
        words.push("queue-holdtime".to_owned());
        let minutes = (hold.as_secs() + 30) / 60;
        match minutes {
            0 => words.push("queue-less-than-a-minute".to_owned()),
            m => {
                words.extend(number(u32::try_from(m).unwrap_or(u32::MAX)));
                words.push(if m == 1 { "minute" } else { "minutes" }.to_owned());
            }
        }
    }
    if !words.is_empty() {
        words.push("queue-thankyou".to_owned());
    }
    words
}

/// The samples at `rate` of the prompts one after the other, 160 ms apart, each
/// starting a 20 ms packet (unknown names are skipped).
pub(crate) fn pcm(words: &[String], rate: u32) -> Vec<i16> {
    let frame = usize::try_from(rate / 50).unwrap_or(160).max(1);
    let gap = 8 * frame;
    let mut out = Vec::new();
    for word in words {
        let Some(bytes) = wav(word) else {
            continue;
        };
        // The embedded files are valid WAV (a unit test reads each one).
        if let Ok(samples) = pbxkit_rtp::wav::read_mono(std::io::Cursor::new(bytes), rate) {
            if !out.is_empty() {
                out.resize(out.len().div_ceil(frame) * frame + gap, 0);
            }
            out.extend(samples);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_said_in_words_we_ship() {
        assert_eq!(number(7), ["digits-7"]);
        assert_eq!(number(19), ["digits-19"]);
        assert_eq!(number(40), ["digits-40"]);
        assert_eq!(number(42), ["digits-40", "digits-2"]);
        assert_eq!(number(300), ["digits-3", "digits-hundred"]);
        assert_eq!(number(115), ["digits-1", "digits-hundred", "digits-15"]);
        assert_eq!(
            number(5000),
            ["digits-9", "digits-hundred", "digits-90", "digits-9"]
        );
        for n in 0..1000 {
            for word in number(n) {
                assert!(wav(&word).is_some(), "{n}: {word}");
            }
        }
    }

    #[test]
    fn a_queue_announcement_says_position_then_hold_time_then_thanks() {
        assert_eq!(
            queue_announcement(Some(1), None),
            ["queue-first", "queue-thankyou"]
        );
        assert_eq!(
            queue_announcement(Some(3), Some(Duration::from_secs(20))),
            [
                "queue-caller",
                "digits-3",
                "queue-holdtime",
                "queue-less-than-a-minute",
                "queue-thankyou"
            ]
        );
        assert_eq!(
            queue_announcement(None, Some(Duration::from_secs(100))),
            ["queue-holdtime", "digits-2", "minutes", "queue-thankyou"]
        );
        assert_eq!(
            queue_announcement(None, Some(Duration::from_secs(60))),
            ["queue-holdtime", "digits-1", "minute", "queue-thankyou"]
        );
        // Nothing to say: silence, not thanks alone.
        assert!(queue_announcement(None, Some(Duration::ZERO)).is_empty());
    }

    #[test]
    fn every_prompt_is_speech_at_8_and_16_khz() {
        let words = queue_announcement(Some(42), Some(Duration::from_secs(600)));
        let narrow = pcm(&words, 8000);
        let wide = pcm(&words, 16000);
        // Several seconds, of speech (not silence), twice the samples at 16 kHz.
        assert!(narrow.len() > 3 * 8000, "{}", narrow.len());
        assert!(narrow.iter().any(|s| s.unsigned_abs() > 4000));
        let ratio = wide.len() as f64 / narrow.len() as f64;
        assert!((1.9..2.1).contains(&ratio), "{ratio}");
        for name in [
            "agent-incorrect",
            "agent-loggedin",
            "agent-loggedoff",
            "conf-pin",
            "conf-invalid-pin",
            "conf-only-person",
            "conf-muted",
            "conf-unmuted",
            "vm-unavailable",
            "vm-busy",
            "vm-leave",
            "vm-saved",
            "vm-full",
            "vm-password",
            "vm-you-have",
            "vm-message",
            "vm-messages",
            "vm-no-messages",
            "vm-menu",
            "vm-deleted",
            "vm-kept",
            "vm-no-more",
            "vm-goodbye",
        ] {
            assert!(pcm(&[name.to_owned()], 8000).len() > 4000, "{name}");
        }
    }
}
