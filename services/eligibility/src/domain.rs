//! Rules and their evaluation, without I/O: the fact schema a tenant's expressions are
//! checked against, the facts of one client as of a date, and a rule's outcome with each
//! criterion's.
//!
//! Expressions are CEL, checked and evaluated by `cel-core`. The schema reaches its checker as
//! message types (a misspelt field is an undefined field); at run time the facts are plain CEL
//! maps and lists, so a fact the client's record lacks is a missing key, which leaves a
//! criterion UNDETERMINED rather than false.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use cel_core::{
    CelType, CompileError, Env, EvalErrorKind, Expr, FunctionDecl, MapActivation, MapKey,
    MessageValue, OverloadDecl, Program, ProtoRegistry, ProtoTypeResolver, ResolvedProtoType,
    SpannedExpr, StructFieldValue, Timestamp, Value, ValueMap,
};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use uuid::Uuid;

use caseway_platform::validate::Violations;
use caseway_platform::{ClientId, DecisionId, RuleId, ServiceId};

use crate::reads::{FactUse, Reads, barrier_status_on, in_window, latest_assessments};

/// Criteria in one rule, at most.
pub const MAX_CRITERIA: usize = 50;

/// The type of an assessment field, as the clients service defines it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldType {
    Integer,
    Decimal,
    Boolean,
    Date,
    Code,
    Text,
}

impl FieldType {
    fn cel(self) -> CelType {
        match self {
            FieldType::Integer => CelType::Int,
            FieldType::Decimal => CelType::Double,
            FieldType::Boolean => CelType::Bool,
            FieldType::Date => CelType::Timestamp,
            FieldType::Code | FieldType::Text => CelType::String,
        }
    }
}

/// What a tenant's expressions may name besides the fixed facts: its assessment types with
/// their fields, and its service codes (for `delivered`). A rule version keeps the schema it
/// was checked against, so it compiles the same years later.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FactSchema {
    /// Assessment type code -> field key -> type.
    pub assessment_types: BTreeMap<String, BTreeMap<String, FieldType>>,
    pub service_codes: BTreeSet<String>,
}

const ASSESSMENTS: &str = "caseway.facts.Assessments";
const ASSESSMENT_PREFIX: &str = "caseway.facts.assessment.";
const BARRIER: &str = "caseway.facts.Barrier";
const ENROLLMENT: &str = "caseway.facts.Enrollment";
const DELIVERED: &str = "caseway.facts.Delivered";

/// The schema as the checker's message types.
#[derive(Debug)]
struct Types(Arc<FactSchema>);

impl ProtoTypeResolver for Types {
    fn get_field_type(&self, message: &str, field: &str) -> Option<CelType> {
        let timestamp = || Some(CelType::Timestamp);
        match message {
            ASSESSMENTS => self
                .0
                .assessment_types
                .contains_key(field)
                .then(|| CelType::message(&format!("{ASSESSMENT_PREFIX}{field}"))),
            BARRIER => match field {
                "type" | "status" => Some(CelType::String),
                "identified_date" | "resolved_date" => timestamp(),
                _ => None,
            },
            ENROLLMENT => match field {
                "program" => Some(CelType::String),
                "active" => Some(CelType::Bool),
                "entry_date" | "exit_date" => timestamp(),
                _ => None,
            },
            DELIVERED => match field {
                "value" | "units" => Some(CelType::Double),
                "count" => Some(CelType::Int),
                _ => None,
            },
            _ => {
                let code = message.strip_prefix(ASSESSMENT_PREFIX)?;
                let field_type = self.0.assessment_types.get(code)?.get(field)?;
                Some(field_type.cel())
            }
        }
    }

    fn has_message(&self, message: &str) -> bool {
        matches!(message, ASSESSMENTS | BARRIER | ENROLLMENT | DELIVERED)
            || message
                .strip_prefix(ASSESSMENT_PREFIX)
                .is_some_and(|code| self.0.assessment_types.contains_key(code))
    }

    fn is_extension(&self, _message: &str, _name: &str) -> bool {
        false
    }

    fn get_enum_value(&self, _enum_name: &str, _value_name: &str) -> Option<i32> {
        None
    }

    fn resolve_qualified(&self, _parts: &[&str], _container: &str) -> Option<ResolvedProtoType> {
        None
    }

