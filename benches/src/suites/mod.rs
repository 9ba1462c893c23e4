// SPDX-License-Identifier: MPL-2.0
//! The benchmark suites, one per element family; each returns a section of the report and the
//! targets it checks.

pub mod decoder;
pub mod encoder;
pub mod failover;
pub mod live;
pub mod scale;
pub mod sink;
pub mod soak;
pub mod watchdog;
