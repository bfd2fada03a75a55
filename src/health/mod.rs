//! Backend health: the per-backend state machine and the pool weights.
//!
//! Both are pure; the checker thread (`crate::checker`) drives them.

pub mod state;
pub(crate) mod weights;
