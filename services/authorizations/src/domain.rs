//! Authorization rules: the workflow, separation of duties, what an authorization covers and
//! the drawdown arithmetic. No I/O here: the store hands the rows in and writes what comes out.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use caseway_platform::{AuthorizationId, ClientId, GrantId, HoldId, RecordId, ServiceId};

use caseway_platform::auth::Role;

use crate::recurrence::Rule;

/// Roles that request, change and read authorizations.
pub const REQUEST_ROLES: &[Role] = &[Role::Caseworker, Role::Supervisor, Role::TenantAdmin];
/// Roles that approve or deny.
pub const DECIDE_ROLES: &[Role] = &[Role::Supervisor];
/// Roles that cancel or close.
pub const END_ROLES: &[Role] = &[Role::Supervisor, Role::TenantAdmin];
/// Roles that draw units (those who record services).
pub const DRAW_ROLES: &[Role] = &[Role::Caseworker, Role::Supervisor, Role::TenantAdmin];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthorizationStatus {
    Pending = 1,
    Approved = 2,
    Denied = 3,
    Cancelled = 4,
    Closed = 5,
}

impl AuthorizationStatus {
    pub fn from_code(code: i32) -> Option<AuthorizationStatus> {
        Some(match code {
            1 => AuthorizationStatus::Pending,
            2 => AuthorizationStatus::Approved,
            3 => AuthorizationStatus::Denied,
            4 => AuthorizationStatus::Cancelled,
            5 => AuthorizationStatus::Closed,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            AuthorizationStatus::Pending => "Pending",
            AuthorizationStatus::Approved => "Approved",
            AuthorizationStatus::Denied => "Denied",
            AuthorizationStatus::Cancelled => "Cancelled",
            AuthorizationStatus::Closed => "Closed",
        }
    }
}

/// A change of status someone asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Approve,
    Deny,
    Cancel,
    Close,
}

impl Transition {
    /// The verb of its event and audit action: `authorization_approved`.
    pub fn verb(self) -> &'static str {
        match self {
            Transition::Approve => "approved",
            Transition::Deny => "denied",
            Transition::Cancel => "cancelled",
            Transition::Close => "closed",
        }
    }

    /// The status it leads to from `from`, or the rule it breaks.
    pub fn apply(self, from: AuthorizationStatus) -> Result<AuthorizationStatus, String> {
        match (self, from) {
            (Transition::Approve, AuthorizationStatus::Pending) => {
                Ok(AuthorizationStatus::Approved)
            }
            (Transition::Deny, AuthorizationStatus::Pending) => Ok(AuthorizationStatus::Denied),
            (Transition::Cancel, AuthorizationStatus::Pending | AuthorizationStatus::Approved) => {
                Ok(AuthorizationStatus::Cancelled)
            }
            (Transition::Close, AuthorizationStatus::Approved) => Ok(AuthorizationStatus::Closed),
            (Transition::Approve | Transition::Deny, _) => Err(format!(
                "only a Pending authorization can be decided; this one is {}",
                from.name()
            )),
            (Transition::Cancel, _) => Err(format!(
                "only a Pending or Approved authorization can be cancelled; this one is {}",
                from.name()
            )),
            (Transition::Close, _) => Err(format!(
                "only an Approved authorization can be closed; this one is {}",
                from.name()
            )),
        }
    }

    /// Whether it needs a decider other than the requester (separation of duties).
    pub fn needs_second_person(self) -> bool {
        matches!(self, Transition::Approve | Transition::Deny)
    }
}

/// Edits are allowed only while the authorization waits for a decision.
pub fn check_editable(status: AuthorizationStatus) -> Result<(), String> {
    if status == AuthorizationStatus::Pending {
        Ok(())
    } else {
        Err(format!(
            "only a Pending authorization can be changed; this one is {}",
            status.name()
        ))
    }
}

/// The person who requested an authorization does not decide it.
/// Separation of duties: whoever requested the plan or changed it since may not decide it.
/// `planners` are those people (the requester among them).
pub fn check_second_person(planners: &[String], decider: &str) -> Result<(), String> {
    if planners.iter().any(|p| p == decider) {
        Err(format!(
            "the supervisor who decides an authorization must not be a person who requested \
             or changed its plan ({})",
            planners.join(", ")
        ))
    } else {
        Ok(())
    }
}

