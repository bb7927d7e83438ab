//! Validation: the raw file becomes a [`Scenario`], or a list of positioned diagnostics.
//!
//! The second phase after `parse`. It checks what the TOML reader cannot: durations (with the
//! column of the bad character), names and their uniqueness, references between entities (a key
//! in an unknown vault, a step after an unknown step, an agent on an unknown workspace), value
//! ranges, and time (every step and expectation inside the scenario's duration). It keeps going
//! after an error so that one run of `cmksim validate` shows every problem it can.
//!
//! Split by part of the file: [`world`] (tenants to workspaces and agents), [`timeline`] (steps,
//! actions, faults), [`expectations`] and [`chaos`] (the fault space of a sweep); [`kql`]
//! checks the KQL text that steps and expectations accept. This module holds the shared
//! context: the source map, the collected diagnostics, the symbol tables and the value checks
//! every part uses.

mod chaos;
mod dcr;
mod expectations;
mod kql;
mod sentinel;
mod timeline;
mod world;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use cmksim_sim::{parse_duration, Profile};

use crate::errors::{Diagnostic, SourceMap};
use crate::limits::{DIAGNOSTICS_MAX, NAME_MAX_CHARS, SCENARIO_DURATION_MAX_SECS};
use crate::model::{Meta, Scenario};
use crate::parse::{parse_raw, read_source};
use crate::raw::{RawFile, S};

/// The (required, optional) parameters of a timeline action, by its name in the format.
pub fn action_parameters(
    action: &str,
) -> Option<(&'static [&'static str], &'static [&'static str])> {
    let index = crate::model::ACTION_NAMES
        .iter()
        .position(|a| *a == action)?;
    let name: crate::raw::ActionName = serde::Deserialize::deserialize(
        serde::de::value::StrDeserializer::<serde::de::value::Error>::new(
            crate::model::ACTION_NAMES[index],
        ),
    )
    .ok()?;
    Some(timeline::params_of(name))
}

/// Reads, parses and validates a scenario file (what `cmksim validate FILE` calls).
pub fn validate_file(path: impl AsRef<Path>) -> Result<Scenario, Vec<Diagnostic>> {
    let path = path.as_ref();
    let text = read_source(path).map_err(|d| vec![d])?;
    validate_str(path, &text)
}

/// Parses and validates scenario text; `path` is used in messages only.
pub fn validate_str(path: &Path, text: &str) -> Result<Scenario, Vec<Diagnostic>> {
    let map = SourceMap::new(path, text);
    let raw = parse_raw(&map).map_err(|d| vec![d])?;
    let mut ctx = Ctx::new(map);
    let scenario = build(&mut ctx, raw);
    let mut diags = ctx.diags;
    if diags.is_empty() {
        if let Some(scenario) = scenario {
            return Ok(scenario);
        }
    }
    diags.sort_by_key(|d| (d.line, d.column));
    diags.dedup();
    if diags.len() > DIAGNOSTICS_MAX {
        let more = diags.len() - DIAGNOSTICS_MAX;
        diags.truncate(DIAGNOSTICS_MAX);
        diags.push(Diagnostic::whole_file(
            path,
            format!("{more} more problems not shown"),
        ));
    }
    Err(diags)
}

fn build(ctx: &mut Ctx<'_>, raw: RawFile) -> Option<Scenario> {
    let meta = meta(ctx, &raw);
    let overrides = raw.profile.clone();
    let profile = profile(ctx, &raw, meta.as_ref().map(|m| m.profile_name.as_str()));
    ctx.duration = meta.as_ref().map(|m| m.duration);
    let profile_for_defaults = profile.clone().unwrap_or_else(Profile::azure_2020);
    let mut world = world::build(ctx, &raw, &profile_for_defaults);
    // Before the timeline's names: a `[[sentinel]]` entry names a workspace of the world.
    world.sentinel = sentinel::world(ctx, &raw);
    // The same: a rule sends to a workspace of the world.
    world.dcrs = dcr::world(ctx, &raw);
    // Names created by timeline actions exist for agents and later steps.
    timeline::register_created(ctx, &raw);
    let agents = world::agents(ctx, &raw);
    let timeline = timeline::build(ctx, &raw, &profile_for_defaults);
    dcr::check_uploads(ctx, &raw, &world.dcrs);
    let expectations = expectations::build(ctx, &raw, &timeline);
    let chaos = chaos::build(ctx, &raw, &world);
    Some(Scenario {
        meta: meta?,
        profile: profile?,
        profile_overrides: overrides,
        world,
        agents,
        timeline,
        expectations,
        chaos,
    })
}

