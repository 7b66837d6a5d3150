//! Between the eligibility service's wire messages and its domain: requests read into what the
//! use cases take (every field checked, each violation named), rows and decisions written back
//! as messages.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{NaiveDate, Utc};

use caseway_api::eligibility::v1 as pb;
use caseway_platform::convert::{date, timestamp};
use caseway_platform::error::{Error, Result};
use caseway_platform::etag;
use caseway_platform::validate::{self, Violations};
use caseway_platform::{ClientId, RuleId, ServiceId};

use crate::domain::{
    Criterion, DecisionRow, FactSchema, FieldType, MAX_CRITERIA, Mode, Outcome, RuleRow,
    RuleVersionRow,
};
use crate::reads::{FactSource, FactUse};

pub fn outcome_to_proto(outcome: Outcome) -> pb::Outcome {
    match outcome {
        Outcome::Eligible => pb::Outcome::Eligible,
        Outcome::NotEligible => pb::Outcome::NotEligible,
        Outcome::Undetermined => pb::Outcome::Undetermined,
    }
}

fn mode_to_proto(mode: Mode) -> pb::EnforcementMode {
    match mode {
        Mode::Advisory => pb::EnforcementMode::Advisory,
        Mode::Required => pb::EnforcementMode::Required,
    }
}

fn mode(value: i32, field: &str, v: &mut Violations) -> Mode {
    match pb::EnforcementMode::try_from(value) {
        Ok(pb::EnforcementMode::Required) => Mode::Required,
        Ok(_) => Mode::Advisory,
        Err(_) => {
            v.add(field, "is not an enforcement mode");
            Mode::Advisory
        }
    }
}

fn criterion_to_proto(c: &Criterion) -> pb::Criterion {
    pb::Criterion {
        name: c.name.clone(),
        expression: c.expression.clone(),
        any_of_group: c.any_of_group.clone().unwrap_or_default(),
    }
}

pub fn rule_to_proto(r: &RuleRow) -> pb::Rule {
    pb::Rule {
        id: r.id.to_string(),
        service_id: r.service_id.to_string(),
        service_code: r.service_code.clone(),
        mode: mode_to_proto(r.mode) as i32,
        criteria: r.criteria.iter().map(criterion_to_proto).collect(),
        published_version: r.published_version,
        draft_changed: r.draft_changed,
        etag: etag::format(r.version),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
    }
}

pub fn version_to_proto(v: &RuleVersionRow) -> pb::RuleVersion {
    pb::RuleVersion {
        rule_id: v.rule_id.to_string(),
        service_id: v.service_id.to_string(),
        version: v.version,
        mode: mode_to_proto(v.mode) as i32,
        criteria: v.criteria.iter().map(criterion_to_proto).collect(),
        published_by: v.published_by.clone(),
        publish_time: Some(timestamp(v.published_at)),
    }
}

fn source_to_proto(s: &FactSource) -> pb::FactSource {
    pb::FactSource {
        kind: s.kind.clone(),
        id: s.id.map(|i| i.to_string()).unwrap_or_default(),
        effective_date: s.effective_date.map(date),
    }
}

fn use_to_proto(u: &FactUse) -> pb::FactUse {
    pb::FactUse {
        path: u.path.clone(),
        value: u.value.clone().unwrap_or_default(),
        missing: u.value.is_none(),
        sources: u.sources.iter().map(source_to_proto).collect(),
    }
}

/// How much of a decision an answer carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Basic,
    Full,
}

/// The `view` of a check; a value the contract does not name is a violation of `view`.
fn view(v: &mut Violations, view: i32) -> View {
    match pb::DecisionView::try_from(view) {
        Ok(pb::DecisionView::Basic) => View::Basic,
        Ok(pb::DecisionView::Unspecified | pb::DecisionView::Full) => View::Full,
        Err(_) => {
            v.add("view", "is not a DecisionView");
            View::Full
        }
    }
}

/// The facts a response's decisions read, each listed once: a criterion's result names the
/// facts it read by their index here (`CriterionResult.fact_indexes`). The criteria of one check
/// that read the same facts share them (`CriterionResult::facts`), so those are looked up once.
#[derive(Default)]
pub struct FactList<'a> {
    /// The indexes of a shared slice of facts, by its address.
    slices: HashMap<usize, Vec<i32>>,
    indexes: HashMap<&'a FactUse, i32>,
    facts: Vec<pb::FactUse>,
}

