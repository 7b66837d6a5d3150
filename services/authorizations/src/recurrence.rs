//! Recurrence of an authorization: the subset of RFC 5545 RRULE that plans of services need,
//! expanded to the dates of its occurrences within the authorization's period.
//!
//! Supported: `FREQ` = DAILY, WEEKLY or MONTHLY; `INTERVAL`; `BYDAY` (plain weekdays; with a
//! position such as `2TU` or `-1FR` for MONTHLY only); `BYMONTHDAY` (1 to 31 and -1 to -31,
//! MONTHLY or DAILY); `WKST`; `COUNT` or `UNTIL` (a date, never after the end date). The first
//! day of the period plays DTSTART: it anchors INTERVAL and supplies the weekday (WEEKLY) or
//! the day of the month (MONTHLY) when the rule names none. Only dates that match the rule
//! are occurrences (RFC 5545 leaves an unsynchronized DTSTART undefined). A day that does not
//! exist in a month (the 31st of April, `BYMONTHDAY=30` in February) is skipped, as RFC 5545
//! says; `BYMONTHDAY=-1` is the last day of every month.

use std::fmt;

use chrono::{Datelike, Days, NaiveDate, Weekday};

/// The most occurrences one authorization may plan (ten years of daily services).
pub const MAX_OCCURRENCES: usize = 3660;
/// The longest rule text, in characters: a rule of every supported part with every value
/// fits in it.
pub const MAX_RULE_LENGTH: usize = 256;
/// The longest period an authorization may span, in days (about ten years): expansion walks
/// the period day by day, so this bounds its work.
pub const MAX_PERIOD_DAYS: i64 = 3660;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frequency {
    Daily,
    Weekly,
    Monthly,
}

/// A weekday, with its position in the month for MONTHLY rules (`2TU`: the second Tuesday,
/// `-1FR`: the last Friday).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByDay {
    pub position: Option<i8>,
    pub weekday: Weekday,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Until the end of the period.
    Open,
    Count(u32),
    Until(NaiveDate),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub frequency: Frequency,
    pub interval: u32,
    pub by_day: Vec<ByDay>,
    pub by_month_day: Vec<i8>,
    pub week_start: Weekday,
    pub end: End,
}

/// Why a rule is refused, in words a case worker can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError(pub String);

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn refuse<T>(message: impl Into<String>) -> Result<T, RuleError> {
    Err(RuleError(message.into()))
}

fn weekday(code: &str) -> Option<Weekday> {
    Some(match code {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return None,
    })
}

fn weekday_code(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "MO",
        Weekday::Tue => "TU",
        Weekday::Wed => "WE",
        Weekday::Thu => "TH",
        Weekday::Fri => "FR",
        Weekday::Sat => "SA",
        Weekday::Sun => "SU",
    }
}

fn parse_by_day(value: &str) -> Result<ByDay, RuleError> {
    let split = value.len().saturating_sub(2);
    let (position, day) = (
        value.get(..split).unwrap_or_default(),
        value.get(split..).unwrap_or_default(),
    );
    let Some(weekday) = weekday(day) else {
        return refuse(format!(
            "BYDAY value {value:?} is not a weekday (MO, TU, WE, TH, FR, SA, SU), optionally \
             after a position such as 2TU or -1FR"
        ));
    };
    if position.is_empty() {
        return Ok(ByDay {
            position: None,
            weekday,
        });
    }
    match position.trim_start_matches('+').parse::<i8>() {
        Ok(n) if n != 0 && (-5..=5).contains(&n) => Ok(ByDay {
            position: Some(n),
            weekday,
        }),
        _ => refuse(format!(
            "BYDAY value {value:?} has a position outside 1 to 5 and -1 to -5"
        )),
    }
}

fn parse_until(value: &str) -> Result<NaiveDate, RuleError> {
    // A date (20260331) or a date-time (20260331T235959Z): only the date counts for services.
    let date = value.get(..8).unwrap_or_default();
    let rest = &value[date.len()..];
    let time_ok = rest.is_empty()
        || (rest.len() >= 7
            && rest.starts_with('T')
            && rest
                .get(1..7)
                .is_some_and(|t| t.bytes().all(|b| b.is_ascii_digit()))
            && matches!(rest.get(7..), Some("" | "Z")));
    match NaiveDate::parse_from_str(date, "%Y%m%d") {
        Ok(date) if time_ok => Ok(date),
        _ => refuse(format!(
            "UNTIL {value:?} is not a date such as 20260331 (or 20260331T235959Z)"
        )),
    }
}

