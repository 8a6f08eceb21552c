//! Money is integer fen everywhere, and bounded: no amount kefu takes — from a caller or in an
//! event — is larger than [`MAX_FEN`]. Anything larger is a typing error or an attack, and is
//! refused, never wrapped: sums of bounded amounts cannot overflow a 64-bit balance.

/// The largest amount of money one entry may move: 1,000,000,000 yuan.
pub const MAX_FEN: i64 = 100_000_000_000;

/// Whether `amount_fen` is an amount kefu moves: more than 0 and at most [`MAX_FEN`].
pub fn is_amount(amount_fen: i64) -> bool {
    (1..=MAX_FEN).contains(&amount_fen)
}