    fn resolve_message_name(&self, _name: &str, _container: &str) -> Option<String> {
        None
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Facts are maps at run time, never message values, so the evaluator never asks for these;
/// a message literal in an expression evaluates to an error.
impl ProtoRegistry for Types {
    fn construct_message(&self, type_name: &str, _: &[StructFieldValue], _: bool) -> Value {
        Value::error(format!("{type_name} cannot be built in an expression"))
    }

    fn message_field_access(&self, _: &dyn MessageValue, field: &str, _: bool, _: bool) -> Value {
        Value::error(format!("no field {field}"))
    }

    fn message_has_field(&self, _: &dyn MessageValue, _: &str) -> Value {
        Value::Bool(false)
    }

    fn get_extension_value(
        &self,
        _: &dyn MessageValue,
        _: &str,
        _: bool,
        _: bool,
    ) -> Option<Value> {
        None
    }

    fn has_extension(&self, _: &dyn MessageValue, _: &str) -> Option<bool> {
        None
    }
}

thread_local! {
    /// The deliveries `delivered` reads during one evaluation on this thread: an evaluation
    /// is synchronous, and a compiled rule is shared by every client.
    static DELIVERIES: RefCell<Option<Deliveries>> = const { RefCell::new(None) };
}

/// A client's deliveries as of a date, for `delivered(code, days)`.
#[derive(Clone, Debug)]
struct Deliveries {
    as_of: NaiveDate,
    records: Arc<[DeliveryFact]>,
}

fn delivered(args: &[Value]) -> Value {
    let (Some(Value::String(code)), Some(Value::Int(days))) = (args.first(), args.get(1)) else {
        return Value::error("delivered takes a service code and a number of days");
    };
    if *days < 1 {
        return Value::error("delivered takes a window of at least one day");
    }
    DELIVERIES.with(|current| {
        let current = current.borrow();
        let Some(deliveries) = current.as_ref() else {
            return Value::error("no deliveries to read");
        };
        let (mut value, mut units, mut count) = (Decimal::ZERO, Decimal::ZERO, 0i64);
        for record in in_window(&deliveries.records, code, Some(*days), deliveries.as_of) {
            value += record.value;
            units += record.units;
            count += 1;
        }
        object([
            ("value", Value::Double(double(value))),
            ("units", Value::Double(double(units))),
            ("count", Value::Int(count)),
        ])
    })
}

/// A decimal as CEL's double: expressions compare numbers, decisions keep the decimals.
/// (`rust_decimal` gives every value a double, so the fallback is never taken.)
fn double(decimal: Decimal) -> f64 {
    decimal.to_f64().unwrap_or(f64::NAN)
}

fn object<'a>(fields: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    Value::Map(Arc::new(ValueMap::from_entries(
        fields
            .into_iter()
            .map(|(key, value)| (MapKey::String(Arc::from(key)), value)),
    )))
}

/// Why an expression cannot be saved, and where (1-based, in characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpressionError {
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

impl std::fmt::Display for ExpressionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.reason
        )
    }
}

fn position(source: &str, offset: usize, reason: String) -> ExpressionError {
    let before = source.get(..offset.min(source.len())).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    ExpressionError {
        line,
        column,
        reason,
    }
}

/// A tenant's checker: the CEL environment of its fact schema.
pub struct Checker {
    env: Env,
    schema: Arc<FactSchema>,
}

/// An expression that passed the check, ready to evaluate.
#[derive(Clone)]
pub struct Compiled {
    program: Arc<Program>,
    /// The facts it reads, for the explanation and the stored snapshot.
    pub reads: Arc<Reads>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Compiled")
    }
}

impl Checker {
    pub fn new(schema: FactSchema) -> Checker {
        let schema = Arc::new(schema);
        // CEL's checker compares only values of one type; its runtime compares an int with
        // a double, so `monthly_income <= 2 * 1215` is declared too.
        let mixed = |operator: &str, id: &str| {
            FunctionDecl::new(operator)
                .with_overload(OverloadDecl::function(
                    format!("{id}_double_int"),
                    vec![CelType::Double, CelType::Int],
                    CelType::Bool,
                ))
                .with_overload(OverloadDecl::function(
                    format!("{id}_int_double"),
                    vec![CelType::Int, CelType::Double],
                    CelType::Bool,
                ))
        };
        let env = Env::with_standard_library()
            .with_variable("age", CelType::Int)
            .with_variable("veteran", CelType::Bool)
            .with_variable("assessments", CelType::message(ASSESSMENTS))
            .with_variable("barriers", CelType::list(CelType::message(BARRIER)))
            .with_variable("enrollments", CelType::list(CelType::message(ENROLLMENT)))
            .with_proto_registry(Arc::new(Types(schema.clone())))
            .with_function(mixed("_<_", "less"))
            .with_function(mixed("_<=_", "less_equals"))
            .with_function(mixed("_>_", "greater"))
            .with_function(mixed("_>=_", "greater_equals"))
            .with_function(
                FunctionDecl::new("delivered").with_overload(
                    OverloadDecl::function(
                        "delivered_string_int",
                        vec![CelType::String, CelType::Int],
                        CelType::message(DELIVERED),
                    )
                    .with_impl(delivered),
                ),
            );
        Checker { env, schema }
    }

    /// Checks one expression: it parses, every name and field is in the schema, every call
    /// has matching arguments, it is a bool, and every service code given to `delivered` is
    /// the tenant's.
    pub fn check(&self, expression: &str) -> Result<Compiled, ExpressionError> {
        let ast = self.env.compile(expression).map_err(|error| match error {
            CompileError::Parse(errors) => match errors.first() {
                Some(e) => position(expression, e.span.start, e.message.clone()),
                None => position(expression, 0, "does not parse".into()),
            },
            CompileError::Check(errors) => match errors.first() {
                Some(e) => position(expression, e.span.start, e.message()),
                None => position(expression, 0, "does not type-check".into()),
            },
            CompileError::NoAst => position(expression, 0, "does not parse".into()),
        })?;
        match ast.result_type() {
            Some(CelType::Bool) => {}
            other => {
                let found = other.map(CelType::display_name).unwrap_or_default();
                return Err(position(
                    expression,
                    0,
                    format!("must be a bool, not {found}"),
                ));
            }
        }
        self.check_service_codes(expression, ast.expr())?;
        let program = self
            .env
            .program(&ast)
            .map_err(|error| position(expression, 0, format!("cannot be evaluated: {error}")))?;
        Ok(Compiled {
            program: Arc::new(program),
            reads: Arc::new(Reads::of(ast.expr())),
        })
    }

