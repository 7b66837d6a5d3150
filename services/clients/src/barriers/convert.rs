//! The convert room of barriers: proto <-> domain. Requests are parsed into checked domain
//! inputs (or every violation they have); barriers are encoded as they leave the service.

use chrono::NaiveDate;
use uuid::Uuid;

use caseway_api::clients::v1 as pb;
use caseway_platform::convert::{date, timestamp};
use caseway_platform::error::{Error, Result};
use caseway_platform::etag;
use caseway_platform::validate::{self, Violations, parse_id};

use super::domain::{
    Barrier, BarrierFields, BarrierList, BarrierStatus, BarrierUpdate, NewBarrier,
};
use crate::convert::asked;
use crate::domain::Listed;
use caseway_platform::paging::PageRequest;

fn status_of(v: &mut Violations, field: &str, value: i32, default: bool) -> BarrierStatus {
    match (BarrierStatus::from_code(value), value) {
        (Some(status), _) => status,
        (None, 0) if default => BarrierStatus::Identified,
        _ => {
            v.add(field, "must be IDENTIFIED, BEING_ADDRESSED or RESOLVED");
            BarrierStatus::Identified
        }
    }
}

/// The written fields of a barrier; `creating` lets the status default to IDENTIFIED.
fn parse_fields(p: &pb::Barrier, creating: bool, v: &mut Violations) -> Option<BarrierFields> {
    let identified = validate::date(
        v,
        "barrier.identified_date",
        p.identified_date.as_ref(),
        true,
    );
    let resolved = validate::date(v, "barrier.resolved_date", p.resolved_date.as_ref(), false);
    let status = status_of(v, "barrier.status", p.status, creating);
    identified.map(|identified_date| BarrierFields {
        identified_date,
        status,
        resolved_date: resolved,
        note: p.note.clone(),
    })
}

/// The mutable fields of a barrier that `p` sets (not left at their default): what an update
/// without a mask changes.
pub fn barrier_fields_set(p: &pb::Barrier) -> Vec<&'static str> {
    [
        (p.status != 0, "status"),
        (p.identified_date.is_some(), "identified_date"),
        (p.resolved_date.is_some(), "resolved_date"),
        (!p.note.is_empty(), "note"),
    ]
    .into_iter()
    .filter_map(|(set, field)| set.then_some(field))
    .collect()
}

/// A barrier to identify; `today` bounds its dates.
pub fn create_request(message: &pb::CreateBarrierRequest, today: NaiveDate) -> Result<NewBarrier> {
    let input = message
        .barrier
        .as_ref()
        .ok_or_else(|| Error::invalid("barrier", "is required"))?;
    let mut v = Violations::new();
    v.request_id(&message.request_id);
    let client_id = v.id("barrier.client_id", &input.client_id);
    let barrier_type_id = v.id("barrier.barrier_type_id", &input.barrier_type_id);
    let fields = parse_fields(input, true, &mut v);
    if let Some(fields) = &fields {
        fields.validate("barrier", today, &mut v);
    }
    v.finish_with((|| {
        Some(NewBarrier {
            asked: asked(&message.request_id, message),
            client_id: client_id?,
            barrier_type_id: barrier_type_id?,
            fields: fields?,
        })
    })())
}

pub fn get_request(message: &pb::GetBarrierRequest) -> Result<Uuid> {
    parse_id("id", &message.id)
}

/// A change of a barrier: the fields its mask names (or that it sets, without a mask), each
/// read; the rules across fields are checked once merged with the stored barrier.
pub fn update_request(message: &pb::UpdateBarrierRequest) -> Result<BarrierUpdate> {
    let input = message
        .barrier
        .as_ref()
        .ok_or_else(|| Error::invalid("barrier", "is required"))?;
    let id = parse_id("barrier.id", &input.id)?;
    let expected = etag::parse("barrier.etag", &input.etag)?;
    let mask = validate::update_mask(
        message.update_mask.as_ref(),
        BarrierFields::MUTABLE,
        &barrier_fields_set(input),
    )?;
    let mut v = Violations::new();
    let identified_date = validate::date(
        &mut v,
        "barrier.identified_date",
        input.identified_date.as_ref(),
        mask.contains(&"identified_date"),
    );
    let resolved_date = validate::date(
        &mut v,
        "barrier.resolved_date",
        input.resolved_date.as_ref(),
        false,
    );
    let status = status_of(&mut v, "barrier.status", input.status, false);
    v.retain_masked("barrier", &mask);
    v.finish()?;
    Ok(BarrierUpdate {
        id,
        expected,
        mask,
        identified_date,
        status,
        resolved_date,
        note: input.note.clone(),
    })
}

pub fn list_request(message: &pb::ListBarriersRequest) -> Result<BarrierList> {
    let mut v = Violations::new();
    let client_id = v.id("client_id", &message.client_id);
    let status = (message.status != 0).then(|| status_of(&mut v, "status", message.status, false));
    v.finish_with(client_id.map(|client_id| BarrierList {
        client_id,
        status,
        filter: format!("{}/{}", message.client_id, message.status).into_bytes(),
        page: PageRequest {
            size: message.page_size,
            token: message.page_token.clone(),
        },
    }))
}

pub fn barrier_to_proto(r: &Barrier) -> pb::Barrier {
    pb::Barrier {
        id: r.id.to_string(),
        client_id: r.client_id.to_string(),
        barrier_type_id: r.barrier_type_id.to_string(),
        barrier_type_code: r.barrier_type_code.clone(),
        identified_date: Some(date(r.fields.identified_date)),
        status: r.fields.status as i32,
        resolved_date: r.fields.resolved_date.map(date),
        note: r.fields.note.clone(),
        etag: etag::format(r.version),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
    }
}

pub fn barrier_created(r: &Barrier) -> pb::CreateBarrierResponse {
    pb::CreateBarrierResponse {
        barrier: Some(barrier_to_proto(r)),
    }
}

pub fn barrier_read(r: &Barrier) -> pb::GetBarrierResponse {
    pb::GetBarrierResponse {
        barrier: Some(barrier_to_proto(r)),
    }
}

pub fn barrier_updated(r: &Barrier) -> pb::UpdateBarrierResponse {
    pb::UpdateBarrierResponse {
        barrier: Some(barrier_to_proto(r)),
    }
}

pub fn barriers(page: Listed<Barrier>) -> pb::ListBarriersResponse {
    pb::ListBarriersResponse {
        barriers: page.items.iter().map(barrier_to_proto).collect(),
        next_page_token: page.next_page_token,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_without_a_mask_changes_what_it_sets() {
        let p = pb::Barrier {
            status: BarrierStatus::Resolved as i32,
            note: "housed".into(),
            ..Default::default()
        };
        assert_eq!(barrier_fields_set(&p), ["status", "note"]);
    }
}
