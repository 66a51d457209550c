//! The memory request bodies may hold at once, across all requests (`BODY_MEMORY_LIMIT`). A
//! request reserves its body's bytes before it reads them: a declared `Content-Length` at once
//! (one atomic update), a chunked body chunk by chunk. The reservation is released when it is
//! dropped, which the handler does once the body has gone upstream. A body that would take the
//! total over the limit is refused at once, never queued.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct BodyBudget {
    limit: usize,
    in_flight: AtomicUsize,
}

impl BodyBudget {
    pub fn new(limit: usize) -> Arc<BodyBudget> {
        Arc::new(BodyBudget {
            limit,
            in_flight: AtomicUsize::new(0),
        })
    }

    /// The most bytes reservations may hold together.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes of request bodies reserved right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// An empty reservation on this budget.
    pub fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
        }
    }
}

/// Bytes held against a [`BodyBudget`] until dropped.
pub struct Reservation {
    budget: Arc<BodyBudget>,
    bytes: usize,
}

impl Reservation {
    /// Grows the reservation to `total` bytes; `false`, leaving it as it was, when that would take
    /// the budget over its limit.
    pub fn grow_to(&mut self, total: usize) -> bool {
        let Some(more) = total.checked_sub(self.bytes).filter(|more| *more > 0) else {
            return true;
        };
        let limit = self.budget.limit;
        let granted = self
            .budget
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                now.checked_add(more).filter(|after| *after <= limit)
            })
            .is_ok();
        if granted {
            self.bytes = total;
        }
        granted
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget
                .in_flight
                .fetch_sub(self.bytes, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_limit_and_give_it_back_when_dropped() {
        let budget = BodyBudget::new(100);
        let mut first = budget.reservation();
        assert!(first.grow_to(60));
        assert!(first.grow_to(40), "shrinking is a no-op");
        let mut second = budget.reservation();
        assert!(!second.grow_to(41));
        assert!(second.grow_to(40));
        assert_eq!(budget.in_flight(), 100);
        drop(first);
        assert_eq!(budget.in_flight(), 40);
        drop(second);
        assert_eq!(budget.in_flight(), 0);
    }
}