fn meta(ctx: &mut Ctx<'_>, raw: &RawFile) -> Option<Meta> {
    let m = raw.scenario.get_ref();
    let name = ctx.name(&m.name, "scenario name");
    let title = ctx.text(&m.title, "title");
    let story = m
        .story
        .as_ref()
        .and_then(|s| ctx.text(s, "story"))
        .unwrap_or_default();
    let seed = match &m.seed {
        None => Some(1),
        Some(seed) => match u64::try_from(*seed.get_ref()) {
            Ok(v) => Some(v),
            Err(_) => {
                ctx.err(seed.span(), "seed must be a non-negative integer");
                None
            }
        },
    };
    let profile_name = m
        .profile
        .as_ref()
        .map(|p| p.get_ref().clone())
        .unwrap_or_else(|| cmksim_sim::profile::BUILTIN_PROFILES[0].to_string());
    let duration = ctx.duration_value(&m.duration, "scenario duration");
    let duration = duration.and_then(|d| {
        if d.is_zero() || d.as_secs() > SCENARIO_DURATION_MAX_SECS {
            ctx.err(
                m.duration.span(),
                format!(
                    "scenario duration must be more than 0s and at most {}d",
                    SCENARIO_DURATION_MAX_SECS / 86_400
                ),
            );
            None
        } else {
            Some(d)
        }
    });
    Some(Meta {
        name: name?,
        title: title?,
        story,
        seed: seed?,
        profile_name,
        duration: duration?,
    })
}

fn profile(ctx: &mut Ctx<'_>, raw: &RawFile, name: Option<&str>) -> Option<Profile> {
    let m = raw.scenario.get_ref();
    let name = name?;
    if !cmksim_sim::profile::BUILTIN_PROFILES.contains(&name) {
        let span = m.profile.as_ref().map(|p| p.span()).unwrap_or(0..0);
        ctx.err(
            span,
            format!(
                "unknown profile {name:?}: expected one of {}",
                cmksim_sim::profile::BUILTIN_PROFILES.join(", ")
            ),
        );
        return None;
    }
    match Profile::builtin_with_overrides(name, raw.profile.as_ref()) {
        Ok(p) => Some(p),
        Err(e) => {
            // Point at the offending key when the message names one, searching from the first
            // `[profile` header.
            let text = ctx.map.text();
            let start = text.find("[profile").unwrap_or(0);
            let span = start..text.len();
            let message = e.to_string();
            let offset = backticked(&message)
                .and_then(|word| {
                    let text = ctx.map.text().get(span.clone())?;
                    text.find(word).map(|i| span.start + i)
                })
                .unwrap_or(span.start);
            ctx.err(offset..offset, format!("[profile] override: {message}"));
            None
        }
    }
}

/// The first `word` between backticks in a message.
fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// What a name refers to, for symbol tables and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Tenant,
    Principal,
    Vault,
    Key,
    Cluster,
    Workspace,
    Agent,
    Step,
    Dcr,
    StorageAccount,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Tenant => "tenant",
            Kind::Principal => "principal",
            Kind::Vault => "vault",
            Kind::Key => "key",
            Kind::Cluster => "cluster",
            Kind::Workspace => "workspace",
            Kind::Agent => "agent",
            Kind::Step => "step id",
            Kind::Dcr => "data collection rule",
            Kind::StorageAccount => "storage account",
        }
    }
}

/// Shared state of one validation.
pub(crate) struct Ctx<'a> {
    pub map: SourceMap<'a>,
    pub diags: Vec<Diagnostic>,
    /// Known names per kind → line of their definition (keys are `vault/key`).
    pub names: BTreeMap<Kind, BTreeMap<String, usize>>,
    /// The scenario's duration, once known (offsets are checked against it).
    pub duration: Option<Duration>,
}

