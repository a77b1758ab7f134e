//! Names that become directory names (model versions, runs, bundles).

/// Whether `name` is safe as one directory name: letters, digits, `-`, `_` and `.`, not starting with a dot.
/// The registry's version ids, run directories and bundle names all follow this rule.
pub fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_safe() {
        assert!(safe_name("rm-job-3_v1.2"));
        for bad in ["", "..", ".hidden", "a/b", "a b", "ä"] {
            assert!(!safe_name(bad), "{bad:?}");
        }
    }
}
