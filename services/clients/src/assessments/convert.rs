//! The convert room of assessments: proto <-> domain. Requests are parsed into checked domain
//! inputs (or every violation they have); types and assessments are encoded as they leave the
//! service.

use chrono::NaiveDate;
use uuid::Uuid;

use caseway_api::clients::v1 as pb;
use caseway_api::common::v1::LifecycleState;
use caseway_platform::convert::{date, timestamp};
use caseway_platform::error::{Error, Result};
use caseway_platform::etag;
use caseway_platform::validate::{self, Violations, parse_id};

use super::domain::*;
use crate::convert::asked;
use crate::domain::Listed;
use caseway_platform::paging::PageRequest;

fn field_type(v: &mut Violations, field: &str, value: i32) -> FieldType {
    match pb::FieldType::try_from(value) {
        Ok(pb::FieldType::Integer) => FieldType::Integer,
        Ok(pb::FieldType::Decimal) => FieldType::Decimal,
        Ok(pb::FieldType::Boolean) => FieldType::Boolean,
        Ok(pb::FieldType::Date) => FieldType::Date,
        Ok(pb::FieldType::Code) => FieldType::Code,
        Ok(pb::FieldType::Text) => FieldType::Text,
        _ => {
            v.add(
                field,
                "must be INTEGER, DECIMAL, BOOLEAN, DATE, CODE or TEXT",
            );
            FieldType::Text
        }
    }
}

fn field_type_to_proto(t: FieldType) -> pb::FieldType {
    match t {
        FieldType::Integer => pb::FieldType::Integer,
        FieldType::Decimal => pb::FieldType::Decimal,
        FieldType::Boolean => pb::FieldType::Boolean,
        FieldType::Date => pb::FieldType::Date,
        FieldType::Code => pb::FieldType::Code,
        FieldType::Text => pb::FieldType::Text,
    }
}

fn parse_type(p: &pb::AssessmentType, v: &mut Violations) -> AssessmentTypeFields {
    AssessmentTypeFields {
        code: p.code.clone(),
        name: p.name.clone(),
        description: p.description.clone(),
        fields: p
            .fields
            .iter()
            .enumerate()
            .map(|(index, f)| FieldDefinition {
                key: f.key.clone(),
                label: f.label.clone(),
                field_type: field_type(
                    v,
                    &format!("assessment_type.fields[{index}].type"),
                    f.r#type,
                ),
                required: f.required,
                options: f
                    .options
                    .iter()
                    .map(|o| FieldOption {
                        code: o.code.clone(),
                        label: o.label.clone(),
                    })
                    .collect(),
            })
            .collect(),
        retired: match LifecycleState::try_from(p.state) {
            Ok(LifecycleState::Unspecified | LifecycleState::Active) => false,
            Ok(LifecycleState::Retired) => true,
            Err(_) => {
                v.add("assessment_type.state", "must be ACTIVE or RETIRED");
                false
            }
        },
    }
}

/// The mutable fields of an assessment type that `p` sets (not left at their default): what
/// an update without a mask changes.
pub fn type_fields_set(p: &pb::AssessmentType) -> Vec<&'static str> {
    [
        (!p.name.is_empty(), "name"),
        (!p.description.is_empty(), "description"),
        (!p.fields.is_empty(), "fields"),
        (p.state != 0, "state"),
    ]
    .into_iter()
    .filter_map(|(set, field)| set.then_some(field))
    .collect()
}

pub fn create_type_request(message: &pb::CreateAssessmentTypeRequest) -> Result<NewAssessmentType> {
    let input = message
        .assessment_type
        .as_ref()
        .ok_or_else(|| Error::invalid("assessment_type", "is required"))?;
    let mut v = Violations::new();
    v.request_id(&message.request_id);
    let fields = parse_type(input, &mut v);
    fields.validate("assessment_type", &mut v);
    v.finish()?;
    Ok(NewAssessmentType {
        asked: asked(&message.request_id, message),
        fields,
    })
}

pub fn get_type_request(message: &pb::GetAssessmentTypeRequest) -> Result<Uuid> {
    parse_id("id", &message.id)
}

