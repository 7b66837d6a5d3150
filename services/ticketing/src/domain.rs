//! Tickets and their rules, without I/O: what a ticket holds, who may take each step of its
//! workflow from which status, where a step leaves it, and the provider's tier matrix.
//!
//! A ticket goes first to its organization's administrators (SUBMITTED); they answer it, ask
//! the submitter (WAITING_ON_USER) or escalate it to support (ESCALATED). Support triages it
//! into a tier, works it (IN_PROGRESS), asks the organization (WAITING_ON_CUSTOMER) and
//! resolves it; a reopened ticket returns to whoever resolved it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use caseway_platform::TenantId;

use crate::screenshot::Format;
use crate::sla::{Clock, Clocks};

/// What the user reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Issue,
    Question,
    Suggestion,
}

/// Where a ticket stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Submitted,
    WaitingOnUser,
    Escalated,
    InProgress,
    WaitingOnCustomer,
    Resolved,
    /// Resolved and not reopened for the provider's number of days: final.
    Closed,
}

/// How much of the organization's work the problem stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

/// How hard the problem is to solve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Complexity {
    Low,
    Medium,
    High,
}

/// How soon support should act.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    Low,
    Medium,
    High,
    Urgent,
}

/// Who may read a note.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// The submitter, the organization's administrators and, once escalated, support.
    Public,
    /// Support only.
    Internal,
}

/// How the submitter wants to be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactMethod {
    Email,
    Phone,
}

/// Where the user was when the problem happened.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    pub area: String,
    pub rpc: String,
    pub request_id: String,
    pub trace_id: String,
    pub client_application: String,
    pub client_version: String,
}

/// Whom to contact about a ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub name: String,
    pub email: String,
    pub phone: String,
    pub preferred: ContactMethod,
}

/// Who takes a step: the ticket's submitter, one of its organization's administrators (who
/// may also be its submitter), or the hosting provider's support desk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    Submitter,
    Administrator,
    Support,
}

/// A ticket as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct TicketRow {
    pub tenant_id: TenantId,
    pub id: Uuid,
    pub kind: Kind,
    pub title: String,
    pub description: String,
    pub context: Context,
    pub contact: Contact,
    pub status: Status,
    pub submitted_by: String,
    pub severity: Option<Severity>,
    pub complexity: Option<Complexity>,
    pub priority: Option<Priority>,
    pub tier: Option<Tier>,
    pub tier_override_reason: Option<String>,
    pub resolution: Option<String>,
    pub resolved_by: Option<String>,
    pub resolved_by_support: bool,
    pub escalated_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// The service-level clocks, from the escalation on.
    pub clocks: Clocks,
    pub closed_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A note as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct NoteRow {
    pub tenant_id: TenantId,
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub visibility: Visibility,
    pub body: String,
    pub author: String,
    pub by_support: bool,
    pub created_at: DateTime<Utc>,
}

/// A support tier, 1 (first line) to 3 (engineering).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tier(u8);

impl Tier {
    pub fn new(tier: i64) -> Option<Tier> {
        (1..=3).contains(&tier).then_some(Tier(tier as u8))
    }

    pub fn number(self) -> u8 {
        self.0
    }
}

/// The ticketing service's rules, as FAILED_PRECONDITION names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketingRule {
    /// The step cannot be taken from the ticket's status (a resolved ticket is not escalated,
    /// support does not work a ticket it has not triaged).
    TicketStatus,
    /// Whose turn it is: an administrator acts while the ticket is with the organization,
    /// support once it is escalated.
    TicketHolder,
    /// A tier other than the provider's matrix gives needs a reason.
    TierOverride,
    /// A ticket holds at most `MAX_ATTACHMENTS` attachments.
    AttachmentLimit,
    /// An attachment is released once, while it is inside the organization.
    AttachmentRelease,
}

