//! A room's listeners on this node, each with a queue of its own: what the
//! hub hands a room goes into every listener's queue and wakes the
//! listener's connection if it sleeps; the connection's task alone reads
//! its queue and writes its page's socket.
//!
//! Why not one ring per room that every listener reads at its own pace (a
//! broadcast channel): every event would take the ring's lock to wake its
//! waiters, and every read that finds nothing would take it again to wait;
//! a queue of one's own is locked by its sender and its one reader only,
//! each for a moment (no I/O happens under it).
//!
//! A queue holds at most `capacity` events: a listener that falls that far
//! behind is told it lagged (its queue is dropped, and so is everything
//! sent to it until it has heard), never holding the room's sender or the
//! other listeners up; its page then resyncs (see `stream`).
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Poll, Waker};

use parking_lot::Mutex;

use super::hub::RoomEvent;

/// What a listener hears instead of an event when it fell behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("fell {0} events behind")]
pub struct Lagged(pub u64);

/// The listeners of one room on this node (the sending side).
#[derive(Default, Clone)]
pub struct Listeners {
    mailboxes: Vec<Arc<Mailbox>>,
}

impl Listeners {
    /// Adds a listener whose queue holds at most `capacity` events.
    pub fn subscribe(&mut self, capacity: usize) -> Arc<Mailbox> {
        let queue = Queue { events: VecDeque::new(), capacity: capacity.max(1), missed: 0, waiter: None };
        let mailbox = Arc::new(Mailbox { queue: Mutex::new(queue) });
        self.mailboxes.push(mailbox.clone());
        mailbox
    }

    /// Removes a listener (the order of the others is not kept).
    pub fn unsubscribe(&mut self, mailbox: &Arc<Mailbox>) {
        if let Some(at) = self.mailboxes.iter().position(|m| Arc::ptr_eq(m, mailbox)) {
            self.mailboxes.swap_remove(at);
        }
    }

    pub fn len(&self) -> usize {
        self.mailboxes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.mailboxes.is_empty()
    }

    /// Queues events for every listener, in order, waking each once.
    pub fn send_all(&self, events: &[Arc<RoomEvent>]) {
        if events.is_empty() {
            return;
        }
        for mailbox in &self.mailboxes {
            mailbox.push_all(events);
        }
    }
}

/// One listener's queue, shared by the room's sender and its reader.
pub struct Mailbox {
    queue: Mutex<Queue>,
}

struct Queue {
    events: VecDeque<Arc<RoomEvent>>,
    capacity: usize,
    /// Events dropped since the reader last heard (it has lagged).
    missed: u64,
    /// The reader, while it waits for an event.
    waiter: Option<Waker>,
}

impl Queue {
    fn push(&mut self, event: &Arc<RoomEvent>) {
        if self.missed > 0 {
            self.missed += 1;
        } else if self.events.len() >= self.capacity {
            self.missed = self.events.len() as u64 + 1;
            self.events = VecDeque::new();
        } else {
            self.events.push_back(event.clone());
        }
    }

    /// The next event, or the news that some were missed.
    fn pop(&mut self) -> Option<Result<Arc<RoomEvent>, Lagged>> {
        if self.missed > 0 {
            Some(Err(Lagged(std::mem::take(&mut self.missed))))
        } else {
            self.events.pop_front().map(Ok)
        }
    }
}

impl Mailbox {
    fn push_all(&self, events: &[Arc<RoomEvent>]) {
        let waiter = {
            let mut queue = self.queue.lock();
            for event in events {
                queue.push(event);
            }
            queue.waiter.take()
        };
        // Woken outside the lock: the reader may be running on another
        // thread and reach for it at once.
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }

    /// Waits for the next event (cancel safe: nothing is taken till returned).
    pub async fn recv(&self) -> Result<Arc<RoomEvent>, Lagged> {
        poll_fn(|cx| {
            let mut queue = self.queue.lock();
            if let Some(next) = queue.pop() {
                return Poll::Ready(next);
            }
            if !queue.waiter.as_ref().is_some_and(|waiter| waiter.will_wake(cx.waker())) {
                queue.waiter = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Option<Result<Arc<RoomEvent>, Lagged>> {
        self.queue.lock().pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ServerFrame;

    fn typing(user: &str) -> Arc<RoomEvent> {
        RoomEvent::new(ServerFrame::Typing { user_id: user.into() })
    }

    fn user_of(event: &RoomEvent) -> &str {
        match &event.frame {
            ServerFrame::Typing { user_id } => user_id,
            _ => unreachable!("typing events only"),
        }
    }

    #[tokio::test]
    async fn every_listener_hears_every_event_in_order() {
        let mut room = Listeners::default();
        let (a, b) = (room.subscribe(8), room.subscribe(8));
        room.send_all(&[typing("x")]);
        room.send_all(&[typing("y")]);
        for listener in [&a, &b] {
            assert_eq!(user_of(&listener.recv().await.unwrap()), "x");
            assert_eq!(user_of(&listener.try_recv().unwrap().unwrap()), "y");
            assert!(listener.try_recv().is_none());
        }
    }

    #[tokio::test]
    async fn a_waiting_listener_is_woken_by_the_next_event() {
        let mut room = Listeners::default();
        let listener = room.subscribe(8);
        let waiting = tokio::spawn(async move { user_of(&listener.recv().await.unwrap()).to_owned() });
        tokio::task::yield_now().await;
        room.send_all(&[typing("x")]);
        assert_eq!(waiting.await.unwrap(), "x");
    }

    #[test]
    fn a_listener_that_falls_behind_hears_how_far_then_what_comes_next() {
        let mut room = Listeners::default();
        let slow = room.subscribe(2);
        let keeping_up = room.subscribe(8);
        for user in ["a", "b", "c", "d"] {
            room.send_all(&[typing(user)]);
        }
        assert_eq!(slow.try_recv().unwrap().unwrap_err(), Lagged(4), "everything since it last heard");
        room.send_all(&[typing("e")]);
        assert_eq!(user_of(&slow.try_recv().unwrap().unwrap()), "e");
        let heard: Vec<_> =
            std::iter::from_fn(|| keeping_up.try_recv()).map(|e| user_of(&e.unwrap()).to_owned()).collect();
        assert_eq!(heard, ["a", "b", "c", "d", "e"], "the others are not held up");
    }

    #[test]
    fn a_listener_that_leaves_hears_nothing_more() {
        let mut room = Listeners::default();
        let (a, b) = (room.subscribe(8), room.subscribe(8));
        room.unsubscribe(&a);
        assert_eq!(room.len(), 1);
        room.send_all(&[typing("x")]);
        assert!(a.try_recv().is_none());
        assert!(b.try_recv().is_some());
        room.unsubscribe(&b);
        assert!(room.is_empty());
    }
}
