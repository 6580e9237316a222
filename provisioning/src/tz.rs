//! IANA time zones as phones understand them: a UTC offset and, where the zone has
//! daylight saving time, the rule of its changes.
//!
//! Phones do not ship a time zone database; each vendor wants the offset and the DST
//! rule in its own notation (POSIX `TZ` strings, minutes west of UTC, `month/day/weekday`
//! rules...). [`lookup`] knows the current rules of the zones provisioning
//! installations use most; the plugins format a [`TzInfo`] for their vendor, and leave
//! the phone's own setting alone for a zone not in the table.

/// When a daylight saving change happens: the `week`-th `weekday` of `month`, at a
/// local wall-clock time (the time before the change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DstChange {
    /// Month, 1 (January) to 12.
    pub month: u8,
    /// Week of the month, 1 to 4, or 5 for the last one.
    pub week: u8,
    /// Day of the week, 0 (Sunday) to 6 (Saturday), as in POSIX `TZ` rules.
    pub weekday: u8,
    /// Local time of the change, in minutes after midnight.
    pub minutes: u16,
}

impl DstChange {
    /// The weekday counted from Monday: 1 (Monday) to 7 (Sunday).
    pub fn weekday_from_monday(&self) -> u8 {
        if self.weekday == 0 { 7 } else { self.weekday }
    }

    /// The weekday counted from Sunday: 1 (Sunday) to 7 (Saturday).
    pub fn weekday_from_sunday(&self) -> u8 {
        self.weekday.saturating_add(1)
    }

    /// Whether the change is on the last such weekday of the month.
    pub fn is_last(&self) -> bool {
        self.week >= 5
    }

    /// The whole hour of the change.
    pub fn hour(&self) -> u16 {
        self.minutes / 60
    }

    /// `HH:MM:SS`.
    pub fn hms(&self) -> String {
        format!("{:02}:{:02}:00", self.minutes / 60, self.minutes % 60)
    }
}

/// A daylight saving time rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dst {
    /// Abbreviation of the summer time (`CEST`).
    pub name: &'static str,
    /// How much the clock moves forward, in minutes.
    pub save_minutes: u16,
    /// When summer time starts.
    pub start: DstChange,
    /// When it ends.
    pub end: DstChange,
}

/// What a phone needs to know of a time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TzInfo {
    /// Abbreviation of the standard time (`CET`).
    pub name: &'static str,
    /// Offset of standard time from UTC, in minutes east (Paris: 60).
    pub utc_offset_minutes: i16,
    /// The daylight saving rule, if the zone has one.
    pub dst: Option<Dst>,
}

const fn change(month: u8, week: u8, minutes: u16) -> DstChange {
    DstChange {
        month,
        week,
        weekday: 0,
        minutes,
    }
}

/// The European Union rule: last Sunday of March to last Sunday of October, at 01:00
/// UTC, written in local time for a zone `offset_hours` east of UTC.
const fn eu(name: &'static str, offset_hours: u16) -> Option<Dst> {
    Some(Dst {
        name,
        save_minutes: 60,
        start: change(3, 5, (1 + offset_hours) * 60),
        end: change(10, 5, (2 + offset_hours) * 60),
    })
}

/// The United States and Canada rule: second Sunday of March to first Sunday of
/// November, at 02:00 local time.
const fn us(name: &'static str) -> Option<Dst> {
    Some(Dst {
        name,
        save_minutes: 60,
        start: change(3, 2, 120),
        end: change(11, 1, 120),
    })
}

const fn tz(name: &'static str, utc_offset_minutes: i16, dst: Option<Dst>) -> TzInfo {
    TzInfo {
        name,
        utc_offset_minutes,
        dst,
    }
}

/// South-eastern Australia: first Sunday of October to first Sunday of April.
const AU: Option<Dst> = Some(Dst {
    name: "AEDT",
    save_minutes: 60,
    start: change(10, 1, 120),
    end: change(4, 1, 180),
});

/// New Zealand: last Sunday of September to first Sunday of April.
const NZ: Option<Dst> = Some(Dst {
    name: "NZDT",
    save_minutes: 60,
    start: change(9, 5, 120),
    end: change(4, 1, 180),
});

