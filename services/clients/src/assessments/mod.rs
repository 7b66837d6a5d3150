//! Assessments: tenant-defined types of typed fields, and the assessments recorded for clients
//! against them, kept as history.

pub mod domain;
pub mod store;

use std::sync::Arc;

use chrono::Utc;
use tonic::{Request, Response, Status};

use caseway_api::clients::v1 as pb;
use caseway_api::clients::v1::assessments_service_server::AssessmentsService;
use caseway_api::common::v1::LifecycleState;
use caseway_api::events::v1::{AssessmentRecorded, AssessmentTypeChanged};
use caseway_platform::Scoped;
use caseway_platform::audit::{self, AuditEntry};
use caseway_platform::auth::{Principal, principal};
use caseway_platform::convert::{date, timestamp};
use caseway_platform::error::{Error, Result};
use caseway_platform::etag::{self, check_version};
use caseway_platform::idempotency::{self, Claim};
use caseway_platform::outbox::{self, Event};
use caseway_platform::server::Platform;
use caseway_platform::validate::{self, Violations, parse_id};

use crate::{SOURCE, client_must_exist, ensure_client};
use domain::*;
use store::{AssessmentRecord, AssessmentTypeRecord, NewAssessment};

pub struct AssessmentsApi {
    platform: Arc<Platform>,
}

impl AssessmentsApi {
    pub fn new(platform: Arc<Platform>) -> Self {
        AssessmentsApi { platform }
    }
}

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

