//! The end-to-end tests of the `hoard` and `hoard-server` binaries: one test binary, one module
//! per area, so that the support code in [`support`] compiles once and every test links once
//! (matklad, "Delete Cargo Integration Tests"). The tests drive the real binaries
//! (`target/debug/hoard`, `hoard-server`) with real compilers, real memcached and redis
//! servers, mount and network namespaces and second uids; a tool or a privilege that is
//! missing is a loud skip, or a failure under `HOARD_TEST_REQUIRE=all` (see
//! [`support::tools`]).
//!
//! Run one area with `cargo test --test it -- faults::`, one test by its name.

mod support;

mod c_tree;
mod cache_management;
mod ci_recipes;
mod cloud_tiers;
mod compat_matrix;
mod config_file;
mod containers;
mod explain;
mod faults;
mod has_include;
mod help;
mod hostile_input;
mod journal;
mod load;
mod masquerade;
mod metrics;
mod paths_c;
mod paths_cc_crate;
mod paths_rust;
mod reapi_tier;
mod remote_tiers;
mod report;
mod rust;
mod server_lifecycle;
mod signed_entries;
mod stats;
mod tcp_gateway;
mod trust_boundary;
