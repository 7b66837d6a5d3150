//! The domain room of assessments: their types and rules. A type is a list of typed fields; a
//! recorded assessment answers them, each answer of its field's type, every required field
//! answered. No I/O, no proto here.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use caseway_platform::auth::Role;
use caseway_platform::validate::Violations;

use crate::domain::Asked;
use caseway_platform::paging::PageRequest;

/// Roles that define assessment types.
pub const DEFINE_ROLES: &[Role] = &[Role::TenantAdmin];

/// How many fields a type may have, and options a code field.
const MAX_FIELDS: usize = 100;
const MAX_OPTIONS: usize = 200;
/// Longest text answer.
const MAX_TEXT: usize = 2000;
/// Decimal places a decimal answer may have.
const DECIMAL_SCALE: u32 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Integer,
    Decimal,
    Boolean,
    Date,
    Code,
    Text,
}

impl FieldType {
    /// How an answer of this type is described to a caller who sent another kind.
    pub fn article(self) -> &'static str {
        match self {
            FieldType::Integer => "an integer",
            FieldType::Decimal => "a decimal",
            FieldType::Boolean => "a boolean",
            FieldType::Date => "a date",
            FieldType::Code => "a code",
            FieldType::Text => "text",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldOption {
    pub code: String,
    pub label: String,
}

/// One question of an assessment type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDefinition {
    pub key: String,
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    pub required: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<FieldOption>,
}

/// The fields of an assessment type a tenant administrator writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssessmentTypeFields {
    pub code: String,
    pub name: String,
    pub description: String,
    pub fields: Vec<FieldDefinition>,
    pub retired: bool,
}

impl AssessmentTypeFields {
    pub const MUTABLE: &'static [&'static str] = &["name", "description", "fields", "state"];

    /// Every rule of a definition. A field without a type is refused where the wire form is
    /// read; here the keys, labels and options are checked.
    pub fn validate(&self, prefix: &str, v: &mut Violations) {
        v.code(&format!("{prefix}.code"), &self.code, 64);
        v.text(&format!("{prefix}.name"), &self.name, 1, 200);
        v.text(&format!("{prefix}.description"), &self.description, 0, 2000);
        if self.fields.is_empty() {
            v.add(format!("{prefix}.fields"), "must have at least one field");
        }
        if self.fields.len() > MAX_FIELDS {
            v.add(
                format!("{prefix}.fields"),
                format!("must have at most {MAX_FIELDS} fields"),
            );
        }
        for (index, field) in self.fields.iter().enumerate() {
            let at = |name: &str| format!("{prefix}.fields[{index}].{name}");
            if !is_key(&field.key) {
                v.add(
                    at("key"),
                    "must be 1 to 64 lower case letters, digits or '_', starting with a letter",
                );
            } else if self.fields[..index].iter().any(|f| f.key == field.key) {
                v.add(at("key"), format!("{} is used by another field", field.key));
            }
            v.text(&at("label"), &field.label, 1, 200);
            match field.field_type {
                FieldType::Code if field.options.is_empty() => {
                    v.add(at("options"), "a code field needs at least one option")
                }
                FieldType::Code if field.options.len() > MAX_OPTIONS => v.add(
                    at("options"),
                    format!("must have at most {MAX_OPTIONS} options"),
                ),
                FieldType::Code => {}
                _ if !field.options.is_empty() => {
                    v.add(at("options"), "only a code field has options")
                }
                _ => {}
            }
            for (o, option) in field.options.iter().enumerate() {
                let code = format!("{prefix}.fields[{index}].options[{o}].code");
                v.code(&code, &option.code, 64);
                if field.options[..o].iter().any(|p| p.code == option.code) {
                    v.add(code, format!("{} is listed twice", option.code));
                }
                v.text(
                    &format!("{prefix}.fields[{index}].options[{o}].label"),
                    &option.label,
                    1,
                    200,
                );
            }
        }
    }

    /// Copies the masked fields of `input`; returns the names of those that changed.
    pub fn merge(&mut self, input: &AssessmentTypeFields, mask: &[&'static str]) -> Vec<String> {
        let mut changed = Vec::new();
        if mask.contains(&"name") && self.name != input.name {
            self.name = input.name.clone();
            changed.push("name".to_string());
        }
        if mask.contains(&"description") && self.description != input.description {
            self.description = input.description.clone();
            changed.push("description".to_string());
        }
        if mask.contains(&"fields") && self.fields != input.fields {
            self.fields = input.fields.clone();
            changed.push("fields".to_string());
        }
        if mask.contains(&"state") && self.retired != input.retired {
            self.retired = input.retired;
            changed.push("state".to_string());
        }
        changed
    }
}

