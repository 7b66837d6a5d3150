//! The HUD HMIS CSV format (FY2026) and the tenant's mappings into it, without I/O: which
//! values HUD's lists allow, how a mapping is checked, how each file's row is made from what
//! Caseway holds, and how a CSV line is written. The specification itself is data
//! (`spec/fy2026.json`): each file's columns in order with their types and lists, the lists'
//! values, and Services.csv's record types with the TypeProvided values each allows.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use caseway_platform::validate::Violations;

/// The specification, as the tests read it too.
pub const SPEC_JSON: &str = include_str!("../spec/fy2026.json");

/// The software named in Export.csv.
pub const SOFTWARE_NAME: &str = "Caseway";
/// The CSV version named in Export.csv.
pub const CSV_VERSION: &str = "FY2026";
/// The UserID of rows Caseway does not keep a user for (clients, enrollments, programs).
pub const SYSTEM_USER: &str = "caseway";
/// The longest range one export covers.
pub const MAX_RANGE_DAYS: i64 = 5 * 366;

#[derive(Debug, Deserialize)]
pub struct Spec {
    pub files: BTreeMap<String, Vec<Column>>,
    pub lists: BTreeMap<String, List>,
    pub services_record_types: BTreeMap<String, RecordType>,
}

#[derive(Debug, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub nullable: bool,
    pub list: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct List {
    pub name: String,
    pub values: Vec<ListValue>,
}

/// A value of a list: a number, except in a few lists of codes (VAMC stations).
#[derive(Debug, Deserialize)]
pub struct ListValue {
    pub value: serde_json::Value,
    pub label: String,
}

impl ListValue {
    pub fn is(&self, value: i32) -> bool {
        self.value.as_i64() == Some(i64::from(value))
    }
}

#[derive(Debug, Deserialize)]
pub struct RecordType {
    pub label: String,
    #[serde(rename = "TypeProvided_values")]
    pub type_provided_values: Vec<ListValue>,
}

/// The specification, read once.
pub static SPEC: LazyLock<Spec> =
    LazyLock::new(|| serde_json::from_str(SPEC_JSON).expect("spec/fy2026.json is the spec"));

impl Spec {
    fn allows(&self, list: &str, value: i32) -> bool {
        self.lists
            .get(list)
            .is_some_and(|l| l.values.iter().any(|v| v.is(value)))
    }

    /// The columns of `file`, in order.
    pub fn columns(&self, file: File) -> &[Column] {
        &self.files[file.name()]
    }
}

/// The files of an export, in the order they are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum File {
    Export,
    Organization,
    Project,
    Funder,
    Client,
    Enrollment,
    Exit,
    Services,
}

impl File {
    pub const ALL: [File; 8] = [
        File::Export,
        File::Organization,
        File::Project,
        File::Funder,
        File::Client,
        File::Enrollment,
        File::Exit,
        File::Services,
    ];

    pub fn name(self) -> &'static str {
        match self {
            File::Export => "Export.csv",
            File::Organization => "Organization.csv",
            File::Project => "Project.csv",
            File::Funder => "Funder.csv",
            File::Client => "Client.csv",
            File::Enrollment => "Enrollment.csv",
            File::Exit => "Exit.csv",
            File::Services => "Services.csv",
        }
    }

    pub fn parse(name: &str) -> Option<File> {
        File::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// What a mapping maps (the proto's Subject; the stored number is the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Subject {
    Gender = 1,
    Race = 2,
    Ethnicity = 3,
    Service = 4,
    Program = 5,
    Grant = 6,
    ExitDestination = 7,
}

impl Subject {
    pub fn from_code(code: i32) -> Option<Subject> {
        Some(match code {
            1 => Subject::Gender,
            2 => Subject::Race,
            3 => Subject::Ethnicity,
            4 => Subject::Service,
            5 => Subject::Program,
            6 => Subject::Grant,
            7 => Subject::ExitDestination,
            _ => return None,
        })
    }

