//! The domain room of the clients service: its types and rules. Client rules: names, dates of
//! birth and SSNs with their HUD data quality, demographics and contact details; how a searched
//! name is read; enrollments' dates; the checked inputs of every operation, and the rules a
//! change can break. No I/O, no proto here.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use caseway_platform::auth::{Principal, Role};
use caseway_platform::error::{Error, Reason, Result};
use caseway_platform::paging::PageRequest;
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

/// The rules a change of a client or an enrollment can break, named on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// A client has at most one open enrollment in a program.
    OneOpenEnrollmentPerProgram,
    /// Only an open enrollment is exited.
    EnrollmentIsOpen,
}

impl caseway_platform::error::Rule for Rule {
    fn name(self) -> &'static str {
        match self {
            Rule::OneOpenEnrollmentPerProgram => "one_open_enrollment_per_program",
            Rule::EnrollmentIsOpen => "enrollment_is_open",
        }
    }
}

/// What a state change was asked, to tell a retry from another request under the same id:
/// the caller's `request_id` and the request's encoding, which the use case fingerprints.
/// The encoding may hold a personal identifier: it is only hashed, never shown.
#[derive(Clone)]
pub struct Asked {
    pub request_id: String,
    pub request: Vec<u8>,
}

impl std::fmt::Debug for Asked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Asked")
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

/// One page of a list: its items and the next page's token (empty on the last page).
#[derive(Clone, Debug)]
pub struct Listed<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
}

/// PERMISSION_DENIED unless `principal` may see whole SSNs; `doing` names what needed it
/// ("seeing", "searching by").
pub fn may_see_whole_ssn(principal: &Principal, doing: &str) -> Result<()> {
    if principal.has_permission(READ_SSN) {
        return Ok(());
    }
    Err(Error::denied(
        Reason::PermissionMissing,
        format!("{doing} a whole SSN requires the {READ_SSN} permission"),
    ))
}

/// The categories a demographic may have; each takes its codes from the tenant's code list of
/// the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DemographicCategory {
    Race,
    Ethnicity,
    Gender,
}

impl DemographicCategory {
    pub fn parse(category: &str) -> Option<DemographicCategory> {
        match category {
            "race" => Some(DemographicCategory::Race),
            "ethnicity" => Some(DemographicCategory::Ethnicity),
            "gender" => Some(DemographicCategory::Gender),
            _ => None,
        }
    }
}

