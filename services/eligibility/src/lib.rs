//! Service eligibility: a tenant administrator's rules over a client's facts, decided per
//! catalog service as of a date and explained (docs/eligibility.md). So far the domain: the
//! fact schema rules are checked against, and the evaluation of a rule on a client's facts.
//! The service's other rooms follow.

pub mod domain;
