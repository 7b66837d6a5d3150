//! The convert room of the clients service: proto <-> domain. Each request is parsed into a
//! checked domain input (or every violation it has, in one INVALID_ARGUMENT); each domain value
//! is encoded as it leaves the service, SSNs masked unless the whole number is handed over.

use chrono::NaiveDate;
use prost::Message;
use uuid::Uuid;

use caseway_api::catalog::v1::CodeList;
use caseway_api::clients::v1 as pb;
use caseway_platform::audit::AuditRecord;
use caseway_platform::auth::Principal;
use caseway_platform::convert::{date, timestamp};
use caseway_platform::error::{Error, Result};
use caseway_platform::etag;
use caseway_platform::paging::PageRequest;
use caseway_platform::validate::{self, Violations, parse_id};

use crate::domain::*;

/// What a state change was asked: its request id and its encoding, to know a retry.
pub(crate) fn asked<M: Message>(request_id: &str, message: &M) -> Asked {
    Asked {
        request_id: request_id.to_string(),
        request: message.encode_to_vec(),
    }
}

fn quality(v: &mut Violations, field: &str, code: i32) -> DataQuality {
    match code {
        0 => DataQuality::NotCollected,
        code => DataQuality::from_code(code).unwrap_or_else(|| {
            v.add(field, "is not a data quality code");
            DataQuality::NotCollected
        }),
    }
}

fn parse_fields(p: &pb::Client, v: &mut Violations) -> ClientFields {
    let ssn = if p.ssn.is_empty() {
        None
    } else {
        match Ssn::parse(&p.ssn) {
            Ok(ssn) => Some(ssn),
            Err(description) => {
                v.add("client.ssn", description);
                None
            }
        }
    };
    let veteran_status = match p.veteran_status {
        0 => VeteranStatus::NotCollected,
        code => VeteranStatus::from_code(code).unwrap_or_else(|| {
            v.add("client.veteran_status", "is not a veteran status");
            VeteranStatus::NotCollected
        }),
    };
    let contact = p.contact.clone().unwrap_or_default();
    ClientFields {
        first_name: p.first_name.clone(),
        middle_name: p.middle_name.clone(),
        last_name: p.last_name.clone(),
        suffix: p.suffix.clone(),
        preferred_name: p.preferred_name.clone(),
        birth_date: validate::date(v, "client.birth_date", p.birth_date.as_ref(), false),
        birth_date_quality: quality(v, "client.birth_date_quality", p.birth_date_quality),
        ssn,
        ssn_quality: quality(v, "client.ssn_quality", p.ssn_quality),
        veteran_status,
        demographics: p
            .demographics
            .iter()
            .map(|d| Demographic {
                category: d.category.clone(),
                code: d.code.clone(),
            })
            .collect(),
        contact: Contact {
            phone: contact.phone,
            email: contact.email,
            address_line1: contact.address_line1,
            address_line2: contact.address_line2,
            city: contact.city,
            state: contact.state,
            postal_code: contact.postal_code,
        },
    }
}

/// The mutable fields of a client that `p` sets (not left at their default): what an update
/// without a mask changes.
pub fn client_fields_set(p: &pb::Client) -> Vec<&'static str> {
    [
        (!p.first_name.is_empty(), "first_name"),
        (!p.middle_name.is_empty(), "middle_name"),
        (!p.last_name.is_empty(), "last_name"),
        (!p.suffix.is_empty(), "suffix"),
        (!p.preferred_name.is_empty(), "preferred_name"),
        (p.birth_date.is_some(), "birth_date"),
        (p.birth_date_quality != 0, "birth_date_quality"),
        (!p.ssn.is_empty(), "ssn"),
        (p.ssn_quality != 0, "ssn_quality"),
        (p.veteran_status != 0, "veteran_status"),
        (!p.demographics.is_empty(), "demographics"),
        (p.contact.is_some(), "contact"),
    ]
    .into_iter()
    .filter_map(|(set, field)| set.then_some(field))
    .collect()
}

/// A client to create, its organization decided for `principal`; `today` bounds the date of
/// birth.
pub fn create_client_request(
    principal: &Principal,
    message: &pb::CreateClientRequest,
    today: NaiveDate,
) -> Result<NewClient> {
    let input = message
        .client
        .as_ref()
        .ok_or_else(|| Error::invalid("client", "is required"))?;
    let mut v = Violations::new();
    v.request_id(&message.request_id);
    let fields = parse_fields(input, &mut v);
    let requested = v.optional_id("client.organization_id", &input.organization_id);
    let organization_id = owning_organization(principal, requested, &mut v);
    fields.validate("client", today, &mut v);
    v.finish()?;
    Ok(NewClient {
        asked: asked(&message.request_id, message),
        fields,
        organization_id,
    })
}

