//! Request validation that collects every bad field before answering, so a caller fixes a
//! form in one round trip. Field paths follow the request (`service.code`, `lines[3].units`).

use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::error::{Error, FieldViolation, Result};

/// Largest page a list call returns.
pub const MAX_PAGE_SIZE: i64 = 500;
/// Page size when the caller asks for none.
pub const DEFAULT_PAGE_SIZE: i64 = 50;

#[derive(Default, Debug)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Violations(Vec::new())
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Keeps only the violations whose top-level field under `prefix` is in `fields` (an
    /// update checks only what its mask changes).
    pub fn retain_masked(&mut self, prefix: &str, fields: &[&str]) {
        self.0.retain(|v| {
            let Some(rest) = v
                .field
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('.'))
            else {
                return true;
            };
            let top = rest.split(['.', '[']).next().unwrap_or(rest);
            fields.contains(&top)
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether some violation names `field`.
    pub fn mentions(&self, field: &str) -> bool {
        self.0.iter().any(|v| v.field == field)
    }

    /// The violations, to report them under other names.
    pub fn into_inner(self) -> Vec<FieldViolation> {
        self.0
    }

    /// The fields named, in order (for tests and logs).
    pub fn fields(&self) -> Vec<String> {
        self.0.iter().map(|v| v.field.clone()).collect()
    }

    /// INVALID_ARGUMENT with every violation, or Ok when there are none.
    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(self.0))
        }
    }

    /// The checked value, or INVALID_ARGUMENT with every violation. `value` is what the
    /// parsers gave, assembled with `?` inside a closure (`(|| Some(Input { id: id? }))()`),
    /// so nothing after the check unwraps. A parser that gave nothing without saying why is
    /// a bug, reported as INTERNAL rather than a panic.
    pub fn finish_with<T>(self, value: Option<T>) -> Result<T> {
        self.finish()?;
        value.ok_or_else(|| {
            Error::Internal(anyhow::anyhow!("a parser gave no value and no violation"))
        })
    }

    /// A text of `min..=max` characters with no control characters other than newlines and
    /// tabs. `min == 0` makes it optional.
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let length = value.chars().count();
        if length == 0 && min > 0 {
            self.add(field, "is required");
        } else if length < min {
            self.add(field, format!("must have at least {min} characters"));
        } else if length > max {
            self.add(field, format!("must have at most {max} characters"));
        } else if value
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
        {
            self.add(field, "must not contain control characters");
        } else if min > 0 && value.trim().is_empty() {
            self.add(field, "must not be blank");
        }
    }

    /// A code: 1 to `max` letters, digits, `-`, `_` or `.`.
    pub fn code(&mut self, field: &str, value: &str, max: usize) {
        if value.is_empty() {
            self.add(field, "is required");
        } else if value.len() > max {
            self.add(field, format!("must have at most {max} characters"));
        } else if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            self.add(field, "may contain only letters, digits, '-', '_' and '.'");
        }
    }

    /// A required id: a UUID, typed as the resource's id (or left a [`Uuid`]).
    pub fn id<T: From<Uuid>>(&mut self, field: &str, value: &str) -> Option<T> {
        if value.is_empty() {
            self.add(field, "is required");
            return None;
        }
        match Uuid::parse_str(value) {
            Ok(id) => Some(id.into()),
            Err(_) => {
                self.add(field, "must be a UUID");
                None
            }
        }
    }

    /// An id that may be empty.
    pub fn optional_id<T: From<Uuid>>(&mut self, field: &str, value: &str) -> Option<T> {
        if value.is_empty() {
            None
        } else {
            self.id(field, value)
        }
    }

    /// A list of distinct UUIDs (at most `max`).
    pub fn ids(&mut self, field: &str, values: &[String], max: usize) -> Vec<Uuid> {
        if values.len() > max {
            self.add(field, format!("must have at most {max} entries"));
            return Vec::new();
        }
        let mut ids = Vec::with_capacity(values.len());
        for (index, value) in values.iter().enumerate() {
            if let Some(id) = self.id(&format!("{field}[{index}]"), value) {
                if ids.contains(&id) {
                    self.add(format!("{field}[{index}]"), "is listed twice");
                } else {
                    ids.push(id);
                }
            }
        }
        ids
    }

    /// An exact, non-negative decimal with at most `max_scale` decimal places.
    pub fn decimal(&mut self, field: &str, value: &str, max_scale: u32) -> Option<Decimal> {
        match parse_decimal(value, max_scale) {
            Ok(d) => Some(d),
            Err(description) => {
                self.add(field, description);
                None
            }
        }
    }

    /// A request id for idempotent retries: empty, or 1 to 128 visible ASCII characters.
    pub fn request_id(&mut self, value: &str) {
        if value.len() > 128 || !value.chars().all(|c| c.is_ascii_graphic()) {
            self.add("request_id", "must be at most 128 visible ASCII characters");
        }
    }
}

/// Largest decimal Caseway takes as input: 12 integer digits leave room for products (a
/// value is units x unit value) under what NUMERIC(18, 4) stores.
const MAX_DECIMAL_INTEGER_DIGITS: usize = 12;

/// A computed amount (a value, a total) fits NUMERIC(18, 4): under 10^14.
pub fn storable(amount: Decimal) -> bool {
    amount.abs() < Decimal::from(100_000_000_000_000i64)
}