    /// The tenant's code list a gender, race or ethnicity code comes from.
    pub fn code_list(self) -> Option<&'static str> {
        match self {
            Subject::Gender => Some("gender"),
            Subject::Race => Some("race"),
            Subject::Ethnicity => Some("ethnicity"),
            _ => None,
        }
    }
}

/// Client.csv's race columns by the response numbers of data element 3.04.
pub const RACE_COLUMNS: [(i32, &str); 7] = [
    (1, "AmIndAKNative"),
    (2, "Asian"),
    (3, "BlackAfAmerican"),
    (4, "NativeHIPacific"),
    (5, "White"),
    (6, "HispanicLatinao"),
    (7, "MidEastNAfrican"),
];

/// Record types whose services are financial assistance, with an amount (FAAmount).
const FINANCIAL_ASSISTANCE: [i32; 2] = [151, 152];

/// One of the tenant's codes and HUD's value for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub subject: Subject,
    pub code: String,
    pub value: i32,
    pub record_type: i32,
    pub continuum_project: bool,
    pub updated_at: DateTime<Utc>,
}

/// Checks a mapping's values against HUD's lists; `prefix` names the message in violations.
pub fn check_mapping(
    subject: Subject,
    code: &str,
    value: i32,
    record_type: i32,
    continuum_project: bool,
    prefix: &str,
    v: &mut Violations,
) {
    v.text(&format!("{prefix}code"), code, 1, 200);
    if code.trim() != code {
        v.add(
            format!("{prefix}code"),
            "has no spaces before or after it: codes are matched exactly",
        );
    }
    let value_field = format!("{prefix}value");
    let spec = &*SPEC;
    let (allowed, list) = match subject {
        Subject::Gender => (spec.allows("4.21", value), "list 4.21 (Sex)"),
        Subject::Race => (
            (1..=7).contains(&value) || [8, 9, 99].contains(&value),
            "3.04 (1 to 7 for a race column, 8, 9 or 99 for RaceNone)",
        ),
        Subject::Ethnicity => (
            (0..=7).contains(&value) || [8, 9, 99].contains(&value),
            "3.04 (1 to 7 for a race column, 8, 9 or 99 for RaceNone), or 0 for none",
        ),
        Subject::Service => match spec.services_record_types.get(&record_type.to_string()) {
            Some(types) => (
                types.type_provided_values.iter().any(|t| t.is(value)),
                "the record type's TypeProvided list",
            ),
            None => {
                v.add(
                    format!("{prefix}record_type"),
                    "is not a RecordType of list 1.4",
                );
                (true, "")
            }
        },
        Subject::Program => (spec.allows("2.02.6", value), "list 2.02.6 (ProjectType)"),
        Subject::Grant => (spec.allows("2.06.1", value), "list 2.06.1 (Funder)"),
        Subject::ExitDestination => (spec.allows("3.12.1", value), "list 3.12.1 (Destination)"),
    };
    if !allowed {
        v.add(value_field, format!("is not a value of {list}"));
    }
    if subject != Subject::Service && record_type != 0 {
        v.add(
            format!("{prefix}record_type"),
            "is set only for a service's mapping",
        );
    }
    if subject != Subject::Program && continuum_project {
        v.add(
            format!("{prefix}continuum_project"),
            "is set only for a program's mapping",
        );
    }
}

/// What every export needs and no code list holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub coc_code: String,
    pub victim_service_provider: bool,
    pub source_name: String,
    pub updated_at: DateTime<Utc>,
}

/// Checks a CoC code: two letters, a hyphen and three digits (`XX-500`).
pub fn check_settings(coc_code: &str, source_name: &str, v: &mut Violations) {
    let b = coc_code.as_bytes();
    let well_formed = b.len() == 6
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2] == b'-'
        && b[3..].iter().all(u8::is_ascii_digit);
    if !well_formed {
        v.add(
            "settings.coc_code",
            "is two capital letters, a hyphen and three digits, such as XX-500",
        );
    }
    v.text("settings.source_name", source_name, 0, 50);
}

/// The FAILED_PRECONDITION rules of HMIS exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HmisRule {
    /// An export needs the tenant's settings (its CoC code) first.
    Settings,
    /// A file is downloaded only from an export that succeeded.
    ExportReady,
}