/// The first value a list names twice.
fn repeated<T: PartialEq + Copy>(values: &[T]) -> Option<T> {
    values
        .iter()
        .enumerate()
        .find(|(i, v)| values[..*i].contains(v))
        .map(|(_, v)| *v)
}

/// Refuses a period that ends before it begins or spans more than [`MAX_PERIOD_DAYS`].
pub fn check_period(begin: NaiveDate, end: NaiveDate) -> Result<(), RuleError> {
    if end < begin {
        return refuse("the period ends before it begins");
    }
    if (end - begin).num_days() >= MAX_PERIOD_DAYS {
        return refuse(format!(
            "the period spans more than {MAX_PERIOD_DAYS} days (about ten years); split the \
             authorization"
        ));
    }
    Ok(())
}

fn positive(name: &str, value: &str, max: u32) -> Result<u32, RuleError> {
    match value.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => refuse(format!("{name} must be a whole number from 1 to {max}")),
    }
}

impl Rule {
    /// Parses `FREQ=WEEKLY;BYDAY=MO,TH;COUNT=10` (an `RRULE:` prefix is allowed).
    pub fn parse(text: &str) -> Result<Rule, RuleError> {
        let text = text.trim();
        let text = match text.get(..6) {
            Some(prefix) if prefix.eq_ignore_ascii_case("RRULE:") => &text[6..],
            _ => text,
        };
        if text.is_empty() {
            return refuse("is empty; a rule starts with FREQ=DAILY, WEEKLY or MONTHLY");
        }
        if text.len() > MAX_RULE_LENGTH {
            return refuse(format!("has more than {MAX_RULE_LENGTH} characters"));
        }
        if !text.is_ascii() {
            return refuse(
                "has characters outside ASCII; a rule is written like FREQ=WEEKLY;BYDAY=MO",
            );
        }
        let mut frequency = None;
        let mut interval = None;
        let mut by_day = None;
        let mut by_month_day = None;
        let mut week_start = None;
        let mut count = None;
        let mut until = None;
        for part in text.split(';') {
            let Some((name, value)) = part.split_once('=') else {
                return refuse(format!("{part:?} is not a NAME=VALUE part"));
            };
            let name = name.to_ascii_uppercase();
            let value = value.to_ascii_uppercase();
            let duplicate = match name.as_str() {
                "FREQ" => {
                    let f = match value.as_str() {
                        "DAILY" => Frequency::Daily,
                        "WEEKLY" => Frequency::Weekly,
                        "MONTHLY" => Frequency::Monthly,
                        "SECONDLY" | "MINUTELY" | "HOURLY" | "YEARLY" => {
                            return refuse(format!(
                                "FREQ={value} is not supported; use DAILY, WEEKLY or MONTHLY"
                            ));
                        }
                        _ => return refuse(format!("FREQ={value} is not a frequency")),
                    };
                    frequency.replace(f).is_some()
                }
                "INTERVAL" => interval
                    .replace(positive("INTERVAL", &value, 366)?)
                    .is_some(),
                "COUNT" => count
                    .replace(positive("COUNT", &value, MAX_OCCURRENCES as u32)?)
                    .is_some(),
                "UNTIL" => until.replace(parse_until(&value)?).is_some(),
                "WKST" => {
                    let Some(day) = weekday(&value) else {
                        return refuse(format!("WKST={value} is not a weekday"));
                    };
                    week_start.replace(day).is_some()
                }
                "BYDAY" => {
                    let days = value
                        .split(',')
                        .map(parse_by_day)
                        .collect::<Result<Vec<_>, _>>()?;
                    if let Some(twice) = repeated(&days) {
                        return refuse(format!(
                            "BYDAY lists {}{} twice",
                            twice.position.map(|p| p.to_string()).unwrap_or_default(),
                            weekday_code(twice.weekday)
                        ));
                    }
                    by_day.replace(days).is_some()
                }
                "BYMONTHDAY" => {
                    let days = value
                        .split(',')
                        .map(|d| match d.trim_start_matches('+').parse::<i8>() {
                            Ok(n) if n != 0 && (-31..=31).contains(&n) => Ok(n),
                            _ => refuse(format!(
                                "BYMONTHDAY value {d:?} must be 1 to 31 or -1 to -31"
                            )),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    if let Some(twice) = repeated(&days) {
                        return refuse(format!("BYMONTHDAY lists {twice} twice"));
                    }
                    by_month_day.replace(days).is_some()
                }
                "BYSETPOS" | "BYWEEKNO" | "BYYEARDAY" | "BYMONTH" | "BYHOUR" | "BYMINUTE"
                | "BYSECOND" | "RSCALE" | "SKIP" => {
                    return refuse(format!(
                        "{name} is not supported; a rule may use FREQ, INTERVAL, BYDAY, \
                         BYMONTHDAY, WKST and COUNT or UNTIL"
                    ));
                }
                _ => return refuse(format!("{name} is not a part of a recurrence rule")),
            };
            if duplicate {
                return refuse(format!("{name} is given twice"));
            }
        }
        let Some(frequency) = frequency else {
            return refuse("FREQ is required (DAILY, WEEKLY or MONTHLY)");
        };
        let end = match (count, until) {
            (Some(_), Some(_)) => return refuse("COUNT and UNTIL may not both be given"),
            (Some(n), None) => End::Count(n),
            (None, Some(date)) => End::Until(date),
            (None, None) => End::Open,
        };
        let by_day = by_day.unwrap_or_default();
        let by_month_day = by_month_day.unwrap_or_default();
        if frequency != Frequency::Monthly
            && let Some(d) = by_day.iter().find(|d| d.position.is_some())
        {
            return refuse(format!(
                "BYDAY with a position ({}{}) needs FREQ=MONTHLY",
                d.position.unwrap_or_default(),
                weekday_code(d.weekday)
            ));
        }
        if frequency == Frequency::Weekly && !by_month_day.is_empty() {
            return refuse("BYMONTHDAY may not be used with FREQ=WEEKLY");
        }
        Ok(Rule {
            frequency,
            interval: interval.unwrap_or(1),
            by_day,
            by_month_day,
            week_start: week_start.unwrap_or(Weekday::Mon),
            end,
        })
    }

    /// The rule in its canonical text, as stored and returned.
    pub fn to_text(&self) -> String {
        let mut parts = vec![format!(
            "FREQ={}",
            match self.frequency {
                Frequency::Daily => "DAILY",
                Frequency::Weekly => "WEEKLY",
                Frequency::Monthly => "MONTHLY",
            }
        )];
        if self.interval != 1 {
            parts.push(format!("INTERVAL={}", self.interval));
        }
        if !self.by_day.is_empty() {
            let days: Vec<String> = self
                .by_day
                .iter()
                .map(|d| match d.position {
                    Some(n) => format!("{n}{}", weekday_code(d.weekday)),
                    None => weekday_code(d.weekday).to_string(),
                })
                .collect();
            parts.push(format!("BYDAY={}", days.join(",")));
        }
        if !self.by_month_day.is_empty() {
            let days: Vec<String> = self.by_month_day.iter().map(|d| d.to_string()).collect();
            parts.push(format!("BYMONTHDAY={}", days.join(",")));
        }
        if self.week_start != Weekday::Mon {
            parts.push(format!("WKST={}", weekday_code(self.week_start)));
        }
        match self.end {
            End::Open => {}
            End::Count(n) => parts.push(format!("COUNT={n}")),
            End::Until(date) => parts.push(format!("UNTIL={}", date.format("%Y%m%d"))),
        }
        parts.join(";")
    }

    /// The dates of the occurrences from `begin` to `end` (both included). Refused when the
    /// period is longer than [`MAX_PERIOD_DAYS`], when UNTIL is after `end`, when COUNT
    /// occurrences do not fit in the period, when nothing occurs, or when more than
    /// [`MAX_OCCURRENCES`] would.
    pub fn occurrences(
        &self,
        begin: NaiveDate,
        end: NaiveDate,
    ) -> Result<Vec<NaiveDate>, RuleError> {
        check_period(begin, end)?;
        let last = match self.end {
            End::Until(until) if until > end => {
                return refuse(format!(
                    "UNTIL={} is after the end date {end}; occurrences never pass the end date",
                    until.format("%Y%m%d")
                ));
            }
            End::Until(until) => until,
            _ => end,
        };
        let limit = match self.end {
            End::Count(n) => n as usize,
            _ => MAX_OCCURRENCES,
        };
        let mut dates = Vec::new();
        let mut day = begin;
        while day <= last {
            if self.matches(begin, day) {
                if dates.len() == limit {
                    if matches!(self.end, End::Count(_)) {
                        break;
                    }
                    return refuse(format!(
                        "plans more than {MAX_OCCURRENCES} occurrences; split the authorization"
                    ));
                }
                dates.push(day);
            }
            day = match day.checked_add_days(Days::new(1)) {
                Some(next) => next,
                None => break,
            };
        }
        if let End::Count(n) = self.end
            && dates.len() < n as usize
        {
            return refuse(format!(
                "COUNT={n} does not fit between {begin} and {end}: only {} occurrences do; \
                 occurrences never pass the end date",
                dates.len()
            ));
        }
        if dates.is_empty() {
            return refuse(format!("no occurrence falls between {begin} and {end}"));
        }
        Ok(dates)
    }

    fn matches(&self, start: NaiveDate, day: NaiveDate) -> bool {
        let interval = i64::from(self.interval);
        match self.frequency {
            Frequency::Daily => {
                (day - start).num_days() % interval == 0
                    && (self.by_day.is_empty()
                        || self.by_day.iter().any(|d| d.weekday == day.weekday()))
                    && (self.by_month_day.is_empty() || self.month_day_matches(day))
            }
            Frequency::Weekly => {
                let weeks = (self.week_of(day) - self.week_of(start)).num_days() / 7;
                weeks % interval == 0
                    && if self.by_day.is_empty() {
                        day.weekday() == start.weekday()
                    } else {
                        self.by_day.iter().any(|d| d.weekday == day.weekday())
                    }
            }
            Frequency::Monthly => {
                let months = i64::from(day.year() - start.year()) * 12 + i64::from(day.month())
                    - i64::from(start.month());
                if months % interval != 0 {
                    return false;
                }
                match (self.by_day.is_empty(), self.by_month_day.is_empty()) {
                    (true, true) => day.day() == start.day(),
                    (false, true) => self.weekday_matches(day),
                    (true, false) => self.month_day_matches(day),
                    // Both: a day must satisfy both (RFC 5545 limits BYDAY by BYMONTHDAY).
                    (false, false) => self.weekday_matches(day) && self.month_day_matches(day),
                }
            }
        }
    }

    /// The first day of the week (by WKST) that holds `day`.
    fn week_of(&self, day: NaiveDate) -> NaiveDate {
        let back =
            (7 + day.weekday().num_days_from_monday() - self.week_start.num_days_from_monday()) % 7;
        day - Days::new(u64::from(back))
    }

    fn month_day_matches(&self, day: NaiveDate) -> bool {
        let length = days_in_month(day) as i8;
        let d = day.day() as i8;
        self.by_month_day
            .iter()
            .any(|&m| m == d || (m < 0 && length + 1 + m == d))
    }

    fn weekday_matches(&self, day: NaiveDate) -> bool {
        let nth = (day.day() as i8 - 1) / 7 + 1;
        let nth_from_end = (days_in_month(day) as i8 - day.day() as i8) / 7 + 1;
        self.by_day.iter().any(|d| {
            d.weekday == day.weekday()
                && match d.position {
                    None => true,
                    Some(p) if p > 0 => p == nth,
                    Some(p) => -p == nth_from_end,
                }
        })
    }
}

fn days_in_month(day: NaiveDate) -> u32 {
    let (year, month) = if day.month() == 12 {
        (day.year() + 1, 1)
    } else {
        (day.year(), day.month() + 1)
    };
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|first| first.pred_opt())
        .map(|last| last.day())
        .unwrap_or(31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn dates(rule: &str, begin: NaiveDate, end: NaiveDate) -> Vec<NaiveDate> {
        Rule::parse(rule)
            .unwrap_or_else(|e| panic!("{rule}: {e}"))
            .occurrences(begin, end)
            .unwrap_or_else(|e| panic!("{rule}: {e}"))
    }

    fn refused(rule: &str, begin: NaiveDate, end: NaiveDate) -> String {
        match Rule::parse(rule) {
            Err(e) => e.0,
            Ok(r) => r.occurrences(begin, end).expect_err(rule).0,
        }
    }

    #[test]
    fn weekly_on_monday_and_thursday() {
        let got = dates("FREQ=WEEKLY;BYDAY=MO,TH", d(2026, 3, 2), d(2026, 3, 15));
        assert_eq!(
            got,
            vec![d(2026, 3, 2), d(2026, 3, 5), d(2026, 3, 9), d(2026, 3, 12)]
        );
    }

    #[test]
    fn every_two_weeks_counts_weeks_from_the_first_day() {
        // Begins on a Wednesday: the Monday of that week is before the period, the next
        // matching week is two weeks on.
        let got = dates(
            "RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE",
            d(2026, 3, 4),
            d(2026, 3, 31),
        );
        assert_eq!(
            got,
            vec![
                d(2026, 3, 4),
                d(2026, 3, 16),
                d(2026, 3, 18),
                d(2026, 3, 30)
            ]
        );
        // With the week starting on Sunday, the same rule groups days differently.
        let sunday = dates(
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=SU,WE;WKST=SU",
            d(2026, 3, 4),
            d(2026, 3, 22),
        );
        assert_eq!(sunday, vec![d(2026, 3, 4), d(2026, 3, 15), d(2026, 3, 18)]);
    }

    #[test]
    fn weekly_without_byday_repeats_the_first_weekday() {
        let got = dates("FREQ=WEEKLY;COUNT=3", d(2026, 1, 1), d(2026, 12, 31));
        assert_eq!(got, vec![d(2026, 1, 1), d(2026, 1, 8), d(2026, 1, 15)]);
    }

    #[test]
    fn monthly_on_the_first() {
        let got = dates("FREQ=MONTHLY;BYMONTHDAY=1", d(2026, 1, 15), d(2026, 4, 30));
        assert_eq!(got, vec![d(2026, 2, 1), d(2026, 3, 1), d(2026, 4, 1)]);
    }

    #[test]
    fn month_ends() {
        // The last day of every month, February included.
        let got = dates("FREQ=MONTHLY;BYMONTHDAY=-1", d(2026, 1, 1), d(2026, 6, 30));
        assert_eq!(
            got,
            vec![
                d(2026, 1, 31),
                d(2026, 2, 28),
                d(2026, 3, 31),
                d(2026, 4, 30),
                d(2026, 5, 31),
                d(2026, 6, 30)
            ]
        );
        // The 31st is skipped in months without one (RFC 5545), not moved.
        let got = dates("FREQ=MONTHLY", d(2026, 1, 31), d(2026, 7, 31));
        assert_eq!(
            got,
            vec![
                d(2026, 1, 31),
                d(2026, 3, 31),
                d(2026, 5, 31),
                d(2026, 7, 31)
            ]
        );
        // The second-to-last day.
        let got = dates("FREQ=MONTHLY;BYMONTHDAY=-2", d(2026, 2, 1), d(2026, 3, 31));
        assert_eq!(got, vec![d(2026, 2, 27), d(2026, 3, 30)]);
    }

    #[test]
    fn leap_days() {
        // February 29 exists in 2028 only.
        let got = dates("FREQ=MONTHLY;BYMONTHDAY=29", d(2027, 1, 1), d(2028, 3, 31));
        assert_eq!(got.len(), 14);
        assert!(got.contains(&d(2028, 2, 29)));
        assert!(!got.iter().any(|day| day.year() == 2027 && day.month() == 2));
        let got = dates("FREQ=MONTHLY;BYMONTHDAY=-1", d(2028, 2, 1), d(2028, 2, 29));
        assert_eq!(got, vec![d(2028, 2, 29)]);
        // Daily across a leap day counts it.
        let got = dates("FREQ=DAILY", d(2028, 2, 27), d(2028, 3, 1));
        assert_eq!(got.len(), 4);
        // Every other day from February 28 lands on March 1 in a common year, on February
        // 29 (then March 2) in a leap year.
        let common = dates(
            "FREQ=DAILY;INTERVAL=2;COUNT=2",
            d(2027, 2, 28),
            d(2027, 3, 31),
        );
        assert_eq!(common, vec![d(2027, 2, 28), d(2027, 3, 2)]);
        let leap = dates(
            "FREQ=DAILY;INTERVAL=2;COUNT=2",
            d(2028, 2, 27),
            d(2028, 3, 31),
        );
        assert_eq!(leap, vec![d(2028, 2, 27), d(2028, 2, 29)]);
    }

    #[test]
    fn last_and_nth_weekday_of_a_month() {
        // The last Friday: May 2026 has five Fridays, February four.
        let got = dates("FREQ=MONTHLY;BYDAY=-1FR", d(2026, 1, 1), d(2026, 5, 31));
        assert_eq!(
            got,
            vec![
                d(2026, 1, 30),
                d(2026, 2, 27),
                d(2026, 3, 27),
                d(2026, 4, 24),
                d(2026, 5, 29)
            ]
        );
        // The second Tuesday, every other month.
        let got = dates(
            "FREQ=MONTHLY;INTERVAL=2;BYDAY=2TU",
            d(2026, 1, 1),
            d(2026, 6, 30),
        );
        assert_eq!(got, vec![d(2026, 1, 13), d(2026, 3, 10), d(2026, 5, 12)]);
        // The fifth Monday exists in some months only.
        let got = dates("FREQ=MONTHLY;BYDAY=5MO", d(2026, 1, 1), d(2026, 4, 30));
        assert_eq!(got, vec![d(2026, 3, 30)]);
        // Every Tuesday of the month, and Friday the 13th.
        assert_eq!(
            dates("FREQ=MONTHLY;BYDAY=TU", d(2026, 3, 1), d(2026, 3, 31)).len(),
            5
        );
        assert_eq!(
            dates(
                "FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13",
                d(2026, 1, 1),
                d(2026, 12, 31)
            ),
            vec![d(2026, 2, 13), d(2026, 3, 13), d(2026, 11, 13)]
        );
    }

    #[test]
    fn count_versus_until() {
        let count = dates(
            "FREQ=WEEKLY;BYDAY=TU;COUNT=4",
            d(2026, 3, 1),
            d(2026, 12, 31),
        );
        assert_eq!(count.len(), 4);
        assert_eq!(count.last(), Some(&d(2026, 3, 24)));
        // UNTIL includes its own date.
        let until = dates(
            "FREQ=WEEKLY;BYDAY=TU;UNTIL=20260324",
            d(2026, 3, 1),
            d(2026, 12, 31),
        );
        assert_eq!(until, count);
        let until_time = dates(
            "FREQ=WEEKLY;BYDAY=TU;UNTIL=20260324T235959Z",
            d(2026, 3, 1),
            d(2026, 12, 31),
        );
        assert_eq!(until_time, count);
        // Neither: until the end date.
        assert_eq!(
            dates("FREQ=WEEKLY;BYDAY=TU", d(2026, 3, 1), d(2026, 3, 31)).len(),
            5
        );
        // Never past the end date.
        let message = refused(
            "FREQ=WEEKLY;BYDAY=TU;COUNT=6",
            d(2026, 3, 1),
            d(2026, 3, 31),
        );
        assert!(message.contains("COUNT=6 does not fit"), "{message}");
        assert!(message.contains("only 5"), "{message}");
        let message = refused(
            "FREQ=WEEKLY;BYDAY=TU;UNTIL=20260430",
            d(2026, 3, 1),
            d(2026, 3, 31),
        );
        assert!(message.contains("after the end date"), "{message}");
        let message = refused(
            "FREQ=DAILY;COUNT=2;UNTIL=20260302",
            d(2026, 3, 1),
            d(2026, 3, 31),
        );
        assert!(message.contains("COUNT and UNTIL"), "{message}");
    }

    #[test]
    fn daily_limited_by_weekday() {
        let got = dates(
            "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR",
            d(2026, 3, 6),
            d(2026, 3, 10),
        );
        assert_eq!(got, vec![d(2026, 3, 6), d(2026, 3, 9), d(2026, 3, 10)]);
    }

    #[test]
    fn rejected_rules() {
        let (b, e) = (d(2026, 1, 1), d(2026, 12, 31));
        for (rule, expected) in [
            ("", "FREQ"),
            ("BYDAY=MO", "FREQ is required"),
            ("FREQ=YEARLY", "FREQ=YEARLY is not supported"),
            ("FREQ=HOURLY", "is not supported"),
            ("FREQ=FORTNIGHTLY", "is not a frequency"),
            ("FREQ=WEEKLY;INTERVAL=0", "INTERVAL must be"),
            ("FREQ=WEEKLY;INTERVAL=two", "INTERVAL must be"),
            ("FREQ=WEEKLY;COUNT=0", "COUNT must be"),
            ("FREQ=WEEKLY;BYDAY=XX", "is not a weekday"),
            ("FREQ=WEEKLY;BYDAY=2TU", "needs FREQ=MONTHLY"),
            ("FREQ=MONTHLY;BYDAY=6TU", "position outside"),
            ("FREQ=MONTHLY;BYMONTHDAY=32", "BYMONTHDAY value"),
            ("FREQ=MONTHLY;BYMONTHDAY=0", "BYMONTHDAY value"),
            ("FREQ=WEEKLY;BYMONTHDAY=1", "not be used with FREQ=WEEKLY"),
            (
                "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=-1",
                "BYSETPOS is not supported",
            ),
            ("FREQ=MONTHLY;BYMONTH=2", "BYMONTH is not supported"),
            ("FREQ=WEEKLY;FREQ=DAILY", "given twice"),
            ("FREQ=WEEKLY;COLOR=RED", "COLOR is not a part"),
            ("FREQ=WEEKLY;BYDAY", "NAME=VALUE"),
            ("FREQ=WEEKLY;UNTIL=2026-03-01", "UNTIL"),
            ("FREQ=WEEKLY;UNTIL=20260301T", "UNTIL"),
            ("FREQ=WEEKLY;BYDAY=T", "is not a weekday"),
            ("FREQ=WEEKLY;BYDAY=MÖ", "outside ASCII"),
            ("FREQ=WEEKLY;UNTIL=20260301Tü23456Z", "outside ASCII"),
            (
                "FREQ=MONTHLY;BYMONTHDAY=30;BYDAY=MO;COUNT=40",
                "does not fit",
            ),
        ] {
            let message = refused(rule, b, e);
            assert!(message.contains(expected), "{rule}: {message}");
        }
        // The parts on their own never split a character.
        for value in ["Ö", "2Ö", "ÖTU", "-Ü"] {
            assert!(parse_by_day(value).is_err(), "{value}");
        }
        for value in ["20260301Tü23456Z", "20260301T12345Ü", "2026030Ü"] {
            assert!(parse_until(value).is_err(), "{value}");
        }
        // Nothing at all in the period.
        let message = refused("FREQ=MONTHLY;BYDAY=5FR", d(2026, 2, 1), d(2026, 2, 28));
        assert!(message.contains("no occurrence"), "{message}");
        // Too many.
        let message = refused("FREQ=DAILY", d(2020, 1, 1), d(2035, 1, 1));
        assert!(message.contains("more than 3660"), "{message}");
    }

    #[test]
    fn canonical_text_round_trips() {
        for rule in [
            "FREQ=WEEKLY;BYDAY=MO,TH",
            "FREQ=MONTHLY;INTERVAL=2;BYDAY=2TU,-1FR;COUNT=4",
            "FREQ=MONTHLY;BYMONTHDAY=1,-1;UNTIL=20261231",
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=SU;WKST=SU",
        ] {
            let parsed = Rule::parse(rule).unwrap();
            assert_eq!(parsed.to_text(), rule);
            assert_eq!(Rule::parse(&parsed.to_text()).unwrap(), parsed);
        }
        // Names and values are not case-sensitive, the prefix neither.
        assert_eq!(
            Rule::parse("rrule:freq=weekly;byday=mo").map(|r| r.to_text()),
            Ok("FREQ=WEEKLY;BYDAY=MO".to_string())
        );
    }

    #[test]
    fn duplicates_long_rules_and_long_periods_are_refused_before_any_expansion() {
        let (begin, end) = (d(2026, 3, 2), d(2026, 6, 30));
        assert!(refused("FREQ=WEEKLY;BYDAY=MO,TH,MO", begin, end).contains("MO twice"));
        assert!(refused("FREQ=MONTHLY;BYDAY=2TU,2TU", begin, end).contains("2TU twice"));
        assert!(refused("FREQ=MONTHLY;BYMONTHDAY=1,15,1", begin, end).contains("1 twice"));
        assert!(refused("FREQ=WEEKLY;FREQ=WEEKLY", begin, end).contains("twice"));
        let long = format!("FREQ=WEEKLY;BYDAY={}", vec!["MO"; 200].join(","));
        assert!(refused(&long, begin, end).contains("characters"));
        // A period of centuries is refused without walking it.
        let rule = Rule::parse("FREQ=DAILY").unwrap();
        let error = rule
            .occurrences(d(2026, 1, 1), d(9999, 12, 31))
            .unwrap_err();
        assert!(error.0.contains("3660 days"), "{error}");
        // Ten years of daily services fit.
        assert_eq!(
            rule.occurrences(d(2026, 1, 1), d(2035, 12, 31))
                .unwrap()
                .len(),
            3652
        );
    }
}
