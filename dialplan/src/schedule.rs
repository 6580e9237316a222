//! Schedules: is a service open at a given instant, and if not, where do calls go?
//!
//! Rules (reference 000 "Schedules", 003 "Horaires"; checked against XiVO's AGI):
//!
//! - A schedule has an IANA time zone; the instant (a [`jiff::Timestamp`] the caller
//!   gives) is converted to local time there, so opening hours follow daylight saving.
//! - A period is a set of months, days of the month, ISO weekdays (1 = Monday) and one
//!   hour range; an absent field allows everything. A time is in a period when every
//!   field accepts it. Hour ranges count whole minutes with both ends included:
//!   `09:00-18:00` is open at 18:00:59 and closed at 18:01; a range can't cross
//!   midnight (use two periods).
//! - Exceptional closed periods are checked first: inside one, the schedule is closed
//!   and calls go to that period's destination (or the schedule's). Then the opening
//!   periods; outside all of them, it is closed with the schedule's closed destination.

use jiff::Timestamp;
use jiff::tz::{TimeZone, TimeZoneDatabase};

use crate::config::{Destination, PeriodConfig, ScheduleConfig};

/// What is wrong with a schedule.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The time zone is not in the database.
    #[error("unknown time zone '{name}': {source}")]
    TimeZone {
        /// The name given.
        name: String,
        /// jiff's error.
        source: jiff::Error,
    },
    /// A list of months, days or weekdays that does not parse or is out of range.
    #[error("{field} '{text}': {reason} (at byte {position})")]
    BadList {
        /// `months`, `month_days` or `weekdays`.
        field: &'static str,
        /// The text.
        text: String,
        /// Where the fault is in `text`.
        position: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// An hour range that is not `HH:MM-HH:MM` with start before end.
    #[error("hours '{text}': {reason}")]
    BadHours {
        /// The text.
        text: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Whether a schedule is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleState<'a> {
    /// Calls go through.
    Open,
    /// Calls go to `destination` (or are refused when it is `None`).
    Closed {
        /// Where calls go.
        destination: Option<&'a Destination>,
        /// Whether an exceptional closed period decided it.
        exceptional: bool,
    },
}

impl ScheduleState<'_> {
    /// Whether calls go through.
    pub fn is_open(&self) -> bool {
        matches!(self, Self::Open)
    }
}

/// A compiled period: bit masks of accepted values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Period {
    /// Minutes of the day, both included.
    minutes: (u16, u16),
    /// Bit n = ISO weekday n (1–7).
    weekdays: u8,
    /// Bit n = day n (1–31).
    month_days: u32,
    /// Bit n = month n (1–12).
    months: u16,
}

impl Period {
    fn parse(config: &PeriodConfig) -> Result<Self, ScheduleError> {
        let mask = |field, text: &Option<String>, max| match text {
            None => Ok(u32::MAX),
            Some(text) => parse_list(field, text, max),
        };
        // Masks of at most 31 bits: the truncations below keep every valid bit.
        let weekdays =
            u8::try_from(mask("weekdays", &config.weekdays, 7)? & 0xFF).unwrap_or(u8::MAX);
        let months =
            u16::try_from(mask("months", &config.months, 12)? & 0xFFFF).unwrap_or(u16::MAX);
        Ok(Self {
            minutes: match &config.hours {
                None => (0, 23 * 60 + 59),
                Some(text) => parse_hours(text)?,
            },
            weekdays,
            month_days: mask("month_days", &config.month_days, 31)?,
            months,
        })
    }

    fn contains(&self, local: &jiff::ZonedDateTime) -> bool {
        let bit = |n: i8| {
            u32::try_from(n)
                .ok()
                .and_then(|n| 1u32.checked_shl(n))
                .unwrap_or(0)
        };
        let minute = i16::from(local.hour()) * 60 + i16::from(local.minute());
        let minute = u16::try_from(minute).unwrap_or(u16::MAX);
        self.minutes.0 <= minute
            && minute <= self.minutes.1
            && u32::from(self.weekdays) & bit(local.weekday().to_monday_one_offset()) != 0
            && self.month_days & bit(local.day()) != 0
            && u32::from(self.months) & bit(local.month()) != 0
    }
}

