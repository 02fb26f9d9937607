//! A room's listeners on this node, each with a queue of its own: what the
//! hub hands a room goes into every listener's queue, and wakes the
//! listener's connection if it sleeps.
//!
//! Why not one ring per room that every listener reads at its own pace (a
//! broadcast channel): a listener waiting on a ring sits in the ring's list
//! of waiters, so every event takes the ring's lock to wake them and every
//! read that finds nothing takes it again to wait; a queue of one's own is
//! locked by its sender and its one reader only. And a queue is where a
//! listener can be handed events in other ways than a read, one by one,
//! from the task that runs it (its connection writing them out itself).
//!
//! While a listener's connection has nothing else to do (nothing waiting
//! in its queue, nothing of its own to write), it lends the queue its
//! socket's writing end (a [`DirectWriter`]): an event sent to the room is
//! then written to the page by whoever sends it, there and then, and the
//! connection's task is not woken at all. An event the connection must
//! see to (a gap to fill from the store, a chore, its user leaving) or a
//! socket that cannot take the bytes at once wakes the task, which takes
//! its socket back and goes on as if everything had come through the
//! queue: the order of what the page gets is the order sent.
//!
//! A queue holds at most `capacity` events: a listener that falls that far
//! behind is told it lagged (its queue is dropped, and so is everything
//! sent to it until it has heard), never holding the room's sender or the
//! other listeners up; its connection then closes with "resync" and its
//! page catches up from the store.
use std::any::Any;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

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
        let mailbox = Arc::new(Mailbox { queue: Mutex::new(Queue::new(capacity)) });
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

    /// Queues the event for every listener (a clone of the `Arc` each).
    pub fn send(&self, event: &Arc<RoomEvent>) {
        self.send_all(std::slice::from_ref(event));
    }

    /// Queues events for every listener, in order; a listener's lent
    /// writer gets them all in one write.
    pub fn send_all(&self, events: &[Arc<RoomEvent>]) {
        if events.is_empty() {
            return;
        }
        for mailbox in &self.mailboxes {
            mailbox.push_all(events);
        }
    }
}

/// What a connection lends its queue while it waits: writes room events
/// to its page at once, when it can.
pub trait DirectWriter: Any + Send {
    /// Takes an event to write (or to skip: nothing the page needs), or
    /// says the connection's task must see to it (`false`).
    fn take(&mut self, event: &Arc<RoomEvent>) -> bool;

    /// Writes what it took, without waiting; `false` if the socket did not
    /// take all of it (the connection's task must write the rest).
    fn write(&mut self) -> bool;
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
    /// What the reader lent, until it takes it back.
    lent: Option<Box<dyn DirectWriter>>,
    /// Whether events may go to the lent writer: from the lending until
    /// the reader has something to see to (an event it read, or the
    /// writer's unfinished write); then everything waits for the reader,
    /// which takes the writer back.
    open: bool,
    /// The lent writer has something unfinished: the reader must take it
    /// back and finish it.
    unfinished: bool,
}

impl Queue {
    fn new(capacity: usize) -> Self {
        Queue {
            events: VecDeque::new(),
            capacity: capacity.max(1),
            missed: 0,
            waiter: None,
            lent: None,
            open: false,
            unfinished: false,
        }
    }

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

    /// The next event, or the news that some were missed. Whatever it
    /// returns, the reader sees to it before the lent writer writes more.
    fn pop(&mut self) -> Option<Result<Arc<RoomEvent>, Lagged>> {
        let next = if self.missed > 0 {
            Some(Err(Lagged(std::mem::take(&mut self.missed))))
        } else {
            self.events.pop_front().map(Ok)
        };
        if next.is_some() {
            self.open = false;
        }
        next
    }
}

