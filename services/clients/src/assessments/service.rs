//! The service room of assessments: the use cases of assessment types and of the assessments
//! recorded for clients, one function per operation, each owning its transaction, idempotency,
//! audit and the events it enqueues.

use std::sync::Arc;

use chrono::NaiveDate;
use uuid::Uuid;

use caseway_api::clients::v1 as pb;
use caseway_platform::Scoped;
use caseway_platform::audit::{self, AuditEntry};
use caseway_platform::auth::Principal;
use caseway_platform::caller::Caller;
use caseway_platform::error::{Error, Result};
use caseway_platform::etag::check_version;
use caseway_platform::idempotency::{self, Claim, Fingerprint, Key};
use caseway_platform::outbox;
use caseway_platform::server::Platform;
use caseway_platform::validate::Violations;

use super::convert;
use super::domain::*;
use super::events;
use super::store::{self, NewAssessment};
use crate::domain::{Asked, Listed};
use crate::service::{Outcome, client_must_exist, ensure_client};

async fn audit_entry(
    tx: &mut impl Scoped,
    caller: &Principal,
    action: &str,
    resource_type: &str,
    id: Uuid,
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

/// The idempotency key of a request to `method`.
fn key<'a>(method: &'a str, asked: &'a Asked) -> Key<'a> {
    Key::new(
        method,
        &asked.request_id,
        Fingerprint::of_bytes(&asked.request),
    )
}

pub struct Assessments {
    platform: Arc<Platform>,
}

impl Assessments {
    pub fn new(platform: Arc<Platform>) -> Self {
        Assessments { platform }
    }

    /// Defines an assessment type; its code is unique in the tenant.
    pub async fn create_type(
        &self,
        caller: &Caller,
        input: NewAssessmentType,
    ) -> Result<Outcome<AssessmentType, pb::CreateAssessmentTypeResponse>> {
        let tenant = caller.tenant;
        let fields = input.fields;
        let method = "clients.assessment_type.create";
        let key = key(method, &input.asked);
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        if let Claim::Replay(previous) = idempotency::claim(&mut tx, &key).await? {
            return Ok(Outcome::Replay(previous));
        }
        let record = store::insert_type(tx.conn(), tenant, &fields)
            .await
            .map_err(|e| match e {
                Error::AlreadyExists(_) => {
                    Error::AlreadyExists(format!("assessment type {} already exists", fields.code))
                }
                e => e,
            })?;
        audit_entry(
            &mut tx,
            &caller.principal,
            method,
            "assessment_type",
            record.id,
            &[],
        )
        .await?;
        outbox::enqueue(&mut tx, events::type_created(&record).event()).await?;
        idempotency::complete(&mut tx, &key, &convert::type_created(&record)).await?;
        tx.commit().await?;
        Ok(Outcome::Done(record))
    }

    pub async fn get_type(&self, caller: &Caller, id: Uuid) -> Result<AssessmentType> {
        let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
        let record = store::load_type(tx.conn(), id, false)
            .await?
            .ok_or_else(|| Error::not_found("assessment type", id))?;
        tx.commit().await?;
        Ok(record)
    }

    /// Changes the masked fields of a type; the stored type when nothing changes.
    pub async fn update_type(
        &self,
        caller: &Caller,
        input: AssessmentTypeUpdate,
    ) -> Result<AssessmentType> {
        let id = input.id;
        let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
        let current = store::load_type(tx.conn(), id, true)
            .await?
            .ok_or_else(|| Error::not_found("assessment type", id))?;
        check_version(input.expected, current.version)?;
        let mut next = current.fields.clone();
        let changed = next.merge(&input.fields, &input.mask);
        let mut v = Violations::new();
        next.validate("assessment_type", &mut v);
        v.finish()?;
        if changed.is_empty() {
            return Ok(current);
        }
        let record = store::update_type(tx.conn(), id, &next).await?;
        audit_entry(
            &mut tx,
            &caller.principal,
            "clients.assessment_type.update",
            "assessment_type",
            id,
            &changed,
        )
        .await?;
        outbox::enqueue(&mut tx, events::type_updated(&record, changed).event()).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// A page of the tenant's types by code, the retired ones only when asked for.
    pub async fn list_types(
        &self,
        caller: &Caller,
        input: AssessmentTypeList,
    ) -> Result<Listed<AssessmentType>> {
        let tenant = caller.tenant;
        let page = self.platform.page_tokens.page::<String>(
            tenant,
            &input.filter,
            input.page.size,
            &input.page.token,
        )?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let mut rows = store::list_types(
            tx.conn(),
            input.include_retired,
            page.after.clone(),
            page.limit + 1,
        )
        .await?;
        tx.commit().await?;
        let next_page_token = page.finish(&mut rows, |r| r.fields.code.clone());
        Ok(Listed {
            items: rows,
            next_page_token,
        })
    }

    /// Records an assessment of a client with an active type, its answers checked against the
    /// type (every violation of the request told together).
    pub async fn record(
        &self,
        caller: &Caller,
        input: AssessmentDraft,
    ) -> Result<Outcome<Assessment, pb::RecordAssessmentResponse>> {
        let tenant = caller.tenant;
        let mut v = input.violations;
        let method = "clients.assessment.record";
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let assessment_type = match input.assessment_type_id {
            Some(id) => store::load_type(tx.conn(), id, false).await?,
            None => None,
        };
        let answers = match &assessment_type {
            Some(t) => check_answers(&t.fields, input.answers, "assessment.answers", &mut v),
            None => {
                if input.assessment_type_id.is_some() {
                    v.add(
                        "assessment.assessment_type_id",
                        "does not name an assessment type of this tenant",
                    );
                }
                Vec::new()
            }
        };
        let (client_id, assessment_date, assessment_type): (Uuid, NaiveDate, AssessmentType) = v
            .finish_with((|| {
                Some((input.client_id?, input.assessment_date?, assessment_type?))
            })())?;
        let key = key(method, &input.asked);
        if let Claim::Replay(previous) = idempotency::claim(&mut tx, &key).await? {
            return Ok(Outcome::Replay(previous));
        }
        if assessment_type.fields.retired {
            return Err(Error::precondition(
                Rule::AssessmentTypeActive,
                format!("assessment_types/{}", assessment_type.id),
                "the assessment type is retired; record with an active type",
            ));
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
                recorded_by: &caller.principal.user_id,
            },
        )
        .await?;
        audit_entry(
            &mut tx,
            &caller.principal,
            method,
            "assessment",
            record.id,
            &[],
        )
        .await?;
        outbox::enqueue(&mut tx, events::assessment_recorded(&record).event()).await?;
        idempotency::complete(&mut tx, &key, &convert::assessment_recorded(&record)).await?;
        tx.commit().await?;
        Ok(Outcome::Done(record))
    }

    pub async fn get_assessment(&self, caller: &Caller, id: Uuid) -> Result<Assessment> {
        let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
        let record = store::load_assessment(tx.conn(), id)
            .await?
            .ok_or_else(|| Error::not_found("assessment", id))?;
        tx.commit().await?;
        Ok(record)
    }

    /// A page of a client's assessments, latest first, of one type if given.
    pub async fn list_assessments(
        &self,
        caller: &Caller,
        input: AssessmentList,
    ) -> Result<Listed<Assessment>> {
        let tenant = caller.tenant;
        let page = self.platform.page_tokens.page::<(NaiveDate, Uuid)>(
            tenant,
            &input.filter,
            input.page.size,
            &input.page.token,
        )?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        ensure_client(&mut tx, input.client_id).await?;
        let mut rows = store::list_assessments(
            tx.conn(),
            input.client_id,
            input.assessment_type_id,
            page.after,
            page.limit + 1,
        )
        .await?;
        tx.commit().await?;
        let next_page_token = page.finish(&mut rows, |r| (r.assessment_date, r.id));
        Ok(Listed {
            items: rows,
            next_page_token,
        })
    }

    /// The latest assessment of each type for a client, by type code.
    pub async fn list_latest(&self, caller: &Caller, client_id: Uuid) -> Result<Vec<Assessment>> {
        let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
        ensure_client(&mut tx, client_id).await?;
        let rows = store::latest_assessments(tx.conn(), client_id).await?;
        tx.commit().await?;
        Ok(rows)
    }
}
