//! The catalog's proto <-> domain conversions: each request read into a checked domain input
//! (a create's fields, an update's patch, a list's filter) or every violation at once; and
//! catalog entries encoded as the wire types replies and events carry.

use prost::Message;
use uuid::Uuid;

use caseway_api::catalog::v1 as pb;
use caseway_api::common::v1::LifecycleState;
use caseway_platform::auth::Principal;
use caseway_platform::convert::{date, timestamp};
use caseway_platform::error::{Error, Result};
use caseway_platform::etag;
use caseway_platform::idempotency::Fingerprint;
use caseway_platform::validate::{self, Violations, parse_id};

use crate::domain::*;

// ---- domain -> proto ----

fn state_to_proto(state: State) -> i32 {
    match state {
        State::Active => LifecycleState::Active as i32,
        State::Retired => LifecycleState::Retired as i32,
    }
}

fn ids_to_proto(ids: &[Uuid]) -> Vec<String> {
    ids.iter().map(Uuid::to_string).collect()
}

pub fn service_group_to_proto(r: &Record<ServiceGroupFields>) -> pb::ServiceGroup {
    pb::ServiceGroup {
        id: r.id.to_string(),
        name: r.fields.name.clone(),
        description: r.fields.description.clone(),
        etag: etag::format(r.version),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
    }
}

pub fn service_to_proto(r: &Record<ServiceFields>) -> pb::Service {
    let f = &r.fields;
    pb::Service {
        id: r.id.to_string(),
        code: f.code.clone(),
        name: f.name.clone(),
        description: f.description.clone(),
        unit_of_measure: match f.unit_of_measure {
            UnitOfMeasure::Dollars => pb::UnitOfMeasure::Dollars,
            UnitOfMeasure::Hours => pb::UnitOfMeasure::Hours,
            UnitOfMeasure::Minutes => pb::UnitOfMeasure::Minutes,
            UnitOfMeasure::Count => pb::UnitOfMeasure::Count,
        } as i32,
        default_unit_value: f.default_unit_value.round_dp(2).to_string(),
        delivery_mode: match f.delivery_mode {
            DeliveryMode::Direct => pb::DeliveryMode::Direct,
            DeliveryMode::Indirect => pb::DeliveryMode::Indirect,
        } as i32,
        service_group_id: f
            .service_group_id
            .map(|g| g.to_string())
            .unwrap_or_default(),
        organization_ids: ids_to_proto(&f.organization_ids),
        grant_ids: ids_to_proto(&f.grant_ids),
        program_ids: ids_to_proto(&f.program_ids),
        unit_value_fixed: f.unit_value_fixed,
        state: state_to_proto(r.state),
        etag: etag::format(r.version),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
    }
}

pub fn grant_to_proto(r: &Record<GrantFields>) -> pb::Grant {
    let f = &r.fields;
    pb::Grant {
        id: r.id.to_string(),
        code: f.code.clone(),
        name: f.name.clone(),
        funder: f.funder.clone(),
        start_date: Some(date(f.start_date)),
        end_date: f.end_date.map(date),
        budget: f
            .budget
            .map(|b| b.round_dp(2).to_string())
            .unwrap_or_default(),
        state: state_to_proto(r.state),
        etag: etag::format(r.version),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
    }
}

pub fn program_to_proto(r: &Record<ProgramFields>) -> pb::Program {
    let f = &r.fields;
    pb::Program {
        id: r.id.to_string(),
        code: f.code.clone(),
        name: f.name.clone(),
        description: f.description.clone(),
        start_date: Some(date(f.start_date)),
        end_date: f.end_date.map(date),
        state: state_to_proto(r.state),
        etag: etag::format(r.version),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
    }
}

pub fn provider_to_proto(r: &Record<ProviderFields>) -> pb::Provider {
    let f = &r.fields;
    pb::Provider {
        id: r.id.to_string(),
        name: f.name.clone(),
        kind: match f.kind {
            ProviderKind::Staff => pb::ProviderKind::Staff,
            ProviderKind::Vendor => pb::ProviderKind::Vendor,
        } as i32,
        email: f.email.clone(),
        phone: f.phone.clone(),
        state: state_to_proto(r.state),
        etag: etag::format(r.version),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
    }
}

fn code_list_to_proto(list: CodeList) -> pb::CodeList {
    match list {
        CodeList::Reason => pb::CodeList::Reason,
        CodeList::Goal => pb::CodeList::Goal,
        CodeList::ReferralPlan => pb::CodeList::ReferralPlan,
        CodeList::BarrierType => pb::CodeList::BarrierType,
        CodeList::TurnAwayReason => pb::CodeList::TurnAwayReason,
        CodeList::Race => pb::CodeList::Race,
        CodeList::Ethnicity => pb::CodeList::Ethnicity,
        CodeList::Gender => pb::CodeList::Gender,
    }
}

