//! The machine's own scheduling stalls during a benchmark, printed beside its latencies.
//!
//! A thread of its own sleeps a millisecond at a time and keeps how much longer than that
//! each sleep took. On a quiet, dedicated machine the overshoot stays far under a millisecond;
//! on a shared virtual machine a thread is now and then not run for several milliseconds, idle
//! or not, and any call in flight then takes that much longer whatever the code does. A p99
//! of a few milliseconds is only as good as the machine's stalls in the same run.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(1);
/// An overshoot this long counts as a stall.
const STALL: Duration = Duration::from_millis(3);

/// Watches until [`StallWatch::finish`].
pub struct StallWatch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Duration>>,
    started: Instant,
}

impl StallWatch {
    pub fn start() -> StallWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut overshoots = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                let before = Instant::now();
                std::thread::sleep(TICK);
                overshoots.push(before.elapsed().saturating_sub(TICK));
            }
            overshoots
        });
        StallWatch {
            stop,
            thread,
            started: Instant::now(),
        }
    }

    pub fn finish(self) -> Stalls {
        self.stop.store(true, Ordering::Relaxed);
        let mut overshoots = self.thread.join().unwrap_or_default();
        overshoots.sort();
        Stalls {
            seconds: self.started.elapsed().as_secs_f64(),
            stalls: overshoots.iter().filter(|o| **o >= STALL).count(),
            p99: overshoots
                .get(overshoots.len() * 99 / 100)
                .copied()
                .unwrap_or_default(),
            max: overshoots.last().copied().unwrap_or_default(),
        }
    }
}

/// What a [`StallWatch`] saw.
pub struct Stalls {
    seconds: f64,
    /// Sleeps that overshot by [`STALL`] or more.
    stalls: usize,
    p99: Duration,
    max: Duration,
}

impl fmt::Display for Stalls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        write!(
            f,
            "the machine's own stalls meanwhile (a thread sleeping 1 ms at a time): {} of {} ms or more in {:.1} s, overshoot p99 {:.2} ms, max {:.1} ms",
            self.stalls,
            STALL.as_millis(),
            self.seconds,
            ms(self.p99),
            ms(self.max)
        )
    }
}
