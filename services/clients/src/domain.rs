//! Client rules: names, dates of birth and SSNs with their HUD data quality, demographics and
//! contact details. No I/O here.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use caseway_platform::auth::{Principal, Role};
use caseway_platform::validate::Violations;

/// The permission that shows an SSN whole.
pub const READ_SSN: &str = "clients.read_ssn";

/// Roles that work with client records.
pub const CLIENT_ROLES: &[Role] = &[Role::Caseworker, Role::Supervisor, Role::TenantAdmin];

/// Roles that may delete a client record.
pub const DELETE_ROLES: &[Role] = &[Role::Supervisor, Role::TenantAdmin];

/// HUD data quality (3.01, 3.02, 3.03): the codes are the standard's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataQuality {
    Full = 1,
    ApproximateOrPartial = 2,
    ClientDoesntKnow = 8,
    ClientPrefersNotToAnswer = 9,
    NotCollected = 99,
}

impl DataQuality {
    pub fn from_code(code: i32) -> Option<DataQuality> {
        Some(match code {
            1 => DataQuality::Full,
            2 => DataQuality::ApproximateOrPartial,
            8 => DataQuality::ClientDoesntKnow,
            9 => DataQuality::ClientPrefersNotToAnswer,
            99 => DataQuality::NotCollected,
            _ => return None,
        })
    }
}

/// HUD veteran status (3.07).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VeteranStatus {
    No = 1,
    Yes = 2,
    ClientDoesntKnow = 8,
    ClientPrefersNotToAnswer = 9,
    NotCollected = 99,
}

impl VeteranStatus {
    pub fn from_code(code: i32) -> Option<VeteranStatus> {
        Some(match code {
            1 => VeteranStatus::No,
            2 => VeteranStatus::Yes,
            8 => VeteranStatus::ClientDoesntKnow,
            9 => VeteranStatus::ClientPrefersNotToAnswer,
            99 => VeteranStatus::NotCollected,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Demographic {
    pub category: String,
    pub code: String,
}

/// Contact details; a field missing from the stored JSON reads as empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Contact {
    pub phone: String,
    pub email: String,
    pub address_line1: String,
    pub address_line2: String,
    pub city: String,
    pub state: String,
    pub postal_code: String,
}

/// A Social Security number: nine digits, kept out of `Debug` output and logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Ssn(String);

impl Ssn {
    /// Nine digits, dashes and spaces allowed in the input.
    pub fn parse(text: &str) -> Result<Ssn, &'static str> {
        let digits: String = text.chars().filter(|c| *c != '-' && *c != ' ').collect();
        if digits.len() != 9 || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err("must be nine digits");
        }
        Ok(Ssn(digits))
    }

    /// Whether the number could have been issued (area not 000, 666 or 9xx; group not 00;
    /// serial not 0000), required of an SSN reported in full.
    pub fn is_plausible(&self) -> bool {
        let (area, group, serial) = (&self.0[0..3], &self.0[3..5], &self.0[5..9]);
        area != "000"
            && area != "666"
            && !area.starts_with('9')
            && group != "00"
            && serial != "0000"
    }

    pub fn digits(&self) -> &str {
        &self.0
    }

    pub fn last4(&self) -> &str {
        &self.0[5..]
    }

    pub fn formatted(&self) -> String {
        format!("{}-{}-{}", &self.0[0..3], &self.0[3..5], &self.0[5..9])
    }
}

impl std::fmt::Debug for Ssn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ssn(***-**-{})", self.last4())
    }
}

/// How an SSN is shown: its last four digits.
pub fn masked(last4: &str) -> String {
    format!("***-**-{last4}")
}

/// The fields of a client a caller writes.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientFields {
    pub first_name: String,
    pub middle_name: String,
    pub last_name: String,
    pub suffix: String,
    pub preferred_name: String,
    pub birth_date: Option<NaiveDate>,
    pub birth_date_quality: DataQuality,
    pub ssn: Option<Ssn>,
    pub ssn_quality: DataQuality,
    pub veteran_status: VeteranStatus,
    pub demographics: Vec<Demographic>,
    pub contact: Contact,
}