pub fn code_value_to_proto(r: &Record<CodeValueFields>) -> pb::CodeValue {
    let f = &r.fields;
    pb::CodeValue {
        id: r.id.to_string(),
        code_list: code_list_to_proto(f.code_list) as i32,
        code: f.code.clone(),
        label: f.label.clone(),
        sort_order: f.sort_order,
        state: state_to_proto(r.state),
        etag: etag::format(r.version),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
    }
}

/// The services restricted to security organizations, with them.
pub fn service_restrictions_to_proto(
    restrictions: Vec<(Uuid, Vec<Uuid>)>,
) -> pb::ListServiceRestrictionsResponse {
    pb::ListServiceRestrictionsResponse {
        restrictions: restrictions
            .into_iter()
            .map(|(id, organizations)| pb::ServiceRestriction {
                service_id: id.to_string(),
                organization_ids: ids_to_proto(&organizations),
            })
            .collect(),
    }
}

/// What a create of each kind answers. The reply is stored under the request id, so that a
/// retry of the request gets the answer the first one got.
pub trait Created: Resource {
    type Reply: Message + Default;

    fn reply(record: &Record<Self>) -> Self::Reply;

    /// The id of the entry a reply names.
    fn created_id(reply: &Self::Reply) -> Option<&str>;
}

impl Created for ServiceGroupFields {
    type Reply = pb::CreateServiceGroupResponse;

    fn reply(record: &Record<Self>) -> Self::Reply {
        pb::CreateServiceGroupResponse {
            service_group: Some(service_group_to_proto(record)),
        }
    }

    fn created_id(reply: &Self::Reply) -> Option<&str> {
        reply.service_group.as_ref().map(|e| e.id.as_str())
    }
}

impl Created for ServiceFields {
    type Reply = pb::CreateServiceResponse;

    fn reply(record: &Record<Self>) -> Self::Reply {
        pb::CreateServiceResponse {
            service: Some(service_to_proto(record)),
        }
    }

    fn created_id(reply: &Self::Reply) -> Option<&str> {
        reply.service.as_ref().map(|e| e.id.as_str())
    }
}

impl Created for GrantFields {
    type Reply = pb::CreateGrantResponse;

    fn reply(record: &Record<Self>) -> Self::Reply {
        pb::CreateGrantResponse {
            grant: Some(grant_to_proto(record)),
        }
    }

    fn created_id(reply: &Self::Reply) -> Option<&str> {
        reply.grant.as_ref().map(|e| e.id.as_str())
    }
}

impl Created for ProgramFields {
    type Reply = pb::CreateProgramResponse;

    fn reply(record: &Record<Self>) -> Self::Reply {
        pb::CreateProgramResponse {
            program: Some(program_to_proto(record)),
        }
    }

    fn created_id(reply: &Self::Reply) -> Option<&str> {
        reply.program.as_ref().map(|e| e.id.as_str())
    }
}

impl Created for ProviderFields {
    type Reply = pb::CreateProviderResponse;

    fn reply(record: &Record<Self>) -> Self::Reply {
        pb::CreateProviderResponse {
            provider: Some(provider_to_proto(record)),
        }
    }

    fn created_id(reply: &Self::Reply) -> Option<&str> {
        reply.provider.as_ref().map(|e| e.id.as_str())
    }
}

impl Created for CodeValueFields {
    type Reply = pb::CreateCodeValueResponse;

    fn reply(record: &Record<Self>) -> Self::Reply {
        pb::CreateCodeValueResponse {
            code_value: Some(code_value_to_proto(record)),
        }
    }

    fn created_id(reply: &Self::Reply) -> Option<&str> {
        reply.code_value.as_ref().map(|e| e.id.as_str())
    }
}

// ---- proto -> domain: single fields ----

fn unit_of_measure(v: &mut Violations, field: &str, value: i32) -> Option<UnitOfMeasure> {
    match pb::UnitOfMeasure::try_from(value) {
        Ok(pb::UnitOfMeasure::Dollars) => Some(UnitOfMeasure::Dollars),
        Ok(pb::UnitOfMeasure::Hours) => Some(UnitOfMeasure::Hours),
        Ok(pb::UnitOfMeasure::Minutes) => Some(UnitOfMeasure::Minutes),
        Ok(pb::UnitOfMeasure::Count) => Some(UnitOfMeasure::Count),
        Ok(pb::UnitOfMeasure::Unspecified) => {
            v.add(field, "is required");
            None
        }
        Err(_) => {
            v.add(field, "is not a unit of measure");
            None
        }
    }
}