impl<'a> FactList<'a> {
    /// The indexes of `facts`, each listed the first time it comes.
    fn indexes(&mut self, facts: &'a Arc<[FactUse]>) -> Vec<i32> {
        let slice = Arc::as_ptr(facts) as *const FactUse as usize;
        if let Some(known) = self.slices.get(&slice) {
            return known.clone();
        }
        let indexes: Vec<i32> = facts
            .iter()
            .map(|fact| {
                *self.indexes.entry(fact).or_insert_with(|| {
                    self.facts.push(use_to_proto(fact));
                    // At most a few thousand facts a response (500 decisions of 50 criteria).
                    i32::try_from(self.facts.len() - 1).unwrap_or(i32::MAX)
                })
            })
            .collect();
        self.slices.insert(slice, indexes.clone());
        indexes
    }

    /// The facts, in the order of their indexes.
    pub fn into_proto(self) -> Vec<pb::FactUse> {
        self.facts
    }
}

/// The reply of a check with `decisions` in `view`: in the FULL view, every fact their criteria
/// read listed once.
pub fn check_response(decisions: &[DecisionRow], view: View) -> pb::CheckEligibilityResponse {
    let mut facts = FactList::default();
    let decisions = decisions
        .iter()
        .map(|d| decision_in_view(d, view, &mut facts))
        .collect();
    pb::CheckEligibilityResponse {
        decisions,
        facts: facts.into_proto(),
    }
}

/// A decision in the FULL view, its facts listed in `facts`.
pub fn decision_to_proto<'a>(d: &'a DecisionRow, facts: &mut FactList<'a>) -> pb::Decision {
    decision_in_view(d, View::Full, facts)
}

/// A decision in `view`; in the FULL view, the facts its criteria read are listed in `facts`.
pub fn decision_in_view<'a>(
    d: &'a DecisionRow,
    view: View,
    facts: &mut FactList<'a>,
) -> pb::Decision {
    let criteria = match view {
        View::Basic => Vec::new(),
        View::Full => d
            .criteria
            .iter()
            .zip(&d.results)
            .map(|(c, r)| pb::CriterionResult {
                name: c.name.clone(),
                any_of_group: c.any_of_group.clone().unwrap_or_default(),
                outcome: outcome_to_proto(r.outcome) as i32,
                fact_indexes: facts.indexes(&r.facts),
            })
            .collect(),
    };
    pb::Decision {
        id: d.id.map(|i| i.to_string()).unwrap_or_default(),
        client_id: d.client_id.to_string(),
        service_id: d.service_id.to_string(),
        service_code: d.service_code.clone(),
        rule_id: d.rule_id.to_string(),
        rule_version: d.rule_version,
        mode: mode_to_proto(d.mode) as i32,
        as_of: Some(date(d.as_of)),
        outcome: outcome_to_proto(d.outcome) as i32,
        criteria,
        decided_by: d.decided_by.clone(),
        decide_time: Some(timestamp(d.decided_at)),
    }
}

fn field_type_name(t: FieldType) -> &'static str {
    match t {
        FieldType::Integer => "int",
        FieldType::Decimal => "double",
        FieldType::Boolean => "bool",
        FieldType::Date => "google.protobuf.Timestamp (a date at midnight UTC)",
        FieldType::Code => "string (a code)",
        FieldType::Text => "string",
    }
}