impl caseway_platform::error::Rule for HmisRule {
    fn name(self) -> &'static str {
        match self {
            HmisRule::Settings => "hmis_settings",
            HmisRule::ExportReady => "hmis_export_ready",
        }
    }
}

/// Where an export is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportState {
    Running,
    Succeeded,
    Failed,
}

impl ExportState {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportState::Running => "running",
            ExportState::Succeeded => "succeeded",
            ExportState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<ExportState> {
        Some(match text {
            "running" => ExportState::Running,
            "succeeded" => ExportState::Succeeded,
            "failed" => ExportState::Failed,
            _ => return None,
        })
    }
}

/// One written file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenFile {
    pub name: String,
    pub rows: i64,
    pub bytes: i64,
    pub sha256: String,
}

/// A code no mapping covers, and the rows it touched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmappedCode {
    pub subject: Subject,
    pub code: String,
    pub rows: i64,
}

/// Service records of the range left out of Services.csv, by why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedRows {
    pub reason: String,
    pub rows: i64,
}

/// An export as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportRow {
    pub id: Uuid,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub include_ssn: bool,
    pub state: ExportState,
    pub files_written: i32,
    pub rows_written: i64,
    pub files: Vec<WrittenFile>,
    pub unmapped: Vec<UnmappedCode>,
    pub skipped: Vec<SkippedRows>,
    pub error: String,
    pub started_by: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Checks an export's range: the end not before the start, at most [`MAX_RANGE_DAYS`].
pub fn check_range(start: NaiveDate, end: NaiveDate, v: &mut Violations) {
    if end < start {
        v.add("end_date", "is on or after start_date");
    } else if (end - start).num_days() > MAX_RANGE_DAYS {
        v.add("end_date", "is at most 5 years after start_date");
    }
}

/// The tenant's mappings, by subject and code, with the codes found unmapped as rows are made.
#[derive(Debug, Default)]
pub struct Mappings {
    by_code: HashMap<(Subject, String), Mapping>,
    unmapped: BTreeMap<(Subject, String), i64>,
}

impl Mappings {
    pub fn new(mappings: Vec<Mapping>) -> Self {
        Mappings {
            by_code: mappings
                .into_iter()
                .map(|m| ((m.subject, m.code.clone()), m))
                .collect(),
            unmapped: BTreeMap::new(),
        }
    }

    /// The mapping of `code`; `None` counted as unmapped.
    pub fn get(&mut self, subject: Subject, code: &str) -> Option<&Mapping> {
        let key = (subject, code.to_string());
        if !self.by_code.contains_key(&key) {
            *self.unmapped.entry(key).or_default() += 1;
            return None;
        }
        self.by_code.get(&key)
    }

    /// The codes found unmapped, with the rows each touched.
    pub fn unmapped(&self) -> Vec<UnmappedCode> {
        self.unmapped
            .iter()
            .map(|((subject, code), rows)| UnmappedCode {
                subject: *subject,
                code: code.clone(),
                rows: *rows,
            })
            .collect()
    }
}

/// An id as HMIS CSV carries it: 32 hex digits, stable across exports.
pub fn hmis_id(id: Uuid) -> String {
    id.simple().to_string()
}

/// A user as HMIS CSV's UserID (at most 32 characters): itself when it fits, otherwise the
/// first 32 hex digits of its SHA-256, stable across exports.
pub fn user_id(user: &str) -> String {
    use sha2::Digest;
    if !user.is_empty() && user.len() <= 32 {
        return user.to_string();
    }
    let digest = sha2::Sha256::digest(user.as_bytes());
    caseway_platform::objects::hex(&digest[..16])
}

pub fn date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// An instant as HMIS CSV's date and time, in UTC.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// At most `max` characters of `text`.
pub fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// One CSV line of `fields` in the columns' order: a field with a comma, quote or line break
/// is quoted, its quotes doubled; lines end with CRLF.
pub fn csv_line(fields: &[String]) -> String {
    let mut line = String::new();
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        if field.contains([',', '"', '\n', '\r']) {
            line.push('"');
            line.push_str(&field.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(field);
        }
    }
    line.push_str("\r\n");
    line
}