/// A delivery mode; unspecified is a violation when `required`, otherwise no mode (a list
/// filter that does not narrow).
fn delivery_mode(
    v: &mut Violations,
    field: &str,
    value: i32,
    required: bool,
) -> Option<DeliveryMode> {
    match pb::DeliveryMode::try_from(value) {
        Ok(pb::DeliveryMode::Direct) => Some(DeliveryMode::Direct),
        Ok(pb::DeliveryMode::Indirect) => Some(DeliveryMode::Indirect),
        Ok(pb::DeliveryMode::Unspecified) => {
            if required {
                v.add(field, "is required");
            }
            None
        }
        Err(_) => {
            v.add(field, "is not a delivery mode");
            None
        }
    }
}

/// A provider kind; unspecified is a violation when `required`, otherwise no kind.
fn provider_kind(
    v: &mut Violations,
    field: &str,
    value: i32,
    required: bool,
) -> Option<ProviderKind> {
    match pb::ProviderKind::try_from(value) {
        Ok(pb::ProviderKind::Staff) => Some(ProviderKind::Staff),
        Ok(pb::ProviderKind::Vendor) => Some(ProviderKind::Vendor),
        Ok(pb::ProviderKind::Unspecified) => {
            if required {
                v.add(field, "is required");
            }
            None
        }
        Err(_) => {
            v.add(field, "is not a provider kind");
            None
        }
    }
}

fn code_list(v: &mut Violations, field: &str, value: i32) -> Option<CodeList> {
    match pb::CodeList::try_from(value) {
        Ok(pb::CodeList::Reason) => Some(CodeList::Reason),
        Ok(pb::CodeList::Goal) => Some(CodeList::Goal),
        Ok(pb::CodeList::ReferralPlan) => Some(CodeList::ReferralPlan),
        Ok(pb::CodeList::BarrierType) => Some(CodeList::BarrierType),
        Ok(pb::CodeList::TurnAwayReason) => Some(CodeList::TurnAwayReason),
        Ok(pb::CodeList::Race) => Some(CodeList::Race),
        Ok(pb::CodeList::Ethnicity) => Some(CodeList::Ethnicity),
        Ok(pb::CodeList::Gender) => Some(CodeList::Gender),
        Ok(pb::CodeList::Unspecified) => {
            v.add(field, "is required");
            None
        }
        Err(_) => {
            v.add(field, "is not a code list");
            None
        }
    }
}

/// An id that may be empty: `Some(None)` when it is, None when it is not a UUID (reported).
fn optional_id(v: &mut Violations, field: &str, value: &str) -> Option<Option<Uuid>> {
    if value.is_empty() {
        Some(None)
    } else {
        v.id(field, value).map(Some)
    }
}

/// A date that may be unset: `Some(None)` when it is, None when it is not a calendar date
/// (reported).
fn optional_date(
    v: &mut Violations,
    field: &str,
    value: Option<&caseway_api::google::r#type::Date>,
) -> Option<Option<chrono::NaiveDate>> {
    match value {
        None => Some(None),
        Some(value) => validate::date(v, field, Some(value), false).map(Some),
    }
}

/// A decimal that may be empty: `Some(None)` when it is, None when it does not parse
/// (reported).
fn optional_decimal(
    v: &mut Violations,
    field: &str,
    value: &str,
    max_scale: u32,
) -> Option<Option<rust_decimal::Decimal>> {
    if value.is_empty() {
        Some(None)
    } else {
        v.decimal(field, value, max_scale).map(Some)
    }
}

// ---- proto -> domain: resources ----

/// Which fields of a resource a request gives: every one (a create) or those of the update
/// mask (an update).
#[derive(Clone, Copy)]
enum Given<'a> {
    Every,
    Masked(&'a [&'static str]),
}

impl Given<'_> {
    /// `parse` of the field when the request gives it; None when it does not, or when the
    /// value does not parse (`parse` reports why).
    fn parse<T>(self, field: &str, parse: impl FnOnce() -> Option<T>) -> Option<T> {
        let given = match self {
            Given::Every => true,
            Given::Masked(mask) => mask.contains(&field),
        };
        if given { parse() } else { None }
    }

    fn copy<T: Clone>(self, field: &str, value: &T) -> Option<T> {
        self.parse(field, || Some(value.clone()))
    }
}

fn service_group_patch(
    p: &pb::ServiceGroup,
    given: Given<'_>,
    _: &mut Violations,
) -> ServiceGroupPatch {
    ServiceGroupPatch {
        name: given.copy("name", &p.name),
        description: given.copy("description", &p.description),
    }
}