/// What an expression may name in a tenant.
pub fn schema_to_proto(schema: &FactSchema) -> Vec<pb::FactDeclaration> {
    let fact = |name: &str, kind: &str, description: &str| pb::FactDeclaration {
        name: name.into(),
        r#type: kind.into(),
        description: description.into(),
    };
    let mut facts = vec![
        fact(
            "age",
            "int",
            "Whole years on the decision's date; missing without a birth date.",
        ),
        fact(
            "veteran",
            "bool",
            "The client's veteran status; missing when not answered.",
        ),
        fact(
            "barriers",
            "list(Barrier{type, status, identified_date, resolved_date})",
            "Barriers identified on or before the date, with their status then.",
        ),
        fact(
            "enrollments",
            "list(Enrollment{program, active, entry_date, exit_date})",
            "Enrollments entered on or before the date; active when not exited before it.",
        ),
        fact(
            "delivered(service_code, days)",
            "Delivered{value: double, units: double, count: int}",
            &format!(
                "What the client received of a service in the days ending on the date. \
                 Service codes: {}.",
                schema
                    .service_codes
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    ];
    for (code, fields) in &schema.assessment_types {
        for (key, kind) in fields {
            facts.push(fact(
                &format!("assessments.{code}.{key}"),
                field_type_name(*kind),
                &format!(
                    "From the latest {code} assessment on or before the date; missing when \
                     there is none or it leaves the field unanswered."
                ),
            ));
        }
    }
    facts.sort_by(|a, b| a.name.cmp(&b.name));
    facts
}

/// A rule's criteria from the wire, each field's bounds checked (the expressions are checked
/// against the schema by the use case).
pub fn criteria(items: &[pb::Criterion], prefix: &str, v: &mut Violations) -> Vec<Criterion> {
    if items.len() > MAX_CRITERIA {
        v.add(
            format!("{prefix}criteria"),
            format!("must have at most {MAX_CRITERIA} entries"),
        );
        return Vec::new();
    }
    items
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let field = |name: &str| format!("{prefix}criteria[{i}].{name}");
            v.text(&field("name"), &c.name, 1, 200);
            v.text(&field("expression"), &c.expression, 1, 2000);
            let group = (!c.any_of_group.is_empty()).then(|| {
                v.code(&field("any_of_group"), &c.any_of_group, 64);
                c.any_of_group.clone()
            });
            Criterion {
                name: c.name.trim().to_string(),
                expression: c.expression.clone(),
                any_of_group: group,
            }
        })
        .collect()
}

/// CreateRule's request, read.
pub struct Creation {
    pub service_id: Option<ServiceId>,
    pub mode: Mode,
    pub criteria: Vec<Criterion>,
}

pub fn creation(message: &pb::CreateRuleRequest, v: &mut Violations) -> Result<Creation> {
    let rule = message
        .rule
        .as_ref()
        .ok_or_else(|| Error::invalid("rule", "is required"))?;
    v.request_id(&message.request_id);
    Ok(Creation {
        service_id: v.id("rule.service_id", &rule.service_id),
        mode: mode(rule.mode, "rule.mode", v),
        criteria: criteria(&rule.criteria, "rule.", v),
    })
}

/// UpdateRule's request, read: the fields it changes and their new values.
pub struct Change {
    pub id: RuleId,
    pub expected: Option<i64>,
    pub mode: Option<Mode>,
    pub criteria: Option<Vec<Criterion>>,
}

pub fn change(message: &pb::UpdateRuleRequest, v: &mut Violations) -> Result<Change> {
    let rule = message
        .rule
        .as_ref()
        .ok_or_else(|| Error::invalid("rule", "is required"))?;
    let id = validate::parse_id("rule.id", &rule.id)?;
    let expected = etag::parse("rule.etag", &rule.etag)?;
    let mut set = Vec::new();
    if rule.mode != 0 {
        set.push("mode");
    }
    if !rule.criteria.is_empty() {
        set.push("criteria");
    }
    let fields = validate::update_mask(message.update_mask.as_ref(), &["mode", "criteria"], &set)?;
    Ok(Change {
        id,
        expected,
        mode: fields
            .contains(&"mode")
            .then(|| mode(rule.mode, "rule.mode", v)),
        criteria: fields
            .contains(&"criteria")
            .then(|| criteria(&rule.criteria, "rule.", v)),
    })
}

/// The date facts are taken as of: the one given, or today (UTC).
pub fn as_of(value: Option<&caseway_api::google::r#type::Date>, v: &mut Violations) -> NaiveDate {
    validate::date(v, "as_of", value, false).unwrap_or_else(|| Utc::now().date_naive())
}

/// A client and the date of a check.
pub fn client_on(
    client_id: &str,
    as_of_date: Option<&caseway_api::google::r#type::Date>,
) -> Result<(ClientId, NaiveDate)> {
    let (client, on, _) = check_of(client_id, as_of_date, 0)?;
    Ok((client, on))
}

/// A check's client, date and view.
pub fn check_of(
    client_id: &str,
    as_of_date: Option<&caseway_api::google::r#type::Date>,
    view_code: i32,
) -> Result<(ClientId, NaiveDate, View)> {
    let mut v = Violations::new();
    let client = v.id("client_id", client_id);
    let on = as_of(as_of_date, &mut v);
    let view = view(&mut v, view_code);
    Ok((v.finish_with(client)?, on, view))
}
