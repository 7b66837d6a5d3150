//! Proto <-> domain for mappings, settings and exports.

use caseway_api::hmis::v1 as pb;
use caseway_platform::convert::{date, timestamp};
use caseway_platform::validate::Violations;
use caseway_platform::{Error, Result};

use crate::domain::{self, ExportRow, ExportState, Mapping, Settings, Subject};

pub fn subject_to_proto(subject: Subject) -> pb::Subject {
    match subject {
        Subject::Gender => pb::Subject::Gender,
        Subject::Race => pb::Subject::Race,
        Subject::Ethnicity => pb::Subject::Ethnicity,
        Subject::Service => pb::Subject::Service,
        Subject::Program => pb::Subject::Program,
        Subject::Grant => pb::Subject::Grant,
        Subject::ExitDestination => pb::Subject::ExitDestination,
    }
}

/// A subject from the wire; unspecified or unknown is a violation of `field`.
pub fn subject_from_proto(value: i32, field: &str, v: &mut Violations) -> Option<Subject> {
    let subject = Subject::from_code(value);
    if subject.is_none() {
        v.add(field, "is one of the subjects (GENDER to EXIT_DESTINATION)");
    }
    subject
}

/// A mapping to set, checked against HUD's lists.
pub fn mapping_from_proto(mapping: Option<&pb::Mapping>) -> Result<Mapping> {
    let Some(m) = mapping else {
        return Err(Error::invalid("mapping", "is required"));
    };
    let mut v = Violations::new();
    let subject = subject_from_proto(m.subject, "mapping.subject", &mut v);
    if let Some(subject) = subject {
        domain::check_mapping(
            subject,
            &m.code,
            m.value,
            m.record_type,
            m.continuum_project,
            "mapping.",
            &mut v,
        );
    }
    let subject = v.finish_with(subject)?;
    Ok(Mapping {
        subject,
        code: m.code.clone(),
        value: m.value,
        record_type: m.record_type,
        continuum_project: m.continuum_project,
        updated_at: chrono::Utc::now(),
    })
}

pub fn mapping_to_proto(m: &Mapping) -> pb::Mapping {
    pb::Mapping {
        subject: subject_to_proto(m.subject) as i32,
        code: m.code.clone(),
        value: m.value,
        record_type: m.record_type,
        continuum_project: m.continuum_project,
        update_time: Some(timestamp(m.updated_at)),
    }
}

pub fn settings_from_proto(settings: Option<&pb::Settings>) -> Result<Settings> {
    let Some(s) = settings else {
        return Err(Error::invalid("settings", "is required"));
    };
    let mut v = Violations::new();
    domain::check_settings(&s.coc_code, &s.source_name, &mut v);
    v.finish()?;
    Ok(Settings {
        coc_code: s.coc_code.clone(),
        victim_service_provider: s.victim_service_provider,
        source_name: s.source_name.clone(),
        updated_at: chrono::Utc::now(),
    })
}

pub fn settings_to_proto(s: &Settings) -> pb::Settings {
    pb::Settings {
        coc_code: s.coc_code.clone(),
        victim_service_provider: s.victim_service_provider,
        source_name: s.source_name.clone(),
        update_time: Some(timestamp(s.updated_at)),
    }
}

pub fn export_to_proto(e: &ExportRow) -> pb::Export {
    pb::Export {
        id: e.id.to_string(),
        start_date: Some(date(e.start_date)),
        end_date: Some(date(e.end_date)),
        include_ssn: e.include_ssn,
        state: match e.state {
            ExportState::Running => pb::ExportState::Running,
            ExportState::Succeeded => pb::ExportState::Succeeded,
            ExportState::Failed => pb::ExportState::Failed,
        } as i32,
        files_written: e.files_written,
        rows_written: e.rows_written,
        files: e
            .files
            .iter()
            .map(|f| pb::ExportFile {
                name: f.name.clone(),
                rows: f.rows,
                bytes: f.bytes,
                sha256: f.sha256.clone(),
            })
            .collect(),
        unmapped: e
            .unmapped
            .iter()
            .map(|u| pb::Unmapped {
                subject: subject_to_proto(u.subject) as i32,
                code: u.code.clone(),
                rows: u.rows,
            })
            .collect(),
        skipped: e
            .skipped
            .iter()
            .map(|s| pb::Skipped {
                reason: s.reason.clone(),
                rows: s.rows,
            })
            .collect(),
        error: e.error.clone(),
        started_by: e.started_by.clone(),
        start_time: Some(timestamp(e.started_at)),
        finish_time: e.finished_at.map(timestamp),
    }
}