fn service_patch(p: &pb::Service, given: Given<'_>, v: &mut Violations) -> ServicePatch {
    ServicePatch {
        code: given.copy("code", &p.code),
        name: given.copy("name", &p.name),
        description: given.copy("description", &p.description),
        unit_of_measure: given.parse("unit_of_measure", || {
            unit_of_measure(v, "service.unit_of_measure", p.unit_of_measure)
        }),
        default_unit_value: given.parse("default_unit_value", || {
            v.decimal("service.default_unit_value", &p.default_unit_value, 2)
        }),
        delivery_mode: given.parse("delivery_mode", || {
            delivery_mode(v, "service.delivery_mode", p.delivery_mode, true)
        }),
        service_group_id: given.parse("service_group_id", || {
            optional_id(v, "service.service_group_id", &p.service_group_id)
        }),
        organization_ids: given.parse("organization_ids", || {
            Some(v.ids("service.organization_ids", &p.organization_ids, MAX_LINKS))
        }),
        grant_ids: given.parse("grant_ids", || {
            Some(v.ids("service.grant_ids", &p.grant_ids, MAX_LINKS))
        }),
        program_ids: given.parse("program_ids", || {
            Some(v.ids("service.program_ids", &p.program_ids, MAX_LINKS))
        }),
        unit_value_fixed: given.copy("unit_value_fixed", &p.unit_value_fixed),
    }
}

fn grant_patch(p: &pb::Grant, given: Given<'_>, v: &mut Violations) -> GrantPatch {
    GrantPatch {
        code: given.copy("code", &p.code),
        name: given.copy("name", &p.name),
        funder: given.copy("funder", &p.funder),
        start_date: given.parse("start_date", || {
            validate::date(v, "grant.start_date", p.start_date.as_ref(), true)
        }),
        end_date: given.parse("end_date", || {
            optional_date(v, "grant.end_date", p.end_date.as_ref())
        }),
        budget: given.parse("budget", || {
            optional_decimal(v, "grant.budget", &p.budget, 2)
        }),
    }
}

fn program_patch(p: &pb::Program, given: Given<'_>, v: &mut Violations) -> ProgramPatch {
    ProgramPatch {
        code: given.copy("code", &p.code),
        name: given.copy("name", &p.name),
        description: given.copy("description", &p.description),
        start_date: given.parse("start_date", || {
            validate::date(v, "program.start_date", p.start_date.as_ref(), true)
        }),
        end_date: given.parse("end_date", || {
            optional_date(v, "program.end_date", p.end_date.as_ref())
        }),
    }
}

fn provider_patch(p: &pb::Provider, given: Given<'_>, v: &mut Violations) -> ProviderPatch {
    ProviderPatch {
        name: given.copy("name", &p.name),
        kind: given.parse("kind", || provider_kind(v, "provider.kind", p.kind, true)),
        email: given.copy("email", &p.email),
        phone: given.copy("phone", &p.phone),
    }
}

fn code_value_patch(p: &pb::CodeValue, given: Given<'_>, v: &mut Violations) -> CodeValuePatch {
    CodeValuePatch {
        code_list: given.parse("code_list", || {
            code_list(v, "code_value.code_list", p.code_list)
        }),
        code: given.copy("code", &p.code),
        label: given.copy("label", &p.label),
        sort_order: given.copy("sort_order", &p.sort_order),
    }
}

// ---- the mutable fields a request sets (AIP-134: what an empty update mask means) ----

/// The names of `fields` whose value is set (not the default).
fn set_of(fields: &[(&'static str, bool)]) -> Vec<&'static str> {
    fields
        .iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| *name)
        .collect()
}

/// The mutable fields of a service group the request sets.
pub fn service_group_fields_set(p: &pb::ServiceGroup) -> Vec<&'static str> {
    set_of(&[
        ("name", !p.name.is_empty()),
        ("description", !p.description.is_empty()),
    ])
}

/// The mutable fields of a service the request sets.
pub fn service_fields_set(p: &pb::Service) -> Vec<&'static str> {
    set_of(&[
        ("code", !p.code.is_empty()),
        ("name", !p.name.is_empty()),
        ("description", !p.description.is_empty()),
        ("unit_of_measure", p.unit_of_measure != 0),
        ("default_unit_value", !p.default_unit_value.is_empty()),
        ("delivery_mode", p.delivery_mode != 0),
        ("service_group_id", !p.service_group_id.is_empty()),
        ("organization_ids", !p.organization_ids.is_empty()),
        ("grant_ids", !p.grant_ids.is_empty()),
        ("program_ids", !p.program_ids.is_empty()),
        ("unit_value_fixed", p.unit_value_fixed),
    ])
}

/// The mutable fields of a grant the request sets.
pub fn grant_fields_set(p: &pb::Grant) -> Vec<&'static str> {
    set_of(&[
        ("code", !p.code.is_empty()),
        ("name", !p.name.is_empty()),
        ("funder", !p.funder.is_empty()),
        ("start_date", p.start_date.is_some()),
        ("end_date", p.end_date.is_some()),
        ("budget", !p.budget.is_empty()),
    ])
}