/// IANA names and their current rules, sorted by name for the binary search.
const ZONES: &[(&str, TzInfo)] = &[
    ("Africa/Abidjan", tz("GMT", 0, None)),
    ("Africa/Algiers", tz("CET", 60, None)),
    ("Africa/Dakar", tz("GMT", 0, None)),
    ("Africa/Johannesburg", tz("SAST", 120, None)),
    ("Africa/Lagos", tz("WAT", 60, None)),
    ("Africa/Nairobi", tz("EAT", 180, None)),
    ("Africa/Tunis", tz("CET", 60, None)),
    ("America/Anchorage", tz("AKST", -540, us("AKDT"))),
    ("America/Argentina/Buenos_Aires", tz("ART", -180, None)),
    ("America/Bogota", tz("COT", -300, None)),
    ("America/Chicago", tz("CST", -360, us("CDT"))),
    ("America/Denver", tz("MST", -420, us("MDT"))),
    ("America/Guadeloupe", tz("AST", -240, None)),
    ("America/Halifax", tz("AST", -240, us("ADT"))),
    ("America/Los_Angeles", tz("PST", -480, us("PDT"))),
    ("America/Martinique", tz("AST", -240, None)),
    ("America/Mexico_City", tz("CST", -360, None)),
    ("America/Montreal", tz("EST", -300, us("EDT"))),
    ("America/New_York", tz("EST", -300, us("EDT"))),
    ("America/Phoenix", tz("MST", -420, None)),
    ("America/Sao_Paulo", tz("BRT", -180, None)),
    ("America/St_Johns", tz("NST", -210, us("NDT"))),
    ("America/Toronto", tz("EST", -300, us("EDT"))),
    ("America/Vancouver", tz("PST", -480, us("PDT"))),
    ("Asia/Dubai", tz("GST", 240, None)),
    ("Asia/Hong_Kong", tz("HKT", 480, None)),
    ("Asia/Kolkata", tz("IST", 330, None)),
    ("Asia/Shanghai", tz("CST", 480, None)),
    ("Asia/Singapore", tz("SGT", 480, None)),
    ("Asia/Tokyo", tz("JST", 540, None)),
    ("Australia/Melbourne", tz("AEST", 600, AU)),
    ("Australia/Sydney", tz("AEST", 600, AU)),
    ("Etc/UTC", tz("UTC", 0, None)),
    ("Europe/Amsterdam", tz("CET", 60, eu("CEST", 1))),
    ("Europe/Athens", tz("EET", 120, eu("EEST", 2))),
    ("Europe/Berlin", tz("CET", 60, eu("CEST", 1))),
    ("Europe/Brussels", tz("CET", 60, eu("CEST", 1))),
    ("Europe/Bucharest", tz("EET", 120, eu("EEST", 2))),
    ("Europe/Budapest", tz("CET", 60, eu("CEST", 1))),
    ("Europe/Copenhagen", tz("CET", 60, eu("CEST", 1))),
    ("Europe/Dublin", tz("GMT", 0, eu("IST", 0))),
    ("Europe/Helsinki", tz("EET", 120, eu("EEST", 2))),
    ("Europe/Istanbul", tz("TRT", 180, None)),
    ("Europe/Kyiv", tz("EET", 120, eu("EEST", 2))),
    ("Europe/Lisbon", tz("WET", 0, eu("WEST", 0))),
    ("Europe/London", tz("GMT", 0, eu("BST", 0))),
    ("Europe/Luxembourg", tz("CET", 60, eu("CEST", 1))),
    ("Europe/Madrid", tz("CET", 60, eu("CEST", 1))),
    ("Europe/Monaco", tz("CET", 60, eu("CEST", 1))),
    ("Europe/Moscow", tz("MSK", 180, None)),
    ("Europe/Oslo", tz("CET", 60, eu("CEST", 1))),
    ("Europe/Paris", tz("CET", 60, eu("CEST", 1))),
    ("Europe/Prague", tz("CET", 60, eu("CEST", 1))),
    ("Europe/Rome", tz("CET", 60, eu("CEST", 1))),
    ("Europe/Sofia", tz("EET", 120, eu("EEST", 2))),
    ("Europe/Stockholm", tz("CET", 60, eu("CEST", 1))),
    ("Europe/Vienna", tz("CET", 60, eu("CEST", 1))),
    ("Europe/Warsaw", tz("CET", 60, eu("CEST", 1))),
    ("Europe/Zurich", tz("CET", 60, eu("CEST", 1))),
    ("Indian/Reunion", tz("RET", 240, None)),
    ("Pacific/Auckland", tz("NZST", 720, NZ)),
    ("Pacific/Honolulu", tz("HST", -600, None)),
    ("Pacific/Noumea", tz("NCT", 660, None)),
    ("Pacific/Tahiti", tz("TAHT", -600, None)),
    ("UTC", tz("UTC", 0, None)),
];