pub fn get_client_request(message: &pb::GetClientRequest) -> Result<ClientRead> {
    let id = parse_id("id", &message.id)?;
    let whole_ssn = match pb::SsnView::try_from(message.ssn_view) {
        Ok(pb::SsnView::Full) => true,
        Ok(_) => false,
        Err(_) => return Err(Error::invalid("ssn_view", "is not an SSN view")),
    };
    Ok(ClientRead { id, whole_ssn })
}

/// A change of a client: the fields its mask names (or that it sets, without a mask), each
/// checked; the rules across fields are checked once merged with the stored client.
pub fn update_client_request(message: &pb::UpdateClientRequest) -> Result<ClientUpdate> {
    let input = message
        .client
        .as_ref()
        .ok_or_else(|| Error::invalid("client", "is required"))?;
    let id = parse_id("client.id", &input.id)?;
    let expected = etag::parse("client.etag", &input.etag)?;
    let mask = validate::update_mask(
        message.update_mask.as_ref(),
        ClientFields::MUTABLE,
        &client_fields_set(input),
    )?;
    let mut v = Violations::new();
    let fields = parse_fields(input, &mut v);
    v.retain_masked("client", &mask);
    v.finish()?;
    Ok(ClientUpdate {
        id,
        expected,
        mask,
        fields,
    })
}

pub fn delete_client_request(message: &pb::DeleteClientRequest) -> Result<ClientDeletion> {
    let id = parse_id("id", &message.id)?;
    let expected = etag::parse("etag", &message.etag)?;
    let mut v = Violations::new();
    v.text("reason", &message.reason, 1, 1000);
    v.finish()?;
    Ok(ClientDeletion {
        id,
        expected,
        reason: message.reason.clone(),
    })
}

pub fn history_request(message: &pb::ListClientHistoryRequest) -> Result<HistoryRequest> {
    Ok(HistoryRequest {
        id: parse_id("client_id", &message.client_id)?,
        page: PageRequest {
            size: message.page_size,
            token: message.page_token.clone(),
        },
    })
}

/// A search by name, date of birth and SSN (its last four digits, or the whole number, which
/// `principal` must be allowed to see).
pub fn search_request(
    principal: &Principal,
    message: &pb::SearchClientsRequest,
) -> Result<ClientSearch> {
    // The page size is told before anything else is read.
    validate::page_size(message.page_size)?;
    let mut v = Violations::new();
    let name = message.name.trim();
    // The edge refused a name over 200 characters; a name is read only once it passed
    // every check, since each split between words is one more reading to look up.
    let name_query = if name.is_empty() {
        None
    } else {
        let before = v.fields().len();
        v.text("name", name, 2, 200);
        if name_words(name) > MAX_NAME_WORDS {
            v.add("name", format!("must have at most {MAX_NAME_WORDS} words"));
        }
        if v.fields().len() > before {
            None
        } else {
            let parsed = NameQuery::parse(name);
            if parsed.is_none() {
                v.add("name", "must hold at least one letter or digit");
            }
            parsed
        }
    };
    let birth_date = validate::date(&mut v, "birth_date", message.birth_date.as_ref(), false);
    let digits: String = message
        .ssn
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .collect();
    let ssn = match digits.len() {
        0 => None,
        4 if digits.chars().all(|c| c.is_ascii_digit()) => Some(SsnQuery::Last4(digits.clone())),
        9 if digits.chars().all(|c| c.is_ascii_digit()) => {
            may_see_whole_ssn(principal, "searching by")?;
            match Ssn::parse(&digits) {
                Ok(ssn) => Some(SsnQuery::Whole(ssn)),
                Err(description) => {
                    v.add("ssn", description);
                    None
                }
            }
        }
        _ => {
            v.add("ssn", "must be the last four digits or all nine");
            None
        }
    };
    if name.is_empty() && birth_date.is_none() && digits.is_empty() {
        v.add(
            "name",
            "give a name, a date of birth or an SSN to search by",
        );
    }
    v.finish()?;
    // What a page token is bound to: the request as sent but for its SSN (which enters the
    // filter only as its keyed hash or last four digits) and its page.
    let filter = pb::SearchClientsRequest {
        name: message.name.clone(),
        birth_date: message.birth_date,
        ..Default::default()
    }
    .encode_to_vec();
    Ok(ClientSearch {
        name: name_query,
        birth_date,
        ssn,
        filter,
        page: PageRequest {
            size: message.page_size,
            token: message.page_token.clone(),
        },
    })
}

