//! Numbers as people read them in progress lines and logs.

/// `v` with four decimals when that shows it (`0.6931`, `12.5000`), in scientific notation with two significant
/// digits when it is too small for that (`1.0e-5`, `-3.2e-4`), and `0` for zero.
pub fn readable(v: f64) -> String {
    if v == 0.0 {
        "0".to_string()
    } else if v.is_finite() && v.abs() < 5e-3 {
        format!("{v:.1e}")
    } else {
        format!("{v:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::readable;

    #[test]
    fn small_values_are_scientific_and_the_rest_have_four_decimals() {
        assert_eq!(readable(1e-5), "1.0e-5");
        assert_eq!(readable(3.16e-4), "3.2e-4");
        assert_eq!(readable(-2e-6), "-2.0e-6");
        assert_eq!(readable(0.0), "0");
        assert_eq!(readable(0.731_26), "0.7313");
        assert_eq!(readable(0.005), "0.0050");
        assert_eq!(readable(12.5), "12.5000");
        assert_eq!(readable(f64::NAN), "NaN");
    }
}