/// Parses `"1-5,7"` into a bit mask of values in `1..=max`.
fn parse_list(field: &'static str, text: &str, max: u32) -> Result<u32, ScheduleError> {
    let fail = |position, reason| ScheduleError::BadList {
        field,
        text: text.to_owned(),
        position,
        reason,
    };
    let mut mask = 0u32;
    let mut offset = 0;
    for token in text.split(',') {
        let value = |s: &str, at: usize| -> Result<u32, ScheduleError> {
            let n: u32 = s.trim().parse().map_err(|_| fail(at, "not a number"))?;
            if n == 0 || n > max {
                return Err(fail(at, "out of range"));
            }
            Ok(n)
        };
        let (low, high) = match token.split_once('-') {
            Some((a, b)) => (value(a, offset)?, value(b, offset + a.len() + 1)?),
            None => {
                let n = value(token, offset)?;
                (n, n)
            }
        };
        if low > high {
            return Err(fail(offset, "range is reversed"));
        }
        for n in low..=high {
            mask |= 1 << n;
        }
        offset += token.len() + 1;
    }
    Ok(mask)
}

/// Parses `"HH:MM-HH:MM"` into minutes of the day.
fn parse_hours(text: &str) -> Result<(u16, u16), ScheduleError> {
    let fail = |reason| ScheduleError::BadHours {
        text: text.to_owned(),
        reason,
    };
    let time = |s: &str| -> Result<u16, ScheduleError> {
        let (h, m) = s
            .trim()
            .split_once(':')
            .ok_or_else(|| fail("expected HH:MM-HH:MM"))?;
        let h: u16 = h.parse().map_err(|_| fail("bad hour"))?;
        let m: u16 = m.parse().map_err(|_| fail("bad minute"))?;
        if h > 23 || m > 59 {
            return Err(fail("hour above 23 or minute above 59"));
        }
        Ok(h * 60 + m)
    };
    let (start, end) = text
        .split_once('-')
        .ok_or_else(|| fail("expected HH:MM-HH:MM"))?;
    let (start, end) = (time(start)?, time(end)?);
    if start > end {
        return Err(fail(
            "end before start (split a range crossing midnight in two periods)",
        ));
    }
    Ok((start, end))
}

/// Checks the periods of a schedule (not its time zone).
pub(crate) fn check_periods(config: &ScheduleConfig) -> Result<(), ScheduleError> {
    for period in config
        .open
        .iter()
        .chain(config.closed.iter().map(|c| &c.period))
    {
        Period::parse(period)?;
    }
    Ok(())
}

/// A compiled schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    name: String,
    tz: TimeZone,
    open: Vec<Period>,
    closed: Vec<(Period, Option<Destination>)>,
    closed_destination: Option<Destination>,
}

impl Schedule {
    /// Compiles a schedule, resolving its time zone in `tzdb` (the PBX passes
    /// `jiff::tz::db()`; the library itself reads nothing).
    ///
    /// # Errors
    ///
    /// A [`ScheduleError`] for an unknown time zone or a malformed period.
    pub fn new(config: &ScheduleConfig, tzdb: &TimeZoneDatabase) -> Result<Self, ScheduleError> {
        let tz = tzdb
            .get(&config.timezone)
            .map_err(|source| ScheduleError::TimeZone {
                name: config.timezone.clone(),
                source,
            })?;
        Ok(Self {
            name: config.name.clone(),
            tz,
            open: config
                .open
                .iter()
                .map(Period::parse)
                .collect::<Result<_, _>>()?,
            closed: config
                .closed
                .iter()
                .map(|c| Period::parse(&c.period).map(|p| (p, c.destination.clone())))
                .collect::<Result<_, _>>()?,
            closed_destination: config.closed_destination.clone(),
        })
    }