/// An enrollment to start; `today` bounds its entry date.
pub fn start_enrollment_request(
    message: &pb::StartEnrollmentRequest,
    today: NaiveDate,
) -> Result<NewEnrollment> {
    let input = message
        .enrollment
        .as_ref()
        .ok_or_else(|| Error::invalid("enrollment", "is required"))?;
    let mut v = Violations::new();
    v.request_id(&message.request_id);
    let client_id = v.id("enrollment.client_id", &input.client_id);
    let program_id = v.id("enrollment.program_id", &input.program_id);
    let entry_date = validate::date(
        &mut v,
        "enrollment.entry_date",
        input.entry_date.as_ref(),
        true,
    );
    validate_entry(entry_date, today, &mut v);
    v.finish_with((|| {
        Some(NewEnrollment {
            asked: asked(&message.request_id, message),
            client_id: client_id?,
            program_id: program_id?,
            entry_date: entry_date?,
        })
    })())
}

/// An exit; the rules that compare it with the entry are checked against the stored
/// enrollment.
pub fn exit_enrollment_request(message: &pb::ExitEnrollmentRequest) -> Result<EnrollmentExit> {
    let id = parse_id("id", &message.id)?;
    let expected = etag::parse("etag", &message.etag)?;
    let mut v = Violations::new();
    v.request_id(&message.request_id);
    let exit_date = validate::date(&mut v, "exit_date", message.exit_date.as_ref(), true);
    v.finish_with(exit_date.map(|exit_date| EnrollmentExit {
        id,
        expected,
        exit_date,
        exit_destination: message.exit_destination.clone(),
        request_id: message.request_id.clone(),
        fingerprint: caseway_platform::idempotency::Fingerprint::of(message),
    }))
}

pub fn get_enrollment_request(message: &pb::GetEnrollmentRequest) -> Result<Uuid> {
    parse_id("id", &message.id)
}

pub fn list_enrollments_request(message: &pb::ListEnrollmentsRequest) -> Result<EnrollmentList> {
    Ok(EnrollmentList {
        client_id: parse_id("client_id", &message.client_id)?,
        filter: message.client_id.as_bytes().to_vec(),
        page: PageRequest {
            size: message.page_size,
            token: message.page_token.clone(),
        },
    })
}

/// The catalog code list a demographic category takes its codes from.
pub fn code_list(category: DemographicCategory) -> CodeList {
    match category {
        DemographicCategory::Race => CodeList::Race,
        DemographicCategory::Ethnicity => CodeList::Ethnicity,
        DemographicCategory::Gender => CodeList::Gender,
    }
}

/// The client as it leaves the service: the SSN whole only when `whole` is given.
pub fn client_to_proto(client: &Client, whole: Option<&Ssn>) -> pb::Client {
    let last4 = client.ssn_last4.clone().unwrap_or_default();
    pb::Client {
        id: client.id.to_string(),
        first_name: client.first_name.clone(),
        middle_name: client.middle_name.clone(),
        last_name: client.last_name.clone(),
        suffix: client.suffix.clone(),
        preferred_name: client.preferred_name.clone(),
        birth_date: client.birth_date.map(date),
        birth_date_quality: client.birth_date_quality as i32,
        ssn: match (whole, client.ssn_last4.is_some()) {
            (Some(ssn), _) => ssn.formatted(),
            (None, true) => masked(&last4),
            (None, false) => String::new(),
        },
        ssn_last4: last4,
        ssn_quality: client.ssn_quality as i32,
        veteran_status: client.veteran_status as i32,
        demographics: client
            .demographics
            .iter()
            .map(|d| pb::Demographic {
                category: d.category.clone(),
                code: d.code.clone(),
            })
            .collect(),
        contact: Some(pb::Contact {
            phone: client.contact.phone.clone(),
            email: client.contact.email.clone(),
            address_line1: client.contact.address_line1.clone(),
            address_line2: client.contact.address_line2.clone(),
            city: client.contact.city.clone(),
            state: client.contact.state.clone(),
            postal_code: client.contact.postal_code.clone(),
        }),
        organization_id: client
            .organization_id
            .map(|o| o.to_string())
            .unwrap_or_default(),
        etag: etag::format(client.version),
        create_time: Some(timestamp(client.created_at)),
        update_time: Some(timestamp(client.updated_at)),
    }
}

pub fn client_created(client: &Client) -> pb::CreateClientResponse {
    pb::CreateClientResponse {
        client: Some(client_to_proto(client, None)),
    }
}

