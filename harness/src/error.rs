//! The error kinds `main` turns into exit codes.

/// Bad input: the user can fix it by changing the command. Exit code 2,
/// and nothing on the system was changed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// The run was stopped by SIGINT/SIGTERM/SIGHUP. Exit code 130.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: knobs restored, finished rows kept")]
pub struct Interrupted;

pub fn input(msg: impl Into<String>) -> anyhow::Error {
    InputError(msg.into()).into()
}
