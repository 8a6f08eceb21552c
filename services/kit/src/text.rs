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

/// The bytes of lower- or upper-case hexadecimal; `None` if it is not that.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_hex() {
        assert_eq!(unhex(&hex(&[0, 15, 255])), Some(vec![0, 15, 255]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("é0"), None);
        assert!(is_code("SH01-a_2", 8));
        assert!(!is_code("SH01-a_2", 7));
        assert!(!is_code("", 8));
        assert!(!is_code("C 1", 8));
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
