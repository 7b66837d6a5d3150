//! Service levels, without I/O: how long support has to first respond to an escalated ticket
//! and to resolve it, by its tier and priority (the provider's SLA policy), counted in the
//! business hours of a calendar or around the clock.
//!
//! Both clocks start when a ticket is escalated, stop while support waits on the customer or
//! the ticket is resolved, and go on when it comes back to support. A clock's due time is the
//! moment its target of business time has run since the escalation, not counting the business
//! time the ticket spent paused.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::domain::{Priority, Severity, Status, Tier};

/// One of a ticket's two clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    FirstResponse,
    Resolution,
}

/// When support works: around the clock, or on some days of the week between two times of
/// day in a time zone.
#[derive(Clone, Debug, PartialEq)]
pub enum Calendar {
    AroundTheClock,
    Hours {
        days: [bool; 7],
        open: NaiveTime,
        close: NaiveTime,
        zone: Tz,
    },
}

/// How far a calendar is searched for business time: a due time further than this is not
/// one support can keep anyway.
const HORIZON_DAYS: i64 = 3660;

const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

impl Calendar {
    /// Reads `24x7` (or nothing) or `DAYS HH:MM-HH:MM ZONE`, the days a list of names or
    /// ranges (`Mon-Fri`, `Mon,Wed,Fri`, `Sun-Thu`), the zone an IANA name
    /// (`America/Chicago`).
    pub fn parse(text: &str) -> Result<Calendar, String> {
        let text = text.trim();
        if text.is_empty() || text == "24x7" {
            return Ok(Calendar::AroundTheClock);
        }
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [days_text, hours, zone] = parts[..] else {
            return Err(format!(
                "`{text}`: expected 24x7 or DAYS HH:MM-HH:MM ZONE (Mon-Fri 09:00-17:00 America/Chicago)"
            ));
        };
        let day = |name: &str| {
            DAY_NAMES
                .iter()
                .position(|d| d.eq_ignore_ascii_case(name))
                .ok_or_else(|| format!("`{name}` is not a day (Mon to Sun)"))
        };
        let mut days = [false; 7];
        for item in days_text.split(',') {
            match item.split_once('-') {
                Some((from, to)) => {
                    let (from, to) = (day(from)?, day(to)?);
                    let mut d = from;
                    loop {
                        days[d] = true;
                        if d == to {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => days[day(item)?] = true,
            }
        }
        let (open, close) = hours
            .split_once('-')
            .ok_or_else(|| format!("`{hours}`: expected HH:MM-HH:MM"))?;
        let time = |t: &str| {
            NaiveTime::parse_from_str(t, "%H:%M").map_err(|_| format!("`{t}` is not a time HH:MM"))
        };
        let (open, close) = (time(open)?, time(close)?);
        if open >= close {
            return Err(format!("`{hours}`: the day must close after it opens"));
        }
        let zone = zone
            .parse::<Tz>()
            .map_err(|_| format!("`{zone}` is not a time zone (an IANA name, America/Chicago)"))?;
        Ok(Calendar::Hours {
            days,
            open,
            close,
            zone,
        })
    }

    /// The business hours of each day from the one holding `from` on, as instants.
    fn windows(
        &self,
        from: DateTime<Utc>,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        let (start_date, zone) = match self {
            Calendar::AroundTheClock => (from.date_naive(), None),
            Calendar::Hours { zone, .. } => (from.with_timezone(zone).date_naive(), Some(*zone)),
        };
        (0..HORIZON_DAYS).filter_map(move |n| {
            let date = start_date + Duration::days(n);
            match (self, zone) {
                (
                    Calendar::Hours {
                        days, open, close, ..
                    },
                    Some(zone),
                ) => {
                    if !days[date.weekday().num_days_from_monday() as usize] {
                        return None;
                    }
                    Some((instant(zone, date, *open)?, instant(zone, date, *close)?))
                }
                _ => {
                    let midnight = date.and_time(NaiveTime::MIN).and_utc();
                    Some((midnight, midnight + Duration::days(1)))
                }
            }
        })
    }

    /// The moment `amount` of business time has run from `start`.
    pub fn add(&self, start: DateTime<Utc>, amount: Duration) -> DateTime<Utc> {
        if *self == Calendar::AroundTheClock {
            return start + amount;
        }
        let mut left = amount;
        let mut last = start;
        for (open, close) in self.windows(start) {
            let from = open.max(start);
            if from >= close {
                continue;
            }
            if close - from >= left {
                return from + left;
            }
            left -= close - from;
            last = close;
        }
        last + left
    }

    /// The business time between `from` and `to` (zero when `to` is not after `from`).
    pub fn between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        if to <= from {
            return Duration::zero();
        }
        if *self == Calendar::AroundTheClock {
            return to - from;
        }
        let mut total = Duration::zero();
        for (open, close) in self.windows(from) {
            if open >= to {
                break;
            }
            let (a, b) = (open.max(from), close.min(to));
            if b > a {
                total += b - a;
            }
        }
        total
    }
}

/// The instant a wall-clock time of a date is in `zone`: the earlier of two in the hour a
/// clock goes back, the hour after in the hour it skips.
fn instant(zone: Tz, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    let local = date.and_time(time);
    zone.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(local + Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
}

/// One line of an SLA policy: the targets of the tickets it matches (each criterion given is
/// at least its value; one left out matches anything).
#[derive(Clone, Debug, PartialEq)]
pub struct SlaLine {
    pub tier: Option<Tier>,
    pub priority: Option<Priority>,
    pub first_response: Duration,
    pub resolution: Duration,
}

/// The provider's service levels: the first line a ticket matches gives its targets, counted
/// in the calendar's business time.
#[derive(Clone, Debug, PartialEq)]
pub struct SlaPolicy {
    pub lines: Vec<SlaLine>,
    pub calendar: Calendar,
}

/// The targets a deployment uses unless it configures its own (see `SlaPolicy::parse`): an
/// urgent ticket answered within an hour and solved within a working day, down to a low one
/// answered within a day and solved within ten.
pub const DEFAULT_SLA: &str =
    "priority>=URGENT:1h/8h, priority>=HIGH:4h/2d, priority>=MEDIUM:8h/5d, *:1d/10d";

/// The targets when no line matches.
const FALLBACK: (i64, i64) = (24 * 3600, 10 * 24 * 3600);

impl SlaPolicy {
    /// Reads a policy written as comma-separated lines `criteria:FIRST/RESOLUTION`, the
    /// criteria joined by `&`, each `tier>=N` or `priority>=VALUE` (`*` matches anything),
    /// the targets durations such as `30m`, `4h`, `2d` (business time in the calendar).
    pub fn parse(text: &str, calendar: Calendar) -> Result<SlaPolicy, String> {
        let mut lines = Vec::new();
        for line in text.split(',').map(str::trim).filter(|l| !l.is_empty()) {
            let (criteria, targets) = line
                .rsplit_once(':')
                .ok_or_else(|| format!("`{line}`: expected criteria:FIRST/RESOLUTION"))?;
            let (first, resolution) = targets
                .split_once('/')
                .ok_or_else(|| format!("`{line}`: expected FIRST/RESOLUTION (4h/2d)"))?;
            let mut parsed = SlaLine {
                tier: None,
                priority: None,
                first_response: duration(first)?,
                resolution: duration(resolution)?,
            };
            if parsed.first_response > parsed.resolution {
                return Err(format!(
                    "`{line}`: the first response is due before the resolution"
                ));
            }
            for criterion in criteria.split('&').map(str::trim) {
                if criterion == "*" {
                    continue;
                }
                let (what, value) = criterion
                    .split_once(">=")
                    .ok_or_else(|| format!("`{criterion}`: expected name>=VALUE or *"))?;
                let value = value.trim();
                let unknown = || format!("`{criterion}`: unknown value {value}");
                match what.trim() {
                    "tier" => {
                        parsed.tier = Some(
                            value
                                .parse::<i64>()
                                .ok()
                                .and_then(Tier::new)
                                .ok_or_else(unknown)?,
                        )
                    }
                    "priority" => {
                        parsed.priority = Some(Priority::named(value).ok_or_else(unknown)?)
                    }
                    other => {
                        return Err(format!("`{criterion}`: {other} is not tier or priority"));
                    }
                }
            }
            lines.push(parsed);
        }
        Ok(SlaPolicy { lines, calendar })
    }

    /// The first response and resolution targets of a ticket of this tier and priority.
    pub fn targets(&self, tier: Tier, priority: Priority) -> (Duration, Duration) {
        self.lines
            .iter()
            .find(|line| {
                line.tier.is_none_or(|t| tier >= t) && line.priority.is_none_or(|p| priority >= p)
            })
            .map_or(
                (Duration::seconds(FALLBACK.0), Duration::seconds(FALLBACK.1)),
                |line| (line.first_response, line.resolution),
            )
    }
}

impl Default for SlaPolicy {
    fn default() -> Self {
        SlaPolicy::parse(DEFAULT_SLA, Calendar::AroundTheClock).unwrap_or(SlaPolicy {
            lines: Vec::new(),
            calendar: Calendar::AroundTheClock,
        })
    }
}

/// Reads `90s`, `30m`, `4h` or `2d`: at least a second, at most ten years.
fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("`{text}` is not a duration from 1s to 3650d (30m, 4h, 2d)");
    let (split, unit) = text.char_indices().last().ok_or_else(bad)?;
    let number: i64 = text[..split].parse().map_err(|_| bad())?;
    let unit_seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    match number.checked_mul(unit_seconds) {
        Some(seconds) if (1..=3650 * 86_400).contains(&seconds) => Ok(Duration::seconds(seconds)),
        _ => Err(bad()),
    }
}

/// The priority a ticket has before support triages it: its severity's.
pub fn priority_of(severity: Severity) -> Priority {
    match severity {
        Severity::Low => Priority::Low,
        Severity::Medium => Priority::Medium,
        Severity::High => Priority::High,
        Severity::Critical => Priority::Urgent,
    }
}

/// A ticket's clocks as stored.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Clocks {
    /// When support first answered (a public note, or the resolution).
    pub first_responded_at: Option<DateTime<Utc>>,
    pub first_response_due: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
    /// Since when the clocks stand still (waiting on the customer, or resolved).
    pub paused_at: Option<DateTime<Utc>>,
    /// The business time the clocks stood still before, in microseconds.
    pub paused_micros: i64,
    pub first_response_breached_at: Option<DateTime<Utc>>,
    pub resolution_breached_at: Option<DateTime<Utc>>,
}

/// Whether the clocks run in a status: while support holds the ticket and is not waiting on
/// the customer.
pub fn running(status: Status) -> bool {
    matches!(status, Status::Escalated | Status::InProgress)
}

impl Clocks {
    /// Keeps the clocks of a ticket escalated at `escalated_at` across a change from `before`
    /// to `after` at `now`, and sets each due time from the targets of its tier and priority.
    pub fn keep(
        &mut self,
        policy: &SlaPolicy,
        escalated_at: DateTime<Utc>,
        (tier, priority): (Tier, Priority),
        (before, after): (Status, Status),
        now: DateTime<Utc>,
    ) {
        if running(before) && !running(after) {
            self.paused_at = Some(now);
        } else if running(after)
            && let Some(since) = self.paused_at.take()
        {
            self.paused_micros += policy
                .calendar
                .between(since, now)
                .num_microseconds()
                .unwrap_or(i64::MAX);
        }
        let (first, resolution) = policy.targets(tier, priority);
        let paused = Duration::microseconds(self.paused_micros);
        self.first_response_due = Some(policy.calendar.add(escalated_at, first + paused));
        self.resolution_due = Some(policy.calendar.add(escalated_at, resolution + paused));
    }

