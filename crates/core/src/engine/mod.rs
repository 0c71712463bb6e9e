//! The building blocks of the in-memory authorization snapshot (see DESIGN.md, "The
//! authorization engine"): compact indexes over interned ids (`u32`), built once per snapshot
//! and read without locks or allocation. Each is checked against a naive reference by property
//! tests.

pub mod blocks;
pub mod closure;
pub mod model;
#[cfg(test)]
mod reference;
pub mod snapshot;
pub mod subjects;
pub mod tenant;
pub mod tree;