/// The rules of the IANA zone `name` (`Europe/Paris`), if it is in the table.
///
/// ```
/// use pbxkit_provisioning::tz;
/// let paris = tz::lookup("Europe/Paris").ok_or("unknown")?;
/// assert_eq!(paris.utc_offset_minutes, 60);
/// assert_eq!(paris.posix(), "CET-1CEST-2,M3.5.0/02:00:00,M10.5.0/03:00:00");
/// assert_eq!(tz::lookup("Mars/Olympus"), None);
/// # Ok::<(), &str>(())
/// ```
pub fn lookup(name: &str) -> Option<TzInfo> {
    ZONES
        .binary_search_by(|(zone, _)| (*zone).cmp(name))
        .ok()
        .and_then(|i| ZONES.get(i))
        .map(|(_, info)| *info)
}

/// `+HH:MM` (or `-HH:MM`) for an offset in minutes.
pub fn format_offset(minutes: i16) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let abs = minutes.unsigned_abs();
    format!("{sign}{:02}:{:02}", abs / 60, abs % 60)
}

impl TzInfo {
    /// The offset in seconds east of UTC.
    pub fn utc_offset_seconds(&self) -> i32 {
        i32::from(self.utc_offset_minutes) * 60
    }

    /// The POSIX `TZ` string (offsets west of UTC, as POSIX counts them), with explicit
    /// summer offset and `hh:mm:ss` change times, the form Grandstream firmware reads.
    pub fn posix(&self) -> String {
        // POSIX offsets are the opposite sign of the usual "UTC+1".
        let mut out = format!("{}{}", self.name, posix_offset(self.utc_offset_minutes));
        if let Some(dst) = &self.dst {
            let summer = self
                .utc_offset_minutes
                .saturating_add_unsigned(dst.save_minutes);
            out.push_str(&format!(
                "{}{},{},{}",
                dst.name,
                posix_offset(summer),
                posix_rule(&dst.start),
                posix_rule(&dst.end)
            ));
        }
        out
    }
}

/// `-1`, `5`, `-5:30`: POSIX writes a positive offset without its sign, and minutes
/// only when there are some.
fn posix_offset(minutes_east: i16) -> String {
    let west = minutes_east.saturating_neg();
    let sign = if west < 0 { "-" } else { "" };
    let abs = west.unsigned_abs();
    match abs % 60 {
        0 => format!("{sign}{}", abs / 60),
        m => format!("{sign}{}:{m:02}", abs / 60),
    }
}

fn posix_rule(change: &DstChange) -> String {
    format!(
        "M{}.{}.{}/{}",
        change.month,
        change.week,
        change.weekday,
        change.hms()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_so_lookup_finds_every_zone() {
        for pair in ZONES.windows(2) {
            if let [(a, _), (b, _)] = pair {
                assert!(a < b, "{a} >= {b}");
            }
        }
        for (name, info) in ZONES {
            assert_eq!(lookup(name), Some(*info));
        }
    }

    #[test]
    fn formats() {
        let ny = lookup("America/New_York").unwrap_or(tz("X", 0, None));
        assert_eq!(ny.posix(), "EST5EDT4,M3.2.0/02:00:00,M11.1.0/02:00:00");
        assert_eq!(
            lookup("Asia/Kolkata").map(|t| t.posix()),
            Some("IST-5:30".into())
        );
        assert_eq!(format_offset(-210), "-03:30");
        let start = change(3, 5, 120);
        assert_eq!(
            (start.weekday_from_monday(), start.weekday_from_sunday()),
            (7, 1)
        );
    }
}
