//! Keys kept out of the database: what a database dump alone must not be enough for (rewriting the
//! audit log so it verifies, signing webhooks as kefu). Each comes from its variable (a Kubernetes
//! Secret) or, for `kefu up` on one machine, from a key file beside the SQLite files, made with 32
//! random bytes on first start and readable by its owner only.

use crate::config::{Config, MIN_SECRET_LEN, Secret};

/// The key `given` (its variable's value), or else the one in `<KEFU_DATA_DIR>/<file_name>`, made
/// now if there is none. `variable` and `secret_name` name where an operator sets it.
pub fn load(
    config: &Config,
    given: Option<&Secret>,
    file_name: &str,
    variable: &str,
    secret_name: &str,
) -> Result<String, String> {
    if let Some(secret) = given {
        return Ok(secret.expose().to_owned());
    }
    let path = config.data_dir.join(file_name);
    let missing = |error: &dyn std::fmt::Display| {
        format!(
            "{variable} is not set and the key file {} cannot be used ({error}): set {variable} (at least {MIN_SECRET_LEN} characters; in Kubernetes the Secret {secret_name})",
            path.display()
        )
    };
    match std::fs::read_to_string(&path) {
        Ok(secret) if secret.trim().len() >= MIN_SECRET_LEN => Ok(secret.trim().to_owned()),
        Ok(_) => Err(missing(&format!("it is shorter than {MIN_SECRET_LEN} characters"))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let secret = crate::trust::random_hex(32)?;
            std::fs::create_dir_all(&config.data_dir).map_err(|error| missing(&error))?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(&path) {
                Ok(mut file) => {
                    std::io::Write::write_all(&mut file, secret.as_bytes()).map_err(|error| missing(&error))?;
                    tracing::info!(file = %path.display(), "key made");
                    Ok(secret)
                }
                // Another process of this machine made it a moment ago: use theirs.
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read_to_string(&path)
                    .map(|secret| secret.trim().to_owned())
                    .map_err(|error| missing(&error)),
                Err(error) => Err(missing(&error)),
            }
        }
        Err(error) => Err(missing(&error)),
    }
}
