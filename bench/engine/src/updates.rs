//! What moving a snapshot forward by one change costs at this scale, against building it
//! again (what a node did for every authorization change before deltas): the time of each
//! `Snapshot::apply`, by kind of change, and the memory the next snapshot adds while the one
//! before is still held (what it does not share).

use std::time::{Duration, Instant};

use portcullis_core::engine::model::{Assignment, Change, Record, Scope, Share};
use portcullis_core::engine::snapshot::Snapshot;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::alloc::live_bytes;
use crate::data::Tenant;

/// The kinds of change measured, each a change an administrator or a directory sync makes.
const KINDS: [&str; 6] = [
    "assignment added",
    "assignment removed",
    "member added",
    "member removed",
    "record added",
    "share added",
];

pub struct Kind {
    pub name: &'static str,
    pub p50: Duration,
    pub p99: Duration,
    /// Median bytes the next snapshot holds that the one before does not share.
    pub added_bytes: usize,
}

pub struct Updates {
    pub snapshot_bytes: usize,
    pub rebuild: Duration,
    pub kinds: Vec<Kind>,
    pub per_kind: usize,
}

/// Applies `per_kind` changes of each kind, one at a time, each to the snapshot the last
/// produced.
pub fn measure(tenant: &Tenant, per_kind: usize, seed: u64) -> Updates {
    let model = &tenant.model;
    let before = live_bytes();
    let started = Instant::now();
    let mut snapshot = Snapshot::build(model).expect("the generated model is consistent");
    let rebuild = started.elapsed();
    let snapshot_bytes = live_bytes().saturating_sub(before);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let users = tenant.users;
    let nodes = model.memberships.len() as u32;
    let groups = users..nodes;
    let roles = model.roles.len() as u32;
    let units = model.unit_parents.len() as u32;
    let mut next_assignment = model.assignments.len() as u32;
    let mut next_record = model.records.len() as u32;
    let mut next_share = model.shares.len() as u32;
    let mut memberships = model.memberships.clone();
    let mut kinds = Vec::new();
    for name in KINDS {
        let mut times = Vec::with_capacity(per_kind);
        let mut added = Vec::with_capacity(per_kind);
        for _ in 0..per_kind {
            let user = rng.random_range(0..users);
            let change = match name {
                "assignment added" => {
                    next_assignment += 1;
                    Change::Assignment {
                        slot: next_assignment - 1,
                        assignment: Some(Assignment {
                            principal: user,
                            role: rng.random_range(0..roles),
                            scope: Scope::BusinessUnit(rng.random_range(0..units)),
                            starts_at: None,
                            ends_at: None,
                        }),
                    }
                }
                "assignment removed" => Change::Assignment {
                    slot: rng.random_range(0..model.assignments.len() as u32),
                    assignment: None,
                },
                "member added" | "member removed" => {
                    let list = &mut memberships[user as usize];
                    if name == "member added" {
                        list.push(rng.random_range(groups.clone()));
                    } else if !list.is_empty() {
                        let at = rng.random_range(0..list.len());
                        list.remove(at);
                    }
                    Change::Node {
                        node: user,
                        groups: list.clone(),
                        home_unit: model.home_unit[user as usize],
                    }
                }
                "record added" => {
                    next_record += 1;
                    Change::Record {
                        slot: next_record - 1,
                        record: Some(Record {
                            owner: user,
                            business_unit: rng.random_range(0..units),
                            environment: None,
                        }),
                    }
                }
                _ => {
                    next_share += 1;
                    Change::Share {
                        slot: next_share - 1,
                        share: Some(Share {
                            record: rng.random_range(0..model.records.len() as u32),
                            principal: user,
                            actions: vec![0],
                        }),
                    }
                }
            };
            let held = live_bytes();
            let started = Instant::now();
            let next = snapshot
                .apply(std::slice::from_ref(&change))
                .expect("generated changes are consistent");
            times.push(started.elapsed());
            added.push(live_bytes().saturating_sub(held));
            snapshot = next;
        }
        times.sort_unstable();
        added.sort_unstable();
        kinds.push(Kind {
            name,
            p50: times[times.len() / 2],
            p99: times[(times.len() * 99 / 100).min(times.len() - 1)],
            added_bytes: added[added.len() / 2],
        });
    }
    Updates {
        snapshot_bytes,
        rebuild,
        kinds,
        per_kind,
    }
}
