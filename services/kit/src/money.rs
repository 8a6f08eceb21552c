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

#[cfg(test)]
mod tests {
    use super::*;

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
