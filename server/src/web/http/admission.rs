//! Admission for the OpenAI-compatible endpoints, so that heavy use degrades into quick refusals instead of a
//! pile-up: at most [`Limits::concurrent`] requests generate at once; at most [`Limits::queue`] more wait for a
//! slot; one API key has at most [`Limits::per_key`] requests in flight. A request beyond these is refused at once
//! (429 with `Retry-After`). A request that waited [`Limits::timeout`] for a slot gets 503; one that generates
//! past it is cut (its [`Ticket::stop`] turns true), and so is one whose client went away (the handler's future
//! was dropped, which drops its ticket's guard).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use axum::{
    http::{header::RETRY_AFTER, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::metrics::{API_IN_FLIGHT, API_REFUSED};

/// The admission limits (`serve --api-…`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Requests generating at once.
    pub concurrent: usize,
    /// Requests waiting for a slot beyond those.
    pub queue: usize,
    /// Requests in flight (waiting or generating) per API key.
    pub per_key: usize,
    /// Longest wait for a slot, and longest generation.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { concurrent: 16, queue: 32, per_key: 8, timeout: Duration::from_secs(300) }
    }
}

/// The admission state shared by the endpoints.
pub struct Admission {
    limits: Limits,
    slots: Arc<Semaphore>,
    in_flight: Arc<AtomicUsize>,
    per_key: Arc<Mutex<HashMap<u64, usize>>>,
}

impl Default for Admission {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

/// A 429 or 503 in OpenAI's error shape, with `Retry-After` in seconds.
fn refusal(status: StatusCode, message: String) -> Response {
    API_REFUSED.fetch_add(1, Ordering::Relaxed);
    let body =
        json!({"error": {"message": message, "type": "rate_limit_error", "param": null, "code": null}});
    (status, [(RETRY_AFTER, "1")], Json(body)).into_response()
}

impl Admission {
    /// Admission under `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            slots: Arc::new(Semaphore::new(limits.concurrent.max(1))),
            in_flight: Arc::new(AtomicUsize::new(0)),
            per_key: Arc::default(),
        }
    }

    /// Requests waiting or generating now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Admits a request of API key `key`: waits for a generation slot, or refuses at once when the server's
    /// queue or the key's share is full (429), or when no slot came within the timeout (503).
    pub async fn admit(&self, key: u64) -> Result<Ticket, Response> {
        let l = self.limits;
        let total = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        API_IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        let mut guard = Guard {
            in_flight: self.in_flight.clone(),
            per_key: self.per_key.clone(),
            key,
            keyed: false,
            stop: Arc::new(AtomicBool::new(false)),
        };
        if total > l.concurrent + l.queue {
            return Err(refusal(
                StatusCode::TOO_MANY_REQUESTS,
                format!("the server is busy ({} requests in flight): retry shortly", total - 1),
            ));
        }
        {
            let mut keys = self.per_key.lock().unwrap_or_else(|p| p.into_inner());
            let n = keys.entry(key).or_insert(0);
            if *n >= l.per_key {
                return Err(refusal(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "this API key has {} requests in flight (at most {}): retry shortly",
                        n, l.per_key
                    ),
                ));
            }
            *n += 1;
            guard.keyed = true;
        }
        match tokio::time::timeout(l.timeout, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Ticket {
                _permit: permit,
                deadline: Instant::now() + l.timeout,
                stop: guard.stop.clone(),
                guard,
            }),
            _ => Err(refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("no generation slot within {} s: retry later", l.timeout.as_secs()),
            )),
        }
    }
}

/// Undoes an admission's counts when the request ends, and tells its generation to stop when the request's
/// future is dropped (the client went away) before it finished.
#[derive(Debug)]
struct Guard {
    in_flight: Arc<AtomicUsize>,
    per_key: Arc<Mutex<HashMap<u64, usize>>>,
    key: u64,
    keyed: bool,
    stop: Arc<AtomicBool>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        API_IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
        if self.keyed {
            let mut keys = self.per_key.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = keys.get_mut(&self.key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    keys.remove(&self.key);
                }
            }
        }
    }
}

/// An admitted request: holds its generation slot and counts until dropped.
#[derive(Debug)]
pub struct Ticket {
    _permit: OwnedSemaphorePermit,
    deadline: Instant,
    stop: Arc<AtomicBool>,
    guard: Guard,
}

impl Ticket {
    /// A handle the generating thread polls between tokens: true once the client went away (the ticket was
    /// dropped) or the deadline passed.
    pub fn stopper(&self) -> Stopper {
        Stopper { stop: self.stop.clone(), deadline: self.deadline }
    }

    /// The API key it was admitted for.
    pub fn key(&self) -> u64 {
        self.guard.key
    }
}

/// See [`Ticket::stopper`].
#[derive(Clone)]
pub struct Stopper {
    stop: Arc<AtomicBool>,
    deadline: Instant,
}

impl Stopper {
    /// Whether generation should stop now.
    pub fn stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || Instant::now() >= self.deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits { concurrent: 1, queue: 1, per_key: 2, timeout: Duration::from_millis(200) }
    }

    #[tokio::test]
    async fn beyond_the_queue_and_the_keys_share_requests_are_refused_at_once() {
        let a = Admission::new(limits());
        let first = a.admit(1).await.expect("a free slot");
        // The second of key 1 waits for the slot (queue 1) and times out: 503.
        let started = Instant::now();
        let second = a.admit(1).await.expect_err("no slot");
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(a.in_flight(), 1, "a refused request leaves no count behind");
        // While one waits, a third is over the queue: 429 at once, with Retry-After.
        let (waiting, third) = tokio::join!(a.admit(2), async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            a.admit(3).await
        });
        let third = third.expect_err("queue full");
        assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(third.headers().contains_key(RETRY_AFTER));
        assert!(waiting.is_err(), "timed out behind the first");
        drop(first);
        let again = a.admit(4).await.expect("the slot is free again");
        assert_eq!(again.key(), 4);
    }

    #[tokio::test]
    async fn one_key_has_at_most_its_share_in_flight() {
        let a =
            Admission::new(Limits { concurrent: 4, queue: 4, per_key: 2, timeout: Duration::from_secs(1) });
        let (x, y) = (a.admit(7).await.unwrap(), a.admit(7).await.unwrap());
        let z = a.admit(7).await.expect_err("over the key's share");
        assert_eq!(z.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(a.admit(8).await.is_ok(), "another key is not affected");
        drop((x, y));
        assert!(a.admit(7).await.is_ok());
    }

    #[tokio::test]
    async fn a_dropped_ticket_stops_its_generation_and_a_deadline_does_too() {
        let a = Admission::new(Limits { timeout: Duration::from_millis(50), ..Limits::default() });
        let t = a.admit(1).await.unwrap();
        let s = t.stopper();
        assert!(!s.stop());
        drop(t);
        assert!(s.stop(), "the client went away");
        let t = a.admit(1).await.unwrap();
        let s = t.stopper();
        std::thread::sleep(Duration::from_millis(60));
        assert!(s.stop(), "past the deadline");
    }
}
