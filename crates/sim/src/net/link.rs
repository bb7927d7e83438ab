//! A link's quality on the in-memory network — latency (fixed + seeded jitter) and loss — and
//! the delivery book that applies latency to one direction of a connection.
//!
//! Latency is applied where the bytes arrive, not where they leave: a writer hands its bytes
//! over at once (as a socket's send buffer takes them), and the reader may read them only from
//! their delivery time on, so a message costs one latency however many writes it took, and
//! bytes keep their order (a later write is never delivered before an earlier one, as on TCP).
//! Nothing here reads a clock or draws a number: the caller gives the time and the draws, so
//! this is plain bookkeeping, tested without a runtime.

use std::collections::VecDeque;
use std::time::Duration;

/// Most delivery entries one direction of a connection keeps; a write beyond it is merged into
/// the last entry (delivered with it), so the book never grows past this bound.
pub const DELIVERY_ENTRIES_MAX: usize = 4096;

/// How a link between two hosts behaves (both directions). The default is a perfect link.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkQuality {
    /// Added to every delivery.
    pub latency: Duration,
    /// Up to this much more, drawn uniformly per write from the network's seeded stream.
    pub jitter: Duration,
    /// The fraction of writes (0 ≤ loss ≤ 1) on which the connection is lost: both ends fail
    /// with `ConnectionReset`, which the clients see as a transport error of the calls in
    /// flight, and reconnect.
    pub loss: f64,
}

/// Why a link quality was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LinkQualityError {
    #[error("a link's loss must be between 0 and 1, not {0}")]
    Loss(f64),
}

impl LinkQuality {
    /// Checks the loss rate.
    pub fn validated(self) -> Result<LinkQuality, LinkQualityError> {
        if (0.0..=1.0).contains(&self.loss) {
            Ok(self)
        } else {
            Err(LinkQualityError::Loss(self.loss))
        }
    }

    /// Whether the link delays anything.
    pub fn delays(&self) -> bool {
        !self.latency.is_zero() || !self.jitter.is_zero()
    }

    /// The delay of one write, given a draw in `[0, 1)` for the jitter.
    pub fn delay(&self, jitter_draw: f64) -> Duration {
        self.latency + self.jitter.mul_f64(jitter_draw.clamp(0.0, 1.0))
    }
}

/// The delivery book of one direction of a connection, in the reader's terms. Times are
/// durations since any fixed origin (the caller's clock).
#[derive(Debug, Default)]
pub struct Deliveries {
    /// Written, not yet read.
    unread: usize,
    /// Of those, bytes delivered (readable) while entries wait.
    credit: usize,
    /// Bytes on their way, in order: (delivery time, bytes).
    waiting: VecDeque<(Duration, usize)>,
}

impl Deliveries {
    /// Books `bytes` written at `now` with `delay` (zero: no latency on the link now).
    pub fn written(&mut self, now: Duration, delay: Duration, bytes: usize) {
        if delay.is_zero() && self.waiting.is_empty() {
            self.unread += bytes;
            return;
        }
        if self.waiting.is_empty() {
            // Everything unread so far was written without latency: delivered.
            self.credit = self.unread;
        }
        self.unread += bytes;
        // Never before an earlier write (bytes keep their order).
        let at = self
            .waiting
            .back()
            .map_or(now + delay, |&(last, _)| last.max(now + delay));
        if self.waiting.len() >= DELIVERY_ENTRIES_MAX {
            if let Some(last) = self.waiting.back_mut() {
                last.1 += bytes;
                return;
            }
        }
        self.waiting.push_back((at, bytes));
    }

    /// What the reader may read at `now`: `Ok(None)` for everything there is, `Ok(Some(n))`
    /// for at most `n` bytes, `Err(t)` for nothing until `t`.
    pub fn readable(&mut self, now: Duration) -> Result<Option<usize>, Duration> {
        while let Some(&(at, bytes)) = self.waiting.front() {
            if at > now {
                break;
            }
            self.credit += bytes;
            self.waiting.pop_front();
        }
        match self.waiting.front() {
            None => Ok(None),
            Some(_) if self.credit > 0 => Ok(Some(self.credit)),
            Some(&(at, _)) => Err(at),
        }
    }

    /// Books `bytes` read.
    pub fn read(&mut self, bytes: usize) {
        self.unread = self.unread.saturating_sub(bytes);
        self.credit = self.credit.saturating_sub(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn without_latency_everything_is_readable() {
        let mut d = Deliveries::default();
        d.written(Duration::ZERO, Duration::ZERO, 10);
        assert_eq!(d.readable(Duration::ZERO), Ok(None));
    }

    #[test]
    fn a_delayed_write_is_readable_from_its_delivery_time_on_and_in_order() {
        let mut d = Deliveries::default();
        d.written(Duration::ZERO, Duration::ZERO, 3); // before the latency: delivered
        d.written(MS, 10 * MS, 5); // due at 11 ms
        d.written(2 * MS, MS, 7); // would be due at 3 ms; keeps its order: 11 ms
        assert_eq!(d.readable(2 * MS), Ok(Some(3)), "only the undelayed bytes");
        d.read(3);
        assert_eq!(d.readable(5 * MS), Err(11 * MS), "nothing before 11 ms");
        assert_eq!(d.readable(11 * MS), Ok(None), "all delivered");
        d.read(12);
        d.written(20 * MS, Duration::ZERO, 1);
        assert_eq!(d.readable(20 * MS), Ok(None));
    }

    #[test]
    fn a_partial_read_keeps_the_rest_of_the_credit() {
        let mut d = Deliveries::default();
        d.written(Duration::ZERO, 5 * MS, 4);
        d.written(Duration::ZERO, 50 * MS, 4);
        assert_eq!(d.readable(6 * MS), Ok(Some(4)));
        d.read(1);
        assert_eq!(d.readable(6 * MS), Ok(Some(3)));
        d.read(3);
        assert_eq!(d.readable(6 * MS), Err(50 * MS));
    }

    #[test]
    fn the_book_is_bounded() {
        let mut d = Deliveries::default();
        for i in 0..(DELIVERY_ENTRIES_MAX as u32 + 100) {
            d.written(MS * i, MS, 1);
        }
        assert_eq!(d.waiting.len(), DELIVERY_ENTRIES_MAX);
        assert_eq!(d.readable(Duration::from_secs(3600)), Ok(None));
    }

    #[test]
    fn loss_outside_zero_to_one_is_refused_and_jitter_stays_in_range() {
        let q = LinkQuality {
            latency: 10 * MS,
            jitter: 4 * MS,
            loss: 1.5,
        };
        assert_eq!(q.validated(), Err(LinkQualityError::Loss(1.5)));
        assert_eq!(q.delay(0.0), 10 * MS);
        assert_eq!(q.delay(0.5), 12 * MS);
        assert_eq!(q.delay(7.0), 14 * MS);
        assert!(!LinkQuality::default().delays());
    }
}