    /// Checks a rule's criteria, naming `{prefix}criteria[i].name|expression|any_of_group`.
    pub fn check_rule(
        &self,
        prefix: &str,
        criteria: &[Criterion],
        v: &mut Violations,
    ) -> Option<Vec<Compiled>> {
        if criteria.is_empty() {
            v.add(format!("{prefix}criteria"), "is required");
            return None;
        }
        if criteria.len() > MAX_CRITERIA {
            v.add(
                format!("{prefix}criteria"),
                format!("must have at most {MAX_CRITERIA} entries"),
            );
            return None;
        }
        let mut names = BTreeSet::new();
        let mut groups: BTreeMap<&str, usize> = BTreeMap::new();
        let mut compiled = Vec::with_capacity(criteria.len());
        for (i, criterion) in criteria.iter().enumerate() {
            let field = |name: &str| format!("{prefix}criteria[{i}].{name}");
            if criterion.name.trim().is_empty() {
                v.add(field("name"), "is required");
            } else if !names.insert(criterion.name.as_str()) {
                v.add(field("name"), "is already the name of another criterion");
            }
            if let Some(group) = &criterion.any_of_group {
                *groups.entry(group.as_str()).or_default() += 1;
            }
            match self.check(&criterion.expression) {
                Ok(program) => compiled.push(program),
                Err(error) => v.add(field("expression"), error.to_string()),
            }
        }
        for (i, criterion) in criteria.iter().enumerate() {
            if let Some(group) = &criterion.any_of_group
                && groups.get(group.as_str()) == Some(&1)
            {
                v.add(
                    format!("{prefix}criteria[{i}].any_of_group"),
                    "names a group of one criterion; an any-of group needs two or more",
                );
            }
        }
        (v.is_empty()).then_some(compiled)
    }

    fn check_service_codes(&self, source: &str, expr: &SpannedExpr) -> Result<(), ExpressionError> {
        let mut unknown = None;
        walk(expr, &mut |node| {
            if let Expr::Call { expr: callee, args } = &node.node
                && matches!(&callee.node, Expr::Ident(name) if name == "delivered")
                && unknown.is_none()
            {
                match args.first().map(|a| (&a.node, a.span.start)) {
                    Some((Expr::String(code), _)) if self.schema.service_codes.contains(code) => {}
                    Some((Expr::String(code), at)) => {
                        unknown = Some(position(
                            source,
                            at,
                            format!("{code:?} is not a service code of this tenant"),
                        ))
                    }
                    _ => {
                        unknown = Some(position(
                            source,
                            node.span.start,
                            "delivered takes a service code as a literal string".into(),
                        ))
                    }
                }
            }
        });
        unknown.map_or(Ok(()), Err)
    }
}

/// Calls `visit` on `expr` and every expression inside it.
pub(crate) fn walk(expr: &SpannedExpr, visit: &mut impl FnMut(&SpannedExpr)) {
    visit(expr);
    match &expr.node {
        Expr::Unary { expr, .. }
        | Expr::Member { expr, .. }
        | Expr::MemberTestOnly { expr, .. } => walk(expr, visit),
        Expr::Binary { left, right, .. } => {
            walk(left, visit);
            walk(right, visit);
        }
        Expr::Ternary {
            cond,
            then_expr,
            else_expr,
        } => {
            walk(cond, visit);
            walk(then_expr, visit);
            walk(else_expr, visit);
        }
        Expr::Index { expr, index, .. } => {
            walk(expr, visit);
            walk(index, visit);
        }
        Expr::Call { expr, args } => {
            walk(expr, visit);
            args.iter().for_each(|a| walk(a, visit));
        }
        Expr::List(items) => items.iter().for_each(|i| walk(&i.expr, visit)),
        Expr::Map(entries) => entries.iter().for_each(|e| {
            walk(&e.key, visit);
            walk(&e.value, visit);
        }),
        Expr::Struct { fields, .. } => fields.iter().for_each(|f| walk(&f.value, visit)),
        Expr::Comprehension(c) => {
            for part in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_condition,
                &c.loop_step,
                &c.result,
            ] {
                walk(part, visit);
            }
        }
        Expr::Bind { init, body, .. } => {
            walk(init, visit);
            walk(body, visit);
        }
        _ => {}
    }
}

/// One condition of a rule. Criteria sharing an `any_of_group` need only one of them to hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Criterion {
    pub name: String,
    pub expression: String,
    pub any_of_group: Option<String>,
}

/// A rule's or a criterion's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Eligible,
    NotEligible,
    /// A fact it needs is missing.
    Undetermined,
}