fn parse_decimal(value: &str, max_scale: u32) -> std::result::Result<Decimal, String> {
    if value.is_empty() {
        return Err("is required".into());
    }
    let well_formed = value
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
        && value.chars().filter(|c| *c == '.').count() <= 1
        && !value.starts_with('.')
        && !value.ends_with('.');
    if !well_formed {
        return Err("must be a decimal number such as 12.50".into());
    }
    let decimal = Decimal::from_str(value).map_err(|_| "must be a decimal number such as 12.50")?;
    if decimal.is_sign_negative() && !decimal.is_zero() {
        return Err("must not be negative".into());
    }
    if decimal.normalize().scale() > max_scale {
        return Err(format!("must have at most {max_scale} decimal places"));
    }
    let integer_digits = value
        .trim_start_matches('-')
        .split('.')
        .next()
        .unwrap_or("");
    if integer_digits.trim_start_matches('0').len() > MAX_DECIMAL_INTEGER_DIGITS {
        return Err(format!("must be less than 10^{MAX_DECIMAL_INTEGER_DIGITS}"));
    }
    // Trailing zeros past the scale go (exactly: only zeros are there), so "0.50000" is the
    // 0.5000 its column stores, not a value of five places.
    Ok(decimal.abs().round_dp(max_scale))
}

/// Parses a required id outside a form (a `Get`'s `id`): INVALID_ARGUMENT naming the field.
pub fn parse_id<T: From<Uuid>>(field: &str, value: &str) -> Result<T> {
    let mut v = Violations::new();
    let id = v.id(field, value);
    v.finish_with(id)
}

/// A page size: 0 means the default; negative is refused; large sizes are capped.
pub fn page_size(value: i32) -> Result<i64> {
    match value {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n < 0 => Err(Error::invalid("page_size", "must not be negative")),
        n => Ok(i64::from(n).min(MAX_PAGE_SIZE)),
    }
}

/// The fields an update changes (AIP-134): those the mask names; every one of `mutable` for
/// the mask `*` (replace: a field left at its default is cleared); and for an empty or absent
/// mask, the fields the request sets (`set`: those of `mutable` whose value in the request is
/// not the default), so a caller that sends only what it changes changes only that.
/// INVALID_ARGUMENT naming `update_mask` for a path that is not mutable, or `*` beside others.
pub fn update_mask(
    mask: Option<&prost_types::FieldMask>,
    mutable: &[&'static str],
    set: &[&'static str],
) -> Result<Vec<&'static str>> {
    let paths = mask.map(|m| m.paths.as_slice()).unwrap_or_default();
    if paths.is_empty() {
        return Ok(mutable
            .iter()
            .filter(|f| set.contains(f))
            .copied()
            .collect());
    }
    if paths == ["*"] {
        return Ok(mutable.to_vec());
    }
    if paths.iter().any(|p| p == "*") {
        return Err(Error::invalid(
            "update_mask",
            "* replaces every field and stands alone",
        ));
    }
    let mut fields = Vec::with_capacity(paths.len());
    for path in paths {
        match mutable.iter().find(|m| **m == path.as_str()) {
            Some(field) if !fields.contains(field) => fields.push(*field),
            Some(_) => {}
            None => {
                return Err(Error::invalid(
                    "update_mask",
                    format!("{path} is not a field that can be updated"),
                ));
            }
        }
    }
    Ok(fields)
}

/// A calendar date from `google.type.Date`.
pub fn date(
    violations: &mut Violations,
    field: &str,
    value: Option<&caseway_api::google::r#type::Date>,
    required: bool,
) -> Option<NaiveDate> {
    match value {
        None => {
            if required {
                violations.add(field, "is required");
            }
            None
        }
        Some(d) => {
            let parsed = u32::try_from(d.month)
                .ok()
                .zip(u32::try_from(d.day).ok())
                .filter(|_| (1..=9999).contains(&d.year))
                .and_then(|(m, day)| NaiveDate::from_ymd_opt(d.year, m, day));
            if parsed.is_none() {
                violations.add(field, "must be a valid calendar date");
            }
            parsed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact_and_bounded() {
        assert_eq!(parse_decimal("12.50", 2).unwrap().to_string(), "12.50");
        // Zeros past the scale go, exactly.
        assert_eq!(parse_decimal("0.50000", 4).unwrap().to_string(), "0.5000");
        assert_eq!(parse_decimal("0", 2).unwrap(), Decimal::ZERO);
        assert!(
            parse_decimal("12.505", 2)
                .unwrap_err()
                .contains("decimal places")
        );
        assert!(parse_decimal("-1", 2).unwrap_err().contains("negative"));
        assert!(parse_decimal("1e3", 2).is_err());
        assert!(parse_decimal("", 2).is_err());
        assert!(parse_decimal("1.", 2).is_err());
        assert!(parse_decimal("9999999999999", 2).is_err());
        // Trailing zeros do not count as precision.
        assert!(parse_decimal("1.5000", 2).is_ok());
    }

    #[test]
    fn text_rejects_control_characters_and_lengths() {
        let mut v = Violations::new();
        v.text("a", "", 1, 10);
        v.text("b", "x\0y", 1, 10);
        v.text("c", &"x".repeat(11), 1, 10);
        v.text("d", "   ", 1, 10);
        v.text("e", "", 0, 10);
        let Err(Error::InvalidArgument(violations)) = v.finish() else {
            panic!("expected violations");
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["a", "b", "c", "d"]);
    }

    #[test]
    fn page_size_defaults_and_caps() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(10_000).unwrap(), MAX_PAGE_SIZE);
        assert!(page_size(-1).is_err());
    }
}
