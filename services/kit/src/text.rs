//! Small checks and encodings of text that several services share.

/// Whether `text` is a code: 1 to `max` ASCII letters, digits, `-` or `_` (customer numbers,
/// waybill numbers, branch codes).
pub fn is_code(text: &str, max: usize) -> bool {
    !text.is_empty() && text.len() <= max && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Lower-case hexadecimal, two digits a byte (how digests are shown).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_hex() {
        assert!(is_code("SH01-a_2", 8));
        assert!(!is_code("SH01-a_2", 7));
        assert!(!is_code("", 8));
        assert!(!is_code("C 1", 8));
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