impl<'a> Ctx<'a> {
    fn new(map: SourceMap<'a>) -> Ctx<'a> {
        Ctx {
            map,
            diags: Vec::new(),
            names: BTreeMap::new(),
            duration: None,
        }
    }

    pub fn err(&mut self, span: Range<usize>, message: impl Into<String>) {
        let d = self.map.span(&span, message);
        self.diags.push(d);
    }

    pub fn line_of(&self, span: &Range<usize>) -> usize {
        self.map.line_column(span.start).0
    }

    /// Registers a definition; a second one with the same name is an error.
    pub fn define(&mut self, kind: Kind, name: &str, span: Range<usize>) {
        let line = self.line_of(&span);
        let table = self.names.entry(kind).or_default();
        if let Some(first) = table.get(name) {
            let first = *first;
            self.err(
                span,
                format!(
                    "duplicate {} `{name}` (first defined at line {first})",
                    kind.noun()
                ),
            );
        } else {
            table.insert(name.to_string(), line);
        }
    }

    /// Registers a name an action creates during the run (no duplicate check: creating an
    /// existing name is a legitimate scenario, and the service answers it).
    pub fn define_later(&mut self, kind: Kind, name: &str, span: &Range<usize>) {
        let line = self.line_of(span);
        self.names
            .entry(kind)
            .or_default()
            .entry(name.to_string())
            .or_insert(line);
    }

    pub fn exists(&self, kind: Kind, name: &str) -> bool {
        self.names.get(&kind).is_some_and(|t| t.contains_key(name))
    }

    /// Checks that a reference names a defined entity; returns the name either way.
    pub fn reference(&mut self, kind: Kind, s: &S<String>) -> String {
        let name = s.get_ref().clone();
        self.reference_str(kind, &name, s.span());
        name
    }

    pub fn reference_str(&mut self, kind: Kind, name: &str, span: Range<usize>) {
        if self.exists(kind, name) {
            return;
        }
        let known: Vec<String> = self
            .names
            .get(&kind)
            .map(|t| t.keys().take(10).map(|k| format!("`{k}`")).collect())
            .unwrap_or_default();
        let hint = if known.is_empty() {
            format!("no {} is defined", kind.noun())
        } else {
            format!("known: {}", known.join(", "))
        };
        self.err(span, format!("unknown {} `{name}` ({hint})", kind.noun()));
    }

    /// A name: 1 to NAME_MAX_CHARS of ASCII letters, digits, `-`, `_`, `.`.
    pub fn name(&mut self, s: &S<String>, what: &str) -> Option<String> {
        let value = s.get_ref();
        let bad = value
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')));
        if value.is_empty() || value.chars().count() > NAME_MAX_CHARS {
            self.err(
                s.span(),
                format!("{what} must be 1 to {NAME_MAX_CHARS} characters, got {value:?}"),
            );
            return None;
        }
        if let Some((position, c)) = bad {
            let offset = self.map.offset_in_string(&s.span(), value, position);
            self.err(
                offset..offset,
                format!(
                    "{what} {value:?}: unexpected character {c:?}; expected letters, digits, '-', '_' or '.'"
                ),
            );
            return None;
        }
        Some(value.clone())
    }

    /// Free text (titles, narration): must not be blank.
    pub fn text(&mut self, s: &S<String>, what: &str) -> Option<String> {
        if s.get_ref().trim().is_empty() {
            self.err(s.span(), format!("{what} must not be empty"));
            return None;
        }
        Some(s.get_ref().clone())
    }

    /// A duration; an error points at the offending character inside the string.
    pub fn duration_value(&mut self, s: &S<String>, what: &str) -> Option<Duration> {
        match parse_duration(s.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                let offset = self
                    .map
                    .offset_in_string(&s.span(), s.get_ref(), e.position);
                self.err(
                    offset..offset,
                    format!(
                        "{what}: invalid duration {:?}: expected {}",
                        e.input, e.expected
                    ),
                );
                None
            }
        }
    }

    /// An offset from the start that must fall inside the scenario's duration.
    pub fn offset_value(&mut self, s: &S<String>, what: &str) -> Option<Duration> {
        let d = self.duration_value(s, what)?;
        self.check_inside(d, s.span(), what)
    }

    /// Checks that an offset is inside the scenario's duration.
    pub fn check_inside(
        &mut self,
        offset: Duration,
        span: Range<usize>,
        what: &str,
    ) -> Option<Duration> {
        if let Some(total) = self.duration {
            if offset > total {
                self.err(
                    span,
                    format!(
                        "{what} at {} is after the end of the scenario (duration {})",
                        label(offset),
                        cmksim_sim::format_duration(total)
                    ),
                );
                return None;
            }
        }
        Some(offset)
    }

    /// An integer in `min..=max`.
    pub fn int_in(&mut self, s: &S<i64>, what: &str, min: i64, max: i64) -> Option<i64> {
        let v = *s.get_ref();
        if v < min || v > max {
            self.err(
                s.span(),
                format!("{what} must be between {min} and {max}, got {v}"),
            );
            return None;
        }
        Some(v)
    }
}

/// `T+hh:mm:ss` for an offset.
pub(crate) fn label(offset: Duration) -> String {
    let start = cmksim_sim::SimTime(0);
    start.add(offset).offset_label(start)
}
