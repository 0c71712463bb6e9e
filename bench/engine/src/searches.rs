//! Search pages at this scale, as the server pages them (`search_page`): "who may do this
//! action on this record" and "on which records may this user do this action", walking in
//! order until the answer proves sparse and then through the snapshot's reverse indexes;
//! against walking every principal or record in order and checking each until the page is
//! full (what every search did before the indexes). Both must give the same page; a page that
//! differs fails the run.

use std::ops::Range;
use std::time::{Duration, Instant};

use portcullis_core::engine::snapshot::{Snapshot, Target};
use portcullis_core::engine::tenant::{search_budget, search_page};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::{ACTIONS, NOW, Tenant};

pub struct Kind {
    pub name: &'static str,
    pub indexed: Percentiles,
    pub scanned: Percentiles,
    /// Pages whose walk in order came up short and turned to the indexes.
    pub from_candidates: usize,
    /// Median allowed entries on a page.
    pub answers: usize,
}

pub struct Percentiles {
    pub p50: Duration,
    pub p99: Duration,
    pub pages: usize,
}

impl Percentiles {
    fn of(mut times: Vec<Duration>) -> Self {
        times.sort_unstable();
        let at = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)];
        Self {
            p50: at(50),
            p99: at(99),
            pages: times.len(),
        }
    }
}

pub struct Searches {
    pub page: usize,
    pub kinds: Vec<Kind>,
    pub mismatches: usize,
}

/// A search asked once: the entries it walks in order, whether one is allowed, and its
/// candidates from the reverse indexes.
struct Asked<'a> {
    all: Range<u32>,
    allows: Box<dyn Fn(&u32) -> bool + 'a>,
    candidates: Box<dyn Fn() -> Option<Vec<u32>> + 'a>,
}

/// `pages` pages of `page` entries of each search; the walk in order, which can take a tenth
/// of a second a page, on every tenth of them.
pub fn measure(tenant: &Tenant, pages: usize, page: usize, seed: u64) -> Searches {
    let snapshot = Snapshot::build(&tenant.model).expect("the generated model is consistent");
    let nodes = snapshot.nodes() as u32;
    let records = tenant.model.records.len() as u32;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5ea4c);
    let snapshot = &snapshot;
    let who = kind("who may (subjects)", pages, page, |_| {
        let action = rng.random_range(0..ACTIONS);
        let target = snapshot
            .target(rng.random_range(0..records))
            .expect("generated records are all present");
        Asked {
            all: 0..nodes,
            allows: Box::new(move |node| snapshot.allows(*node, action, &target, NOW)),
            candidates: Box::new(move || {
                snapshot.who_may(action, &target, NOW, search_budget(nodes as usize))
            }),
        }
    });
    let what = kind("what may (records)", pages, page, |_| {
        let principal = rng.random_range(0..tenant.users);
        let action = rng.random_range(0..ACTIONS);
        Asked {
            all: 0..records,
            allows: Box::new(move |record| {
                snapshot
                    .target(*record)
                    .is_some_and(|t: Target| snapshot.allows(principal, action, &t, NOW))
            }),
            candidates: Box::new(move || {
                let budget = search_budget(records as usize);
                snapshot.what_may(principal, action, NOW, |_| true, budget)
            }),
        }
    });
    Searches {
        page,
        mismatches: who.1 + what.1,
        kinds: vec![who.0, what.0],
    }
}

/// One kind of search, `pages` times, each question from `ask`; and how many pages differed
/// from the walk in order.
fn kind<'a>(
    name: &'static str,
    pages: usize,
    page: usize,
    mut ask: impl FnMut(usize) -> Asked<'a>,
) -> (Kind, usize) {
    let (mut paged, mut walked, mut answers) = (Vec::new(), Vec::new(), Vec::new());
    let (mut from_candidates, mut mismatches) = (0, 0);
    for i in 0..pages {
        let asked = ask(i);
        let started = Instant::now();
        let (found, _) = search_page(
            asked.all.clone(),
            &asked.allows,
            || {
                from_candidates += 1;
                (asked.candidates)()
            },
            page,
        );
        paged.push(started.elapsed());
        answers.push(found.len());
        if i % 10 == 0 {
            let started = Instant::now();
            let by_walking: Vec<u32> = asked.all.filter(|n| (asked.allows)(n)).take(page).collect();
            walked.push(started.elapsed());
            mismatches += usize::from(by_walking != found);
        }
    }
    answers.sort_unstable();
    let kind = Kind {
        name,
        indexed: Percentiles::of(paged),
        scanned: Percentiles::of(walked),
        from_candidates,
        answers: answers[answers.len() / 2],
    };
    (kind, mismatches)
}
