//! The events room of assessments: what they publish, each event built as the outbox takes it.
//! They consume none.

use caseway_api::events::v1::{AssessmentRecorded, AssessmentTypeChanged};

use super::convert::{assessment_to_proto, type_to_proto};
use super::domain::{Assessment, AssessmentType};
use crate::events::Outgoing;

fn type_event(
    event_type: &'static str,
    assessment_type: &AssessmentType,
    changed_fields: Vec<String>,
) -> Outgoing<AssessmentTypeChanged> {
    Outgoing {
        event_type,
        subject: assessment_type.id.to_string(),
        payload: AssessmentTypeChanged {
            assessment_type: Some(type_to_proto(assessment_type)),
            changed_fields,
        },
    }
}

/// `clients.assessment_type_created.v1`.
pub fn type_created(assessment_type: &AssessmentType) -> Outgoing<AssessmentTypeChanged> {
    type_event(
        "clients.assessment_type_created.v1",
        assessment_type,
        vec![],
    )
}

/// `clients.assessment_type_updated.v1`, naming the fields that changed.
pub fn type_updated(
    assessment_type: &AssessmentType,
    changed_fields: Vec<String>,
) -> Outgoing<AssessmentTypeChanged> {
    type_event(
        "clients.assessment_type_updated.v1",
        assessment_type,
        changed_fields,
    )
}

/// `clients.assessment_recorded.v1`.
pub fn assessment_recorded(assessment: &Assessment) -> Outgoing<AssessmentRecorded> {
    Outgoing {
        event_type: "clients.assessment_recorded.v1",
        subject: assessment.id.to_string(),
        payload: AssessmentRecorded {
            assessment: Some(assessment_to_proto(assessment)),
        },
    }
}