impl ClientFields {
    pub const MUTABLE: &'static [&'static str] = &[
        "first_name",
        "middle_name",
        "last_name",
        "suffix",
        "preferred_name",
        "birth_date",
        "birth_date_quality",
        "ssn",
        "ssn_quality",
        "veteran_status",
        "demographics",
        "contact",
    ];

    /// Every rule on a client's fields; `today` bounds the date of birth.
    pub fn validate(&self, prefix: &str, today: NaiveDate, v: &mut Violations) {
        let field = |name: &str| format!("{prefix}.{name}");
        for (name, value) in [
            ("first_name", &self.first_name),
            ("middle_name", &self.middle_name),
            ("last_name", &self.last_name),
            ("suffix", &self.suffix),
            ("preferred_name", &self.preferred_name),
        ] {
            v.text(&field(name), value, 0, 100);
        }
        if self.first_name.trim().is_empty() && self.last_name.trim().is_empty() {
            v.add(field("last_name"), "a first or a last name is required");
        }
        match self.birth_date {
            Some(date) if date > today => v.add(field("birth_date"), "must not be in the future"),
            Some(date) if date < NaiveDate::from_ymd_opt(1900, 1, 1).expect("date") => {
                v.add(field("birth_date"), "must not be before 1900")
            }
            None if matches!(
                self.birth_date_quality,
                DataQuality::Full | DataQuality::ApproximateOrPartial
            ) =>
            {
                v.add(
                    field("birth_date"),
                    "is required when its quality says it was reported",
                )
            }
            _ => {}
        }
        match &self.ssn {
            Some(ssn) if self.ssn_quality == DataQuality::Full && !ssn.is_plausible() => {
                v.add(field("ssn"), "is not a number that can have been issued")
            }
            None if self.ssn_quality == DataQuality::Full => {
                v.add(field("ssn"), "is required when its quality is full")
            }
            _ => {}
        }
        if self.demographics.len() > 50 {
            v.add(field("demographics"), "must have at most 50 entries");
        }
        for (index, demographic) in self.demographics.iter().enumerate() {
            v.code(
                &format!("{prefix}.demographics[{index}].category"),
                &demographic.category,
                32,
            );
            v.code(
                &format!("{prefix}.demographics[{index}].code"),
                &demographic.code,
                32,
            );
        }
        let contact = &self.contact;
        for (name, value, max) in [
            ("phone", &contact.phone, 40),
            ("email", &contact.email, 320),
            ("address_line1", &contact.address_line1, 200),
            ("address_line2", &contact.address_line2, 200),
            ("city", &contact.city, 100),
            ("state", &contact.state, 50),
            ("postal_code", &contact.postal_code, 20),
        ] {
            v.text(&format!("{prefix}.contact.{name}"), value, 0, max);
        }
        if !contact.email.is_empty() && !contact.email.contains('@') {
            v.add(
                format!("{prefix}.contact.email"),
                "must be an email address",
            );
        }
    }

    /// Copies the masked fields of `input`; returns the names of those that changed. The SSN
    /// counts as changed when its digits differ.
    pub fn merge(&mut self, input: &ClientFields, mask: &[&'static str]) -> Vec<String> {
        let mut changed = Vec::new();
        macro_rules! merge {
            ($($name:ident),+) => {$(
                if mask.contains(&stringify!($name)) && self.$name != input.$name {
                    self.$name = input.$name.clone();
                    changed.push(stringify!($name).to_string());
                }
            )+};
        }
        merge!(
            first_name,
            middle_name,
            last_name,
            suffix,
            preferred_name,
            birth_date,
            birth_date_quality,
            ssn,
            ssn_quality,
            veteran_status,
            demographics,
            contact
        );
        changed
    }
}

/// The security organization a new record belongs to: the one named, which must be one of
/// the caller's; or the caller's only organization; or none.
pub fn owning_organization(
    principal: &Principal,
    requested: Option<Uuid>,
    v: &mut Violations,
) -> Option<Uuid> {
    match requested {
        Some(id) if principal.organization_ids.contains(&id) => Some(id),
        Some(_) => {
            v.add(
                "client.organization_id",
                "must be one of your security organizations",
            );
            None
        }
        None if principal.organization_ids.len() == 1 => Some(principal.organization_ids[0]),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssn_parses_nine_digits_and_never_debug_prints_them() {
        let ssn = Ssn::parse("123-45-6789").unwrap();
        assert_eq!(ssn.digits(), "123456789");
        assert_eq!(ssn.last4(), "6789");
        assert!(!format!("{ssn:?}").contains("12345"));
        assert!(Ssn::parse("12345678").is_err());
        assert!(Ssn::parse("12345678x").is_err());
    }

    #[test]
    fn implausible_ssns_are_refused_only_when_reported_in_full() {
        for bad in [
            "000123456",
            "666123456",
            "900123456",
            "123004567",
            "123450000",
        ] {
            assert!(!Ssn::parse(bad).unwrap().is_plausible(), "{bad}");
        }
        assert!(Ssn::parse("123456789").unwrap().is_plausible());
    }
}

/// Rules of a new enrollment: the entry date is not in the future.
pub fn validate_entry(entry_date: Option<NaiveDate>, today: NaiveDate, v: &mut Violations) {
    if let Some(entry) = entry_date
        && entry > today
    {
        v.add("enrollment.entry_date", "must not be in the future");
    }
}

/// Rules of an exit: not before the entry, not in the future, with a destination code.
pub fn validate_exit(
    entry_date: NaiveDate,
    exit_date: NaiveDate,
    today: NaiveDate,
    destination: &str,
    v: &mut Violations,
) {
    if exit_date < entry_date {
        v.add("exit_date", "must not be before the entry date");
    }
    if exit_date > today {
        v.add("exit_date", "must not be in the future");
    }
    v.code("exit_destination", destination, 32);
}

#[cfg(test)]
mod enrollment_tests {
    use super::*;

    fn day(m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, d).unwrap()
    }

    #[test]
    fn exit_must_follow_entry_and_not_be_in_the_future() {
        let mut v = Violations::new();
        validate_exit(day(3, 1), day(2, 28), day(6, 1), "HOUSED", &mut v);
        assert!(!v.is_empty());
        let mut v = Violations::new();
        validate_exit(day(3, 1), day(7, 1), day(6, 1), "HOUSED", &mut v);
        assert!(!v.is_empty());
        let mut v = Violations::new();
        validate_exit(day(3, 1), day(3, 1), day(6, 1), "HOUSED", &mut v);
        assert!(v.is_empty(), "a same-day exit is allowed");
    }
}
