//! Pacing a simulated run against the pages that watch it: the world does not run more than
//! [`LEAD_MAX`] of simulated time ahead of the newest picture the slowest page has drawn.
//!
//! Why: a teaching demo must never show a picture more than a simulated minute old. At 3600×
//! one simulated minute is 16.7 ms of wall time — one frame of a 60 Hz screen — so no cadence
//! of pushed frames alone can promise it: a page that spends 30 ms on one frame (a garbage
//! collection, the swimlane chart swapped in, another program on the machine) is two minutes
//! behind. Here the page tells the server which frame it has drawn (its simulated time, at
//! most one report in flight), and the run's step loop asks [`PagePacer::hold`] between two
//! steps: while the slowest page's drawn time plus [`LEAD_MAX`] is behind the world's time, the
//! world waits. The price is speed, never the picture: a slow page makes the run slower than the
//! speed asked (the dashboard test prints the speed reached), and the lag stays bounded.
//!
//! Bounds, so that a page can never stop a demo: a page holds the world only while it is heard
//! from — joined or reported a drawn frame within [`SILENT_MAX`] of wall time; a page that goes
//! quiet (a closed laptop lid, a hung tab) stops holding after that, and a page whose stream
//! ends leaves at once. At most [`PAGES_MAX`] pages are tracked (the dashboard's own limit of
//! streams is lower). A run without pages, or without a dashboard, is never held.
//!
//! Domain logic without I/O: wall instants and simulated times come in as arguments; the
//! waiting itself is [`crate::control::Control::hold_for_pages`]'s.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How far (simulated) the world may run ahead of the newest frame the slowest page has drawn.
pub const LEAD_MAX: Duration = Duration::from_secs(60);
/// How long (wall) a page that reports nothing still holds the world.
pub const SILENT_MAX: Duration = Duration::from_secs(2);
/// Pages tracked at most; a page joining past this is not waited for.
pub const PAGES_MAX: usize = 64;

/// What one page has drawn, and when it was last heard from.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Page {
    /// Simulated time (Unix ms) of the newest frame it reported drawn.
    drawn_unix_ms: i64,
    /// Wall instant of its last report (or of its joining).
    heard: Instant,
}

/// Why the world must wait, when it must.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hold {
    /// The page that holds it.
    pub page: u64,
    /// The simulated time (Unix ms) of the newest frame that page has drawn.
    pub drawn_unix_ms: i64,
    /// How long (wall) the page may still hold the world without a report.
    pub silent_left: Duration,
}

/// The pages following a run and what each has drawn.
#[derive(Debug, Default)]
pub struct PagePacer {
    pages: BTreeMap<u64, Page>,
}

impl PagePacer {
    /// Page `page` started following at simulated `now_unix_ms` (its first frame shows that
    /// moment). False when [`PAGES_MAX`] pages are tracked already (it is not waited for).
    pub fn join(&mut self, page: u64, now_unix_ms: i64, wall: Instant) -> bool {
        if self.pages.len() >= PAGES_MAX && !self.pages.contains_key(&page) {
            return false;
        }
        self.pages.insert(
            page,
            Page {
                drawn_unix_ms: now_unix_ms,
                heard: wall,
            },
        );
        true
    }

    /// Page `page` has drawn the frame of simulated `drawn_unix_ms` (an older report than one
    /// already had changes nothing but the time it was heard from). False for a page not
    /// following.
    pub fn drew(&mut self, page: u64, drawn_unix_ms: i64, wall: Instant) -> bool {
        match self.pages.get_mut(&page) {
            Some(p) => {
                p.drawn_unix_ms = p.drawn_unix_ms.max(drawn_unix_ms);
                p.heard = p.heard.max(wall);
                true
            }
            None => false,
        }
    }

    /// Page `page` stopped following (its stream ended).
    pub fn leave(&mut self, page: u64) {
        self.pages.remove(&page);
    }

    /// Pages following now.
    pub fn pages(&self) -> usize {
        self.pages.len()
    }

    /// The newest frame the slowest page heard from has drawn (`None`: no such page).
    pub fn slowest_drawn(&self, wall: Instant) -> Option<i64> {
        self.pages
            .values()
            .filter(|p| wall.saturating_duration_since(p.heard) < SILENT_MAX)
            .map(|p| p.drawn_unix_ms)
            .min()
    }

