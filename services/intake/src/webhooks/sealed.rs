//! Webhook secrets at rest: each endpoint's shared secret is stored encrypted (AES-256-GCM, the
//! endpoint's id as associated data) under the webhook key (`KEFU_WEBHOOK_KEY`, kept out of the
//! database, see `kefu_kit::keys`). A database dump alone cannot sign a delivery, and a sealed
//! secret moved to another endpoint's row does not open.
//!
//! Stored form: `v1:<hex nonce><hex ciphertext and tag>`. A row written before sealing (a plain
//! secret) still opens as itself.

use ring::{
    aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};
use sha2::{Digest, Sha256};

const PREFIX: &str = "v1:";

/// The key webhook secrets are sealed with.
#[derive(Clone)]
pub struct SecretBox(std::sync::Arc<LessSafeKey>);

impl SecretBox {
    pub fn new(key: &str) -> Result<SecretBox, String> {
        let bytes: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| "the webhook key cannot be used".to_owned())?;
        Ok(SecretBox(std::sync::Arc::new(LessSafeKey::new(key))))
    }

    /// `secret`, sealed for the endpoint `id`.
    pub fn seal(&self, id: &str, secret: &str) -> Result<String, String> {
        let mut nonce = [0u8; 12];
        SystemRandom::new().fill(&mut nonce).map_err(|_| "the operating system's random number generator failed")?;
        let mut sealed = secret.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(id.as_bytes()), &mut sealed)
            .map_err(|_| "a secret could not be sealed".to_owned())?;
        Ok(format!("{PREFIX}{}{}", kefu_kit::text::hex(&nonce), kefu_kit::text::hex(&sealed)))
    }

    /// The secret stored for the endpoint `id`; `None` if it does not open (another key, another
    /// row's secret, a changed byte).
    pub fn open(&self, id: &str, stored: &str) -> Option<String> {
        let Some(sealed) = stored.strip_prefix(PREFIX) else { return Some(stored.to_owned()) };
        let bytes = kefu_kit::text::unhex(sealed)?;
        let (nonce, ciphertext) = bytes.split_at_checked(12)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut ciphertext = ciphertext.to_vec();
        let plain = self.0.open_in_place(nonce, Aad::from(id.as_bytes()), &mut ciphertext).ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_for_its_endpoint() {
        let key = SecretBox::new(&"k".repeat(32)).expect("a key");
        let sealed = key.seal("webhooks/1", "a long enough shared secret").expect("sealed");
        assert!(sealed.starts_with("v1:") && !sealed.contains("shared secret"), "{sealed}");
        assert_eq!(key.open("webhooks/1", &sealed).as_deref(), Some("a long enough shared secret"));
        assert_eq!(key.open("webhooks/2", &sealed), None, "another endpoint's row");
        assert_eq!(SecretBox::new(&"x".repeat(32)).expect("a key").open("webhooks/1", &sealed), None, "another key");
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(key.open("webhooks/1", &String::from_utf8(flipped).expect("ascii")), None, "a changed byte");
        assert_eq!(key.open("webhooks/1", "a plain old secret").as_deref(), Some("a plain old secret"));
        assert_ne!(key.seal("webhooks/1", "same").expect("sealed"), key.seal("webhooks/1", "same").expect("sealed"));
    }
}