/// What was planned: units and value over the occurrences.
pub fn authorized(
    occurrences: usize,
    units_per_occurrence: Decimal,
    unit_value: Decimal,
) -> (Decimal, Decimal) {
    let units = units_per_occurrence * Decimal::from(occurrences as u64);
    (units, units * unit_value)
}

/// What a service record must share with the authorization it draws on.
#[derive(Clone, Debug)]
pub struct Coverage {
    pub status: AuthorizationStatus,
    pub client_id: ClientId,
    pub service_id: ServiceId,
    pub begin_date: NaiveDate,
    pub end_date: NaiveDate,
}

/// The record's client, service and date fit the authorization, which is Approved, or, for
/// a record that `takes_more` is false for (it keeps or lowers what it already draws), was
/// approved and has since been closed or cancelled: a correction must not be refused because
/// the period ended. Errs with the rule's name and the reason.
pub fn check_covers(
    coverage: &Coverage,
    client_id: ClientId,
    service_id: ServiceId,
    date: NaiveDate,
    takes_more: bool,
) -> Result<(), (AuthorizationRule, String)> {
    let drawn_before = matches!(
        coverage.status,
        AuthorizationStatus::Closed | AuthorizationStatus::Cancelled
    ) && !takes_more;
    if coverage.status != AuthorizationStatus::Approved && !drawn_before {
        return Err((
            AuthorizationRule::Approved,
            format!(
                "the authorization is {}; only an Approved authorization can be drawn on",
                coverage.status.name()
            ),
        ));
    }
    if coverage.client_id != client_id {
        return Err((
            AuthorizationRule::Client,
            "the authorization is for another client".into(),
        ));
    }
    if coverage.service_id != service_id {
        return Err((
            AuthorizationRule::Service,
            "the authorization is for another service".into(),
        ));
    }
    if date < coverage.begin_date || date > coverage.end_date {
        return Err((
            AuthorizationRule::Period,
            format!(
                "the service date {date} is outside the authorization's period {} to {}",
                coverage.begin_date, coverage.end_date
            ),
        ));
    }
    Ok(())
}

/// What one service record draws from an authorization.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Draw {
    /// Units held for the record while it is being stored, for `held_version` of it, by the
    /// attempt to store it `held_by`, since `held_at`.
    pub held_units: Decimal,
    pub held_version: i64,
    pub held_by: Option<HoldId>,
    pub held_at: Option<DateTime<Utc>>,
    /// Units of older holds a newer one replaced: their versions may be stored with their
    /// events on the way, so they count until an event of `earlier_version` or later.
    pub earlier_units: Decimal,
    pub earlier_version: i64,
    /// Units and value the record's latest event confirmed, at `record_version`.
    pub delivered_units: Decimal,
    pub delivered_value: Decimal,
    pub record_version: i64,
}

impl Draw {
    /// Units counted against the authorization for this record: a hold not yet confirmed
    /// counts as much as a delivery, so two records being stored at once cannot both take the
    /// last units.
    pub fn counted(&self) -> Decimal {
        self.held_units
            .max(self.earlier_units)
            .max(self.delivered_units)
    }

    /// The draw with its current hold moved to the earlier units.
    fn carried(&self) -> Draw {
        if self.held_units.is_zero() {
            return *self;
        }
        Draw {
            earlier_units: self.earlier_units.max(self.held_units),
            earlier_version: self.earlier_version.max(self.held_version),
            held_units: Decimal::ZERO,
            ..*self
        }
    }
}

/// How long a hold keeps another attempt at the same record version out. Storing a record
/// takes milliseconds; an older hold is one whose attempt stalled or died, and a later attempt
/// takes it over (its units stay counted as earlier units, in case it is stored after all).
pub const HOLD_TAKEOVER: chrono::Duration = chrono::Duration::seconds(30);

/// A hold asked for: `units` for `version` of a record, by the attempt `attempt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoldRequest {
    pub units: Decimal,
    pub version: i64,
    pub attempt: HoldId,
}