fn is_key(key: &str) -> bool {
    let mut chars = key.chars();
    key.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// An answer's value, as stored: `{"type": "decimal", "value": "1250.5"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum AnswerValue {
    Integer(i64),
    /// Exact, in its canonical form ("1250.5").
    Decimal(String),
    Boolean(bool),
    Date(NaiveDate),
    Code(String),
    Text(String),
}

impl AnswerValue {
    pub fn field_type(&self) -> FieldType {
        match self {
            AnswerValue::Integer(_) => FieldType::Integer,
            AnswerValue::Decimal(_) => FieldType::Decimal,
            AnswerValue::Boolean(_) => FieldType::Boolean,
            AnswerValue::Date(_) => FieldType::Date,
            AnswerValue::Code(_) => FieldType::Code,
            AnswerValue::Text(_) => FieldType::Text,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub key: String,
    #[serde(flatten)]
    pub value: AnswerValue,
}

/// Checks `answers` against the type: every key a field of it and answered once, each value of
/// its field's type (a decimal exact and non-negative, a code one of the field's options, a
/// text not too long), every required field answered. Violations name
/// `{prefix}.{key}`; an answer without a value is `None`. Returns the answers in the type's
/// field order, decimals canonical.
pub fn check_answers(
    definition: &AssessmentTypeFields,
    answers: Vec<(String, Option<AnswerValue>)>,
    prefix: &str,
    v: &mut Violations,
) -> Vec<Answer> {
    let mut given: Vec<Answer> = Vec::with_capacity(answers.len());
    for (key, value) in answers {
        let at = format!("{prefix}.{key}");
        let Some(field) = definition.fields.iter().find(|f| f.key == key) else {
            v.add(
                at,
                format!("is not a field of assessment type {}", definition.code),
            );
            continue;
        };
        if given.iter().any(|a| a.key == key) {
            v.add(at, "is answered twice");
            continue;
        }
        let Some(value) = value else {
            v.add(at, "has no value");
            continue;
        };
        if value.field_type() != field.field_type {
            v.add(
                at,
                format!(
                    "takes {}, not {}",
                    field.field_type.article(),
                    value.field_type().article()
                ),
            );
            continue;
        }
        let value = match value {
            AnswerValue::Decimal(text) => match v.decimal(&at, &text, DECIMAL_SCALE) {
                Some(decimal) => AnswerValue::Decimal(decimal.normalize().to_string()),
                None => continue,
            },
            AnswerValue::Code(code) => {
                if !field.options.iter().any(|o| o.code == code) {
                    let allowed: Vec<&str> =
                        field.options.iter().map(|o| o.code.as_str()).collect();
                    v.add(at, format!("must be one of {}", allowed.join(", ")));
                    continue;
                }
                AnswerValue::Code(code)
            }
            AnswerValue::Text(text) => {
                v.text(&at, &text, 0, MAX_TEXT);
                AnswerValue::Text(text)
            }
            other => other,
        };
        given.push(Answer { key, value });
    }
    for field in definition.fields.iter().filter(|f| f.required) {
        if !given.iter().any(|a| a.key == field.key)
            && !v.mentions(&format!("{prefix}.{}", field.key))
        {
            v.add(format!("{prefix}.{}", field.key), "is required");
        }
    }
    let order = |key: &str| definition.fields.iter().position(|f| f.key == key);
    given.sort_by_key(|a| order(&a.key));
    given
}

/// The rules a change of assessments can break, named on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Assessments are recorded only with an active type.
    AssessmentTypeActive,
}

impl caseway_platform::error::Rule for Rule {
    fn name(self) -> &'static str {
        match self {
            Rule::AssessmentTypeActive => "assessment_type_active",
        }
    }
}