/// An assessment's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Integer(i64),
    Decimal(Decimal),
    Boolean(bool),
    Date(NaiveDate),
    Code(String),
    Text(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssessmentFact {
    pub id: Uuid,
    pub type_code: String,
    pub assessment_date: NaiveDate,
    pub answers: BTreeMap<String, Answer>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BarrierFact {
    pub id: Uuid,
    pub type_code: String,
    /// IDENTIFIED, BEING_ADDRESSED or RESOLVED, as it stands now.
    pub status: String,
    pub identified_date: NaiveDate,
    pub resolved_date: Option<NaiveDate>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnrollmentFact {
    pub id: Uuid,
    pub program_code: String,
    pub entry_date: NaiveDate,
    pub exit_date: Option<NaiveDate>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryFact {
    /// The service record.
    pub id: Uuid,
    pub service_code: String,
    pub service_date: NaiveDate,
    pub units: Decimal,
    pub value: Decimal,
}

/// What the eligibility service knows of one client (or, stored with a decision, what of it
/// the decision read).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientFacts {
    pub client_id: Uuid,
    pub birth_date: Option<NaiveDate>,
    pub veteran: Option<bool>,
    pub assessments: Vec<AssessmentFact>,
    pub barriers: Vec<BarrierFact>,
    pub enrollments: Vec<EnrollmentFact>,
    pub deliveries: Vec<DeliveryFact>,
}

/// Whole years from `birth` to `on`. Someone born on 29 February is a year older on 1 March of
/// a common year.
pub fn age_on(birth: NaiveDate, on: NaiveDate) -> Option<i64> {
    if on < birth {
        return None;
    }
    let mut years = i64::from(on.year() - birth.year());
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    Some(years)
}

pub(crate) fn timestamp(date: NaiveDate) -> Value {
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    Value::Timestamp(Timestamp::from_datetime(&midnight))
}

fn answer(value: &Answer) -> Value {
    match value {
        Answer::Integer(i) => Value::Int(*i),
        Answer::Decimal(d) => Value::Double(double(*d)),
        Answer::Boolean(b) => Value::Bool(*b),
        Answer::Date(d) => timestamp(*d),
        Answer::Code(s) | Answer::Text(s) => Value::from(s.as_str()),
    }
}

impl ClientFacts {
    /// The facts as of `as_of`: the age then, the latest assessment of each type on or before
    /// it, the barriers identified by then with their status then, the enrollments entered by
    /// then. A fact the record lacks is left out, so reading it fails.
    pub(crate) fn activation(&self, as_of: NaiveDate) -> MapActivation {
        let mut facts = MapActivation::new();
        if let Some(age) = self.birth_date.and_then(|birth| age_on(birth, as_of)) {
            facts.insert("age", Value::Int(age));
        }
        if let Some(veteran) = self.veteran {
            facts.insert("veteran", Value::Bool(veteran));
        }
        let latest = latest_assessments(&self.assessments, as_of);
        facts.insert(
            "assessments",
            Value::Map(Arc::new(ValueMap::from_entries(latest.into_iter().map(
                |(code, a)| {
                    let answers =
                        object(a.answers.iter().map(|(key, v)| (key.as_str(), answer(v))));
                    (MapKey::String(Arc::from(code)), answers)
                },
            )))),
        );
        let barriers: Vec<Value> = self
            .barriers
            .iter()
            .filter(|b| b.identified_date <= as_of)
            .map(|b| {
                let resolved_by_then = b.resolved_date.filter(|d| *d <= as_of);
                let status = barrier_status_on(b, as_of);
                let mut fields = vec![
                    ("type", Value::from(b.type_code.as_str())),
                    ("status", Value::from(status)),
                    ("identified_date", timestamp(b.identified_date)),
                ];
                if let Some(resolved) = resolved_by_then {
                    fields.push(("resolved_date", timestamp(resolved)));
                }
                object(fields)
            })
            .collect();
        facts.insert("barriers", Value::List(Arc::from(barriers)));
        let enrollments: Vec<Value> = self
            .enrollments
            .iter()
            .filter(|e| e.entry_date <= as_of)
            .map(|e| {
                let exited_by_then = e.exit_date.filter(|d| *d < as_of);
                let mut fields = vec![
                    ("program", Value::from(e.program_code.as_str())),
                    ("active", Value::Bool(exited_by_then.is_none())),
                    ("entry_date", timestamp(e.entry_date)),
                ];
                if let Some(exit) = e.exit_date.filter(|d| *d <= as_of) {
                    fields.push(("exit_date", timestamp(exit)));
                }
                object(fields)
            })
            .collect();
        facts.insert("enrollments", Value::List(Arc::from(enrollments)));
        facts
    }
}

/// A client's facts as of one date, made once for every rule a check evaluates.
pub struct FactsOn<'a> {
    facts: &'a ClientFacts,
    as_of: NaiveDate,
    activation: MapActivation,
    deliveries: Deliveries,
    /// The facts each set of reads read, worked out once for the check: criteria of many
    /// rules read the same facts (an age, an income).
    explained: RefCell<Explained>,
}

/// The facts read, by what was read.
type Explained = HashMap<Arc<Reads>, Arc<[FactUse]>>;

impl ClientFacts {
    /// These facts as of `as_of`, ready to evaluate rules on.
    pub fn on(&self, as_of: NaiveDate) -> FactsOn<'_> {
        FactsOn {
            facts: self,
            as_of,
            activation: self.activation(as_of),
            deliveries: Deliveries {
                as_of,
                records: Arc::from(self.deliveries.clone()),
            },
            explained: RefCell::default(),
        }
    }
}

impl FactsOn<'_> {
    /// The client the facts are of.
    pub fn client_id(&self) -> Uuid {
        self.facts.client_id
    }

    /// The date the facts are taken as of.
    pub fn as_of(&self) -> NaiveDate {
        self.as_of
    }
}

/// One criterion's outcome, and why when it is UNDETERMINED.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct CriterionOutcome {
    pub outcome: Outcome,
    pub reason: Option<String>,
}