/// Why a hold was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not enough units: what could still be drawn for this record.
    Shortfall { remaining: Decimal },
    /// Another attempt is storing this version of the record, or a later one: only one of
    /// them can be stored.
    Busy,
}

/// Holds units for a version of a record. `counted` is what the authorization counts for
/// every record (this one included); `authorized` its total. Returns the new draw, or None
/// when nothing changes (a retry, or a version already confirmed).
pub fn hold(
    draw: &Draw,
    request: HoldRequest,
    counted: Decimal,
    authorized: Decimal,
    now: DateTime<Utc>,
) -> Result<Option<Draw>, Refusal> {
    let HoldRequest {
        units,
        version,
        attempt,
    } = request;
    if version <= draw.record_version {
        return Ok(None);
    }
    let active = draw.held_units > Decimal::ZERO;
    let base = if !active {
        *draw
    } else if version < draw.held_version {
        // The record is being stored at a later version: this attempt's cannot be.
        return Err(Refusal::Busy);
    } else if version > draw.held_version {
        // The held version was stored (a later one is being written from it) and its event
        // is on the way: its units stay counted until then.
        draw.carried()
    } else if draw.held_by == Some(attempt) {
        if units == draw.held_units {
            return Ok(None);
        }
        *draw
    } else if draw.held_at.is_some_and(|at| now - at <= HOLD_TAKEOVER) {
        return Err(Refusal::Busy);
    } else {
        // Taken over from an attempt that stalled or died; should it be stored after all,
        // its units are still counted.
        draw.carried()
    };
    let next = Draw {
        held_units: units,
        held_version: version,
        held_by: Some(attempt),
        held_at: Some(now),
        ..base
    };
    let others = counted - draw.counted();
    if others + next.counted() > authorized {
        return Err(Refusal::Shortfall {
            remaining: (authorized - others).max(Decimal::ZERO),
        });
    }
    Ok(Some(next))
}

/// What a record's event says was delivered, at `version`: holds made for that version or
/// an earlier one are settled by it. None when the event is older than what is known.
pub fn settle(draw: &Draw, units: Decimal, value: Decimal, version: i64) -> Option<Draw> {
    if version < draw.record_version {
        return None;
    }
    let mut next = Draw {
        delivered_units: units,
        delivered_value: value,
        record_version: version,
        ..*draw
    };
    if draw.held_version <= version {
        next.held_units = Decimal::ZERO;
    }
    if draw.earlier_version <= version {
        next.earlier_units = Decimal::ZERO;
    }
    (next != *draw).then_some(next)
}

/// Gives back the hold for `version` (its record was not stored), if `attempt` made it;
/// whoever made it when `attempt` is None.
pub fn release(draw: &Draw, version: i64, attempt: Option<HoldId>) -> Option<Draw> {
    let ours = attempt.is_none_or(|a| draw.held_by == Some(a));
    (draw.held_version == version && draw.held_units > Decimal::ZERO && ours).then_some(Draw {
        held_units: Decimal::ZERO,
        ..*draw
    })
}

/// Gives back the earlier units counted up to `version` (no version of the record from
/// that one on draws on the authorization).
pub fn release_earlier(draw: &Draw, version: i64) -> Option<Draw> {
    (draw.earlier_version == version && draw.earlier_units > Decimal::ZERO).then_some(Draw {
        earlier_units: Decimal::ZERO,
        ..*draw
    })
}

/// Planned against delivered for one occurrence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OccurrenceUse {
    pub date: NaiveDate,
    pub planned: Decimal,
    pub delivered: Decimal,
}