/// A change of an assessment type: the fields its mask names (or that it sets, without a
/// mask), each checked; the whole definition is checked once merged with the stored one.
pub fn update_type_request(
    message: &pb::UpdateAssessmentTypeRequest,
) -> Result<AssessmentTypeUpdate> {
    let input = message
        .assessment_type
        .as_ref()
        .ok_or_else(|| Error::invalid("assessment_type", "is required"))?;
    let id = parse_id("assessment_type.id", &input.id)?;
    let expected = etag::parse("assessment_type.etag", &input.etag)?;
    let mask = validate::update_mask(
        message.update_mask.as_ref(),
        AssessmentTypeFields::MUTABLE,
        &type_fields_set(input),
    )?;
    let mut v = Violations::new();
    let fields = parse_type(input, &mut v);
    v.retain_masked("assessment_type", &mask);
    v.finish()?;
    Ok(AssessmentTypeUpdate {
        id,
        expected,
        mask,
        fields,
    })
}

pub fn list_types_request(message: &pb::ListAssessmentTypesRequest) -> AssessmentTypeList {
    AssessmentTypeList {
        include_retired: message.include_retired,
        filter: vec![u8::from(message.include_retired)],
        page: PageRequest {
            size: message.page_size,
            token: message.page_token.clone(),
        },
    }
}

/// The answers of a request, as the domain checks them; a date that is no calendar date is a
/// violation here.
fn parse_answers(
    answers: &[pb::AssessmentAnswer],
    prefix: &str,
    v: &mut Violations,
) -> Vec<(String, Option<AnswerValue>)> {
    use pb::assessment_answer::Value;
    let mut parsed = Vec::with_capacity(answers.len());
    for a in answers {
        let value = match &a.value {
            None => None,
            Some(Value::IntegerValue(n)) => Some(AnswerValue::Integer(*n)),
            Some(Value::DecimalValue(d)) => Some(AnswerValue::Decimal(d.clone())),
            Some(Value::BooleanValue(b)) => Some(AnswerValue::Boolean(*b)),
            Some(Value::DateValue(d)) => {
                match validate::date(v, &format!("{prefix}.{}", a.key), Some(d), true) {
                    Some(d) => Some(AnswerValue::Date(d)),
                    // Already reported; the rest is checked against the type.
                    None => continue,
                }
            }
            Some(Value::CodeValue(c)) => Some(AnswerValue::Code(c.clone())),
            Some(Value::TextValue(t)) => Some(AnswerValue::Text(t.clone())),
        };
        parsed.push((a.key.clone(), value));
    }
    parsed
}

/// An assessment to record, read as far as it can be without its type; `today` bounds its
/// date.
pub fn record_request(
    message: &pb::RecordAssessmentRequest,
    today: NaiveDate,
) -> Result<AssessmentDraft> {
    let input = message
        .assessment
        .as_ref()
        .ok_or_else(|| Error::invalid("assessment", "is required"))?;
    let mut v = Violations::new();
    v.request_id(&message.request_id);
    let client_id = v.id("assessment.client_id", &input.client_id);
    let assessment_type_id = v.id("assessment.assessment_type_id", &input.assessment_type_id);
    let assessment_date = validate::date(
        &mut v,
        "assessment.assessment_date",
        input.assessment_date.as_ref(),
        true,
    );
    if assessment_date.is_some_and(|d| d > today) {
        v.add("assessment.assessment_date", "must not be in the future");
    }
    let answers = parse_answers(&input.answers, "assessment.answers", &mut v);
    Ok(AssessmentDraft {
        asked: asked(&message.request_id, message),
        client_id,
        assessment_type_id,
        assessment_date,
        answers,
        violations: v,
    })
}

pub fn get_assessment_request(message: &pb::GetAssessmentRequest) -> Result<Uuid> {
    parse_id("id", &message.id)
}

pub fn list_assessments_request(message: &pb::ListAssessmentsRequest) -> Result<AssessmentList> {
    let mut v = Violations::new();
    let client_id = v.id("client_id", &message.client_id);
    let assessment_type_id = v.optional_id("assessment_type_id", &message.assessment_type_id);
    v.finish_with(client_id.map(|client_id| AssessmentList {
        client_id,
        assessment_type_id,
        filter: format!("{}/{}", message.client_id, message.assessment_type_id).into_bytes(),
        page: PageRequest {
            size: message.page_size,
            token: message.page_token.clone(),
        },
    }))
}

