//! The suite's table: per fault, the load held, what failed, what was lost or applied twice,
//! and how long the servers took to recover, against the targets.

use std::time::Duration;

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