    /// The schedule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The state at `now`.
    pub fn state_at(&self, now: Timestamp) -> ScheduleState<'_> {
        let local = now.to_zoned_datetime(self.tz.clone());
        if let Some((_, destination)) = self.closed.iter().find(|(p, _)| p.contains(&local)) {
            return ScheduleState::Closed {
                destination: destination.as_ref().or(self.closed_destination.as_ref()),
                exceptional: true,
            };
        }
        if self.open.iter().any(|p| p.contains(&local)) {
            return ScheduleState::Open;
        }
        ScheduleState::Closed {
            destination: self.closed_destination.as_ref(),
            exceptional: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClosedPeriodConfig;
    use proptest::prelude::*;

    fn office() -> Schedule {
        // Reference 003 "Horaires > Modifier | STD": Europe/Paris, 09h00–18h00 Monday to
        // Friday, closed destination a user; plus a lunch closure and Christmas.
        let config = ScheduleConfig {
            name: "STD".into(),
            timezone: "Europe/Paris".into(),
            open: vec![PeriodConfig {
                hours: Some("09:00-18:00".into()),
                weekdays: Some("1-5".into()),
                ..PeriodConfig::default()
            }],
            closed: vec![
                ClosedPeriodConfig {
                    period: PeriodConfig {
                        hours: Some("12:00-13:59".into()),
                        ..PeriodConfig::default()
                    },
                    destination: Some(Destination::Voicemail { name: "std".into() }),
                },
                ClosedPeriodConfig {
                    period: PeriodConfig {
                        months: Some("12".into()),
                        month_days: Some("25".into()),
                        ..PeriodConfig::default()
                    },
                    destination: None,
                },
            ],
            closed_destination: Some(Destination::User {
                name: "test".into(),
            }),
        };
        Schedule::new(&config, jiff::tz::db()).expect("valid schedule")
    }

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    #[test]
    fn opening_hours_in_local_time() {
        let s = office();
        // Tuesday 2024-03-26: Paris is on CET (UTC+1) until 2024-03-31.
        assert!(
            s.state_at(at("2024-03-26T08:00:00Z")).is_open(),
            "09:00 CET"
        );
        assert!(
            !s.state_at(at("2024-03-26T07:59:59Z")).is_open(),
            "08:59 CET"
        );
        assert!(
            s.state_at(at("2024-03-26T17:00:59Z")).is_open(),
            "18:00:59 CET: end minute included"
        );
        assert!(
            !s.state_at(at("2024-03-26T17:01:00Z")).is_open(),
            "18:01 CET"
        );
        // Saturday.
        let closed = s.state_at(at("2024-03-30T10:00:00Z"));
        assert_eq!(
            closed,
            ScheduleState::Closed {
                destination: Some(&Destination::User {
                    name: "test".into()
                }),
                exceptional: false
            }
        );
    }

    #[test]
    fn exceptional_closures_win() {
        let s = office();
        // Tuesday 12:30 CET: lunch.
        let lunch = s.state_at(at("2024-03-26T11:30:00Z"));
        assert_eq!(
            lunch,
            ScheduleState::Closed {
                destination: Some(&Destination::Voicemail { name: "std".into() }),
                exceptional: true
            }
        );
        // Wednesday 2024-12-25 10:00 CET: Christmas, the schedule's destination.
        let christmas = s.state_at(at("2024-12-25T09:00:00Z"));
        assert_eq!(
            christmas,
            ScheduleState::Closed {
                destination: Some(&Destination::User {
                    name: "test".into()
                }),
                exceptional: true
            }
        );
    }

    #[test]
    fn daylight_saving_transitions_in_paris() {
        let s = office();
        // Spring: Sunday 2024-03-31 02:00 CET -> 03:00 CEST. Monday 09:00 CEST = 07:00Z.
        assert!(s.state_at(at("2024-04-01T07:00:00Z")).is_open());
        assert!(!s.state_at(at("2024-04-01T06:59:00Z")).is_open());
        // Friday before the change: 09:00 CET = 08:00Z, so 07:30Z is closed.
        assert!(!s.state_at(at("2024-03-29T07:30:00Z")).is_open());
        assert!(s.state_at(at("2024-03-29T08:00:00Z")).is_open());
        // Autumn: Sunday 2024-10-27 03:00 CEST -> 02:00 CET. Monday 09:00 CET = 08:00Z.
        assert!(!s.state_at(at("2024-10-28T07:30:00Z")).is_open());
        assert!(s.state_at(at("2024-10-28T08:00:00Z")).is_open());
        // Friday before: 09:00 CEST = 07:00Z.
        assert!(s.state_at(at("2024-10-25T07:00:00Z")).is_open());
        // 18:00 CEST = 16:00Z on Friday, 18:00 CET = 17:00Z on Monday.
        assert!(!s.state_at(at("2024-10-25T16:30:00Z")).is_open());
        assert!(s.state_at(at("2024-10-28T16:30:00Z")).is_open());
    }

    #[test]
    fn repeated_hour_on_the_autumn_sunday() {
        // A 02:00-02:59 period on Sundays: during the repeated hour both UTC instants
        // are 02:xx local time, so both are inside.
        let config = ScheduleConfig {
            name: "night".into(),
            timezone: "Europe/Paris".into(),
            open: vec![PeriodConfig {
                hours: Some("02:00-02:59".into()),
                weekdays: Some("7".into()),
                ..PeriodConfig::default()
            }],
            closed: vec![],
            closed_destination: None,
        };
        let s = Schedule::new(&config, jiff::tz::db()).expect("valid");
        assert!(
            s.state_at(at("2024-10-27T00:30:00Z")).is_open(),
            "02:30 CEST"
        );
        assert!(
            s.state_at(at("2024-10-27T01:30:00Z")).is_open(),
            "02:30 CET"
        );
        assert!(
            !s.state_at(at("2024-10-27T02:30:00Z")).is_open(),
            "03:30 CET"
        );
        // In spring 02:xx does not exist: 01:30Z is 03:30 CEST.
        assert!(!s.state_at(at("2024-03-31T01:30:00Z")).is_open());
    }

    #[test]
    fn bad_periods_and_time_zones() {
        let mut config = ScheduleConfig {
            name: "x".into(),
            timezone: "Europe/Nowhere".into(),
            open: vec![],
            closed: vec![],
            closed_destination: None,
        };
        assert!(matches!(
            Schedule::new(&config, jiff::tz::db()),
            Err(ScheduleError::TimeZone { .. })
        ));
        config.timezone = "UTC".into();
        for (field, text, position) in [
            ("weekdays", "1-8", 2),
            ("months", "0", 0),
            ("month_days", "1,x", 2),
            ("weekdays", "5-1", 0),
        ] {
            let mut period = PeriodConfig::default();
            match field {
                "weekdays" => period.weekdays = Some(text.into()),
                "months" => period.months = Some(text.into()),
                _ => period.month_days = Some(text.into()),
            }
            config.open = vec![period];
            let err = check_periods(&config).expect_err(text);
            assert!(
                matches!(err, ScheduleError::BadList { position: p, .. } if p == position),
                "{text}: {err}"
            );
        }
        for text in ["18:00-09:00", "24:00-25:00", "9h-18h", "09:00"] {
            config.open = vec![PeriodConfig {
                hours: Some(text.into()),
                ..PeriodConfig::default()
            }];
            assert!(
                matches!(check_periods(&config), Err(ScheduleError::BadHours { .. })),
                "{text}"
            );
        }
    }

    proptest! {
        /// Across the whole of 2024 in Paris (both DST changes), the schedule is open
        /// exactly when the *local* wall clock says weekday 09:00–18:00 outside lunch
        /// and Christmas: an independent computation through jiff's civil time.
        #[test]
        fn matches_local_wall_clock(seconds in 1_704_067_200i64..1_735_689_600i64) {
            let s = office();
            let now = Timestamp::from_second(seconds).expect("in range");
            let local = now.to_zoned_datetime(jiff::tz::db().get("Europe/Paris").expect("tz"));
            let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
            let weekday = local.weekday().to_monday_one_offset();
            let christmas = local.month() == 12 && local.day() == 25;
            let lunch = (12 * 60..14 * 60).contains(&minute);
            let open = (1..=5).contains(&weekday) && (9 * 60..=18 * 60).contains(&minute);
            prop_assert_eq!(s.state_at(now).is_open(), open && !lunch && !christmas);
        }
    }
}