impl caseway_platform::error::Rule for TicketingRule {
    fn name(self) -> &'static str {
        match self {
            TicketingRule::TicketStatus => "ticket_status",
            TicketingRule::TicketHolder => "ticket_holder",
            TicketingRule::TierOverride => "tier_override",
            TicketingRule::AttachmentLimit => "attachment_limit",
            TicketingRule::AttachmentRelease => "attachment_release",
        }
    }
}

/// A step of the workflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    AskSubmitter,
    Escalate,
    Triage,
    StartWork,
    AskCustomer,
    Resolve,
    Reopen,
}

/// Why a step is refused: the rule and what the caller is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub rule: TicketingRule,
    pub message: String,
}

fn refuse(rule: TicketingRule, message: impl Into<String>) -> Refusal {
    Refusal {
        rule,
        message: message.into(),
    }
}

impl Status {
    /// Whether the ticket is with the organization (its administrators or its submitter).
    pub fn with_organization(self) -> bool {
        matches!(self, Status::Submitted | Status::WaitingOnUser)
    }

    /// Whether the ticket is with support.
    pub fn with_support(self) -> bool {
        matches!(
            self,
            Status::Escalated | Status::InProgress | Status::WaitingOnCustomer
        )
    }

    fn name(self) -> &'static str {
        match self {
            Status::Submitted => "SUBMITTED",
            Status::WaitingOnUser => "WAITING_ON_USER",
            Status::Escalated => "ESCALATED",
            Status::InProgress => "IN_PROGRESS",
            Status::WaitingOnCustomer => "WAITING_ON_CUSTOMER",
            Status::Resolved => "RESOLVED",
            Status::Closed => "CLOSED",
        }
    }
}

impl TicketRow {
    /// Where `step`, taken by `actor`, leaves the ticket; the rule it breaks otherwise.
    pub fn after(&self, step: Step, actor: Actor) -> Result<Status, Refusal> {
        let status = self.status;
        let holder = |who: &str| {
            refuse(
                TicketingRule::TicketHolder,
                format!("the ticket is {}: {who} takes this step", status.name()),
            )
        };
        let wrong_status = |allowed: &str| {
            refuse(
                TicketingRule::TicketStatus,
                format!(
                    "the ticket is {}; this step is taken from {allowed}",
                    status.name()
                ),
            )
        };
        match step {
            Step::AskSubmitter | Step::Escalate => {
                if actor != Actor::Administrator {
                    return Err(holder("an administrator of the organization"));
                }
                if !status.with_organization() {
                    return Err(wrong_status("SUBMITTED or WAITING_ON_USER"));
                }
                Ok(match step {
                    Step::AskSubmitter => Status::WaitingOnUser,
                    _ => Status::Escalated,
                })
            }
            Step::Triage => {
                if actor != Actor::Support {
                    return Err(holder("support"));
                }
                if !status.with_support() {
                    return Err(wrong_status(
                        "ESCALATED, IN_PROGRESS or WAITING_ON_CUSTOMER",
                    ));
                }
                Ok(status)
            }
            Step::StartWork => {
                if actor != Actor::Support {
                    return Err(holder("support"));
                }
                if status != Status::Escalated {
                    return Err(wrong_status("ESCALATED"));
                }
                if self.tier.is_none() {
                    return Err(refuse(
                        TicketingRule::TicketStatus,
                        "the ticket has no tier yet: triage it first",
                    ));
                }
                Ok(Status::InProgress)
            }
            Step::AskCustomer => {
                if actor != Actor::Support {
                    return Err(holder("support"));
                }
                if status != Status::InProgress {
                    return Err(wrong_status("IN_PROGRESS"));
                }
                Ok(Status::WaitingOnCustomer)
            }
            Step::Resolve => match actor {
                Actor::Administrator if status.with_organization() => Ok(Status::Resolved),
                Actor::Support if status.with_support() => Ok(Status::Resolved),
                Actor::Administrator if status.with_support() => Err(holder("support")),
                Actor::Support if status.with_organization() => {
                    Err(holder("an administrator of the organization"))
                }
                Actor::Submitter => Err(holder("an administrator of the organization")),
                _ => Err(wrong_status(
                    "SUBMITTED, WAITING_ON_USER, ESCALATED, IN_PROGRESS or WAITING_ON_CUSTOMER",
                )),
            },
            Step::Reopen => {
                if actor == Actor::Support {
                    return Err(holder(
                        "the submitter or an administrator of the organization",
                    ));
                }
                if status != Status::Resolved {
                    return Err(wrong_status("RESOLVED"));
                }
                Ok(if self.resolved_by_support {
                    Status::InProgress
                } else {
                    Status::Submitted
                })
            }
        }
    }

