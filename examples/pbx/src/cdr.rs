//! Call detail records: one JSON object per line in `<data_dir>/cdr.jsonl`, one line
//! per call, written when the call ends.
//!
//! Durability: the file is a [`crate::journal`] (group commit, one `fsync` per
//! batch; a record is on disk when its batch's fsync returns).

use crate::journal::Journal;
pub(crate) use crate::journal::Writer;
use serde::Serialize;
use std::io;
use std::path::Path;

/// How a call ended, with Asterisk's disposition names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Disposition {
    /// Answered.
    #[serde(rename = "ANSWERED")]
    Answered,
    /// Rang until the ring time or the caller hung up first.
    #[serde(rename = "NO ANSWER")]
    NoAnswer,
    /// The callee was busy.
    #[serde(rename = "BUSY")]
    Busy,
    /// Anything else: unknown number, unreachable, refused.
    #[serde(rename = "FAILED")]
    Failed,
}

/// One call.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Record {
    /// When the INVITE arrived, Unix seconds with milliseconds.
    pub(crate) start: f64,
    /// When the callee answered.
    pub(crate) answer: Option<f64>,
    /// When the call ended.
    pub(crate) end: f64,
    /// The caller's extension.
    pub(crate) src: String,
    /// The dialed number.
    pub(crate) dst: String,
    /// The caller's Call-ID.
    pub(crate) call_id: String,
    pub(crate) disposition: Disposition,
    /// The SIP status the caller got when the call was not answered.
    pub(crate) status: Option<u16>,
    /// Seconds from start to end, and from answer to end.
    pub(crate) duration: f64,
    pub(crate) billsec: f64,
    /// Who hung up an answered call: `caller`, `callee`, `transfer`, `timer` (session
    /// timer expired) or `pbx` (shutdown, limits).
    pub(crate) hangup_by: Option<&'static str>,
    /// The Q.850 cause the call ended with: 16 (normal clearing) or what the Reason
    /// of the BYE said for answered calls, the caller's status mapped (RFC 3398) for
    /// the others.
    pub(crate) hangup_cause: u8,
}

/// Unix time now, in seconds with milliseconds.
pub(crate) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| (d.as_millis() as f64) / 1000.0)
}

impl Record {
    /// A record whose durations are computed from its times.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        start: f64,
        answer: Option<f64>,
        src: &str,
        dst: &str,
        call_id: &str,
        disposition: Disposition,
        status: Option<u16>,
        hangup: Option<pbxkit::hangup::HangupCause>,
    ) -> Record {
        let end = now();
        let round = |s: f64| (s.max(0.0) * 1000.0).round() / 1000.0;
        Record {
            start,
            answer,
            end,
            src: src.to_owned(),
            dst: dst.to_owned(),
            call_id: call_id.to_owned(),
            disposition,
            status,
            duration: round(end - start),
            billsec: answer.map_or(0.0, |a| round(end - a)),
            hangup_by: hangup.map(pbxkit::hangup::HangupCause::who),
            // An answered call's cause is how it ended; another's, its status.
            hangup_cause: match hangup {
                Some(cause) => cause.q850(),
                None => status.and_then(pbxkit_sip::StatusCode::new).map_or(
                    pbxkit_sip::cause::NORMAL_CLEARING,
                    pbxkit_sip::cause::cause_for_status,
                ),
            },
        }
    }
}

/// Writes records to `<data_dir>/cdr.jsonl` (see [`crate::journal`]).
#[derive(Debug, Clone)]
pub(crate) struct Cdr(Journal);

/// Opens (creating) `<dir>/cdr.jsonl` for appending and starts its writer thread.
pub(crate) fn open(dir: &Path) -> io::Result<(Cdr, Writer)> {
    let (journal, writer) = crate::journal::open(&dir.join("cdr.jsonl"), "cdr")?;
    Ok((Cdr(journal), writer))
}

impl Cdr {
    /// Queues a record (never blocks the call).
    pub(crate) fn write(&self, record: Record) {
        // A Record always serialises: plain strings and numbers.
        if let Ok(line) = serde_json::to_vec(&record) {
            self.0.append(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_appended_one_json_line_each_and_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("pbxkit-cdr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join("cdr.jsonl"));
        for round in 0..2 {
            let (cdr, writer) = open(&dir).unwrap();
            let start = now() - 10.0;
            cdr.write(Record::new(
                start,
                Some(start + 4.0),
                "1000",
                "1001",
                &format!("c{round}"),
                Disposition::Answered,
                None,
                Some(pbxkit::hangup::HangupCause::by(
                    pbxkit::hangup::Party::Caller,
                )),
            ));
            cdr.write(Record::new(
                start,
                None,
                "1000",
                "1002",
                "x",
                Disposition::Busy,
                Some(486),
                None,
            ));
            // A clone still held elsewhere does not keep finish() waiting.
            let _late = cdr.clone();
            drop(cdr);
            writer.finish();
        }
        let text = std::fs::read_to_string(dir.join("cdr.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["disposition"], "ANSWERED");
        assert_eq!(lines[0]["call_id"], "c0");
        assert_eq!(lines[2]["call_id"], "c1");
        let billsec = lines[0]["billsec"].as_f64().unwrap();
        assert!((5.9..6.5).contains(&billsec), "{billsec}");
        assert_eq!(lines[1]["disposition"], "BUSY");
        assert_eq!(lines[1]["status"], 486);
        assert_eq!(lines[1]["billsec"], 0.0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
