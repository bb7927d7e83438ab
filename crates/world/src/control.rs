//! Steering a simulated run while it plays: the pace (play, pause, speed) and the levers a
//! person pulls from the live dashboard (disable the key, take Key Vault down, ...).
//!
//! Why it is shaped so: a lever must do to the running world exactly what a timeline step
//! would, so that the event log, the report and the oracle see no difference. A lever is
//! therefore turned into a scenario [`StepKind`] here ([`Lever::step`]) and handed to the
//! driver, which plays it with the same `play_step` as the scenario's own timeline (one home for
//! "apply a step"). The hand-over is a bounded queue ([`LEVER_QUEUE_MAX`]) that the driver polls
//! only while it waits for its next timeline step, and only when a [`Control`] was given: a run
//! without one takes exactly the path it took before, so its event log stays byte-identical.
//!
//! The pace is read by the harness between two simulation steps: paused, it stops stepping (the
//! simulated clock stands still); a new speed restarts the pacing from the current moment. The
//! wall clock only slows the presentation down; it never reaches the simulation.
//!
//! The pages watching the run pace it too ([`crate::pacer`]): the dashboard reports each page
//! joining, the frames it has drawn and its leaving, and between two steps the harness waits
//! ([`Control::hold_for_pages`], bounded) while the slowest page is more than a simulated minute
//! behind.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cmksim_scenario::model::{Scenario, Step, StepKind};
use tokio::sync::{mpsc, Notify};

use crate::pacer::{PacerStats, PagePacer, SILENT_MAX};

/// Levers waiting for the driver at most; one more is refused ([`LeverError::Busy`]).
pub const LEVER_QUEUE_MAX: usize = 16;
/// The slowest and the fastest pace a person may choose, in simulated seconds per real second.
pub const SPEED_MIN: f64 = 60.0;
pub const SPEED_MAX: f64 = 3600.0;

pub use cmksim_scenario::lever::{Lever, NoCmkCluster};

/// Why a lever or a pace was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LeverError {
    #[error("the scenario has no cluster with a customer-managed key to act on")]
    NoCmkCluster,
    #[error("{LEVER_QUEUE_MAX} actions are already waiting for the world; try again in a moment")]
    Busy,
    #[error("the run has ended; nothing can be done to its world any more")]
    Ended,
    #[error("speed must be between {SPEED_MIN} and {SPEED_MAX} simulated seconds per second")]
    SpeedOutOfRange,
}

/// The pace of a run: paused or playing, and at what speed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pace {
    pub paused: bool,
    /// Simulated seconds per real second.
    pub speed: f64,
}

/// A timeline step made by a lever, waiting for the driver.
#[derive(Clone, Debug)]
pub struct Injected {
    pub lever: Lever,
    pub what: StepKind,
}

/// The handle shared by the dashboard (which pulls levers and sets the pace) and the run (the
/// harness reads the pace and publishes the simulated time; the driver takes the levers).
#[derive(Clone)]
pub struct Control {
    shared: Arc<Shared>,
}

struct Shared {
    pace: Mutex<Pace>,
    /// Simulated now (Unix ms), published by the harness after every step.
    now_unix_ms: AtomicI64,
    /// Woken after every published simulated time (the dashboard pushes the clock then).
    waker: OnceLock<Arc<Notify>>,
    /// Levers pulled so far (numbers the injected steps).
    pulled: Mutex<usize>,
    sender: mpsc::Sender<Injected>,
    /// Taken once by the harness for the driver.
    receiver: Mutex<Option<mpsc::Receiver<Injected>>>,
    /// The pages following the run and what each has drawn ([`crate::pacer`]).
    pages: Mutex<Pages>,
    /// Notified when a page reports a frame drawn or leaves (a held run looks again).
    pages_changed: Condvar,
}

/// The pacer and what it cost, under one lock.
#[derive(Default)]
struct Pages {
    pacer: PagePacer,
    stats: PacerStats,
}

/// The longest single wait of a held run before it looks at its pages again (a page that went
/// quiet is noticed within this).
const HOLD_LOOK_EVERY: Duration = Duration::from_millis(20);

impl Control {
    /// A control starting at `pace` (its speed clamped into [`SPEED_MIN`, `SPEED_MAX`]).
    pub fn new(pace: Pace) -> Control {
        let (sender, receiver) = mpsc::channel(LEVER_QUEUE_MAX);
        Control {
            shared: Arc::new(Shared {
                pace: Mutex::new(Pace {
                    paused: pace.paused,
                    speed: pace.speed.clamp(SPEED_MIN, SPEED_MAX),
                }),
                now_unix_ms: AtomicI64::new(0),
                waker: OnceLock::new(),
                pulled: Mutex::new(0),
                sender,
                receiver: Mutex::new(Some(receiver)),
                pages: Mutex::new(Pages::default()),
                pages_changed: Condvar::new(),
            }),
        }
    }