pub fn type_to_proto(r: &AssessmentTypeRecord) -> pb::AssessmentType {
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

pub fn assessment_to_proto(r: &AssessmentRecord) -> pb::Assessment {
    pb::Assessment {
        id: r.id.to_string(),
        client_id: r.client_id.to_string(),
        assessment_type_id: r.assessment_type_id.to_string(),
        assessment_type_code: r.assessment_type_code.clone(),
        assessment_date: Some(date(r.assessment_date)),
        answers: r.answers.0.iter().map(answer_to_proto).collect(),
        recorded_by: r.recorded_by.clone(),
        create_time: Some(timestamp(r.created_at)),
    }
}

async fn publish_type(
    tx: &mut impl Scoped,
    verb: &str,
    record: &AssessmentTypeRecord,
    changed_fields: Vec<String>,
) -> Result<()> {
    outbox::enqueue(
        tx,
        Event {
            event_type: &format!("clients.assessment_type_{verb}.v1"),
            source: SOURCE,
            subject: record.id.to_string(),
            payload: &AssessmentTypeChanged {
                assessment_type: Some(type_to_proto(record)),
                changed_fields,
            },
        },
    )
    .await?;
    Ok(())
}

async fn audit_entry(
    tx: &mut impl Scoped,
    caller: &Principal,
    action: &str,
    resource_type: &str,
    id: uuid::Uuid,
    changed: &[String],
) -> Result<()> {
    audit::record(
        tx,
        caller,
        AuditEntry {
            action,
            resource_type,
            resource_id: id,
            changed_fields: changed,
        },
    )
    .await
}

#[tonic::async_trait]
impl AssessmentsService for AssessmentsApi {
    async fn create_assessment_type(
        &self,
        request: Request<pb::CreateAssessmentTypeRequest>,
    ) -> Result<Response<pb::CreateAssessmentTypeResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let message = request.into_inner();
        let input = message
            .assessment_type
            .as_ref()
            .ok_or_else(|| Error::invalid("assessment_type", "is required"))?;
        let mut v = Violations::new();
        v.request_id(&message.request_id);
        let fields = parse_type(input, &mut v);
        fields.validate("assessment_type", &mut v);
        v.finish()?;
        let method = "clients.assessment_type.create";
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        if let Claim::Replay(previous) =
            idempotency::claim(&mut tx, method, &message.request_id, &message).await?
        {
            return Ok(Response::new(previous));
        }
        let record = store::insert_type(tx.conn(), tenant, &fields)
            .await
            .map_err(|e| match e {
                Error::AlreadyExists(_) => {
                    Error::AlreadyExists(format!("assessment type {} already exists", fields.code))
                }
                e => e,
            })?;
        audit_entry(&mut tx, &caller, method, "assessment_type", record.id, &[]).await?;
        publish_type(&mut tx, "created", &record, vec![]).await?;
        let reply = pb::CreateAssessmentTypeResponse {
            assessment_type: Some(type_to_proto(&record)),
        };
        idempotency::complete(&mut tx, method, &message.request_id, &reply).await?;
        tx.commit().await?;
        Ok(Response::new(reply))
    }

    async fn get_assessment_type(
        &self,
        request: Request<pb::GetAssessmentTypeRequest>,
    ) -> Result<Response<pb::GetAssessmentTypeResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let record = store::load_type(tx.conn(), id, false)
            .await?
            .ok_or_else(|| Error::not_found("assessment type", id))?;
        tx.commit().await?;
        Ok(Response::new(pb::GetAssessmentTypeResponse {
            assessment_type: Some(type_to_proto(&record)),
        }))
    }

    async fn update_assessment_type(
        &self,
        request: Request<pb::UpdateAssessmentTypeRequest>,
    ) -> Result<Response<pb::UpdateAssessmentTypeResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let message = request.into_inner();
        let input = message
            .assessment_type
            .ok_or_else(|| Error::invalid("assessment_type", "is required"))?;
        let id = parse_id("assessment_type.id", &input.id)?;
        let expected = etag::parse("assessment_type.etag", &input.etag)?;
        let mask =
            validate::update_mask(message.update_mask.as_ref(), AssessmentTypeFields::MUTABLE)?;
        let mut v = Violations::new();
        let fields = parse_type(&input, &mut v);
        v.retain_masked("assessment_type", &mask);
        v.finish()?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let current = store::load_type(tx.conn(), id, true)
            .await?
            .ok_or_else(|| Error::not_found("assessment type", id))?;
        check_version(expected, current.version)?;
        let mut next = current.fields.clone();
        let changed = next.merge(&fields, &mask);
        let mut v = Violations::new();
        next.validate("assessment_type", &mut v);
        v.finish()?;
        if changed.is_empty() {
            return Ok(Response::new(pb::UpdateAssessmentTypeResponse {
                assessment_type: Some(type_to_proto(&current)),
            }));
        }
        let record = store::update_type(tx.conn(), id, &next).await?;
        audit_entry(
            &mut tx,
            &caller,
            "clients.assessment_type.update",
            "assessment_type",
            id,
            &changed,
        )
        .await?;
        publish_type(&mut tx, "updated", &record, changed).await?;
        tx.commit().await?;
        Ok(Response::new(pb::UpdateAssessmentTypeResponse {
            assessment_type: Some(type_to_proto(&record)),
        }))
    }

    async fn list_assessment_types(
        &self,
        request: Request<pb::ListAssessmentTypesRequest>,
    ) -> Result<Response<pb::ListAssessmentTypesResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let message = request.into_inner();
        let limit = validate::page_size(message.page_size)?;
        let filter = [u8::from(message.include_retired)];
        let tokens = &self.platform.page_tokens;
        let after: Option<String> = tokens.decode(&message.page_token, tenant, &filter)?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let mut rows =
            store::list_types(tx.conn(), message.include_retired, after, limit + 1).await?;
        tx.commit().await?;
        let next_page_token =
            tokens.finish_page(&mut rows, limit, tenant, &filter, |r| r.fields.code.clone());
        Ok(Response::new(pb::ListAssessmentTypesResponse {
            assessment_types: rows.iter().map(type_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn record_assessment(
        &self,
        request: Request<pb::RecordAssessmentRequest>,
    ) -> Result<Response<pb::RecordAssessmentResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let message = request.into_inner();
        let input = message
            .assessment
            .as_ref()
            .ok_or_else(|| Error::invalid("assessment", "is required"))?;
        let mut v = Violations::new();
        v.request_id(&message.request_id);
        let client_id = v.id("assessment.client_id", &input.client_id);
        let type_id = v.id("assessment.assessment_type_id", &input.assessment_type_id);
        let assessment_date = validate::date(
            &mut v,
            "assessment.assessment_date",
            input.assessment_date.as_ref(),
            true,
        );
        if assessment_date.is_some_and(|d| d > Utc::now().date_naive()) {
            v.add("assessment.assessment_date", "must not be in the future");
        }
        let answers = parse_answers(&input.answers, "assessment.answers", &mut v);
        let method = "clients.assessment.record";
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let assessment_type = match type_id {
            Some(id) => store::load_type(tx.conn(), id, false).await?,
            None => None,
        };
        let answers = match &assessment_type {
            Some(t) => check_answers(&t.fields, answers, "assessment.answers", &mut v),
            None => {
                if type_id.is_some() {
                    v.add(
                        "assessment.assessment_type_id",
                        "does not name an assessment type of this tenant",
                    );
                }
                Vec::new()
            }
        };
        v.finish()?;
        let (client_id, type_id, assessment_date, assessment_type) = (
            client_id.expect("validated"),
            type_id.expect("validated"),
            assessment_date.expect("validated"),
            assessment_type.expect("validated"),
        );
        if let Claim::Replay(previous) =
            idempotency::claim(&mut tx, method, &message.request_id, &message).await?
        {
            return Ok(Response::new(previous));
        }
        if assessment_type.fields.retired {
            return Err(Error::precondition(
                "assessment_type_active",
                format!("assessment_types/{type_id}"),
                "the assessment type is retired; record with an active type",
            )
            .into());
        }
        client_must_exist(&mut tx, "assessment.client_id", client_id).await?;
        let record = store::insert_assessment(
            tx.conn(),
            tenant,
            NewAssessment {
                client_id,
                assessment_type: &assessment_type,
                assessment_date,
                answers: &answers,
                recorded_by: &caller.user_id,
            },
        )
        .await?;
        audit_entry(&mut tx, &caller, method, "assessment", record.id, &[]).await?;
        let assessment = assessment_to_proto(&record);
        outbox::enqueue(
            &mut tx,
            Event {
                event_type: "clients.assessment_recorded.v1",
                source: SOURCE,
                subject: record.id.to_string(),
                payload: &AssessmentRecorded {
                    assessment: Some(assessment.clone()),
                },
            },
        )
        .await?;
        let reply = pb::RecordAssessmentResponse {
            assessment: Some(assessment),
        };
        idempotency::complete(&mut tx, method, &message.request_id, &reply).await?;
        tx.commit().await?;
        Ok(Response::new(reply))
    }

    async fn get_assessment(
        &self,
        request: Request<pb::GetAssessmentRequest>,
    ) -> Result<Response<pb::GetAssessmentResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let record = store::load_assessment(tx.conn(), id)
            .await?
            .ok_or_else(|| Error::not_found("assessment", id))?;
        tx.commit().await?;
        Ok(Response::new(pb::GetAssessmentResponse {
            assessment: Some(assessment_to_proto(&record)),
        }))
    }

    async fn list_assessments(
        &self,
        request: Request<pb::ListAssessmentsRequest>,
    ) -> Result<Response<pb::ListAssessmentsResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let message = request.into_inner();
        let mut v = Violations::new();
        let client_id = v.id("client_id", &message.client_id);
        let type_id = v.optional_id("assessment_type_id", &message.assessment_type_id);
        v.finish()?;
        let client_id = client_id.expect("validated");
        let limit = validate::page_size(message.page_size)?;
        let filter = format!("{}/{}", message.client_id, message.assessment_type_id);
        let tokens = &self.platform.page_tokens;
        let after = tokens.decode(&message.page_token, tenant, filter.as_bytes())?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        ensure_client(&mut tx, client_id).await?;
        let mut rows =
            store::list_assessments(tx.conn(), client_id, type_id, after, limit + 1).await?;
        tx.commit().await?;
        let next_page_token =
            tokens.finish_page(&mut rows, limit, tenant, filter.as_bytes(), |r| {
                (r.assessment_date, r.id)
            });
        Ok(Response::new(pb::ListAssessmentsResponse {
            assessments: rows.iter().map(assessment_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn list_latest_assessments(
        &self,
        request: Request<pb::ListLatestAssessmentsRequest>,
    ) -> Result<Response<pb::ListLatestAssessmentsResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let client_id = parse_id("client_id", &request.get_ref().client_id)?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        ensure_client(&mut tx, client_id).await?;
        let rows = store::latest_assessments(tx.conn(), client_id).await?;
        tx.commit().await?;
        Ok(Response::new(pb::ListLatestAssessmentsResponse {
            assessments: rows.iter().map(assessment_to_proto).collect(),
        }))
    }
}