/// Evaluates the compiled criteria of a rule on `facts` as of `as_of`: each criterion's
/// outcome, and the rule's. The rule is ELIGIBLE when every all-of criterion and one criterion
/// of each any-of group hold; NOT_ELIGIBLE when an all-of criterion, or every criterion of a
/// group, fails on facts the record has; UNDETERMINED otherwise.
pub fn evaluate(
    criteria: &[Criterion],
    compiled: &[Compiled],
    on: &FactsOn<'_>,
) -> (Outcome, Vec<CriterionOutcome>) {
    let results: Vec<CriterionOutcome> = DELIVERIES.with(|current| {
        *current.borrow_mut() = Some(on.deliveries.clone());
        let results = compiled
            .iter()
            .map(|c| match c.program.eval(&on.activation) {
                Value::Bool(true) => CriterionOutcome {
                    outcome: Outcome::Eligible,
                    reason: None,
                },
                Value::Bool(false) => CriterionOutcome {
                    outcome: Outcome::NotEligible,
                    reason: None,
                },
                Value::Error(error) => CriterionOutcome {
                    outcome: Outcome::Undetermined,
                    reason: Some(match error.kind {
                        EvalErrorKind::KeyNotFound | EvalErrorKind::UnknownIdentifier => {
                            format!("a fact is missing: {}", error.message)
                        }
                        _ => error.message.clone(),
                    }),
                },
                other => CriterionOutcome {
                    outcome: Outcome::Undetermined,
                    reason: Some(format!("gave {other:?}, not a bool")),
                },
            })
            .collect();
        *current.borrow_mut() = None;
        results
    });
    (combine(criteria, &results), results)
}

fn combine(criteria: &[Criterion], results: &[CriterionOutcome]) -> Outcome {
    let mut undetermined = false;
    let mut groups: BTreeMap<&str, Vec<Outcome>> = BTreeMap::new();
    for (criterion, result) in criteria.iter().zip(results) {
        match &criterion.any_of_group {
            Some(group) => groups.entry(group).or_default().push(result.outcome),
            None => match result.outcome {
                Outcome::NotEligible => return Outcome::NotEligible,
                Outcome::Undetermined => undetermined = true,
                Outcome::Eligible => {}
            },
        }
    }
    for outcomes in groups.values() {
        if outcomes.contains(&Outcome::Eligible) {
            continue;
        }
        if outcomes.iter().all(|o| *o == Outcome::NotEligible) {
            return Outcome::NotEligible;
        }
        undetermined = true;
    }
    if undetermined {
        Outcome::Undetermined
    } else {
        Outcome::Eligible
    }
}

/// Whether a rule only informs or also binds recording and authorizing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Advisory = 1,
    Required = 2,
}

impl Mode {
    pub fn from_i16(value: i16) -> Mode {
        if value == Mode::Required as i16 {
            Mode::Required
        } else {
            Mode::Advisory
        }
    }
}

impl Outcome {
    pub fn as_i16(self) -> i16 {
        match self {
            Outcome::Eligible => 1,
            Outcome::NotEligible => 2,
            Outcome::Undetermined => 3,
        }
    }

    pub fn from_i16(value: i16) -> Outcome {
        match value {
            1 => Outcome::Eligible,
            2 => Outcome::NotEligible,
            _ => Outcome::Undetermined,
        }
    }
}

/// The eligibility service's rules, as FAILED_PRECONDITION names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EligibilityRule {
    /// A REQUIRED rule found the client NOT_ELIGIBLE for the service.
    ServiceEligibility,
    /// A draft is published only when it differs from the version published.
    RulePublished,
    /// A draft is tested or published only while it checks against the tenant's facts (an
    /// assessment field it names may have been removed since it was saved).
    RuleChecks,
}

impl caseway_platform::error::Rule for EligibilityRule {
    fn name(self) -> &'static str {
        match self {
            EligibilityRule::ServiceEligibility => "service_eligibility",
            EligibilityRule::RulePublished => "rule_published",
            EligibilityRule::RuleChecks => "rule_checks",
        }
    }
}

/// A stored rule: its draft, and which version checks use.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleRow {
    pub id: RuleId,
    pub service_id: ServiceId,
    /// The service's code, as the catalog's events last gave it.
    pub service_code: String,
    pub mode: Mode,
    pub criteria: Vec<Criterion>,
    pub published_version: i32,
    pub draft_changed: bool,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A published version of a rule, with the schema it was checked against.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleVersionRow {
    pub rule_id: RuleId,
    pub version: i32,
    pub service_id: ServiceId,
    pub mode: Mode,
    pub criteria: Vec<Criterion>,
    pub fact_schema: FactSchema,
    pub published_by: String,
    pub published_at: DateTime<Utc>,
}

/// One criterion's result: its outcome, why when undetermined, and the facts it read (read off
/// the decision's snapshot, so a stored decision keeps only the outcome and the reason).
#[derive(Clone, Debug, PartialEq)]
pub struct CriterionResult {
    pub outcome: Outcome,
    pub reason: Option<String>,
    /// Shared by the criteria of a check that read the same facts.
    pub facts: Arc<[FactUse]>,
}

/// A decision: a rule version's outcome for a client as of a date, explained.
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionRow {
    /// None for a test of a draft, which is not stored.
    pub id: Option<DecisionId>,
    pub client_id: ClientId,
    pub service_id: ServiceId,
    pub service_code: String,
    pub rule_id: RuleId,
    /// 0 for a draft.
    pub rule_version: i32,
    pub mode: Mode,
    pub as_of: NaiveDate,
    pub outcome: Outcome,
    /// The rule version's criteria, shared with its compiled form by every decision of it.
    pub criteria: Arc<[Criterion]>,
    pub results: Vec<CriterionResult>,
    /// What of the client's facts the decision was taken on as of `as_of`: at least all that
    /// its rule read (the snapshot of the check that took it, shared by its decisions).
    pub facts: Arc<ClientFacts>,
    pub decided_by: String,
    pub decided_at: DateTime<Utc>,
}