/// A row being made: values by column name, written in the file's column order; a column
/// not set is empty.
pub struct CsvRow {
    file: File,
    values: HashMap<&'static str, String>,
}

impl CsvRow {
    pub fn new(file: File) -> CsvRow {
        CsvRow {
            file,
            values: HashMap::new(),
        }
    }

    pub fn set(&mut self, column: &'static str, value: impl ToString) -> &mut CsvRow {
        debug_assert!(
            SPEC.columns(self.file).iter().any(|c| c.name == column),
            "{column} is a column of {}",
            self.file.name()
        );
        self.values.insert(column, value.to_string());
        self
    }

    pub fn line(&self) -> String {
        let fields: Vec<String> = SPEC
            .columns(self.file)
            .iter()
            .map(|c| {
                self.values
                    .get(c.name.as_str())
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        csv_line(&fields)
    }
}

/// The header line of `file`.
pub fn header(file: File) -> String {
    let names: Vec<String> = SPEC.columns(file).iter().map(|c| c.name.clone()).collect();
    csv_line(&names)
}

/// Name data quality (3.01.5) from the names held: full when first and last are, partial
/// when only some are, not collected when none is.
pub fn name_quality(first: &str, last: &str) -> i32 {
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (false, false) => 1,
        (true, true) => 99,
        _ => 2,
    }
}

/// Caseway's veteran status (1 no, 2 yes, 8, 9, 99) as list 1.8 (0 no, 1 yes, 8, 9, 99).
pub fn veteran_status(stored: i16) -> i32 {
    match stored {
        1 => 0,
        2 => 1,
        other => i32::from(other),
    }
}

/// A client's demographic entry as stored.
#[derive(Clone, Debug, Deserialize)]
pub struct Demographic {
    pub category: String,
    pub code: String,
}

/// Sets Client.csv's Sex and race columns from a client's demographics through the mappings:
/// the first mapped gender is Sex (99 when none is recorded, empty when one is but unmapped);
/// each race or ethnicity mapped to a column sets it to 1; with no column set, RaceNone is
/// the reason mapped (99 when none).
pub fn demographics(row: &mut CsvRow, recorded: &[Demographic], mappings: &mut Mappings) {
    let mut sex: Option<i32> = None;
    let mut gender_recorded = false;
    let mut races = [false; 7];
    let mut race_none: Option<i32> = None;
    for d in recorded {
        let subject = match d.category.as_str() {
            "gender" => Subject::Gender,
            "race" => Subject::Race,
            "ethnicity" => Subject::Ethnicity,
            _ => continue,
        };
        if subject == Subject::Gender {
            gender_recorded = true;
        }
        let Some(value) = mappings.get(subject, &d.code).map(|m| m.value) else {
            continue;
        };
        match subject {
            Subject::Gender => {
                sex.get_or_insert(value);
            }
            _ => match value {
                1..=7 => races[(value - 1) as usize] = true,
                8 | 9 | 99 => {
                    race_none.get_or_insert(value);
                }
                _ => {}
            },
        }
    }
    match (sex, gender_recorded) {
        (Some(sex), _) => row.set("Sex", sex),
        (None, false) => row.set("Sex", 99),
        (None, true) => row,
    };
    for ((_, column), set) in RACE_COLUMNS.iter().zip(races) {
        row.set(column, i32::from(set));
    }
    if !races.iter().any(|r| *r) {
        row.set("RaceNone", race_none.unwrap_or(99));
    }
}

/// An SSN as Client.csv holds it: its digits, padded on the left with `x` to nine as HUD pads
/// a partial SSN (empty when there are none).
pub fn ssn_field(ssn: &str) -> String {
    let digits: String = ssn.chars().filter(char::is_ascii_digit).take(9).collect();
    if digits.is_empty() {
        return digits;
    }
    format!("{digits:x>9}")
}

/// A financial-assistance amount (FAAmount): two decimals.
pub fn amount(record_type: i32, value: Option<Decimal>) -> Option<String> {
    if !FINANCIAL_ASSISTANCE.contains(&record_type) {
        return None;
    }
    value.map(|v| v.round_dp(2).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(subject: Subject, value: i32, record_type: i32) -> Vec<String> {
        let mut v = Violations::new();
        check_mapping(
            subject,
            "CODE",
            value,
            record_type,
            false,
            "mapping.",
            &mut v,
        );
        v.fields()
    }

    #[test]
    fn mappings_are_checked_against_hud_lists() {
        assert!(checked(Subject::Gender, 1, 0).is_empty());
        assert_eq!(checked(Subject::Gender, 5, 0), ["mapping.value"]);
        assert!(checked(Subject::Service, 3, 144).is_empty());
        assert_eq!(checked(Subject::Service, 3, 999), ["mapping.record_type"]);
        assert_eq!(checked(Subject::Service, 99, 144), ["mapping.value"]);
        assert_eq!(checked(Subject::Program, 1, 144), ["mapping.record_type"]);
        assert!(checked(Subject::Race, 7, 0).is_empty());
        assert_eq!(checked(Subject::Race, 0, 0), ["mapping.value"]);
        assert!(checked(Subject::Ethnicity, 0, 0).is_empty());
        assert!(checked(Subject::ExitDestination, 101, 0).is_empty());
        assert_eq!(checked(Subject::ExitDestination, 102, 0), ["mapping.value"]);
    }

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        let line = csv_line(&["a".into(), "b,c".into(), "say \"hi\"".into(), "".into()]);
        assert_eq!(line, "a,\"b,c\",\"say \"\"hi\"\"\",\r\n");
    }

    #[test]
    fn demographics_map_to_sex_and_race_columns_or_are_reported() {
        let at = Utc::now();
        let mapping = |subject, code: &str, value| Mapping {
            subject,
            code: code.into(),
            value,
            record_type: 0,
            continuum_project: false,
            updated_at: at,
        };
        let mut mappings = Mappings::new(vec![
            mapping(Subject::Gender, "F", 0),
            mapping(Subject::Race, "ASIAN", 2),
            mapping(Subject::Ethnicity, "HISPANIC", 6),
        ]);
        let d = |category: &str, code: &str| Demographic {
            category: category.into(),
            code: code.into(),
        };
        let mut row = CsvRow::new(File::Client);
        demographics(
            &mut row,
            &[
                d("gender", "F"),
                d("race", "ASIAN"),
                d("race", "MARTIAN"),
                d("ethnicity", "HISPANIC"),
            ],
            &mut mappings,
        );
        assert_eq!(row.values["Sex"], "0");
        assert_eq!(row.values["Asian"], "1");
        assert_eq!(row.values["HispanicLatinao"], "1");
        assert_eq!(row.values["White"], "0");
        assert!(!row.values.contains_key("RaceNone"));
        let mut unrecorded = CsvRow::new(File::Client);
        demographics(&mut unrecorded, &[d("gender", "X")], &mut mappings);
        assert!(!unrecorded.values.contains_key("Sex"));
        assert_eq!(unrecorded.values["RaceNone"], "99");
        assert_eq!(
            mappings.unmapped(),
            [
                UnmappedCode {
                    subject: Subject::Gender,
                    code: "X".into(),
                    rows: 1
                },
                UnmappedCode {
                    subject: Subject::Race,
                    code: "MARTIAN".into(),
                    rows: 1
                },
            ]
        );
    }

    #[test]
    fn every_file_has_its_columns_in_the_spec() {
        for file in File::ALL {
            assert!(!SPEC.columns(file).is_empty(), "{}", file.name());
        }
        assert_eq!(veteran_status(2), 1);
        assert_eq!(user_id("worker-1"), "worker-1");
        assert_eq!(user_id(&"x".repeat(40)).len(), 32);
        assert_eq!(ssn_field("123-45-6789"), "123456789");
        assert_eq!(ssn_field("6789"), "xxxxx6789");
        assert_eq!(ssn_field(""), "");
    }
}