/// A stored client as the service shows it. Of the SSN only the last four digits are here: the
/// sealed number and its keyed hash stay with the store's record.
#[derive(Clone, Debug)]
pub struct Client {
    pub id: Uuid,
    pub first_name: String,
    pub middle_name: String,
    pub last_name: String,
    pub suffix: String,
    pub preferred_name: String,
    pub birth_date: Option<NaiveDate>,
    pub birth_date_quality: DataQuality,
    pub ssn_last4: Option<String>,
    pub ssn_quality: DataQuality,
    pub veteran_status: VeteranStatus,
    pub demographics: Vec<Demographic>,
    pub contact: Contact,
    pub organization_id: Option<Uuid>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Client {
    /// A new client of `organization_id` with `fields` (all but the SSN, which is sealed
    /// apart), created `now`.
    pub fn new(
        id: Uuid,
        organization_id: Option<Uuid>,
        now: DateTime<Utc>,
        fields: &ClientFields,
    ) -> Client {
        let mut client = Client {
            id,
            first_name: String::new(),
            middle_name: String::new(),
            last_name: String::new(),
            suffix: String::new(),
            preferred_name: String::new(),
            birth_date: None,
            birth_date_quality: DataQuality::NotCollected,
            ssn_last4: None,
            ssn_quality: DataQuality::NotCollected,
            veteran_status: VeteranStatus::NotCollected,
            demographics: vec![],
            contact: Contact::default(),
            organization_id,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        client.apply(fields);
        client
    }

    /// The client's written fields, with its SSN (which only the sealed number holds).
    pub fn fields(&self, ssn: Option<Ssn>) -> ClientFields {
        ClientFields {
            first_name: self.first_name.clone(),
            middle_name: self.middle_name.clone(),
            last_name: self.last_name.clone(),
            suffix: self.suffix.clone(),
            preferred_name: self.preferred_name.clone(),
            birth_date: self.birth_date,
            birth_date_quality: self.birth_date_quality,
            ssn,
            ssn_quality: self.ssn_quality,
            veteran_status: self.veteran_status,
            demographics: self.demographics.clone(),
            contact: self.contact.clone(),
        }
    }

    /// Writes `fields` into the client, all but the SSN (sealed apart).
    pub fn apply(&mut self, fields: &ClientFields) {
        self.first_name = fields.first_name.clone();
        self.middle_name = fields.middle_name.clone();
        self.last_name = fields.last_name.clone();
        self.suffix = fields.suffix.clone();
        self.preferred_name = fields.preferred_name.clone();
        self.birth_date = fields.birth_date;
        self.birth_date_quality = fields.birth_date_quality;
        self.ssn_quality = fields.ssn_quality;
        self.veteran_status = fields.veteran_status;
        self.demographics = fields.demographics.clone();
        self.contact = fields.contact.clone();
    }
}

/// A client to create: its fields checked, the organization it belongs to decided.
#[derive(Debug)]
pub struct NewClient {
    pub asked: Asked,
    pub fields: ClientFields,
    pub organization_id: Option<Uuid>,
}

/// A client to read; `whole_ssn` when the caller asked to see the SSN whole.
#[derive(Clone, Copy, Debug)]
pub struct ClientRead {
    pub id: Uuid,
    pub whole_ssn: bool,
}

/// A change of a client: the fields the mask names, at the version the caller read (if it
/// said).
#[derive(Debug)]
pub struct ClientUpdate {
    pub id: Uuid,
    pub expected: Option<i64>,
    pub mask: Vec<&'static str>,
    pub fields: ClientFields,
}

/// A client to delete, with the reason recorded for it.
#[derive(Clone, Debug)]
pub struct ClientDeletion {
    pub id: Uuid,
    pub expected: Option<i64>,
    pub reason: String,
}

/// A page of a resource's history.
#[derive(Clone, Debug)]
pub struct HistoryRequest {
    pub id: Uuid,
    pub page: PageRequest,
}

/// An SSN searched for: its last four digits, or the whole number (matched by its keyed hash).
#[derive(Clone, Debug)]
pub enum SsnQuery {
    Last4(String),
    Whole(Ssn),
}

/// A search as the caller asked it, checked.
#[derive(Debug)]
pub struct ClientSearch {
    pub name: Option<NameQuery>,
    pub birth_date: Option<NaiveDate>,
    pub ssn: Option<SsnQuery>,
    /// The encoding of the name and date of birth as sent, which the page token is bound to
    /// (with the SSN's keyed hash or last four digits).
    pub filter: Vec<u8>,
    pub page: PageRequest,
}

/// A client a search found, and how well it matched.
#[derive(Clone, Debug)]
pub struct ClientMatch {
    pub client: Client,
    pub score: f64,
}

/// What a search looks for; every given part must match.
pub struct Search {
    pub name: Option<NameQuery>,
    pub birth_date: Option<NaiveDate>,
    pub ssn_hash: Option<Vec<u8>>,
    pub ssn_last4: Option<String>,
}

/// How a typed name is read: as (first, last) pairs in both orders at every split between words,
/// and as whole phrases any one name may match, each with the least similarity it needs.
#[derive(Debug, Default, PartialEq)]
pub struct NameQuery {
    pub first: Vec<String>,
    pub last: Vec<String>,
    pub single: Vec<String>,
    pub single_least: Vec<f64>,
}

/// The most words a searched name may have: every split between two words is one more
/// reading ("first last" both ways), each looked up by trigrams and one-edit variants.
pub const MAX_NAME_WORDS: usize = 6;

/// How many words a searched name has.
pub fn name_words(text: &str) -> usize {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .count()
}

impl NameQuery {
    /// "john smith", "smith, john", "mary ann smith", "smith". The caller bounds the words
    /// ([`MAX_NAME_WORDS`]).
    pub fn parse(text: &str) -> Option<NameQuery> {
        fn words(text: &str) -> Vec<String> {
            text.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect()
        }
        let mut query = NameQuery::default();
        if let Some((last, first)) = text.split_once(',') {
            let (last, first) = (words(last).join(" "), words(first).join(" "));
            match (first.is_empty(), last.is_empty()) {
                (false, false) => {
                    query.first.push(first);
                    query.last.push(last);
                    return Some(query);
                }
                (true, true) => return None,
                _ => return NameQuery::parse(&format!("{first} {last}")),
            }
        }
        let words = words(text);
        match words.len() {
            0 => return None,
            1 => {
                query.single.push(words[0].clone());
                query.single_least.push(0.0);
            }
            n => {
                for split in 1..n {
                    let (a, b) = (words[..split].join(" "), words[split..].join(" "));
                    query.first.extend([a.clone(), b.clone()]);
                    query.last.extend([b, a]);
                }
                // A whole phrase as one name ("garcia lopez") only when it is nearly that name.
                query.single.push(words.join(" "));
                query.single_least.push(0.8);
            }
        }
        Some(query)
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

/// A stored enrollment.
#[derive(Clone, Debug)]
pub struct Enrollment {
    pub id: Uuid,
    pub client_id: Uuid,
    pub program_id: Uuid,
    pub entry_date: NaiveDate,
    pub exit_date: Option<NaiveDate>,
    pub exit_destination: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An enrollment to start, checked.
#[derive(Debug)]
pub struct NewEnrollment {
    pub asked: Asked,
    pub client_id: Uuid,
    pub program_id: Uuid,
    pub entry_date: NaiveDate,
}

/// An exit of an enrollment, at the version the caller read (if it said).
#[derive(Clone, Debug)]
pub struct EnrollmentExit {
    pub id: Uuid,
    pub expected: Option<i64>,
    pub exit_date: NaiveDate,
    pub exit_destination: String,
    /// The caller's request id (empty: none) and what it asked, for a retry's replay.
    pub request_id: String,
    pub fingerprint: caseway_platform::idempotency::Fingerprint,
}

/// A page of a client's enrollments; `filter` is what the page token is bound to.
#[derive(Clone, Debug)]
pub struct EnrollmentList {
    pub client_id: Uuid,
    pub filter: Vec<u8>,
    pub page: PageRequest,
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

#[cfg(test)]
mod rule_tests {
    use super::*;
    use caseway_platform::error::Rule as _;

    #[test]
    fn rules_keep_their_wire_names() {
        assert_eq!(
            Rule::OneOpenEnrollmentPerProgram.name(),
            "one_open_enrollment_per_program"
        );
        assert_eq!(Rule::EnrollmentIsOpen.name(), "enrollment_is_open");
    }

    #[test]
    fn a_name_is_read_both_ways_at_every_split() {
        let query = NameQuery::parse("Mary Ann Smith").unwrap();
        assert_eq!(query.first, ["mary", "ann smith", "mary ann", "smith"]);
        assert_eq!(query.last, ["ann smith", "mary", "smith", "mary ann"]);
        assert_eq!(query.single, ["mary ann smith"]);
        let query = NameQuery::parse("smith, john").unwrap();
        assert_eq!(
            (query.first, query.last),
            (vec!["john".to_string()], vec!["smith".to_string()])
        );
        assert_eq!(NameQuery::parse(" , "), None);
        assert_eq!(name_words("a-b c"), 3);
    }
}
