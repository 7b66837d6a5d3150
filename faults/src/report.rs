//! The suite's table: per fault, the load held, what failed, what was lost or applied twice,
//! and how long the servers took to recover, against the targets.

use std::time::Duration;

use crate::load::Ledger;

/// One fault's outcome.
#[derive(Clone, Debug)]
pub struct Row {
    pub fault: String,
    /// Calls per second the load held over the whole scenario.
    pub load: f64,
    pub calls: usize,
    pub failed: usize,
    /// Events whose effect never showed (records the drawdown never counted).
    pub lost: i64,
    /// Effects applied more than once (units counted twice).
    pub duplicated: i64,
    /// From the heal until every effect showed.
    pub recovery: Duration,
    /// The bound the recovery is held to.
    pub recovery_target: Duration,
}

impl Row {
    /// The row of `fault`: the load's ledger (run for `elapsed`) as it stands, so a call
    /// refused as it must be and stored once on its retry does not count as failed; the
    /// drawdown's (lost, duplicated); the recovery against its target.
    pub fn of(
        fault: impl Into<String>,
        ledger: &Ledger,
        elapsed: Duration,
        (lost, duplicated): (i64, i64),
        recovery: Duration,
        recovery_target: Duration,
    ) -> Row {
        let calls = ledger.entries().len();
        Row {
            fault: fault.into(),
            load: calls as f64 / elapsed.as_secs_f64(),
            calls,
            failed: ledger.failed().len(),
            lost,
            duplicated,
            recovery,
            recovery_target,
        }
    }

    /// Prints the row, and fails the scenario when a target is missed.
    pub fn check(&self) {
        self.print();
        assert!(self.met(), "{self:?}");
    }

    /// Whether every target is met: nothing failed, lost or doubled, recovered in time.
    pub fn met(&self) -> bool {
        self.failed == 0
            && self.lost == 0
            && self.duplicated == 0
            && self.recovery <= self.recovery_target
    }

    pub fn print(&self) {
        println!(
            "| {} | {:.0} calls/s ({} calls) | {} failed | {} lost | {} duplicated | recovered in {:.1} s (target {:.0} s) | {} |",
            self.fault,
            self.load,
            self.calls,
            self.failed,
            self.lost,
            self.duplicated,
            self.recovery.as_secs_f64(),
            self.recovery_target.as_secs_f64(),
            if self.met() { "met" } else { "NOT met" }
        );
    }
}
