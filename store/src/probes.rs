//! Bias-probe reports, one per version (the latest), typed.

use types::probe::ProbeReport;

use crate::{Store, StoreError};

fn report_key(version: &str) -> String {
    format!("probes:{version}")
}

impl Store {
    /// The latest probe report of `version`, if it was probed.
    pub fn probe_report(&self, version: &str) -> Result<Option<ProbeReport>, StoreError> {
        self.meta_json(&report_key(version))
    }

    /// Stores `report` as the latest probe report of `version`, with an audit event saying `what`.
    pub fn set_probe_report(
        &self,
        version: &str,
        report: &ProbeReport,
        what: &str,
    ) -> Result<(), StoreError> {
        self.set_meta_json(&report_key(version), report, "probe", what)
    }
}
