//! The domain room of barriers: their types and rules. A barrier is identified on a date not
//! in the future, and resolved exactly when a resolved date is set, not before identification.
//! No I/O, no proto here.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use caseway_platform::validate::Violations;

use crate::domain::Asked;
use caseway_platform::paging::PageRequest;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarrierStatus {
    Identified = 1,
    BeingAddressed = 2,
    Resolved = 3,
}

impl BarrierStatus {
    pub fn from_code(code: i32) -> Option<BarrierStatus> {
        Some(match code {
            1 => BarrierStatus::Identified,
            2 => BarrierStatus::BeingAddressed,
            3 => BarrierStatus::Resolved,
            _ => return None,
        })
    }
}

/// The fields of a barrier a case worker writes (its client and type are fixed at creation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BarrierFields {
    pub identified_date: NaiveDate,
    pub status: BarrierStatus,
    pub resolved_date: Option<NaiveDate>,
    pub note: String,
}

impl BarrierFields {
    pub const MUTABLE: &'static [&'static str] =
        &["status", "identified_date", "resolved_date", "note"];

    pub fn validate(&self, prefix: &str, today: NaiveDate, v: &mut Violations) {
        if self.identified_date > today {
            v.add(
                format!("{prefix}.identified_date"),
                "must not be in the future",
            );
        }
        match (self.status, self.resolved_date) {
            (BarrierStatus::Resolved, None) => v.add(
                format!("{prefix}.resolved_date"),
                "is required when the status is RESOLVED",
            ),
            (BarrierStatus::Resolved, Some(resolved)) => {
                if resolved < self.identified_date {
                    v.add(
                        format!("{prefix}.resolved_date"),
                        "must not be before the identified date",
                    );
                }
                if resolved > today {
                    v.add(
                        format!("{prefix}.resolved_date"),
                        "must not be in the future",
                    );
                }
            }
            (_, Some(_)) => v.add(
                format!("{prefix}.resolved_date"),
                "is set only when the status is RESOLVED",
            ),
            (_, None) => {}
        }
        v.text(&format!("{prefix}.note"), &self.note, 0, 2000);
    }

    /// Copies the masked fields of `input`; returns the names of those that changed. Moving a
    /// resolved barrier back to an open status clears its resolved date unless the mask sets it.
    pub fn merge(&mut self, input: &BarrierFields, mask: &[&'static str]) -> Vec<String> {
        let mut changed = Vec::new();
        if mask.contains(&"status") && self.status != input.status {
            if self.status == BarrierStatus::Resolved && !mask.contains(&"resolved_date") {
                self.resolved_date = None;
                changed.push("resolved_date".to_string());
            }
            self.status = input.status;
            changed.push("status".to_string());
        }
        if mask.contains(&"identified_date") && self.identified_date != input.identified_date {
            self.identified_date = input.identified_date;
            changed.push("identified_date".to_string());
        }
        if mask.contains(&"resolved_date") && self.resolved_date != input.resolved_date {
            self.resolved_date = input.resolved_date;
            changed.push("resolved_date".to_string());
        }
        if mask.contains(&"note") && self.note != input.note {
            self.note = input.note.clone();
            changed.push("note".to_string());
        }
        changed.sort();
        changed.dedup();
        changed
    }
}

/// The rules a change of barriers can break, named on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// A barrier is identified only with an active barrier type.
    BarrierTypeActive,
}

impl caseway_platform::error::Rule for Rule {
    fn name(self) -> &'static str {
        match self {
            Rule::BarrierTypeActive => "barrier_type_active",
        }
    }
}

/// A stored barrier, with its type's code.
#[derive(Clone, Debug)]
pub struct Barrier {
    pub id: Uuid,
    pub client_id: Uuid,
    pub barrier_type_id: Uuid,
    pub barrier_type_code: String,
    pub fields: BarrierFields,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A barrier to identify, checked; its type is checked with the catalog.
#[derive(Debug)]
pub struct NewBarrier {
    pub asked: Asked,
    pub client_id: Uuid,
    pub barrier_type_id: Uuid,
    pub fields: BarrierFields,
}

/// A change of a barrier: the fields the mask names, at the version the caller read (if it
/// said). The identified date is only there when the mask names it.
#[derive(Clone, Debug)]
pub struct BarrierUpdate {
    pub id: Uuid,
    pub expected: Option<i64>,
    pub mask: Vec<&'static str>,
    pub identified_date: Option<NaiveDate>,
    pub status: BarrierStatus,
    pub resolved_date: Option<NaiveDate>,
    pub note: String,
}

impl BarrierUpdate {
    /// The fields the caller asked for, the identified date `current`'s when not given.
    pub fn requested(&self, current: &BarrierFields) -> BarrierFields {
        BarrierFields {
            identified_date: self.identified_date.unwrap_or(current.identified_date),
            status: self.status,
            resolved_date: self.resolved_date,
            note: self.note.clone(),
        }
    }
}

/// A page of a client's barriers, of one status if given; `filter` is what the page token is
/// bound to.
#[derive(Clone, Debug)]
pub struct BarrierList {
    pub client_id: Uuid,
    pub status: Option<BarrierStatus>,
    pub filter: Vec<u8>,
    pub page: PageRequest,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, d).unwrap()
    }

    fn barrier(status: BarrierStatus, resolved: Option<NaiveDate>) -> BarrierFields {
        BarrierFields {
            identified_date: day(3, 1),
            status,
            resolved_date: resolved,
            note: String::new(),
        }
    }

    #[test]
    fn resolved_exactly_with_a_resolved_date_not_before_identification() {
        let today = day(6, 1);
        for (fields, ok) in [
            (barrier(BarrierStatus::Identified, None), true),
            (barrier(BarrierStatus::Resolved, Some(day(3, 1))), true),
            (barrier(BarrierStatus::Resolved, None), false),
            (barrier(BarrierStatus::Resolved, Some(day(2, 28))), false),
            (barrier(BarrierStatus::Resolved, Some(day(7, 1))), false),
            (
                barrier(BarrierStatus::BeingAddressed, Some(day(4, 1))),
                false,
            ),
        ] {
            let mut v = Violations::new();
            fields.validate("barrier", today, &mut v);
            assert_eq!(v.is_empty(), ok, "{fields:?}");
        }
    }

    #[test]
    fn rules_keep_their_wire_names() {
        use caseway_platform::error::Rule as _;
        assert_eq!(Rule::BarrierTypeActive.name(), "barrier_type_active");
    }

    #[test]
    fn reopening_clears_the_resolved_date() {
        let mut current = barrier(BarrierStatus::Resolved, Some(day(4, 1)));
        let changed = current.merge(&barrier(BarrierStatus::BeingAddressed, None), &["status"]);
        assert_eq!(changed, ["resolved_date", "status"]);
        assert_eq!(current.resolved_date, None);
    }
}