/// Deliveries counted toward occurrences: a service delivered from an occurrence's date until
/// the next occurrence counts toward it (one delivered before the first, toward the first).
pub fn per_occurrence(
    occurrences: &[NaiveDate],
    units_per_occurrence: Decimal,
    deliveries: &[(NaiveDate, Decimal)],
) -> Vec<OccurrenceUse> {
    let mut uses: Vec<OccurrenceUse> = occurrences
        .iter()
        .map(|&date| OccurrenceUse {
            date,
            planned: units_per_occurrence,
            delivered: Decimal::ZERO,
        })
        .collect();
    if uses.is_empty() {
        return uses;
    }
    for &(date, units) in deliveries {
        let index = occurrences
            .partition_point(|&o| o <= date)
            .saturating_sub(1);
        uses[index].delivered += units;
    }
    uses
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AuthorizationRow {
    pub id: AuthorizationId,
    pub client_id: ClientId,
    pub service_id: ServiceId,
    pub grant_id: GrantId,
    pub begin_date: NaiveDate,
    pub end_date: NaiveDate,
    #[sqlx(try_from = "String")]
    pub unit_of_measure: caseway_peers::rules::UnitOfMeasure,
    pub units_per_occurrence: Decimal,
    pub unit_value: Decimal,
    pub recurrence: String,
    pub occurrences: Vec<NaiveDate>,
    pub authorized_units: Decimal,
    pub authorized_value: Decimal,
    pub reason_id: Option<Uuid>,
    pub goal_id: Option<Uuid>,
    pub reason: String,
    pub goals: String,
    pub status: i16,
    pub requested_by: String,
    pub decided_by: Option<String>,
    pub decision_reason: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub committed_units: Decimal,
    pub delivered_units: Decimal,
    pub delivered_value: Decimal,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a client's list is filtered by.
#[derive(Default)]
pub struct ListFilter {
    pub statuses: Vec<i16>,
    pub service_id: Option<ServiceId>,
    pub active_on: Option<NaiveDate>,
}

/// What the caller wrote of an authorization's plan, parsed.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub grant_id: Option<GrantId>,
    pub begin_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub units_per_occurrence: Option<Decimal>,
    pub unit_value: Option<Decimal>,
    pub recurrence: Option<Rule>,
    pub reason_id: Option<Uuid>,
    pub goal_id: Option<Uuid>,
    pub reason: String,
    pub goals: String,
}

/// The rules an authorization's changes and draws must meet, named on the wire as the
/// PreconditionFailure's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthorizationRule {
    /// A transition allowed from the current status.
    Status,
    /// Only a Pending authorization's plan can change.
    Pending,
    /// The decider is not one of the planners.
    SeparationOfDuties,
    /// A draw needs an Approved authorization.
    Approved,
    /// A draw is for the authorization's client.
    Client,
    /// A draw is for the authorization's service.
    Service,
    /// A draw's date is inside the authorization's period.
    Period,
    /// A draw fits in the units remaining.
    UnitsRemaining,
    /// A hold is given back only when no stored record draws it.
    ServiceRecordStored,
}

impl caseway_platform::error::Rule for AuthorizationRule {
    fn name(self) -> &'static str {
        match self {
            AuthorizationRule::Status => "authorization_status",
            AuthorizationRule::Pending => "authorization_pending",
            AuthorizationRule::SeparationOfDuties => "separation_of_duties",
            AuthorizationRule::Approved => "authorization_approved",
            AuthorizationRule::Client => "authorization_client",
            AuthorizationRule::Service => "authorization_service",
            AuthorizationRule::Period => "authorization_period",
            AuthorizationRule::UnitsRemaining => "authorization_units_remaining",
            AuthorizationRule::ServiceRecordStored => "service_record_stored",
        }
    }
}

impl AuthorizationRow {
    /// The stored status; a code this version does not know is an error, not a guess.
    pub fn status(&self) -> caseway_platform::error::Result<AuthorizationStatus> {
        AuthorizationStatus::from_code(i32::from(self.status)).ok_or_else(|| {
            caseway_platform::error::Error::Internal(anyhow::anyhow!(
                "unknown authorization status {}",
                self.status
            ))
        })
    }
}

/// A stored authorization the caller may see: one of a service hidden from it is NOT_FOUND,
/// as the service itself is.
pub fn visible(
    row: Option<AuthorizationRow>,
    hidden: &[ServiceId],
    id: AuthorizationId,
) -> caseway_platform::error::Result<AuthorizationRow> {
    row.filter(|row| !hidden.contains(&row.service_id))
        .ok_or_else(|| caseway_platform::error::Error::not_found("authorization", id))
}

/// The fields of an authorization's plan an update may change.
pub const MUTABLE: &[&str] = &[
    "grant_id",
    "begin_date",
    "end_date",
    "units_per_occurrence",
    "unit_value",
    "recurrence",
    "reason_id",
    "goal_id",
    "reason",
    "goals",
];

