//! What a simulated agent collects, and when.
//!
//! Each table has its own schedule: Heartbeat every `heartbeat_interval` (one minute, as the
//! Azure Monitor agents do), a Perf sample of every configured counter every `perf_interval`, and
//! Windows events (`Event`) or Syslog messages at `events_per_hour` with exponential
//! inter-arrival times. Values come from one seeded stream per agent, so the same seed gives the
//! same records. A driver that falls behind catches up at most `catch_up_ticks_max` ticks per
//! schedule per call; older ticks are skipped and counted, never generated in a burst.

use std::time::Duration;

use cmksim_sim::{RandomSource, SimTime};
use rand::Rng;

use crate::record::{Record, Value};

/// The operating system of the simulated machine (decides Event vs Syslog).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OsType {
    Windows,
    Linux,
}

/// One performance counter and its value range.
#[derive(Clone, Debug, PartialEq)]
pub struct PerfCounter {
    pub object: String,
    pub counter: String,
    pub instance: String,
    pub min: f64,
    pub max: f64,
}

impl PerfCounter {
    /// A counter with its value range.
    pub fn new(object: &str, counter: &str, instance: &str, min: f64, max: f64) -> PerfCounter {
        PerfCounter {
            object: object.into(),
            counter: counter.into(),
            instance: instance.into(),
            min,
            max,
        }
    }
}

/// An agent's configuration: identity, rates and sending.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentConfig {
    /// The agent's name (event source `agent/<name>`).
    pub name: String,
    pub workspace: String,
    pub computer: String,
    pub os_type: OsType,
    pub heartbeat_interval: Duration,
    pub perf_interval: Duration,
    pub perf_counters: Vec<PerfCounter>,
    /// Windows events (Event) or Syslog messages per hour, on average; 0 for none.
    pub events_per_hour: u32,
    /// How often a connected agent uploads what it collected.
    pub send_interval: Duration,
    /// Records per upload attempt (keeps each batch far below the 1 MiB limit).
    pub batch_records_max: usize,
}

impl AgentConfig {
    /// A Windows agent with the usual counters, a heartbeat a minute and 60 events an hour.
    pub fn windows(name: &str, workspace: &str) -> AgentConfig {
        AgentConfig {
            name: name.into(),
            workspace: workspace.into(),
            computer: format!("{name}.contoso.local"),
            os_type: OsType::Windows,
            heartbeat_interval: Duration::from_secs(60),
            perf_interval: Duration::from_secs(60),
            perf_counters: vec![
                PerfCounter::new("Processor", "% Processor Time", "_Total", 0.0, 100.0),
                PerfCounter::new("Memory", "Available MBytes", "", 256.0, 16_384.0),
                PerfCounter::new("LogicalDisk", "% Free Space", "C:", 5.0, 95.0),
            ],
            events_per_hour: 60,
            send_interval: Duration::from_secs(60),
            batch_records_max: 500,
        }
    }
}

/// A bound on catch-up ticks per schedule per call (see the module doc).
pub const CATCH_UP_TICKS_MAX: u32 = 1_000;

/// Produces an agent's records from a seeded stream.
#[derive(Debug)]
pub struct RecordSource {
    config: AgentConfig,
    rng: RandomSource,
    next_heartbeat_at: SimTime,
    next_perf_at: SimTime,
    next_event_at: Option<SimTime>,
    event_ids: [(i64, &'static str, &'static str); 4],
    skipped_ticks: u64,
}