/// Decisions of one check, at most: each is named by its number in the check.
pub const MAX_DECISIONS_PER_CHECK: usize = 0xFFFF;

/// A new check's id: a v7 UUID (ordered by time) whose last 16 bits are zero, left for the
/// numbers of its decisions.
pub fn new_check_id() -> Uuid {
    let mut bytes = *Uuid::now_v7().as_bytes();
    bytes[14] = 0;
    bytes[15] = 0;
    Uuid::from_bytes(bytes)
}

/// The id of the `n`th decision (from 1) of a check: the check's id ending in `n`.
pub fn decision_id(check: Uuid, n: usize) -> DecisionId {
    debug_assert!((1..=MAX_DECISIONS_PER_CHECK).contains(&n));
    let mut bytes = *check.as_bytes();
    bytes[14..].copy_from_slice(&(n as u16).to_be_bytes());
    DecisionId(Uuid::from_bytes(bytes))
}

/// The check a decision id would name and the decision's number in it; None when it names
/// none (a decision stored on its own before checks were stored whole may name one by chance,
/// which the lookup tells).
pub fn check_of(decision: DecisionId) -> Option<(Uuid, usize)> {
    let mut bytes = *decision.0.as_bytes();
    let n = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    if n == 0 {
        return None;
    }
    bytes[14] = 0;
    bytes[15] = 0;
    Some((Uuid::from_bytes(bytes), n))
}

/// SHA-256, what snapshots and checks are identified by.
pub type Digest = [u8; 32];

/// What a check read of a client's facts as of its date: all that any rule it evaluated reads,
/// stored once, named by the SHA-256 of its encoding, and shared by the check's decisions.
/// Evaluated as of that date, it gives what the whole facts give.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub digest: Digest,
    pub facts: Arc<ClientFacts>,
    /// The JSON the digest is taken of, as it is stored.
    pub encoded: String,
}

impl Snapshot {
    /// What `reads` reads of the facts `on` stands on, as of its date.
    pub fn of(on: &FactsOn<'_>, reads: &Reads) -> Snapshot {
        let facts = on.facts.snapshot(on.as_of, reads);
        // Plain data (strings, numbers, dates, ordered maps): serialising cannot fail.
        let encoded = serde_json::to_string(&facts).unwrap_or_default();
        Snapshot {
            digest: sha2::Sha256::digest(encoded.as_bytes()).into(),
            facts: Arc::new(facts),
            encoded,
        }
    }
}

/// Evaluates `criteria`, compiled, on a client's facts as of a date: the rule's outcome and
/// each criterion's result with the facts it read.
pub fn decide(
    criteria: &[Criterion],
    compiled: &[Compiled],
    on: &FactsOn<'_>,
) -> (Outcome, Vec<CriterionResult>) {
    let (outcome, each) = evaluate(criteria, compiled, on);
    let mut explained = on.explained.borrow_mut();
    let results = explain_with(compiled, each, on.facts, on.as_of, &mut explained);
    (outcome, results)
}

/// Criteria outcomes with the facts each criterion read of `facts` as of `as_of`: how a
/// stored decision, which keeps the outcomes and its snapshot, is explained again.
pub fn explain(
    compiled: &[Compiled],
    outcomes: Vec<CriterionOutcome>,
    facts: &ClientFacts,
    as_of: NaiveDate,
) -> Vec<CriterionResult> {
    explain_with(compiled, outcomes, facts, as_of, &mut Explained::new())
}

fn explain_with(
    compiled: &[Compiled],
    outcomes: Vec<CriterionOutcome>,
    facts: &ClientFacts,
    as_of: NaiveDate,
    explained: &mut Explained,
) -> Vec<CriterionResult> {
    outcomes
        .into_iter()
        .zip(compiled)
        .map(|(result, c)| {
            let read = match explained.get(&c.reads) {
                Some(read) => read.clone(),
                None => {
                    let read: Arc<[FactUse]> = facts.uses(as_of, &c.reads).into();
                    explained.insert(c.reads.clone(), read.clone());
                    read
                }
            };
            CriterionResult {
                outcome: result.outcome,
                reason: result.reason,
                facts: read,
            }
        })
        .collect()
}

/// A fact as an event carries it, with the version the event gives it: the store writes it
/// only when newer than what it keeps.
#[derive(Clone, Debug, PartialEq)]
pub enum Fact {
    Client {
        id: ClientId,
        birth_date: Option<NaiveDate>,
        veteran: Option<bool>,
        deleted: bool,
        version: i64,
    },
    Assessment {
        client_id: ClientId,
        fact: AssessmentFact,
    },
    Barrier {
        client_id: ClientId,
        fact: BarrierFact,
        version: i64,
    },
    Enrollment {
        client_id: ClientId,
        id: Uuid,
        program_id: Uuid,
        entry_date: NaiveDate,
        exit_date: Option<NaiveDate>,
        version: i64,
    },
    Delivery {
        client_id: ClientId,
        id: Uuid,
        service_id: ServiceId,
        service_date: NaiveDate,
        units: Decimal,
        value: Decimal,
        deleted: bool,
        version: i64,
    },
    Service {
        id: ServiceId,
        code: String,
        organization_ids: Vec<Uuid>,
        deleted: bool,
        version: i64,
    },
    Program {
        id: Uuid,
        code: String,
        version: i64,
    },
    AssessmentType {
        id: Uuid,
        code: String,
        fields: BTreeMap<String, FieldType>,
        version: i64,
    },
}