/// The units a draw call names, with the record they are for.
#[derive(Clone, Copy, Debug)]
pub struct DrawRequest {
    pub authorization_id: AuthorizationId,
    pub record_id: RecordId,
    pub version: i64,
    pub hold_id: HoldId,
}

/// What the records service asks to hold.
#[derive(Clone, Copy, Debug)]
pub struct Reservation {
    pub draw: DrawRequest,
    pub client_id: ClientId,
    pub service_id: ServiceId,
    pub service_date: NaiveDate,
    pub units: Decimal,
}

/// What a service record's event says it draws now and drew before.
#[derive(Clone, Copy, Debug)]
pub struct RecordDraw {
    pub record_id: RecordId,
    pub version: i64,
    /// The authorization it draws on now, if any.
    pub current: Option<AuthorizationId>,
    /// The authorization it drew on before this change, if any.
    pub previous: Option<AuthorizationId>,
    /// What it delivers (zero for a turn-away or a deletion).
    pub units: Decimal,
    pub value: Decimal,
    pub service_date: Option<NaiveDate>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn workflow() {
        use AuthorizationStatus::*;
        use Transition::*;
        assert_eq!(Approve.apply(Pending), Ok(Approved));
        assert_eq!(Deny.apply(Pending), Ok(Denied));
        assert_eq!(Cancel.apply(Approved), Ok(Cancelled));
        assert_eq!(Cancel.apply(Pending), Ok(Cancelled));
        assert_eq!(Close.apply(Approved), Ok(Closed));
        for (t, s) in [
            (Approve, Approved),
            (Approve, Denied),
            (Deny, Approved),
            (Close, Pending),
            (Close, Closed),
            (Cancel, Denied),
            (Cancel, Closed),
        ] {
            assert!(t.apply(s).is_err(), "{t:?} from {s:?}");
        }
        assert!(check_editable(Pending).is_ok());
        assert!(check_editable(Approved).unwrap_err().contains("Approved"));
        let planners = ["ana".to_string(), "bo".to_string()];
        assert!(check_second_person(&planners, "ana").is_err());
        assert!(check_second_person(&planners, "bo").is_err());
        assert!(check_second_person(&planners, "cy").is_ok());
    }

    fn at(units: &str, version: i64, attempt: HoldId) -> HoldRequest {
        HoldRequest {
            units: dec(units),
            version,
            attempt,
        }
    }

    #[test]
    fn holds_never_exceed_the_authorization() {
        let now = Utc::now();
        let (a, b) = (HoldId::new(), HoldId::new());
        let empty = Draw::default();
        // 10 authorized, 8 counted for other records: 2 remain.
        let refused = hold(&empty, at("3", 1, a), dec("8"), dec("10"), now).unwrap_err();
        assert_eq!(
            refused,
            Refusal::Shortfall {
                remaining: dec("2")
            }
        );
        let held = hold(&empty, at("2", 1, a), dec("8"), dec("10"), now)
            .unwrap()
            .unwrap();
        assert_eq!(held.counted(), dec("2"));
        // The same hold again changes nothing.
        assert_eq!(
            hold(&held, at("2", 1, a), dec("10"), dec("10"), now),
            Ok(None)
        );
        // Confirmed by its event: the hold becomes a delivery, counted once.
        let confirmed = settle(&held, dec("2"), dec("20"), 1).unwrap();
        assert_eq!(confirmed.counted(), dec("2"));
        assert_eq!(confirmed.held_units, Decimal::ZERO);
        // A retried reservation of the stored version changes nothing, whoever asks.
        for attempt in [a, b] {
            assert_eq!(
                hold(&confirmed, at("2", 1, attempt), dec("10"), dec("10"), now),
                Ok(None)
            );
        }
        // A redelivered event changes nothing.
        assert_eq!(settle(&confirmed, dec("2"), dec("20"), 1), None);
    }