impl RecordSource {
    /// A source starting at `start` (first heartbeat and perf sample at `start`).
    pub fn new(config: AgentConfig, mut rng: RandomSource, start: SimTime) -> RecordSource {
        let next_event_at = next_arrival(&mut rng, start, config.events_per_hour);
        RecordSource {
            config,
            rng,
            next_heartbeat_at: start,
            next_perf_at: start,
            next_event_at,
            event_ids: [
                (7036, "Information", "Service Control Manager"),
                (1014, "Warning", "Microsoft-Windows-DNS-Client"),
                (10016, "Error", "Microsoft-Windows-DistributedCOM"),
                (6013, "Information", "EventLog"),
            ],
            skipped_ticks: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Ticks skipped because the caller fell behind by more than [`CATCH_UP_TICKS_MAX`].
    pub fn skipped_ticks(&self) -> u64 {
        self.skipped_ticks
    }

    /// When the next record is due.
    pub fn next_due(&self) -> SimTime {
        let mut next = self.next_heartbeat_at.min(self.next_perf_at);
        if let Some(e) = self.next_event_at {
            next = next.min(e);
        }
        next
    }

    /// Every record due at or before `now`, as (table, record), in time order per table.
    pub fn due(&mut self, now: SimTime) -> Vec<(String, Record)> {
        let mut out = Vec::new();
        let mut ticks = 0;
        while self.next_heartbeat_at <= now && ticks < CATCH_UP_TICKS_MAX {
            out.push((
                "Heartbeat".to_string(),
                self.heartbeat(self.next_heartbeat_at),
            ));
            self.next_heartbeat_at = self.next_heartbeat_at.add(self.config.heartbeat_interval);
            ticks += 1;
        }
        self.next_heartbeat_at =
            self.skip_behind(self.next_heartbeat_at, now, self.config.heartbeat_interval);
        ticks = 0;
        while self.next_perf_at <= now && ticks < CATCH_UP_TICKS_MAX {
            let at = self.next_perf_at;
            for i in 0..self.config.perf_counters.len() {
                let record = self.perf(at, i);
                out.push(("Perf".to_string(), record));
            }
            self.next_perf_at = at.add(self.config.perf_interval);
            ticks += 1;
        }
        self.next_perf_at = self.skip_behind(self.next_perf_at, now, self.config.perf_interval);
        ticks = 0;
        while let Some(at) = self.next_event_at.filter(|at| *at <= now) {
            if ticks >= CATCH_UP_TICKS_MAX {
                self.skipped_ticks += 1;
                self.next_event_at = next_arrival(&mut self.rng, now, self.config.events_per_hour);
                break;
            }
            out.push(self.event(at));
            self.next_event_at = next_arrival(&mut self.rng, at, self.config.events_per_hour);
            ticks += 1;
        }
        out
    }

    fn skip_behind(&mut self, mut next: SimTime, now: SimTime, interval: Duration) -> SimTime {
        let interval_ms = interval.as_millis().max(1) as i64;
        if next <= now {
            let behind = (now.0 - next.0) / interval_ms + 1;
            self.skipped_ticks += behind as u64;
            next = SimTime(next.0 + behind * interval_ms);
        }
        next
    }

    fn heartbeat(&self, at: SimTime) -> Record {
        let os = match self.config.os_type {
            OsType::Windows => "Windows",
            OsType::Linux => "Linux",
        };
        Record::new(at)
            .with("Computer", Value::String(self.config.computer.clone()))
            .with("Category", Value::String("Direct Agent".into()))
            .with("OSType", Value::String(os.into()))
            .with("Version", Value::String("10.20.18053.0".into()))
    }

    fn perf(&mut self, at: SimTime, index: usize) -> Record {
        let counter = &self.config.perf_counters[index];
        let (min, max) = (counter.min, counter.max.max(counter.min));
        let value = if max > min {
            self.rng.gen_range(min..max)
        } else {
            min
        };
        let counter = &self.config.perf_counters[index];
        Record::new(at)
            .with("Computer", Value::String(self.config.computer.clone()))
            .with("ObjectName", Value::String(counter.object.clone()))
            .with("CounterName", Value::String(counter.counter.clone()))
            .with("InstanceName", Value::String(counter.instance.clone()))
            .with("CounterValue", Value::Real((value * 100.0).round() / 100.0))
    }

    fn event(&mut self, at: SimTime) -> (String, Record) {
        let computer = Value::String(self.config.computer.clone());
        match self.config.os_type {
            OsType::Windows => {
                let (id, level, source) =
                    self.event_ids[self.rng.gen_range(0..self.event_ids.len())];
                let record = Record::new(at)
                    .with("Computer", computer)
                    .with("EventLog", Value::String("System".into()))
                    .with("Source", Value::String(source.into()))
                    .with("EventID", Value::Long(id))
                    .with("EventLevelName", Value::String(level.into()))
                    .with(
                        "RenderedDescription",
                        Value::String(format!("{source} reported event {id}.")),
                    );
                ("Event".to_string(), record)
            }
            OsType::Linux => {
                let pid: i64 = self.rng.gen_range(100..32_768);
                let record = Record::new(at)
                    .with("Computer", computer)
                    .with("Facility", Value::String("daemon".into()))
                    .with("SeverityLevel", Value::String("info".into()))
                    .with(
                        "SyslogMessage",
                        Value::String(format!("systemd[{pid}]: Started session.")),
                    )
                    .with("ProcessID", Value::Long(pid));
                ("Syslog".to_string(), record)
            }
        }
    }
}

/// The next arrival of a Poisson process of `per_hour` events after `after` (None if 0/hour).
fn next_arrival(rng: &mut RandomSource, after: SimTime, per_hour: u32) -> Option<SimTime> {
    if per_hour == 0 {
        return None;
    }
    let mean_ms = 3_600_000.0 / f64::from(per_hour);
    // u in (0, 1]: -ln(u) is finite.
    let u: f64 = 1.0 - rng.gen::<f64>();
    let gap_ms = (-u.ln() * mean_ms).round().max(1.0) as i64;
    Some(SimTime(after.0 + gap_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmksim_sim::SeedTree;

    fn source(seed: u64) -> RecordSource {
        let config = AgentConfig::windows("a1", "ws1");
        RecordSource::new(config, SeedTree::new(seed).source("agent/a1"), SimTime(0))
    }

    #[test]
    fn rates_are_as_configured_and_seeded() {
        let mut s = source(1);
        let records = s.due(SimTime(3_600_000 - 1));
        let count = |t: &str| records.iter().filter(|(table, _)| table == t).count();
        assert_eq!(count("Heartbeat"), 60);
        assert_eq!(count("Perf"), 180);
        assert!((30..=100).contains(&count("Event")), "{}", count("Event"));
        let again = source(1).due(SimTime(3_600_000 - 1));
        assert_eq!(records, again);
        assert_ne!(records, source(2).due(SimTime(3_600_000 - 1)));
        assert!(s.next_due() >= SimTime(3_600_000 - 1));
        // Every record validates against its standard table.
        for (table, record) in &records {
            let schema = crate::schema::standard_table(table).unwrap();
            crate::validate::validate_records(
                &schema,
                vec![record.to_raw()],
                record.time_generated,
                &Default::default(),
            )
            .unwrap();
        }
    }

    #[test]
    fn falling_far_behind_skips_and_counts() {
        let mut s = source(1);
        let records = s.due(SimTime(2 * 1_000 * 60_000));
        let heartbeats = records.iter().filter(|(t, _)| t == "Heartbeat").count();
        assert_eq!(heartbeats, CATCH_UP_TICKS_MAX as usize);
        assert!(s.skipped_ticks() > 0);
        assert!(s.next_due() > SimTime(2 * 1_000 * 60_000));
    }
}
