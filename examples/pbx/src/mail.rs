//! Voicemail to email: a new message is mailed, its WAV attached, by a
//! sendmail-compatible program (`[pbx] mail_command`, e.g. `["/usr/sbin/sendmail",
//! "-t"]`) that reads the whole MIME message, headers included, on its standard
//! input. The PBX speaks no SMTP itself: the local mail system queues, retries and
//! relays. A program that fails, or takes longer than [`TIMEOUT`], is logged; the
//! message stays in the box whatever happens.

use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How long the mail program is given.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how new messages are mailed.
#[derive(Debug, Clone)]
pub(crate) struct Mailer {
    /// The program and its arguments.
    pub(crate) command: Vec<String>,
    /// The From address.
    pub(crate) from: String,
}

/// What a message's mail says.
#[derive(Debug, Clone)]
pub(crate) struct Letter<'a> {
    pub(crate) to: &'a str,
    pub(crate) mailbox: &'a str,
    pub(crate) caller: &'a str,
    pub(crate) caller_name: &'a str,
    /// When it was left (Unix seconds).
    pub(crate) date: u64,
    pub(crate) duration: f64,
    /// The attachment's file name and bytes.
    pub(crate) file: &'a str,
    pub(crate) wav: &'a [u8],
}

/// Whether `address` can go in a header as it is: one address, no spaces or
/// control characters (no header injection).
pub(crate) fn is_address(address: &str) -> bool {
    let mut parts = address.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && address
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | ',' | '"' | '(' | ')'))
}

/// `s` with control characters (line breaks above all) removed: what a caller
/// controls may go in a header only so.
fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

impl Letter<'_> {
    /// The whole MIME message (RFC 5322, RFC 2045–2046), CRLF line ends.
    pub(crate) fn message(&self, from: &str) -> String {
        let boundary = format!("pbxkit-{:016x}", crate::ids::random_u64());
        let date = jiff::Timestamp::from_second(i64::try_from(self.date).unwrap_or(0))
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let rfc2822 =
            jiff::fmt::rfc2822::to_string(&date.to_zoned_datetime(jiff::tz::TimeZone::UTC))
                .unwrap_or_default();
        let who = match clean(self.caller_name).trim() {
            "" => clean(self.caller),
            name => format!("{name} ({})", clean(self.caller)),
        };
        let mut out = String::new();
        out.push_str(&format!("From: pbxkit voicemail <{from}>\r\n"));
        out.push_str(&format!("To: <{}>\r\n", self.to));
        out.push_str(&format!(
            "Subject: New voicemail from {who} in box {}\r\n",
            clean(self.mailbox)
        ));
        out.push_str(&format!("Date: {rfc2822}\r\n"));
        out.push_str("MIME-Version: 1.0\r\n");
        out.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
        ));
        out.push_str(&format!("--{boundary}\r\n"));
        out.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
        out.push_str(&format!(
            "You have a new voicemail message from {who}, {:.0} seconds long, left {rfc2822}.\r\n\r\n",
            self.duration
        ));
        out.push_str(&format!("--{boundary}\r\n"));
        out.push_str(&format!(
            "Content-Type: audio/wav; name=\"{0}\"\r\nContent-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"{0}\"\r\n\r\n",
            clean(self.file)
        ));
        out.push_str(&base64_lines(self.wav));
        out.push_str(&format!("--{boundary}--\r\n"));
        out
    }
}

/// Base64 (RFC 4648) in lines of 76 characters, each ending in CRLF (RFC 2045).
fn base64_lines(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + bytes.len() / 38 + 4);
    let mut line = 0;
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            let c = if i <= chunk.len() {
                // Six bits: always an index into the alphabet.
                char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize])
            } else {
                '='
            };
            out.push(c);
        }
        line += 4;
        if line == 76 {
            out.push_str("\r\n");
            line = 0;
        }
    }
    if line > 0 {
        out.push_str("\r\n");
    }
    out
}

impl Mailer {
    /// Mails `letter`: runs the program with the message on its standard input.
    pub(crate) async fn send(&self, letter: &Letter<'_>) -> std::io::Result<()> {
        let Some((program, args)) = self.command.split_first() else {
            return Ok(());
        };
        let message = letter.message(&self.from);
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let run = async {
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(message.as_bytes()).await?;
                // Closing it ends the message for the program.
                drop(stdin);
            }
            child.wait_with_output().await
        };
        let output = tokio::time::timeout(TIMEOUT, run).await.map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "mail program too slow")
        })??;
        if output.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            Err(std::io::Error::other(format!(
                "{program} exited with {}: {}",
                output.status,
                stderr.trim()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_rfc_4648_in_76_character_lines() {
        // RFC 4648 §10.
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg==\r\n"),
            ("fo", "Zm8=\r\n"),
            ("foo", "Zm9v\r\n"),
            ("foob", "Zm9vYg==\r\n"),
            ("fooba", "Zm9vYmE=\r\n"),
            ("foobar", "Zm9vYmFy\r\n"),
        ] {
            assert_eq!(base64_lines(plain.as_bytes()), coded, "{plain}");
        }
        let long = base64_lines(&[0xff; 100]);
        let lines: Vec<&str> = long.split("\r\n").collect();
        assert_eq!(lines[0].len(), 76);
        assert_eq!(lines[0], "/".repeat(76));
    }

    #[test]
    fn addresses_and_what_callers_say_cannot_add_headers() {
        assert!(is_address("bob@example.com"));
        for bad in [
            "bob",
            "bob@",
            "@x",
            "a@b@c",
            "bob@x\r\nBcc: eve@x",
            "bob @x",
            "<bob@x>",
        ] {
            assert!(!is_address(bad), "{bad:?}");
        }
        let letter = Letter {
            to: "bob@example.com",
            mailbox: "1001",
            caller: "1000",
            caller_name: "Alice\r\nBcc: eve@example.com",
            date: 1_700_000_000,
            duration: 3.4,
            file: "msg-1.wav",
            wav: b"RIFF",
        };
        let text = letter.message("pbx@example.com");
        assert!(text.contains(
            "Subject: New voicemail from AliceBcc: eve@example.com (1000) in box 1001\r\n"
        ));
        assert!(!text.contains("\r\nBcc:"));
        assert!(
            text.contains("Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"),
            "{text}"
        );
        assert!(text.contains(
            "Content-Disposition: attachment; filename=\"msg-1.wav\"\r\n\r\nUklGRg==\r\n"
        ));
    }
}
