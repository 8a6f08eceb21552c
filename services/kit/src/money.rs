//! Money is integer fen everywhere, and bounded: no amount kefu takes — from a caller or in an
//! event — is larger than [`MAX_FEN`]. Anything larger is a typing error or an attack, and is
//! refused, never wrapped: sums of bounded amounts cannot overflow a 64-bit balance.

/// The largest amount of money one entry may move: 1,000,000,000 yuan.
pub const MAX_FEN: i64 = 100_000_000_000;

/// Whether `amount_fen` is an amount kefu moves: more than 0 and at most [`MAX_FEN`].
pub fn is_amount(amount_fen: i64) -> bool {
    (1..=MAX_FEN).contains(&amount_fen)
}

/// An amount in fen, shown in yuan with two decimals: `1.50 yuan`, `-1.50 yuan`. The one place
/// money is put into words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Yuan(pub i64);

impl std::fmt::Display for Yuan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let fen = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02} yuan", fen / 100, fen % 100)
    }
}

/// `fen` in words, as [`Yuan`] shows it.
pub fn yuan(fen: i64) -> String {
    Yuan(fen).to_string()
}

/// An amount a person wrote in yuan (`1000`, `1000.5`, `1,000.50`) in fen, if it is one: no sign,
/// at most two decimals, at most [`MAX_FEN`]. The inverse of [`Yuan`] for what people type.
pub fn parse_yuan(text: &str) -> Option<i64> {
    let text = text.trim().trim_end_matches("yuan").trim_end_matches('元').trim().replace(',', "");
    let (whole, decimals) = text.split_once('.').unwrap_or((&text, ""));
    let digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() || decimals.len() > 2 || !digits(whole) || !digits(decimals) || whole.len() > 12 {
        return None;
    }
    let fen = whole.parse::<i64>().ok()? * 100 + format!("{decimals:0<2}").parse::<i64>().ok()?;
    (fen <= MAX_FEN).then_some(fen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_people_type_in_yuan_is_read_in_fen_or_refused() {
        assert_eq!(parse_yuan("1000"), Some(100_000));
        assert_eq!(parse_yuan("1000.5"), Some(100_050));
        assert_eq!(parse_yuan(" 1,000.05 元"), Some(100_005));
        assert_eq!(parse_yuan("0.00 yuan"), Some(0));
        for wrong in ["", "-1", "1.005", "1e3", "abc", ".5", "10000000000000", "1000000000.01"] {
            assert_eq!(parse_yuan(wrong), None, "{wrong:?}");
        }
        assert_eq!(parse_yuan(&yuan(123_456).replace(" yuan", "")), Some(123_456));
    }

    #[test]
    fn yuan_keeps_the_sign_in_front_and_two_decimals() {
        assert_eq!(yuan(150), "1.50 yuan");
        assert_eq!(yuan(-150), "-1.50 yuan");
        assert_eq!(yuan(-5), "-0.05 yuan");
        assert_eq!(yuan(0), "0.00 yuan");
        assert_eq!(yuan(MAX_FEN), "1000000000.00 yuan");
        assert_eq!(yuan(i64::MIN), "-92233720368547758.08 yuan");
    }
}