/// A stored assessment type.
#[derive(Clone, Debug)]
pub struct AssessmentType {
    pub id: Uuid,
    pub fields: AssessmentTypeFields,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A recorded assessment, with its type's code.
#[derive(Clone, Debug)]
pub struct Assessment {
    pub id: Uuid,
    pub client_id: Uuid,
    pub assessment_type_id: Uuid,
    pub assessment_type_code: String,
    pub assessment_type_version: i64,
    pub assessment_date: NaiveDate,
    pub answers: Vec<Answer>,
    pub recorded_by: String,
    pub created_at: DateTime<Utc>,
}

/// An assessment type to create, checked.
#[derive(Debug)]
pub struct NewAssessmentType {
    pub asked: Asked,
    pub fields: AssessmentTypeFields,
}

/// A change of an assessment type: the fields the mask names, at the version the caller read
/// (if it said).
#[derive(Debug)]
pub struct AssessmentTypeUpdate {
    pub id: Uuid,
    pub expected: Option<i64>,
    pub mask: Vec<&'static str>,
    pub fields: AssessmentTypeFields,
}

/// A page of the tenant's assessment types; `filter` is what the page token is bound to.
#[derive(Clone, Debug)]
pub struct AssessmentTypeList {
    pub include_retired: bool,
    pub filter: Vec<u8>,
    pub page: PageRequest,
}

/// An assessment to record, as far as it can be read without its type: what it names, the
/// answers as sent, and what is wrong so far. The answers are checked against the type, which
/// the use case loads, and every violation of the request is told together.
#[derive(Debug)]
pub struct AssessmentDraft {
    pub asked: Asked,
    pub client_id: Option<Uuid>,
    pub assessment_type_id: Option<Uuid>,
    pub assessment_date: Option<NaiveDate>,
    pub answers: Vec<(String, Option<AnswerValue>)>,
    pub violations: Violations,
}

/// A page of a client's assessments, of one type if given; `filter` is what the page token is
/// bound to.
#[derive(Clone, Debug)]
pub struct AssessmentList {
    pub client_id: Uuid,
    pub assessment_type_id: Option<Uuid>,
    pub filter: Vec<u8>,
    pub page: PageRequest,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn income() -> AssessmentTypeFields {
        AssessmentTypeFields {
            code: "INCOME".into(),
            name: "Income".into(),
            description: String::new(),
            fields: vec![
                FieldDefinition {
                    key: "monthly_income".into(),
                    label: "Monthly income".into(),
                    field_type: FieldType::Decimal,
                    required: true,
                    options: vec![],
                },
                FieldDefinition {
                    key: "household_size".into(),
                    label: "Household size".into(),
                    field_type: FieldType::Integer,
                    required: true,
                    options: vec![],
                },
                FieldDefinition {
                    key: "source".into(),
                    label: "Main source".into(),
                    field_type: FieldType::Code,
                    required: false,
                    options: vec![
                        FieldOption {
                            code: "EMPLOYMENT".into(),
                            label: "Employment".into(),
                        },
                        FieldOption {
                            code: "BENEFITS".into(),
                            label: "Benefits".into(),
                        },
                    ],
                },
            ],
            retired: false,
        }
    }

    fn fields(v: Violations) -> Vec<String> {
        v.fields()
    }

    #[test]
    fn answers_of_the_right_types_are_kept_in_field_order_with_canonical_decimals() {
        let mut v = Violations::new();
        let answers = check_answers(
            &income(),
            vec![
                ("source".into(), Some(AnswerValue::Code("BENEFITS".into()))),
                ("household_size".into(), Some(AnswerValue::Integer(3))),
                (
                    "monthly_income".into(),
                    Some(AnswerValue::Decimal("1250.50".into())),
                ),
            ],
            "answers",
            &mut v,
        );
        assert!(v.is_empty());
        assert_eq!(
            answers.iter().map(|a| a.key.as_str()).collect::<Vec<_>>(),
            ["monthly_income", "household_size", "source"]
        );
        assert_eq!(answers[0].value, AnswerValue::Decimal("1250.5".into()));
    }

    #[test]
    fn wrong_kinds_missing_required_fields_and_unknown_keys_name_the_field() {
        let mut v = Violations::new();
        check_answers(
            &income(),
            vec![
                (
                    "household_size".into(),
                    Some(AnswerValue::Text("three".into())),
                ),
                ("source".into(), Some(AnswerValue::Code("LOTTERY".into()))),
                ("pets".into(), Some(AnswerValue::Integer(2))),
            ],
            "answers",
            &mut v,
        );
        let mut got = fields(v);
        got.sort();
        assert_eq!(
            got,
            [
                "answers.household_size",
                "answers.monthly_income",
                "answers.pets",
                "answers.source"
            ]
        );
    }

    #[test]
    fn definitions_need_keys_labels_and_options_where_they_belong() {
        let mut definition = income();
        definition.fields[1].key = "monthly_income".into();
        definition.fields[2].options.clear();
        definition.fields[0].options.push(FieldOption {
            code: "X".into(),
            label: "X".into(),
        });
        let mut v = Violations::new();
        definition.validate("assessment_type", &mut v);
        let mut got = fields(v);
        got.sort();
        assert_eq!(
            got,
            [
                "assessment_type.fields[0].options",
                "assessment_type.fields[1].key",
                "assessment_type.fields[2].options"
            ]
        );
    }

    #[test]
    fn rules_keep_their_wire_names() {
        use caseway_platform::error::Rule as _;
        assert_eq!(Rule::AssessmentTypeActive.name(), "assessment_type_active");
    }

    #[test]
    fn stored_answers_read_back_with_their_type() {
        let answer = Answer {
            key: "monthly_income".into(),
            value: AnswerValue::Decimal("1250.5".into()),
        };
        let json = serde_json::to_value(&answer).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"key": "monthly_income", "type": "decimal", "value": "1250.5"})
        );
        assert_eq!(serde_json::from_value::<Answer>(json).unwrap(), answer);
    }
}