/// The client read, with its SSN whole when the caller was shown it.
pub fn client_read(client: &Client, ssn: Option<&Ssn>) -> pb::GetClientResponse {
    pb::GetClientResponse {
        client: Some(client_to_proto(client, ssn)),
    }
}

pub fn client_updated(client: &Client) -> pb::UpdateClientResponse {
    pb::UpdateClientResponse {
        client: Some(client_to_proto(client, None)),
    }
}

pub fn client_history(page: Listed<AuditRecord>) -> pb::ListClientHistoryResponse {
    pb::ListClientHistoryResponse {
        entries: page
            .items
            .into_iter()
            .map(|e| pb::ClientHistoryEntry {
                action: e.action,
                actor: e.actor,
                changed_fields: e.changed_fields,
                time: Some(timestamp(e.occurred_at)),
            })
            .collect(),
        next_page_token: page.next_page_token,
    }
}

pub fn client_matches(page: Listed<ClientMatch>) -> pb::SearchClientsResponse {
    pb::SearchClientsResponse {
        matches: page
            .items
            .iter()
            .map(|m| pb::ClientMatch {
                client: Some(client_to_proto(&m.client, None)),
                score: m.score,
            })
            .collect(),
        next_page_token: page.next_page_token,
    }
}

pub fn enrollment_to_proto(enrollment: &Enrollment) -> pb::Enrollment {
    pb::Enrollment {
        id: enrollment.id.to_string(),
        client_id: enrollment.client_id.to_string(),
        program_id: enrollment.program_id.to_string(),
        entry_date: Some(date(enrollment.entry_date)),
        exit_date: enrollment.exit_date.map(date),
        exit_destination: enrollment.exit_destination.clone(),
        etag: etag::format(enrollment.version),
        create_time: Some(timestamp(enrollment.created_at)),
        update_time: Some(timestamp(enrollment.updated_at)),
    }
}

pub fn enrollment_started(enrollment: &Enrollment) -> pb::StartEnrollmentResponse {
    pb::StartEnrollmentResponse {
        enrollment: Some(enrollment_to_proto(enrollment)),
    }
}

pub fn enrollment_exited(enrollment: &Enrollment) -> pb::ExitEnrollmentResponse {
    pb::ExitEnrollmentResponse {
        enrollment: Some(enrollment_to_proto(enrollment)),
    }
}

pub fn enrollment_read(enrollment: &Enrollment) -> pb::GetEnrollmentResponse {
    pb::GetEnrollmentResponse {
        enrollment: Some(enrollment_to_proto(enrollment)),
    }
}

pub fn list_clients_request(message: &pb::ListClientsRequest) -> PageRequest {
    PageRequest {
        size: message.page_size,
        token: message.page_token.clone(),
    }
}

pub fn clients(page: Listed<Client>) -> pb::ListClientsResponse {
    pb::ListClientsResponse {
        clients: page
            .items
            .iter()
            .map(|c| client_to_proto(c, None))
            .collect(),
        next_page_token: page.next_page_token,
    }
}

pub fn enrollments(page: Listed<Enrollment>) -> pb::ListEnrollmentsResponse {
    pb::ListEnrollmentsResponse {
        enrollments: page.items.iter().map(enrollment_to_proto).collect(),
        next_page_token: page.next_page_token,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_without_a_mask_changes_what_it_sets() {
        let client = pb::Client {
            last_name: "Smith".into(),
            ssn_quality: DataQuality::Full as i32,
            contact: Some(pb::Contact::default()),
            ..Default::default()
        };
        assert_eq!(
            client_fields_set(&client),
            ["last_name", "ssn_quality", "contact"]
        );
        assert!(client_fields_set(&pb::Client::default()).is_empty());
    }

    #[test]
    fn a_search_filter_leaves_out_the_ssn_and_the_page() {
        let principal = Principal {
            user_id: "u".into(),
            tenant_id: None,
            roles: vec![],
            permissions: vec![],
            organization_ids: vec![],
            service: None,
        };
        let search = |ssn: &str, page_size: i32| {
            search_request(
                &principal,
                &pb::SearchClientsRequest {
                    name: "john smith".into(),
                    ssn: ssn.into(),
                    page_size,
                    ..Default::default()
                },
            )
            .unwrap()
        };
        assert_eq!(search("6789", 10).filter, search("1234", 20).filter);
        let whole = search_request(
            &principal,
            &pb::SearchClientsRequest {
                ssn: "123-45-6789".into(),
                ..Default::default()
            },
        );
        assert!(matches!(whole, Err(Error::PermissionDenied { .. })));
    }
}