    /// Where a public note by `actor` leaves the ticket: an answer to a question moves it back
    /// to whoever asked (the submitter answering its administrators; the submitter or an
    /// administrator answering support).
    pub fn after_public_note(&self, actor: Actor) -> Status {
        match (self.status, actor) {
            (Status::WaitingOnUser, Actor::Submitter) => Status::Submitted,
            (Status::WaitingOnCustomer, Actor::Submitter | Actor::Administrator) => {
                Status::InProgress
            }
            (status, _) => status,
        }
    }
}

/// The most attachments a ticket holds.
pub const MAX_ATTACHMENTS: i64 = 20;

/// Whether an attachment may leave the organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// Inside the organization: support never sees it.
    Inside,
    /// An administrator let it go to support as it is.
    Confirmed,
    /// An administrator let it go with rectangles blacked out.
    Redacted,
}

/// An attachment as stored (its image is in the object store under `object_key`).
#[derive(Clone, Debug, PartialEq)]
pub struct AttachmentRow {
    pub tenant_id: TenantId,
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub file_name: String,
    pub format: Format,
    pub size_bytes: i64,
    pub width: i32,
    pub height: i32,
    pub sha256: Vec<u8>,
    pub object_key: String,
    pub uploaded_by: String,
    pub release: Release,
    pub released_by: Option<String>,
    pub released_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A read of an attachment by support.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachmentRead {
    pub attachment_id: Uuid,
    pub reader: String,
    pub read_at: DateTime<Utc>,
}

/// Where an attachment's image is kept: under its organization and ticket, a new name for
/// each version (a redaction writes one).
pub fn object_key(a: &AttachmentRow, version: &str) -> String {
    let extension = match a.format {
        Format::Png => "png",
        Format::Jpeg => "jpg",
        Format::Webp => "webp",
    };
    format!(
        "tenants/{}/tickets/{}/{}-{version}.{extension}",
        a.tenant_id, a.ticket_id, a.id
    )
}

/// What a sweep did to a ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Swept {
    Breached(Clock),
    Closed,
}

impl TicketRow {
    /// Marks each clock run out by `now` as breached, once.
    pub fn breach_clocks(&mut self, now: DateTime<Utc>) -> Vec<Swept> {
        let breached = self.clocks.breaches(self.status, now);
        for (clock, _) in &breached {
            match clock {
                Clock::FirstResponse => self.clocks.first_response_breached_at = Some(now),
                Clock::Resolution => self.clocks.resolution_breached_at = Some(now),
            }
        }
        breached
            .into_iter()
            .map(|(clock, _)| Swept::Breached(clock))
            .collect()
    }

    /// Closes a resolved ticket (one reopened since it was found stays open).
    pub fn close(&mut self, now: DateTime<Utc>) -> Vec<Swept> {
        if self.status != Status::Resolved {
            return Vec::new();
        }
        self.status = Status::Closed;
        self.closed_at = Some(now);
        vec![Swept::Closed]
    }
}