pub fn list_latest_request(message: &pb::ListLatestAssessmentsRequest) -> Result<Uuid> {
    parse_id("client_id", &message.client_id)
}

pub fn type_to_proto(r: &AssessmentType) -> pb::AssessmentType {
    let f = &r.fields;
    pb::AssessmentType {
        id: r.id.to_string(),
        code: f.code.clone(),
        name: f.name.clone(),
        description: f.description.clone(),
        fields: f
            .fields
            .iter()
            .map(|d| pb::AssessmentField {
                key: d.key.clone(),
                label: d.label.clone(),
                r#type: field_type_to_proto(d.field_type) as i32,
                required: d.required,
                options: d
                    .options
                    .iter()
                    .map(|o| pb::FieldOption {
                        code: o.code.clone(),
                        label: o.label.clone(),
                    })
                    .collect(),
            })
            .collect(),
        state: if f.retired {
            LifecycleState::Retired
        } else {
            LifecycleState::Active
        } as i32,
        etag: etag::format(r.version),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
    }
}

fn answer_to_proto(a: &Answer) -> pb::AssessmentAnswer {
    use pb::assessment_answer::Value;
    pb::AssessmentAnswer {
        key: a.key.clone(),
        value: Some(match &a.value {
            AnswerValue::Integer(n) => Value::IntegerValue(*n),
            AnswerValue::Decimal(d) => Value::DecimalValue(d.clone()),
            AnswerValue::Boolean(b) => Value::BooleanValue(*b),
            AnswerValue::Date(d) => Value::DateValue(date(*d)),
            AnswerValue::Code(c) => Value::CodeValue(c.clone()),
            AnswerValue::Text(t) => Value::TextValue(t.clone()),
        }),
    }
}

pub fn assessment_to_proto(r: &Assessment) -> pb::Assessment {
    pb::Assessment {
        id: r.id.to_string(),
        client_id: r.client_id.to_string(),
        assessment_type_id: r.assessment_type_id.to_string(),
        assessment_type_code: r.assessment_type_code.clone(),
        assessment_date: Some(date(r.assessment_date)),
        answers: r.answers.iter().map(answer_to_proto).collect(),
        recorded_by: r.recorded_by.clone(),
        create_time: Some(timestamp(r.created_at)),
    }
}

pub fn type_created(r: &AssessmentType) -> pb::CreateAssessmentTypeResponse {
    pb::CreateAssessmentTypeResponse {
        assessment_type: Some(type_to_proto(r)),
    }
}

pub fn type_read(r: &AssessmentType) -> pb::GetAssessmentTypeResponse {
    pb::GetAssessmentTypeResponse {
        assessment_type: Some(type_to_proto(r)),
    }
}

pub fn type_updated(r: &AssessmentType) -> pb::UpdateAssessmentTypeResponse {
    pb::UpdateAssessmentTypeResponse {
        assessment_type: Some(type_to_proto(r)),
    }
}

pub fn types(page: Listed<AssessmentType>) -> pb::ListAssessmentTypesResponse {
    pb::ListAssessmentTypesResponse {
        assessment_types: page.items.iter().map(type_to_proto).collect(),
        next_page_token: page.next_page_token,
    }
}

pub fn assessment_recorded(r: &Assessment) -> pb::RecordAssessmentResponse {
    pb::RecordAssessmentResponse {
        assessment: Some(assessment_to_proto(r)),
    }
}

pub fn assessment_read(r: &Assessment) -> pb::GetAssessmentResponse {
    pb::GetAssessmentResponse {
        assessment: Some(assessment_to_proto(r)),
    }
}

pub fn assessments(page: Listed<Assessment>) -> pb::ListAssessmentsResponse {
    pb::ListAssessmentsResponse {
        assessments: page.items.iter().map(assessment_to_proto).collect(),
        next_page_token: page.next_page_token,
    }
}

pub fn latest_assessments(rows: &[Assessment]) -> pb::ListLatestAssessmentsResponse {
    pb::ListLatestAssessmentsResponse {
        assessments: rows.iter().map(assessment_to_proto).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_without_a_mask_changes_what_it_sets() {
        let p = pb::AssessmentType {
            name: "Income".into(),
            state: LifecycleState::Retired as i32,
            ..Default::default()
        };
        assert_eq!(type_fields_set(&p), ["name", "state"]);
    }
}