impl Fact {
    /// The client whose facts this changes, if it is a client's fact.
    pub fn client(&self) -> Option<ClientId> {
        match self {
            Fact::Client { id, .. } => Some(*id),
            Fact::Assessment { client_id, .. }
            | Fact::Barrier { client_id, .. }
            | Fact::Enrollment { client_id, .. }
            | Fact::Delivery { client_id, .. } => Some(*client_id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn schema() -> FactSchema {
        let income = BTreeMap::from([
            ("monthly_income".to_string(), FieldType::Decimal),
            ("household_size".to_string(), FieldType::Integer),
            ("last_employed_on".to_string(), FieldType::Date),
            ("income_source".to_string(), FieldType::Code),
        ]);
        FactSchema {
            assessment_types: BTreeMap::from([("INCOME".to_string(), income)]),
            service_codes: BTreeSet::from(["FIN_ASSIST".to_string()]),
        }
    }

    fn criterion(name: &str, expression: &str, group: Option<&str>) -> Criterion {
        Criterion {
            name: name.into(),
            expression: expression.into(),
            any_of_group: group.map(str::to_string),
        }
    }

    fn facts() -> ClientFacts {
        ClientFacts {
            client_id: Uuid::now_v7(),
            birth_date: Some(day(1990, 6, 15)),
            veteran: Some(false),
            assessments: vec![
                AssessmentFact {
                    id: Uuid::now_v7(),
                    type_code: "INCOME".into(),
                    assessment_date: day(2026, 1, 10),
                    answers: BTreeMap::from([
                        (
                            "monthly_income".into(),
                            Answer::Decimal(Decimal::new(3000, 0)),
                        ),
                        ("household_size".into(), Answer::Integer(1)),
                    ]),
                },
                AssessmentFact {
                    id: Uuid::now_v7(),
                    type_code: "INCOME".into(),
                    assessment_date: day(2026, 3, 1),
                    answers: BTreeMap::from([
                        (
                            "monthly_income".into(),
                            Answer::Decimal(Decimal::new(9005, 1)),
                        ),
                        ("household_size".into(), Answer::Integer(2)),
                    ]),
                },
            ],
            barriers: vec![BarrierFact {
                id: Uuid::now_v7(),
                type_code: "HOUSING".into(),
                status: "RESOLVED".into(),
                identified_date: day(2026, 2, 1),
                resolved_date: Some(day(2026, 5, 1)),
            }],
            enrollments: vec![EnrollmentFact {
                id: Uuid::now_v7(),
                program_code: "PREVENTION".into(),
                entry_date: day(2026, 1, 5),
                exit_date: Some(day(2026, 6, 30)),
            }],
            deliveries: vec![
                DeliveryFact {
                    id: Uuid::now_v7(),
                    service_code: "FIN_ASSIST".into(),
                    service_date: day(2025, 2, 20),
                    units: Decimal::new(800, 0),
                    value: Decimal::new(800, 0),
                },
                DeliveryFact {
                    id: Uuid::now_v7(),
                    service_code: "FIN_ASSIST".into(),
                    service_date: day(2026, 3, 10),
                    units: Decimal::new(1000, 0),
                    value: Decimal::new(1000, 0),
                },
            ],
        }
    }

    fn outcome(expression: &str, facts: &ClientFacts, as_of: NaiveDate) -> Outcome {
        let checker = Checker::new(schema());
        let rule = [criterion("c", expression, None)];
        let compiled = [checker.check(expression).expect(expression)];
        evaluate(&rule, &compiled, &facts.on(as_of)).0
    }

    #[test]
    fn each_kind_of_mistake_is_refused_with_its_place_and_reason() {
        let checker = Checker::new(schema());
        for (expression, says) in [
            ("assessments.INCOME.monthly_incom <= 2430", "monthly_incom"),
            ("assessments.INCOM.monthly_income <= 2430", "INCOM"),
            ("assessments.INCOME.last_employed_on < 5", "_<_"),
            ("delivered('NO_SUCH', 365).value < 1500", "NO_SUCH"),
            ("delivered('FIN_ASSIST', '365').value < 1500", "delivered"),
            ("age + 1", "bool"),
            ("agee >= 18", "agee"),
            ("age >=", "line 1"),
        ] {
            let error = checker.check(expression).expect_err(expression);
            assert!(
                error.to_string().contains(says),
                "{expression}: {error} should mention {says}"
            );
        }
        let error = checker
            .check("age >= 18 &&\n  assessments.INCOME.monthly_incom < 1")
            .unwrap_err();
        assert_eq!((error.line, error.column), (2, 3), "{error}");
    }

    #[test]
    fn a_rule_names_the_criterion_that_failed_the_check() {
        let checker = Checker::new(schema());
        let mut v = Violations::new();
        let rule = [
            criterion("adult", "age >= 18", None),
            criterion(
                "income",
                "assessments.INCOME.monthly_income <= 2 * 1215",
                None,
            ),
            criterion("typo", "veteran == tru", None),
            criterion("alone", "veteran", Some("g")),
        ];
        assert!(checker.check_rule("rule.", &rule, &mut v).is_none());
        assert_eq!(
            v.fields(),
            [
                "rule.criteria[2].expression",
                "rule.criteria[3].any_of_group"
            ]
        );
    }

    #[test]
    fn every_kind_of_fact_is_read_as_of_the_date() {
        let f = facts();
        let march = day(2026, 3, 15);
        assert_eq!(outcome("age >= 18", &f, march), Outcome::Eligible);
        assert_eq!(outcome("age == 35", &f, march), Outcome::Eligible);
        assert_eq!(outcome("veteran", &f, march), Outcome::NotEligible);
        // The latest income assessment on or before the date: 900.50 in March, 3000 in
        // February.
        let limit = "assessments.INCOME.monthly_income <= 2 * 1215";
        assert_eq!(outcome(limit, &f, march), Outcome::Eligible);
        assert_eq!(outcome(limit, &f, day(2026, 2, 15)), Outcome::NotEligible);
        let open_housing = "barriers.exists(b, b.type == 'HOUSING' && b.status != 'RESOLVED')";
        assert_eq!(outcome(open_housing, &f, march), Outcome::Eligible);
        assert_eq!(
            outcome(open_housing, &f, day(2026, 5, 2)),
            Outcome::NotEligible
        );
        assert_eq!(
            outcome(open_housing, &f, day(2026, 1, 31)),
            Outcome::NotEligible
        );
        let enrolled = "enrollments.exists(e, e.program == 'PREVENTION' && e.active)";
        assert_eq!(outcome(enrolled, &f, march), Outcome::Eligible);
        assert_eq!(outcome(enrolled, &f, day(2026, 7, 1)), Outcome::NotEligible);
        // 1000 in the year ending in mid-March; 800 + 1000 once the window reaches February 2025.
        let cap = "delivered('FIN_ASSIST', 365).value < 1500";
        assert_eq!(outcome(cap, &f, march), Outcome::Eligible);
        assert_eq!(
            outcome("delivered('FIN_ASSIST', 400).value < 1500", &f, march),
            Outcome::NotEligible
        );
        assert_eq!(
            outcome("delivered('FIN_ASSIST', 365).count == 1", &f, march),
            Outcome::Eligible
        );
    }

    #[test]
    fn a_missing_fact_leaves_the_criterion_undetermined_not_false() {
        let mut f = facts();
        let limit = "assessments.INCOME.monthly_income <= 2 * 1215";
        // Before any income assessment.
        assert_eq!(outcome(limit, &f, day(2026, 1, 1)), Outcome::Undetermined);
        f.birth_date = None;
        f.veteran = None;
        assert_eq!(
            outcome("age >= 18", &f, day(2026, 3, 1)),
            Outcome::Undetermined
        );
        assert_eq!(
            outcome("veteran", &f, day(2026, 3, 1)),
            Outcome::Undetermined
        );
        // The facts it has may decide it all the same.
        f.veteran = Some(true);
        assert_eq!(
            outcome("veteran || age >= 65", &f, day(2026, 3, 1)),
            Outcome::Eligible
        );
        // An unanswered field is missing too; has() asks for it.
        let employed = "assessments.INCOME.last_employed_on < timestamp('2026-01-01T00:00:00Z')";
        assert_eq!(
            outcome(employed, &f, day(2026, 3, 15)),
            Outcome::Undetermined
        );
        assert_eq!(
            outcome("!has(assessments.INCOME)", &f, day(2026, 1, 1)),
            Outcome::Eligible
        );
    }

    #[test]
    fn any_of_groups_need_one_criterion_each() {
        let checker = Checker::new(schema());
        let rule = [
            criterion("adult", "age >= 18", None),
            criterion("veteran", "veteran", Some("priority")),
            criterion(
                "low income",
                "assessments.INCOME.monthly_income < 1000",
                Some("priority"),
            ),
        ];
        let compiled: Vec<Compiled> = rule
            .iter()
            .map(|c| checker.check(&c.expression).unwrap())
            .collect();
        let f = facts();
        let (rule_outcome, each) = evaluate(&rule, &compiled, &f.on(day(2026, 3, 15)));
        assert_eq!(rule_outcome, Outcome::Eligible);
        assert_eq!(each[1].outcome, Outcome::NotEligible);
        assert_eq!(
            evaluate(&rule, &compiled, &f.on(day(2026, 2, 15))).0,
            Outcome::NotEligible
        );
        // No income assessment yet and not a veteran: the group is open.
        assert_eq!(
            evaluate(&rule, &compiled, &f.on(day(2026, 1, 6))).0,
            Outcome::Undetermined
        );
    }

    #[test]
    fn age_counts_whole_years_and_a_leap_day_birthday_comes_on_the_first_of_march() {
        let birth = day(2008, 2, 29);
        assert_eq!(age_on(birth, day(2026, 2, 28)), Some(17));
        assert_eq!(age_on(birth, day(2026, 3, 1)), Some(18));
        assert_eq!(age_on(birth, day(2028, 2, 29)), Some(20));
        assert_eq!(age_on(day(2000, 6, 15), day(2026, 6, 14)), Some(25));
        assert_eq!(age_on(day(2000, 6, 15), day(2026, 6, 15)), Some(26));
        assert_eq!(age_on(day(2000, 6, 15), day(1999, 1, 1)), None);
    }
}