    /// The clocks `now` has run past and that have not been breached before: none while
    /// they stand still, nor the first response once support answered.
    pub fn breaches(&self, status: Status, now: DateTime<Utc>) -> Vec<(Clock, DateTime<Utc>)> {
        if !running(status) || self.paused_at.is_some() {
            return Vec::new();
        }
        let mut breached = Vec::new();
        if let Some(due) = self.first_response_due
            && self.first_responded_at.is_none()
            && self.first_response_breached_at.is_none()
            && due <= now
        {
            breached.push((Clock::FirstResponse, due));
        }
        if let Some(due) = self.resolution_due
            && self.resolution_breached_at.is_none()
            && due <= now
        {
            breached.push((Clock::Resolution, due));
        }
        breached
    }

    /// When a clock runs out next (what the breach sweep looks for): None while they stand
    /// still or when each has been answered or breached.
    pub fn next_due(&self, status: Status) -> Option<DateTime<Utc>> {
        if !running(status) || self.paused_at.is_some() {
            return None;
        }
        let first = self.first_response_due.filter(|_| {
            self.first_responded_at.is_none() && self.first_response_breached_at.is_none()
        });
        let resolution = self
            .resolution_due
            .filter(|_| self.resolution_breached_at.is_none());
        match (first, resolution) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn business_hours_skip_nights_weekends_and_follow_the_zone() {
        let calendar = Calendar::parse("Mon-Fri 09:00-17:00 America/Chicago").unwrap();
        // Friday 2026-12-04 16:00 in Chicago (UTC-6) is 22:00 UTC; four hours of business
        // time end on Monday at 12:00 in Chicago.
        let friday = at("2026-12-04T22:00:00Z");
        assert_eq!(
            calendar.add(friday, Duration::hours(4)),
            at("2026-12-07T18:00:00Z")
        );
        assert_eq!(
            calendar.between(friday, at("2026-12-07T18:00:00Z")),
            Duration::hours(4)
        );
        // Saturday counts nothing.
        assert_eq!(
            calendar.between(at("2026-12-05T15:00:00Z"), at("2026-12-05T20:00:00Z")),
            Duration::zero()
        );
        // Summer time: 09:00 in Chicago is 14:00 UTC in July.
        assert_eq!(
            calendar.add(at("2026-07-06T12:00:00Z"), Duration::minutes(30)),
            at("2026-07-06T14:30:00Z")
        );
        let always = Calendar::parse("24x7").unwrap();
        assert_eq!(
            always.add(friday, Duration::hours(4)),
            at("2026-12-05T02:00:00Z")
        );
    }

    #[test]
    fn calendars_and_policies_are_read_or_refused_with_the_part_at_fault() {
        let weekend = Calendar::parse("Sat-Sun 10:00-14:00 Europe/Paris").unwrap();
        let Calendar::Hours { days, .. } = weekend else {
            panic!("hours")
        };
        assert_eq!(days, [false, false, false, false, false, true, true]);
        for (bad, says) in [
            ("Mon-Fri 09:00-17:00", "expected 24x7"),
            ("Mon-Fry 09:00-17:00 UTC", "is not a day"),
            ("Mon-Fri 17:00-09:00 UTC", "close after it opens"),
            ("Mon-Fri 09:00-17:00 Mars/Olympus", "is not a time zone"),
        ] {
            let error = Calendar::parse(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
        let policy = SlaPolicy::parse(
            "tier>=3 & priority>=HIGH:30m/4h, *:2h/3d",
            Calendar::AroundTheClock,
        )
        .unwrap();
        let tier = |n| Tier::new(n).unwrap();
        assert_eq!(
            policy.targets(tier(3), Priority::Urgent),
            (Duration::minutes(30), Duration::hours(4))
        );
        assert_eq!(
            policy.targets(tier(2), Priority::Urgent),
            (Duration::hours(2), Duration::days(3))
        );
        for (bad, says) in [
            ("*:4h", "expected FIRST/RESOLUTION"),
            ("*:4x/2d", "is not a duration"),
            ("*:4é/2d", "is not a duration"),
            ("*:1h/300000000d", "is not a duration"),
            ("*:2d/4h", "due before the resolution"),
            ("size>=2:1h/2h", "is not tier or priority"),
            ("tier>=4:1h/2h", "unknown value 4"),
        ] {
            let error = SlaPolicy::parse(bad, Calendar::AroundTheClock).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
        let default = SlaPolicy::default();
        assert_eq!(default.lines.len(), 4);
        assert_eq!(
            default.targets(tier(1), Priority::Low),
            (Duration::days(1), Duration::days(10))
        );
    }

    #[test]
    fn the_clocks_stand_still_while_support_waits_and_are_breached_once() {
        let policy = SlaPolicy::parse("*:1h/4h", Calendar::AroundTheClock).unwrap();
        let escalated = at("2026-12-07T10:00:00Z");
        let tier = (Tier::new(1).unwrap(), Priority::Medium);
        let mut clocks = Clocks::default();
        clocks.keep(
            &policy,
            escalated,
            tier,
            (Status::Submitted, Status::Escalated),
            escalated,
        );
        assert_eq!(clocks.first_response_due, Some(at("2026-12-07T11:00:00Z")));
        assert_eq!(
            clocks.next_due(Status::Escalated),
            clocks.first_response_due
        );
        // Support answers at 10:30 and asks the customer at 11:00; the customer answers at 13:00.
        clocks.first_responded_at = Some(at("2026-12-07T10:30:00Z"));
        assert_eq!(
            clocks.next_due(Status::InProgress),
            Some(at("2026-12-07T14:00:00Z"))
        );
        clocks.keep(
            &policy,
            escalated,
            tier,
            (Status::InProgress, Status::WaitingOnCustomer),
            at("2026-12-07T11:00:00Z"),
        );
        assert_eq!(clocks.next_due(Status::WaitingOnCustomer), None);
        assert!(
            clocks
                .breaches(Status::WaitingOnCustomer, at("2026-12-07T20:00:00Z"))
                .is_empty()
        );
        clocks.keep(
            &policy,
            escalated,
            tier,
            (Status::WaitingOnCustomer, Status::InProgress),
            at("2026-12-07T13:00:00Z"),
        );
        assert_eq!(clocks.paused_micros, 2 * 3600 * 1_000_000);
        assert_eq!(clocks.resolution_due, Some(at("2026-12-07T16:00:00Z")));
        assert!(
            clocks
                .breaches(Status::InProgress, at("2026-12-07T15:59:00Z"))
                .is_empty()
        );
        let breached = clocks.breaches(Status::InProgress, at("2026-12-07T16:00:00Z"));
        assert_eq!(
            breached,
            vec![(Clock::Resolution, at("2026-12-07T16:00:00Z"))]
        );
        clocks.resolution_breached_at = Some(at("2026-12-07T16:00:00Z"));
        assert!(
            clocks
                .breaches(Status::InProgress, at("2026-12-07T17:00:00Z"))
                .is_empty()
        );
        assert_eq!(clocks.next_due(Status::InProgress), None);
    }
}