    /// Whether the world, at simulated `now_unix_ms`, must wait for a page: the slowest page
    /// heard from within [`SILENT_MAX`] whose drawn frame is more than [`LEAD_MAX`] behind.
    pub fn hold(&self, now_unix_ms: i64, wall: Instant) -> Option<Hold> {
        let lead_ms = LEAD_MAX.as_millis() as i64;
        self.pages
            .iter()
            .filter_map(|(id, p)| {
                let quiet = wall.saturating_duration_since(p.heard);
                let silent_left = SILENT_MAX.checked_sub(quiet).filter(|l| !l.is_zero())?;
                (now_unix_ms - p.drawn_unix_ms > lead_ms).then_some(Hold {
                    page: *id,
                    drawn_unix_ms: p.drawn_unix_ms,
                    silent_left,
                })
            })
            .min_by_key(|h| (h.drawn_unix_ms, h.page))
    }
}

/// What pacing cost a run so far: how often and how long (wall) the world waited for a page.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PacerStats {
    /// Steps at which the world waited for a page.
    pub holds: u64,
    /// Wall time spent waiting, in total.
    pub held_wall: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn the_world_waits_for_the_slowest_page_only_past_the_lead() {
        let t0 = Instant::now();
        let mut pacer = PagePacer::default();
        assert_eq!(pacer.hold(10 * MIN, t0), None, "no page, no hold");
        assert!(pacer.join(1, 0, t0));
        assert!(pacer.join(2, 0, t0));
        assert_eq!(
            pacer.hold(MIN, t0),
            None,
            "exactly one minute ahead is allowed"
        );
        let hold = pacer.hold(MIN + 1, t0).expect("held");
        assert_eq!(
            (hold.page, hold.drawn_unix_ms),
            (1, 0),
            "the lowest id of equals"
        );
        assert!(pacer.drew(1, MIN, t0));
        assert_eq!(pacer.hold(MIN + 1, t0).map(|h| h.page), Some(2));
        assert!(pacer.drew(2, 2 * MIN, t0));
        assert_eq!(pacer.hold(2 * MIN, t0), None);
        assert_eq!(pacer.slowest_drawn(t0), Some(MIN));
        // A late report of an older frame does not move a page back.
        assert!(pacer.drew(2, 0, t0));
        assert_eq!(pacer.hold(2 * MIN, t0), None);
        assert!(!pacer.drew(9, 0, t0), "a page that never joined");
    }

    #[test]
    fn a_quiet_page_stops_holding_after_silent_max_and_a_gone_page_at_once() {
        let t0 = Instant::now();
        let mut pacer = PagePacer::default();
        pacer.join(1, 0, t0);
        pacer.join(2, 0, t0);
        let later = t0 + SILENT_MAX / 2;
        pacer.drew(2, 5 * MIN, later);
        let hold = pacer.hold(5 * MIN, later).expect("page 1 holds");
        assert_eq!(hold.page, 1);
        assert_eq!(hold.silent_left, SILENT_MAX / 2);
        // Page 1 says nothing for SILENT_MAX: it no longer holds; page 2 still counts.
        let quiet = t0 + SILENT_MAX;
        assert_eq!(pacer.hold(5 * MIN, quiet), None);
        assert_eq!(pacer.hold(5 * MIN, quiet + SILENT_MAX), None, "long quiet");
        assert_eq!(pacer.slowest_drawn(quiet), Some(5 * MIN));
        assert!(pacer.hold(7 * MIN, quiet).is_some(), "page 2 holds");
        // Heard from again, it holds again (and the world waits for it to catch up).
        pacer.drew(1, MIN, quiet);
        assert_eq!(pacer.hold(5 * MIN, quiet).map(|h| h.page), Some(1));
        pacer.leave(1);
        pacer.leave(2);
        assert_eq!(pacer.hold(100 * MIN, quiet), None);
        assert_eq!(pacer.pages(), 0);
    }

    #[test]
    fn pages_are_bounded() {
        let t0 = Instant::now();
        let mut pacer = PagePacer::default();
        for page in 0..PAGES_MAX as u64 {
            assert!(pacer.join(page, 0, t0));
        }
        assert!(!pacer.join(PAGES_MAX as u64, 0, t0));
        assert!(pacer.join(0, MIN, t0), "a page already tracked joins again");
        assert_eq!(pacer.pages(), PAGES_MAX);
    }
}