/// One line of a tier matrix: the tier of the tickets it matches. A criterion left out
/// matches anything; a ticket matches when each criterion given is at least its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierLine {
    pub severity: Option<Severity>,
    pub complexity: Option<Complexity>,
    pub priority: Option<Priority>,
    pub tier: Tier,
}

/// The hosting provider's triage matrix: the first line a ticket matches gives its tier;
/// tier 1 when none does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierMatrix {
    pub lines: Vec<TierLine>,
}

/// The matrix a deployment uses unless it configures its own (see `TierMatrix::parse`), in
/// the spirit of ITIL's impact x urgency: engineering work or a stopped organization go to
/// tier 3; investigation, a major fault or an urgent one to tier 2; the rest to tier 1.
pub const DEFAULT_TIER_MATRIX: &str = "complexity>=HIGH:3, severity>=CRITICAL:3, complexity>=MEDIUM:2, severity>=HIGH:2, priority>=URGENT:2";

impl TierMatrix {
    /// Reads a matrix written as comma-separated lines `criteria:tier`, the criteria joined by
    /// `&`, each `severity>=V`, `complexity>=V` or `priority>=V` with V a value's name
    /// (`LOW`, `MEDIUM`, `HIGH`, `CRITICAL`, `URGENT`); `*` matches anything. The first line a
    /// ticket matches gives its tier.
    pub fn parse(text: &str) -> Result<TierMatrix, String> {
        let mut lines = Vec::new();
        for line in text.split(',').map(str::trim).filter(|l| !l.is_empty()) {
            let (criteria, tier) = line
                .rsplit_once(':')
                .ok_or_else(|| format!("`{line}`: expected criteria:tier"))?;
            let tier = tier
                .trim()
                .parse::<i64>()
                .ok()
                .and_then(Tier::new)
                .ok_or_else(|| format!("`{line}`: the tier is 1, 2 or 3"))?;
            let mut parsed = TierLine {
                severity: None,
                complexity: None,
                priority: None,
                tier,
            };
            for criterion in criteria.split('&').map(str::trim) {
                if criterion == "*" {
                    continue;
                }
                let (what, value) = criterion
                    .split_once(">=")
                    .ok_or_else(|| format!("`{criterion}`: expected name>=VALUE or *"))?;
                let value = value.trim();
                let unknown = || format!("`{criterion}`: unknown value {value}");
                match what.trim() {
                    "severity" => {
                        parsed.severity = Some(Severity::named(value).ok_or_else(unknown)?)
                    }
                    "complexity" => {
                        parsed.complexity = Some(Complexity::named(value).ok_or_else(unknown)?)
                    }
                    "priority" => {
                        parsed.priority = Some(Priority::named(value).ok_or_else(unknown)?)
                    }
                    other => {
                        return Err(format!(
                            "`{criterion}`: {other} is not severity, complexity or priority"
                        ));
                    }
                }
            }
            lines.push(parsed);
        }
        Ok(TierMatrix { lines })
    }

    /// The tier of a ticket of this severity, complexity and priority.
    pub fn tier(&self, severity: Severity, complexity: Complexity, priority: Priority) -> Tier {
        self.lines
            .iter()
            .find(|line| {
                line.severity.is_none_or(|s| severity >= s)
                    && line.complexity.is_none_or(|c| complexity >= c)
                    && line.priority.is_none_or(|p| priority >= p)
            })
            .map_or(Tier(1), |line| line.tier)
    }
}

impl Default for TierMatrix {
    fn default() -> Self {
        TierMatrix::parse(DEFAULT_TIER_MATRIX).unwrap_or(TierMatrix { lines: Vec::new() })
    }
}

impl Severity {
    fn named(name: &str) -> Option<Severity> {
        match name {
            "LOW" => Some(Severity::Low),
            "MEDIUM" => Some(Severity::Medium),
            "HIGH" => Some(Severity::High),
            "CRITICAL" => Some(Severity::Critical),
            _ => None,
        }
    }
}