/// The mutable fields of a program the request sets.
pub fn program_fields_set(p: &pb::Program) -> Vec<&'static str> {
    set_of(&[
        ("code", !p.code.is_empty()),
        ("name", !p.name.is_empty()),
        ("description", !p.description.is_empty()),
        ("start_date", p.start_date.is_some()),
        ("end_date", p.end_date.is_some()),
    ])
}

/// The mutable fields of a provider the request sets.
pub fn provider_fields_set(p: &pb::Provider) -> Vec<&'static str> {
    set_of(&[
        ("name", !p.name.is_empty()),
        ("kind", p.kind != 0),
        ("email", !p.email.is_empty()),
        ("phone", !p.phone.is_empty()),
    ])
}

/// The mutable fields of a code value the request sets (its list is not one: it is fixed at
/// creation).
pub fn code_value_fields_set(p: &pb::CodeValue) -> Vec<&'static str> {
    set_of(&[
        ("code", !p.code.is_empty()),
        ("label", !p.label.is_empty()),
        ("sort_order", p.sort_order != 0),
    ])
}

// ---- requests ----

/// Reads a resource for a create: every field counts, and every violation is reported at once.
fn create<R: Message, P, F: Resource>(
    request: &R,
    request_id: &str,
    resource: Option<&P>,
    kind: &str,
    parse: impl Fn(&P, Given<'_>, &mut Violations) -> F::Patch,
) -> Result<Retryable<F>> {
    let resource = resource.ok_or_else(|| Error::invalid(kind, "is required"))?;
    let mut violations = Violations::new();
    let patch = parse(resource, Given::Every, &mut violations);
    F::check(&patch, kind, &mut violations);
    let fields = violations.finish_with(F::complete(patch))?;
    Ok(Retryable {
        request_id: request_id.to_string(),
        fingerprint: Fingerprint::of(request),
        change: fields,
    })
}

/// Reads an update: the id, the expected version, and the patch of the fields the mask names
/// (only those are read and checked here; the merged entry is checked by the use case).
fn update<P, F: Resource>(
    resource: Option<&P>,
    mask: Option<&prost_types::FieldMask>,
    kind: &str,
    id_of: impl Fn(&P) -> &str,
    etag_of: impl Fn(&P) -> &str,
    set: impl Fn(&P) -> Vec<&'static str>,
    parse: impl Fn(&P, Given<'_>, &mut Violations) -> F::Patch,
) -> Result<Update<F::Patch>> {
    let resource = resource.ok_or_else(|| Error::invalid(kind, "is required"))?;
    let id = parse_id(&format!("{kind}.id"), id_of(resource))?;
    let expected_version = etag::parse(&format!("{kind}.etag"), etag_of(resource))?;
    let mask = validate::update_mask(mask, F::MUTABLE, &set(resource))?;
    let mut violations = Violations::new();
    let patch = parse(resource, Given::Masked(&mask), &mut violations);
    violations.finish()?;
    Ok(Update {
        id,
        expected_version,
        patch,
    })
}

/// The id of a get.
pub fn id(value: &str) -> Result<Uuid> {
    parse_id("id", value)
}

/// The entry of a retire or a delete, and the etag it must still have (when given).
pub fn target(id: &str, etag: &str) -> Result<Target> {
    Ok(Target {
        id: parse_id("id", id)?,
        expected_version: etag::parse("etag", etag)?,
    })
}

/// A retirement's target, with its request id checked.
pub fn retire_target(id: &str, etag: &str, request_id: &str) -> Result<Target> {
    let target = target(id, etag)?;
    let mut v = caseway_platform::validate::Violations::new();
    v.request_id(request_id);
    v.finish()?;
    Ok(target)
}

pub fn create_service_group(
    m: &pb::CreateServiceGroupRequest,
) -> Result<Retryable<ServiceGroupFields>> {
    create(
        m,
        &m.request_id,
        m.service_group.as_ref(),
        "service_group",
        service_group_patch,
    )
}

pub fn update_service_group(
    m: &pb::UpdateServiceGroupRequest,
) -> Result<Update<ServiceGroupPatch>> {
    update::<_, ServiceGroupFields>(
        m.service_group.as_ref(),
        m.update_mask.as_ref(),
        "service_group",
        |p| &p.id,
        |p| &p.etag,
        service_group_fields_set,
        service_group_patch,
    )
}

pub fn create_service(m: &pb::CreateServiceRequest) -> Result<Retryable<ServiceFields>> {
    create(
        m,
        &m.request_id,
        m.service.as_ref(),
        "service",
        service_patch,
    )
}

pub fn update_service(m: &pb::UpdateServiceRequest) -> Result<Update<ServicePatch>> {
    update::<_, ServiceFields>(
        m.service.as_ref(),
        m.update_mask.as_ref(),
        "service",
        |p| &p.id,
        |p| &p.etag,
        service_fields_set,
        service_patch,
    )
}

pub fn create_grant(m: &pb::CreateGrantRequest) -> Result<Retryable<GrantFields>> {
    create(m, &m.request_id, m.grant.as_ref(), "grant", grant_patch)
}

pub fn update_grant(m: &pb::UpdateGrantRequest) -> Result<Update<GrantPatch>> {
    update::<_, GrantFields>(
        m.grant.as_ref(),
        m.update_mask.as_ref(),
        "grant",
        |p| &p.id,
        |p| &p.etag,
        grant_fields_set,
        grant_patch,
    )
}

pub fn create_program(m: &pb::CreateProgramRequest) -> Result<Retryable<ProgramFields>> {
    create(
        m,
        &m.request_id,
        m.program.as_ref(),
        "program",
        program_patch,
    )
}

pub fn update_program(m: &pb::UpdateProgramRequest) -> Result<Update<ProgramPatch>> {
    update::<_, ProgramFields>(
        m.program.as_ref(),
        m.update_mask.as_ref(),
        "program",
        |p| &p.id,
        |p| &p.etag,
        program_fields_set,
        program_patch,
    )
}

pub fn create_provider(m: &pb::CreateProviderRequest) -> Result<Retryable<ProviderFields>> {
    create(
        m,
        &m.request_id,
        m.provider.as_ref(),
        "provider",
        provider_patch,
    )
}

pub fn update_provider(m: &pb::UpdateProviderRequest) -> Result<Update<ProviderPatch>> {
    update::<_, ProviderFields>(
        m.provider.as_ref(),
        m.update_mask.as_ref(),
        "provider",
        |p| &p.id,
        |p| &p.etag,
        provider_fields_set,
        provider_patch,
    )
}

pub fn create_code_value(m: &pb::CreateCodeValueRequest) -> Result<Retryable<CodeValueFields>> {
    create(
        m,
        &m.request_id,
        m.code_value.as_ref(),
        "code_value",
        code_value_patch,
    )
}

pub fn update_code_value(m: &pb::UpdateCodeValueRequest) -> Result<Update<CodeValuePatch>> {
    update::<_, CodeValueFields>(
        m.code_value.as_ref(),
        m.update_mask.as_ref(),
        "code_value",
        |p| &p.id,
        |p| &p.etag,
        code_value_fields_set,
        code_value_patch,
    )
}

// ---- lists ----

/// A list request read: what narrows the list, and the bytes its page tokens are bound to.
pub struct ListQuery<F> {
    pub filter: F,
    /// The request without its paging fields (and whatever else narrows what the caller
    /// sees): a page token is valid only for the query it was issued for.
    pub bound_to: Vec<u8>,
}

/// Encodes a list request without its paging fields: page tokens are bound to it.
fn without_paging<M: Message + Clone>(message: &M, clear: impl Fn(&mut M)) -> Vec<u8> {
    let mut filter = message.clone();
    clear(&mut filter);
    filter.encode_to_vec()
}

fn query_of(query: &str) -> Option<String> {
    (!query.is_empty()).then(|| query.to_string())
}

pub fn list_service_groups(m: &pb::ListServiceGroupsRequest) -> ListQuery<()> {
    ListQuery {
        filter: (),
        bound_to: without_paging(m, |f| {
            f.page_size = 0;
            f.page_token.clear();
        }),
    }
}

/// A service list as `principal` may see it: restricted services only of its organizations,
/// unless it administers the tenant.
pub fn list_services(
    m: &pb::ListServicesRequest,
    principal: &Principal,
) -> Result<ListQuery<ServiceFilter>> {
    let mut v = Violations::new();
    let service_group_id = v.optional_id("service_group_id", &m.service_group_id);
    let grant_id = v.optional_id("grant_id", &m.grant_id);
    let program_id = v.optional_id("program_id", &m.program_id);
    let mode = delivery_mode(&mut v, "delivery_mode", m.delivery_mode, false);
    v.text("query", &m.query, 0, 200);
    v.finish()?;
    let filter = ServiceFilter {
        service_group_id,
        delivery_mode: mode,
        grant_id,
        program_id,
        query: query_of(&m.query),
        include_retired: m.include_retired,
        visible_to_organizations: visible_organizations(principal),
    };
    // Bound to the caller's organizations too: a token is not a way to see more.
    let mut bound_to = without_paging(m, |f| {
        f.page_size = 0;
        f.page_token.clear();
    });
    bound_to.extend(format!("{:?}", filter.visible_to_organizations).bytes());
    Ok(ListQuery { filter, bound_to })
}

pub fn list_grants(m: &pb::ListGrantsRequest) -> Result<ListQuery<PeriodFilter>> {
    let mut v = Violations::new();
    v.text("query", &m.query, 0, 200);
    let active_on = validate::date(&mut v, "active_on", m.active_on.as_ref(), false);
    v.finish()?;
    Ok(ListQuery {
        filter: PeriodFilter {
            query: query_of(&m.query),
            active_on,
            include_retired: m.include_retired,
        },
        bound_to: without_paging(m, |f| {
            f.page_size = 0;
            f.page_token.clear();
        }),
    })
}

pub fn list_programs(m: &pb::ListProgramsRequest) -> Result<ListQuery<PeriodFilter>> {
    let mut v = Violations::new();
    v.text("query", &m.query, 0, 200);
    let active_on = validate::date(&mut v, "active_on", m.active_on.as_ref(), false);
    v.finish()?;
    Ok(ListQuery {
        filter: PeriodFilter {
            query: query_of(&m.query),
            active_on,
            include_retired: m.include_retired,
        },
        bound_to: without_paging(m, |f| {
            f.page_size = 0;
            f.page_token.clear();
        }),
    })
}

pub fn list_providers(m: &pb::ListProvidersRequest) -> Result<ListQuery<ProviderFilter>> {
    let mut v = Violations::new();
    v.text("query", &m.query, 0, 200);
    let kind = provider_kind(&mut v, "kind", m.kind, false);
    v.finish()?;
    Ok(ListQuery {
        filter: ProviderFilter {
            query: query_of(&m.query),
            kind,
            include_retired: m.include_retired,
        },
        bound_to: without_paging(m, |f| {
            f.page_size = 0;
            f.page_token.clear();
        }),
    })
}

pub fn list_code_values(m: &pb::ListCodeValuesRequest) -> Result<ListQuery<CodeValueFilter>> {
    let mut v = Violations::new();
    let list = code_list(&mut v, "code_list", m.code_list);
    let filter = v.finish_with(list.map(|code_list| CodeValueFilter {
        code_list,
        include_retired: m.include_retired,
    }))?;
    Ok(ListQuery {
        filter,
        bound_to: without_paging(m, |f| {
            f.page_size = 0;
            f.page_token.clear();
        }),
    })
}

#[cfg(test)]
mod tests {
    use caseway_platform::auth::Role;

    use super::*;

    fn service() -> pb::Service {
        pb::Service {
            code: "FC".into(),
            name: "Financial Counseling".into(),
            unit_of_measure: pb::UnitOfMeasure::Hours as i32,
            default_unit_value: "45.00".into(),
            delivery_mode: pb::DeliveryMode::Direct as i32,
            ..Default::default()
        }
    }

    fn violated(result: Result<impl std::fmt::Debug>) -> Vec<String> {
        match result {
            Err(Error::InvalidArgument(violations)) => {
                violations.into_iter().map(|v| v.field).collect()
            }
            other => panic!("expected violations, got {other:?}"),
        }
    }

    fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
        Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        })
    }

    #[test]
    fn a_create_reports_every_bad_field_at_once() {
        let request = pb::CreateServiceRequest {
            request_id: String::new(),
            service: Some(pb::Service {
                code: String::new(),
                name: "   ".into(),
                unit_of_measure: 99,
                default_unit_value: "-1".into(),
                delivery_mode: pb::DeliveryMode::Direct as i32,
                ..Default::default()
            }),
        };
        assert_eq!(
            violated(create_service(&request)),
            [
                "service.unit_of_measure",
                "service.default_unit_value",
                "service.code",
                "service.name"
            ]
        );
    }

    #[test]
    fn a_value_that_does_not_parse_is_refused_not_zero() {
        let mut bad = service();
        bad.default_unit_value = "twelve".into();
        let request = pb::CreateServiceRequest {
            request_id: String::new(),
            service: Some(bad),
        };
        assert_eq!(
            violated(create_service(&request)),
            ["service.default_unit_value"]
        );
    }

    #[test]
    fn a_create_reads_every_field_and_fingerprints_the_request() {
        let request = pb::CreateServiceRequest {
            request_id: "r-1".into(),
            service: Some(service()),
        };
        let input = create_service(&request).unwrap();
        assert_eq!(input.request_id, "r-1");
        assert_eq!(input.fingerprint, Fingerprint::of(&request));
        assert_eq!(input.change.unit_of_measure, UnitOfMeasure::Hours);
        assert_eq!(input.change.default_unit_value.to_string(), "45.00");
        assert_eq!(input.change.service_group_id, None);
    }

    #[test]
    fn an_update_reads_only_what_its_mask_names() {
        let id = Uuid::now_v7();
        let request = pb::UpdateServiceRequest {
            service: Some(pb::Service {
                id: id.to_string(),
                name: "Counseling".into(),
                ..Default::default()
            }),
            update_mask: mask(&["name"]),
        };
        let update = update_service(&request).unwrap();
        assert_eq!(update.id, id);
        assert_eq!(update.expected_version, None);
        assert_eq!(
            update.patch,
            ServicePatch {
                name: Some("Counseling".into()),
                ..Default::default()
            }
        );
        // A masked field that does not parse is refused; an unmasked one is not read.
        let request = pb::UpdateServiceRequest {
            service: Some(pb::Service {
                id: id.to_string(),
                ..Default::default()
            }),
            update_mask: mask(&["unit_of_measure", "service_group_id"]),
        };
        let update = update_service(&request);
        assert_eq!(violated(update), ["service.unit_of_measure"]);
    }

    #[test]
    fn an_empty_mask_means_the_fields_the_request_sets_and_a_star_every_field() {
        let id = Uuid::now_v7().to_string();
        let request = pb::UpdateGrantRequest {
            grant: Some(pb::Grant {
                id: id.clone(),
                funder: "HUD".into(),
                ..Default::default()
            }),
            update_mask: None,
        };
        let update = update_grant(&request).unwrap();
        assert_eq!(
            update.patch,
            GrantPatch {
                funder: Some("HUD".into()),
                ..Default::default()
            }
        );
        let request = pb::UpdateGrantRequest {
            grant: Some(pb::Grant {
                id,
                ..Default::default()
            }),
            update_mask: mask(&["*"]),
        };
        assert_eq!(violated(update_grant(&request)), ["grant.start_date"]);
    }

    #[test]
    fn the_fields_a_request_sets_are_those_not_at_their_default() {
        assert_eq!(
            service_fields_set(&service()),
            [
                "code",
                "name",
                "unit_of_measure",
                "default_unit_value",
                "delivery_mode"
            ]
        );
        assert_eq!(
            code_value_fields_set(&pb::CodeValue {
                code_list: pb::CodeList::Goal as i32,
                sort_order: 3,
                ..Default::default()
            }),
            ["sort_order"]
        );
        assert!(provider_fields_set(&pb::Provider::default()).is_empty());
    }

    #[test]
    fn an_optional_date_or_budget_left_empty_clears_it() {
        let request = pb::UpdateGrantRequest {
            grant: Some(pb::Grant {
                id: Uuid::now_v7().to_string(),
                ..Default::default()
            }),
            update_mask: mask(&["end_date", "budget"]),
        };
        let update = update_grant(&request).unwrap();
        assert_eq!(update.patch.end_date, Some(None));
        assert_eq!(update.patch.budget, Some(None));
    }

    #[test]
    fn a_service_list_is_bound_to_the_callers_organizations() {
        let north = Uuid::now_v7();
        let principal = |roles, orgs| Principal {
            user_id: "u".into(),
            tenant_id: None,
            organization_ids: orgs,
            roles,
            permissions: vec![],
            service: None,
        };
        let request = pb::ListServicesRequest::default();
        let admin = list_services(&request, &principal(vec![Role::TenantAdmin], vec![])).unwrap();
        let worker =
            list_services(&request, &principal(vec![Role::Caseworker], vec![north])).unwrap();
        assert_eq!(admin.filter.visible_to_organizations, None);
        assert_eq!(worker.filter.visible_to_organizations, Some(vec![north]));
        assert_ne!(admin.bound_to, worker.bound_to);
        // The paging fields are not part of the query.
        let next = pb::ListServicesRequest {
            page_size: 2,
            page_token: "t".into(),
            ..Default::default()
        };
        assert_eq!(
            list_services(&next, &principal(vec![Role::TenantAdmin], vec![]))
                .unwrap()
                .bound_to,
            admin.bound_to
        );
    }

    #[test]
    fn a_code_value_list_names_its_list() {
        assert_eq!(
            violated(list_code_values(&pb::ListCodeValuesRequest::default()).map(|q| q.filter)),
            ["code_list"]
        );
    }

    #[test]
    fn a_request_id_hashed_as_a_message_is_what_earlier_seeds_stored() {
        // The demo seed fingerprints its creates by their request id alone; earlier seeds
        // hashed a message holding it in field 1, and those keys must still match.
        let earlier = pb::GetServiceRequest {
            id: "seed-group-financial".into(),
        };
        assert_eq!(
            Fingerprint::of(&"seed-group-financial".to_string()),
            Fingerprint::of(&earlier)
        );
    }
}
