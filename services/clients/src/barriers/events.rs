//! The events room of barriers: what they publish, each event built as the outbox takes it.
//! They consume none.

use caseway_api::events::v1::BarrierChanged;

use super::convert::barrier_to_proto;
use super::domain::Barrier;
use crate::events::Outgoing;

/// `clients.barrier_changed.v1`, on creation (no fields named) and on every change (naming the
/// fields that changed).
pub fn barrier_changed(barrier: &Barrier, changed_fields: Vec<String>) -> Outgoing<BarrierChanged> {
    Outgoing {
        event_type: "clients.barrier_changed.v1",
        subject: barrier.id.to_string(),
        payload: BarrierChanged {
            barrier: Some(barrier_to_proto(barrier)),
            changed_fields,
        },
    }
}