impl Complexity {
    fn named(name: &str) -> Option<Complexity> {
        match name {
            "LOW" => Some(Complexity::Low),
            "MEDIUM" => Some(Complexity::Medium),
            "HIGH" => Some(Complexity::High),
            _ => None,
        }
    }
}

impl Priority {
    pub(crate) fn named(name: &str) -> Option<Priority> {
        match name {
            "LOW" => Some(Priority::Low),
            "MEDIUM" => Some(Priority::Medium),
            "HIGH" => Some(Priority::High),
            "URGENT" => Some(Priority::Urgent),
            _ => None,
        }
    }
}

/// Whether `email` looks like an address: one `@` with text on both sides and a dot in the
/// domain, no spaces.
pub fn email_like(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// Whether `trace_id` is a W3C trace id: 32 hexadecimal digits.
pub fn trace_id_like(trace_id: &str) -> bool {
    trace_id.len() == 32 && trace_id.chars().all(|c| c.is_ascii_hexdigit())
}

/// Whether `phone` looks like a phone number: 7 to 30 of digits, spaces and `+ ( ) -`, with at
/// least 7 digits.
pub fn phone_like(phone: &str) -> bool {
    (7..=30).contains(&phone.chars().count())
        && phone
            .chars()
            .all(|c| c.is_ascii_digit() || " +()-".contains(c))
        && phone.chars().filter(char::is_ascii_digit).count() >= 7
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(status: Status) -> TicketRow {
        let now = Utc::now();
        TicketRow {
            tenant_id: TenantId::new(),
            id: Uuid::now_v7(),
            kind: Kind::Issue,
            title: "t".into(),
            description: "d".into(),
            context: Context::default(),
            contact: Contact {
                name: "Ana".into(),
                email: "ana@example.org".into(),
                phone: String::new(),
                preferred: ContactMethod::Email,
            },
            status,
            submitted_by: "ana".into(),
            severity: None,
            complexity: None,
            priority: None,
            tier: None,
            tier_override_reason: None,
            resolution: None,
            resolved_by: None,
            resolved_by_support: false,
            escalated_at: None,
            resolved_at: None,
            clocks: Clocks::default(),
            closed_at: None,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn each_step_is_taken_by_whoever_holds_the_ticket_from_its_statuses() {
        use Actor::*;
        use Status::*;
        let submitted = ticket(Submitted);
        assert_eq!(
            submitted.after(Step::AskSubmitter, Administrator),
            Ok(WaitingOnUser)
        );
        assert_eq!(
            submitted.after(Step::Escalate, Administrator),
            Ok(Escalated)
        );
        assert_eq!(submitted.after(Step::Resolve, Administrator), Ok(Resolved));
        for actor in [Submitter, Support] {
            let refused = submitted.after(Step::Escalate, actor).unwrap_err();
            assert_eq!(refused.rule, TicketingRule::TicketHolder);
        }
        assert_eq!(
            submitted.after(Step::Resolve, Support).unwrap_err().rule,
            TicketingRule::TicketHolder
        );
        assert_eq!(
            submitted.after(Step::Triage, Support).unwrap_err().rule,
            TicketingRule::TicketStatus
        );

        let mut escalated = ticket(Escalated);
        assert_eq!(escalated.after(Step::Triage, Support), Ok(Escalated));
        let untriaged = escalated.after(Step::StartWork, Support).unwrap_err();
        assert_eq!(untriaged.rule, TicketingRule::TicketStatus);
        escalated.tier = Tier::new(2);
        assert_eq!(escalated.after(Step::StartWork, Support), Ok(InProgress));
        assert_eq!(
            escalated
                .after(Step::Resolve, Administrator)
                .unwrap_err()
                .rule,
            TicketingRule::TicketHolder
        );
        assert_eq!(
            escalated
                .after(Step::Escalate, Administrator)
                .unwrap_err()
                .rule,
            TicketingRule::TicketStatus
        );
        let working = ticket(InProgress);
        assert_eq!(
            working.after(Step::AskCustomer, Support),
            Ok(WaitingOnCustomer)
        );
        assert_eq!(working.after(Step::Resolve, Support), Ok(Resolved));

        // A reopened ticket returns to whoever resolved it.
        let mut resolved = ticket(Resolved);
        assert_eq!(resolved.after(Step::Reopen, Submitter), Ok(Submitted));
        resolved.resolved_by_support = true;
        assert_eq!(resolved.after(Step::Reopen, Administrator), Ok(InProgress));
        assert_eq!(
            resolved.after(Step::Reopen, Support).unwrap_err().rule,
            TicketingRule::TicketHolder
        );
        assert_eq!(
            resolved
                .after(Step::Resolve, Administrator)
                .unwrap_err()
                .rule,
            TicketingRule::TicketStatus
        );
    }

    #[test]
    fn a_public_answer_returns_a_waiting_ticket_to_whoever_asked() {
        use Actor::*;
        use Status::*;
        assert_eq!(
            ticket(WaitingOnUser).after_public_note(Submitter),
            Submitted
        );
        assert_eq!(
            ticket(WaitingOnUser).after_public_note(Administrator),
            WaitingOnUser
        );
        assert_eq!(
            ticket(WaitingOnCustomer).after_public_note(Submitter),
            InProgress
        );
        assert_eq!(
            ticket(WaitingOnCustomer).after_public_note(Administrator),
            InProgress
        );
        assert_eq!(
            ticket(WaitingOnCustomer).after_public_note(Support),
            WaitingOnCustomer
        );
        assert_eq!(ticket(InProgress).after_public_note(Submitter), InProgress);
    }

    #[test]
    fn the_default_matrix_sorts_tickets_into_three_tiers() {
        let matrix = TierMatrix::default();
        let tier = |s, c, p| matrix.tier(s, c, p).number();
        use Complexity as C;
        use Priority as P;
        use Severity as S;
        assert_eq!(tier(S::Low, C::Low, P::Low), 1);
        assert_eq!(tier(S::Medium, C::Low, P::High), 1);
        assert_eq!(tier(S::High, C::Low, P::Low), 2);
        assert_eq!(tier(S::Low, C::Medium, P::Low), 2);
        assert_eq!(tier(S::Low, C::Low, P::Urgent), 2);
        assert_eq!(tier(S::Low, C::High, P::Low), 3);
        assert_eq!(tier(S::Critical, C::Low, P::Low), 3);
    }

    #[test]
    fn a_configured_matrix_is_read_or_refused_with_the_line_at_fault() {
        let matrix = TierMatrix::parse("severity>=HIGH & priority>=URGENT:3, *:2").unwrap();
        assert_eq!(
            matrix
                .tier(Severity::Critical, Complexity::Low, Priority::Urgent)
                .number(),
            3
        );
        assert_eq!(
            matrix
                .tier(Severity::Critical, Complexity::Low, Priority::High)
                .number(),
            2
        );
        for (bad, says) in [
            ("severity>=HUGE:3", "unknown value HUGE"),
            ("severity>=HIGH:4", "the tier is 1, 2 or 3"),
            ("size>=HIGH:2", "is not severity"),
            ("severity>=HIGH", "expected criteria:tier"),
        ] {
            let error = TierMatrix::parse(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn contacts_are_checked_for_the_shape_of_an_address_and_a_number() {
        assert!(email_like("ana@example.org"));
        for bad in [
            "ana",
            "@example.org",
            "ana@example",
            "ana@.org",
            "a na@example.org",
        ] {
            assert!(!email_like(bad), "{bad}");
        }
        assert!(phone_like("+1 (555) 010-2030"));
        for bad in ["12345", "555-CALL-NOW", "+++++++"] {
            assert!(!phone_like(bad), "{bad}");
        }
    }
}