impl Mailbox {
    fn push_all(&self, events: &[Arc<RoomEvent>]) {
        let waiter = {
            let mut queue = self.queue.lock().expect("mailbox lock");
            let queue = &mut *queue;
            // The lent writer takes what it can, up to the first event the
            // task must see to; that one and the rest are queued.
            let mut taken = 0;
            if let Some(lent) = queue.lent.as_mut().filter(|_| queue.open) {
                taken = events.iter().take_while(|event| lent.take(event)).count();
                if taken > 0 && !lent.write() {
                    queue.unfinished = true;
                }
                if taken == events.len() && !queue.unfinished {
                    return;
                }
                queue.open = false;
            }
            for event in &events[taken..] {
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

    /// Waits for the next event (cancel safe: nothing is taken until it
    /// is returned). `Ok(None)`: the lent writer could not finish a write,
    /// take it back ([`Mailbox::reclaim`]) and finish it.
    pub async fn recv(&self) -> Result<Option<Arc<RoomEvent>>, Lagged> {
        poll_fn(|cx| {
            let mut queue = self.queue.lock().expect("mailbox lock");
            if queue.unfinished {
                return Poll::Ready(Ok(None));
            }
            match queue.pop() {
                Some(next) => Poll::Ready(next.map(Some)),
                None => {
                    match &mut queue.waiter {
                        Some(waiter) if waiter.will_wake(cx.waker()) => {}
                        waiter => *waiter = Some(cx.waker().clone()),
                    }
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Option<Result<Arc<RoomEvent>, Lagged>> {
        self.queue.lock().expect("mailbox lock").pop()
    }

    /// Lends the queue a writer until [`Mailbox::reclaim`]; refused (and
    /// handed back) while events wait to be read: they go first.
    pub fn lend(&self, writer: Box<dyn DirectWriter>) -> Result<(), Box<dyn DirectWriter>> {
        let mut queue = self.queue.lock().expect("mailbox lock");
        if !queue.events.is_empty() || queue.missed > 0 {
            return Err(writer);
        }
        queue.lent = Some(writer);
        queue.open = true;
        queue.unfinished = false;
        Ok(())
    }

    /// Takes back what was lent, with whatever it did meanwhile.
    pub fn reclaim(&self) -> Option<Box<dyn DirectWriter>> {
        let mut queue = self.queue.lock().expect("mailbox lock");
        queue.open = false;
        queue.unfinished = false;
        queue.lent.take()
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
        room.send(&typing("x"));
        room.send(&typing("y"));
        for listener in [&a, &b] {
            assert_eq!(user_of(&listener.recv().await.unwrap().unwrap()), "x");
            assert_eq!(user_of(&listener.try_recv().unwrap().unwrap()), "y");
            assert!(listener.try_recv().is_none());
        }
    }

    #[tokio::test]
    async fn a_waiting_listener_is_woken_by_the_next_event() {
        let mut room = Listeners::default();
        let listener = room.subscribe(8);
        let waiting =
            tokio::spawn(async move { user_of(&listener.recv().await.unwrap().unwrap()).to_owned() });
        tokio::task::yield_now().await;
        room.send(&typing("x"));
        assert_eq!(waiting.await.unwrap(), "x");
    }

    #[test]
    fn a_listener_that_falls_behind_hears_how_far_then_what_comes_next() {
        let mut room = Listeners::default();
        let slow = room.subscribe(2);
        let keeping_up = room.subscribe(8);
        for user in ["a", "b", "c", "d"] {
            room.send(&typing(user));
        }
        assert_eq!(slow.try_recv().unwrap().unwrap_err(), Lagged(4), "everything since it last heard");
        room.send(&typing("e"));
        assert_eq!(user_of(&slow.try_recv().unwrap().unwrap()), "e");
        let heard: Vec<_> =
            std::iter::from_fn(|| keeping_up.try_recv()).map(|e| user_of(&e.unwrap()).to_owned()).collect();
        assert_eq!(heard, ["a", "b", "c", "d", "e"], "the others are not held up");
    }

    /// A writer that takes typing events of users other than "slow" and
    /// "own", writes "slow"'s in part, and leaves "own"'s to the reader.
    #[derive(Default)]
    struct Page {
        taken: Vec<String>,
        written: Vec<String>,
    }

    impl DirectWriter for Page {
        fn take(&mut self, event: &Arc<RoomEvent>) -> bool {
            match user_of(event) {
                "own" => false,
                user => {
                    self.taken.push(user.into());
                    true
                }
            }
        }

        fn write(&mut self) -> bool {
            let all = !self.taken.iter().any(|user| user == "slow");
            self.written.extend(self.taken.drain(..).map(|user| match user.as_str() {
                "slow" => "slow, in part".to_owned(),
                _ => user,
            }));
            all
        }
    }

    fn written(lent: Box<dyn DirectWriter>) -> Vec<String> {
        let page: Box<dyn Any> = lent;
        page.downcast::<Page>().expect("a page").written
    }

    #[tokio::test]
    async fn a_lent_writer_takes_events_until_the_reader_must_see_to_one() {
        let mut room = Listeners::default();
        let listener = room.subscribe(8);
        assert!(listener.lend(Box::<Page>::default()).is_ok());
        room.send(&typing("a"));
        room.send(&typing("own"));
        room.send(&typing("b"));
        // "b" came after an event the reader must see to: it waits too.
        assert_eq!(user_of(&listener.recv().await.unwrap().unwrap()), "own");
        assert_eq!(written(listener.reclaim().expect("lent")), ["a"]);
        assert_eq!(user_of(&listener.try_recv().unwrap().unwrap()), "b");
        assert!(listener.reclaim().is_none(), "taken back already");
    }

    #[tokio::test]
    async fn an_unfinished_write_wakes_the_reader_and_holds_what_comes_next() {
        let mut room = Listeners::default();
        let listener = room.subscribe(8);
        assert!(listener.lend(Box::<Page>::default()).is_ok());
        room.send(&typing("slow"));
        room.send(&typing("a"));
        assert_eq!(listener.recv().await.unwrap().map(|e| e.text.clone()), None, "take the writer back");
        assert_eq!(written(listener.reclaim().expect("lent")), ["slow, in part"]);
        assert_eq!(user_of(&listener.try_recv().unwrap().unwrap()), "a", "after the unfinished write");
    }

    #[test]
    fn a_reader_with_events_waiting_keeps_its_writer() {
        let mut room = Listeners::default();
        let listener = room.subscribe(8);
        room.send(&typing("a"));
        let refused = listener.lend(Box::<Page>::default()).expect_err("events wait");
        assert!(written(refused).is_empty());
        assert_eq!(user_of(&listener.try_recv().unwrap().unwrap()), "a");
        assert!(listener.lend(Box::<Page>::default()).is_ok());
        room.send(&typing("b"));
        assert!(listener.try_recv().is_none(), "written by the lent writer");
        assert_eq!(written(listener.reclaim().expect("lent")), ["b"]);
    }

    #[test]
    fn a_lent_writer_writes_what_it_takes_of_a_batch_at_once_and_queues_the_rest() {
        let mut room = Listeners::default();
        let listener = room.subscribe(8);
        assert!(listener.lend(Box::<Page>::default()).is_ok());
        room.send_all(&[typing("a"), typing("b"), typing("own"), typing("c")]);
        assert_eq!(written(listener.reclaim().expect("lent")), ["a", "b"]);
        let queued: Vec<_> =
            std::iter::from_fn(|| listener.try_recv()).map(|e| user_of(&e.unwrap()).to_owned()).collect();
        assert_eq!(queued, ["own", "c"]);
    }

    #[test]
    fn a_listener_that_leaves_hears_nothing_more() {
        let mut room = Listeners::default();
        let (a, b) = (room.subscribe(8), room.subscribe(8));
        room.unsubscribe(&a);
        assert_eq!(room.len(), 1);
        room.send(&typing("x"));
        assert!(a.try_recv().is_none());
        assert!(b.try_recv().is_some());
        room.unsubscribe(&b);
        assert!(room.is_empty());
    }
}