    fn pages(&self) -> std::sync::MutexGuard<'_, Pages> {
        self.shared.pages.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Page `page` started following the run (its first frame shows the run's time now). False
    /// when too many pages follow already: it is not waited for.
    pub fn page_joined(&self, page: u64) -> bool {
        let now = self.now_unix_ms();
        self.pages().pacer.join(page, now, Instant::now())
    }

    /// Page `page` has drawn the frame of simulated `drawn_unix_ms`. False for a page that is
    /// not following.
    pub fn page_drew(&self, page: u64, drawn_unix_ms: i64) -> bool {
        let known = self.pages().pacer.drew(page, drawn_unix_ms, Instant::now());
        self.shared.pages_changed.notify_all();
        known
    }

    /// Page `page` stopped following.
    pub fn page_left(&self, page: u64) {
        self.pages().pacer.leave(page);
        self.shared.pages_changed.notify_all();
    }

    /// How far (simulated ms) the run is ahead of the newest frame the slowest page heard from
    /// has drawn; `None` without such a page.
    pub fn pages_behind_ms(&self) -> Option<i64> {
        let now = self.now_unix_ms();
        self.pages()
            .pacer
            .slowest_drawn(Instant::now())
            .map(|drawn| now - drawn)
    }

    /// Pages following, and what pacing has cost so far.
    pub fn pacer_stats(&self) -> (usize, PacerStats) {
        let pages = self.pages();
        (pages.pacer.pages(), pages.stats)
    }

    /// Waits while a page is more than [`crate::pacer::LEAD_MAX`] behind the run at simulated
    /// `now_unix_ms`. Bounded: at most [`SILENT_MAX`] of wall time per call (a page quiet that
    /// long no longer holds; one that reports but never catches up lets the run take one more
    /// step per call).
    pub(crate) fn hold_for_pages(&self, now_unix_ms: i64) {
        let started = Instant::now();
        let mut pages = self.pages();
        let mut held = false;
        while let Some(hold) = pages.pacer.hold(now_unix_ms, Instant::now()) {
            let Some(left) = SILENT_MAX.checked_sub(started.elapsed()) else {
                break;
            };
            held = true;
            let wait = left.min(hold.silent_left).min(HOLD_LOOK_EVERY);
            pages = self
                .shared
                .pages_changed
                .wait_timeout(pages, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if held {
            pages.stats.holds += 1;
            pages.stats.held_wall += started.elapsed();
        }
    }

    /// The current pace.
    pub fn pace(&self) -> Pace {
        *self.shared.pace.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pauses or plays, and sets the speed (each when given).
    pub fn set_pace(&self, paused: Option<bool>, speed: Option<f64>) -> Result<Pace, LeverError> {
        if let Some(speed) = speed {
            if !(SPEED_MIN..=SPEED_MAX).contains(&speed) {
                return Err(LeverError::SpeedOutOfRange);
            }
        }
        let mut pace = self.shared.pace.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(paused) = paused {
            pace.paused = paused;
        }
        if let Some(speed) = speed {
            pace.speed = speed;
        }
        Ok(*pace)
    }

    /// Turns `lever` into a step of `scenario` and queues it for the driver.
    pub fn pull(&self, scenario: &Scenario, lever: Lever) -> Result<(), LeverError> {
        let what = lever
            .step(scenario)
            .map_err(|NoCmkCluster| LeverError::NoCmkCluster)?;
        self.shared
            .sender
            .try_send(Injected { lever, what })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => LeverError::Busy,
                mpsc::error::TrySendError::Closed(_) => LeverError::Ended,
            })?;
        Ok(())
    }

    /// The simulated time of the run's last step (Unix ms; 0 before the first).
    pub fn now_unix_ms(&self) -> i64 {
        self.shared.now_unix_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn publish_now(&self, unix_ms: i64) {
        let before = self.shared.now_unix_ms.swap(unix_ms, Ordering::Relaxed);
        if before != unix_ms {
            if let Some(waker) = self.shared.waker.get() {
                waker.notify_one();
            }
        }
    }

    /// Wakes `waker` whenever the run's simulated time moves (one waker; false when one was
    /// set already). Waking is a flag set, never a wait: the run is not held up.
    pub fn wake_on_time(&self, waker: Arc<Notify>) -> bool {
        self.shared.waker.set(waker).is_ok()
    }

    /// The driver's end of the lever queue (once; `None` after).
    pub(crate) fn take_receiver(&self) -> Option<LeverQueue> {
        let receiver = self
            .shared
            .receiver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        Some(LeverQueue {
            receiver,
            shared: self.shared.clone(),
            first_index: 0,
        })
    }
}

/// The driver's end of the lever queue: it numbers the steps it hands out.
pub struct LeverQueue {
    receiver: mpsc::Receiver<Injected>,
    shared: Arc<Shared>,
    /// Index given to the first injected step (after the scenario's own steps).
    pub(crate) first_index: usize,
}

impl LeverQueue {
    /// The next lever as a timeline step at `offset`, or `None` once the dashboard is gone.
    pub(crate) async fn next(&mut self, offset: std::time::Duration) -> Option<Step> {
        let injected = self.receiver.recv().await?;
        let n = {
            let mut pulled = self.shared.pulled.lock().unwrap_or_else(|p| p.into_inner());
            *pulled += 1;
            *pulled
        };
        Some(Step {
            index: self.first_index + n,
            id: Some(format!("web-{n}-{}", injected.lever.as_str())),
            offset,
            what: injected.what,
            narrate: Some(format!(
                "From the dashboard: {}.",
                injected.lever.label().to_lowercase()
            )),
            line: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmksim_scenario::model::{Action, Fault, Host, KeyPermission, PrincipalRef};

    fn revocation() -> Scenario {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scenarios/revocation.toml"
        );
        cmksim_scenario::validate_file(std::path::Path::new(path)).expect("the library scenario")
    }

    #[test]
    fn levers_are_the_timeline_steps_of_the_scenario_format() {
        let scenario = revocation();
        match Lever::DisableKey.step(&scenario).unwrap() {
            StepKind::Action(Action::UpdateKey {
                vault,
                key,
                enabled,
                ..
            }) => {
                assert_eq!((vault.as_str(), key.as_str()), ("contoso-kv", "logs-cmk"));
                assert_eq!(enabled, Some(false));
            }
            other => panic!("disable-key became {other:?}"),
        }
        match Lever::RestoreAccessPolicy.step(&scenario).unwrap() {
            StepKind::Action(Action::SetAccessPolicy(policy)) => {
                assert_eq!(
                    policy.principal,
                    PrincipalRef::Cluster("contosologs".into())
                );
                assert_eq!(
                    policy.permissions,
                    vec![
                        KeyPermission::Get,
                        KeyPermission::WrapKey,
                        KeyPermission::UnwrapKey
                    ]
                );
            }
            other => panic!("restore-access-policy became {other:?}"),
        }
        assert_eq!(
            Lever::PartitionStorage.step(&scenario).unwrap(),
            StepKind::Fault {
                fault: Fault::Partition(Host::Storage, Host::Keyvault),
                duration: None
            }
        );
    }

    #[test]
    fn a_world_without_a_cmk_cluster_has_no_levers() {
        let mut scenario = revocation();
        for cluster in &mut scenario.world.clusters {
            cluster.key = None;
        }
        assert_eq!(Lever::DisableKey.step(&scenario), Err(NoCmkCluster));
        let control = Control::new(Pace {
            paused: false,
            speed: 600.0,
        });
        assert_eq!(
            control.pull(&scenario, Lever::DisableKey),
            Err(LeverError::NoCmkCluster)
        );
    }

    #[test]
    fn the_queue_is_bounded_and_the_speed_range_enforced() {
        let scenario = revocation();
        let control = Control::new(Pace {
            paused: false,
            speed: 600.0,
        });
        for _ in 0..LEVER_QUEUE_MAX {
            control.pull(&scenario, Lever::KeyvaultDown).unwrap();
        }
        assert_eq!(
            control.pull(&scenario, Lever::KeyvaultUp),
            Err(LeverError::Busy)
        );
        assert_eq!(
            control.set_pace(None, Some(10.0)),
            Err(LeverError::SpeedOutOfRange)
        );
        let pace = control.set_pace(Some(true), Some(3600.0)).unwrap();
        assert_eq!(
            pace,
            Pace {
                paused: true,
                speed: 3600.0
            }
        );
    }

    #[test]
    fn a_moving_clock_wakes_the_dashboard() {
        let control = Control::new(Pace {
            paused: false,
            speed: 600.0,
        });
        let waker = Arc::new(Notify::new());
        assert!(control.wake_on_time(waker.clone()));
        assert!(!control.wake_on_time(Arc::new(Notify::new())), "one waker");
        control.publish_now(60_000);
        assert_eq!(control.now_unix_ms(), 60_000);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        // The permit stored by the publication is taken at once.
        let woken = runtime.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), waker.notified()).await
        });
        assert!(woken.is_ok(), "not woken");
    }

    #[test]
    fn a_pulled_lever_reaches_the_driver_as_a_numbered_step() {
        let scenario = revocation();
        let control = Control::new(Pace {
            paused: false,
            speed: 600.0,
        });
        let mut queue = control.take_receiver().unwrap();
        queue.first_index = scenario.timeline.len();
        assert!(control.take_receiver().is_none());
        control.pull(&scenario, Lever::DisableKey).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let step = runtime
            .block_on(queue.next(std::time::Duration::from_secs(60)))
            .unwrap();
        assert_eq!(step.label(), "web-1-disable-key");
        assert_eq!(step.index, scenario.timeline.len() + 1);
        assert_eq!(step.what, Lever::DisableKey.step(&scenario).unwrap());
    }
}