    #[test]
    fn one_attempt_at_a_time_holds_for_a_version() {
        let now = Utc::now();
        let (a, b) = (HoldId::new(), HoldId::new());
        let confirmed = Draw {
            delivered_units: dec("4"),
            delivered_value: dec("40"),
            record_version: 1,
            ..Draw::default()
        };
        let held = hold(&confirmed, at("5", 2, a), dec("4"), dec("10"), now)
            .unwrap()
            .unwrap();
        // Another change of the record from the same version, with the same units or not, is
        // refused while the first is being stored.
        for units in ["5", "6"] {
            assert_eq!(
                hold(&held, at(units, 2, b), dec("5"), dec("10"), now),
                Err(Refusal::Busy)
            );
        }
        // Only its own attempt gives the hold back (the worker, None, any).
        assert_eq!(release(&held, 2, Some(b)), None);
        assert_eq!(release(&held, 2, Some(a)).unwrap().counted(), dec("4"));
        assert_eq!(release(&held, 2, None).unwrap().counted(), dec("4"));
        // A hold whose attempt stalled is taken over after a while; its units stay counted
        // in case it is stored after all, until an event of that version.
        let later = now + HOLD_TAKEOVER + chrono::Duration::seconds(1);
        let taken = hold(&held, at("3", 2, b), dec("5"), dec("10"), later)
            .unwrap()
            .unwrap();
        assert_eq!((taken.held_by, taken.counted()), (Some(b), dec("5")));
        let b_gone = release(&taken, 2, Some(b)).unwrap();
        assert_eq!(b_gone.counted(), dec("5"));
        assert_eq!(
            settle(&b_gone, dec("5"), dec("50"), 2).unwrap().counted(),
            dec("5")
        );
        // Or the worker learns it was not stored and gives the earlier units back.
        assert_eq!(release_earlier(&b_gone, 2).unwrap().counted(), dec("4"));
        // An attempt at an older version than the one being stored cannot be stored.
        assert_eq!(
            hold(&held, at("1", 1, b), dec("5"), dec("10"), later),
            Ok(None),
            "version 1 is confirmed"
        );
        let at_three = Draw {
            held_version: 3,
            ..held
        };
        assert_eq!(
            hold(&at_three, at("1", 2, b), dec("5"), dec("10"), later),
            Err(Refusal::Busy)
        );
        // Once given back, another attempt may hold for that version at once.
        let released = release(&held, 2, Some(a)).unwrap();
        assert!(
            hold(&released, at("3", 2, b), dec("4"), dec("10"), now)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_newer_hold_keeps_counting_a_stored_version_whose_event_is_on_the_way() {
        let now = Utc::now();
        let (a, b) = (HoldId::new(), HoldId::new());
        // 2 delivered at version 1; version 2 with 8 units is stored, its event not yet in.
        let confirmed = Draw {
            delivered_units: dec("2"),
            delivered_value: dec("20"),
            record_version: 1,
            ..Draw::default()
        };
        let v2 = hold(&confirmed, at("8", 2, a), dec("2"), dec("10"), now)
            .unwrap()
            .unwrap();
        // A change to 1 unit from version 2: still 8 counted.
        let v3 = hold(&v2, at("1", 3, b), dec("8"), dec("10"), now)
            .unwrap()
            .unwrap();
        assert_eq!(v3.counted(), dec("8"));
        // That change fails and gives its hold back: still 8.
        let failed = release(&v3, 3, Some(b)).unwrap();
        assert_eq!(failed.counted(), dec("8"));
        // Version 2's event settles it as a delivery.
        let settled = settle(&failed, dec("8"), dec("80"), 2).unwrap();
        assert_eq!(
            (settled.counted(), settled.earlier_units),
            (dec("8"), Decimal::ZERO)
        );
        // Had it succeeded, its own event settles both.
        let stored = settle(&v3, dec("1"), dec("10"), 3).unwrap();
        assert_eq!(stored.counted(), dec("1"));
        // Version 2's late event after that changes nothing.
        assert_eq!(settle(&stored, dec("8"), dec("80"), 2), None);
    }

    #[test]
    fn updates_deletes_and_late_events() {
        let now = Utc::now();
        let a = HoldId::new();
        let confirmed = Draw {
            delivered_units: dec("4"),
            delivered_value: dec("40"),
            record_version: 1,
            ..Draw::default()
        };
        // 10 authorized, 9 counted, 4 of them this record's: the record may rise to 5 at
        // most, so 7 is refused saying 5 remain for it.
        let refused = hold(&confirmed, at("7", 2, a), dec("9"), dec("10"), now).unwrap_err();
        assert_eq!(
            refused,
            Refusal::Shortfall {
                remaining: dec("5")
            }
        );
        let raised = hold(&confirmed, at("5", 2, a), dec("9"), dec("10"), now)
            .unwrap()
            .unwrap();
        assert_eq!(raised.counted(), dec("5"));
        // Lowering counts the higher amount until the event confirms it.
        let lowered = hold(&confirmed, at("1", 2, a), dec("9"), dec("10"), now)
            .unwrap()
            .unwrap();
        assert_eq!(lowered.counted(), dec("4"));
        let settled = settle(&lowered, dec("1"), dec("10"), 2).unwrap();
        assert_eq!(settled.counted(), dec("1"));
        // The delete event (a later version) gives everything back; the late event of version
        // 2 after it changes nothing.
        let deleted = settle(&settled, Decimal::ZERO, Decimal::ZERO, 3).unwrap();
        assert_eq!(deleted.counted(), Decimal::ZERO);
        assert_eq!(settle(&deleted, dec("1"), dec("10"), 2), None);
        // An event of an older version does not drop a newer hold.
        let pending = hold(&settled, at("3", 3, a), dec("1"), dec("10"), now)
            .unwrap()
            .unwrap();
        let old_event = settle(&pending, dec("1"), dec("10"), 2);
        assert_eq!(old_event, None);
        // A release gives back the hold of its own version only.
        assert_eq!(release(&pending, 2, Some(a)), None);
        assert_eq!(release(&pending, 3, Some(a)).unwrap().counted(), dec("1"));
    }

    #[test]
    fn coverage() {
        let client = ClientId::new();
        let service = ServiceId::new();
        let day = |d| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
        let mut c = Coverage {
            status: AuthorizationStatus::Approved,
            client_id: client,
            service_id: service,
            begin_date: day(1),
            end_date: day(31),
        };
        assert!(check_covers(&c, client, service, day(15), true).is_ok());
        assert_eq!(
            check_covers(&c, ClientId::new(), service, day(15), true)
                .unwrap_err()
                .0,
            AuthorizationRule::Client
        );
        assert_eq!(
            check_covers(&c, client, ServiceId::new(), day(15), true)
                .unwrap_err()
                .0,
            AuthorizationRule::Service
        );
        assert_eq!(
            check_covers(
                &c,
                client,
                service,
                NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(),
                true
            )
            .unwrap_err()
            .0,
            AuthorizationRule::Period
        );
        c.status = AuthorizationStatus::Pending;
        assert_eq!(
            check_covers(&c, client, service, day(15), true)
                .unwrap_err()
                .0,
            AuthorizationRule::Approved
        );
        assert_eq!(
            check_covers(&c, client, service, day(15), false)
                .unwrap_err()
                .0,
            AuthorizationRule::Approved
        );
        // After it closes, a record drawn on it may be corrected down, not up.
        for status in [AuthorizationStatus::Closed, AuthorizationStatus::Cancelled] {
            c.status = status;
            assert!(check_covers(&c, client, service, day(15), false).is_ok());
            assert_eq!(
                check_covers(&c, client, service, day(15), true)
                    .unwrap_err()
                    .0,
                AuthorizationRule::Approved
            );
        }
    }

    #[test]
    fn deliveries_count_toward_their_occurrence() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
        let uses = per_occurrence(
            &[day(2), day(9), day(16)],
            dec("2"),
            &[
                (day(1), dec("1")),
                (day(3), dec("1")),
                (day(9), dec("2")),
                (day(20), dec("3")),
            ],
        );
        let delivered: Vec<Decimal> = uses.iter().map(|u| u.delivered).collect();
        assert_eq!(delivered, vec![dec("2"), dec("2"), dec("3")]);
        assert!(uses.iter().all(|u| u.planned == dec("2")));
        assert_eq!(
            authorized(3, dec("2"), dec("12.50")),
            (dec("6"), dec("75.00"))
        );
    }
}
