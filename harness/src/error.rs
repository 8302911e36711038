//! The kinds of failure, and the one place they become exit codes: bad
//! input 2, a runtime failure 1, an interruption 130.

use std::fmt;
use std::process::ExitCode;

/// Bad input: the user can fix it by changing the command. Exit code 2,
/// and nothing on the system was changed. It wraps the error that says
/// what is wrong (a message, or a typed error such as a profile's or a
/// knob's), keeping that error and its sources whole.
#[derive(Debug)]
pub struct InputError(pub Box<dyn std::error::Error + Send + Sync>);

impl InputError {
    /// A message that is the whole story.
    pub fn new(msg: impl Into<String>) -> InputError {
        InputError(msg.into().into())
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for InputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The run was stopped by SIGINT/SIGTERM/SIGHUP. Exit code 130.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: knobs restored, finished rows kept")]
pub struct Interrupted;

/// The exit code of a command whose standard output was closed under it.
pub const EXIT_BROKEN_PIPE: u8 = 141;

pub fn input(msg: impl Into<String>) -> anyhow::Error {
    InputError::new(msg).into()
}

/// Marks a typed error as the user's to fix, without flattening it.
pub fn input_from<E: std::error::Error + Send + Sync + 'static>(e: E) -> anyhow::Error {
    InputError(Box::new(e)).into()
}

/// How a failed command ends: its exit code, and the one line stderr gets
/// (the context chain joined, outermost first).
pub fn report(e: &anyhow::Error) -> (ExitCode, String) {
    // `tierbench hosts | head -1`: the reader stopped reading. Quietly, as
    // coreutils stop, but never with 0: what was to be printed was not, and
    // a script must be able to tell (128 + SIGPIPE, what a shell reports
    // for a process the closed pipe killed).
    if e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    {
        return (ExitCode::from(EXIT_BROKEN_PIPE), String::new());
    }
    if e.chain().any(|c| c.is::<Interrupted>()) {
        return (ExitCode::from(130), format!("tierbench: {e}"));
    }
    let input = e.chain().any(|c| c.is::<InputError>());
    let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    (
        ExitCode::from(if input { 2 } else { 1 }),
        format!(
            "tierbench: error: {}",
            // Escape sequences never reach the terminal; line breaks stay
            // where a message quotes lines on purpose (a console tail).
            crate::text::printable_lines(&dedup(msg).join(": "))
        ),
    )
}

/// An `InputError` shows its inner error's text, and the chain then holds
/// that error's sources: drop a link that repeats the one before it.
fn dedup(mut msg: Vec<String>) -> Vec<String> {
    msg.dedup();
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("profile p.toml: bad")]
    struct Typed;

    #[test]
    fn exit_codes_come_from_the_kind() {
        let (code, line) = report(&input("--size 0 must be more than 0"));
        assert_eq!(code, ExitCode::from(2));
        assert_eq!(line, "tierbench: error: --size 0 must be more than 0");
        let (code, line) = report(&input_from(Typed).context("loading the host profile"));
        assert_eq!(code, ExitCode::from(2));
        assert_eq!(
            line,
            "tierbench: error: loading the host profile: profile p.toml: bad"
        );
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert_eq!(
            report(&anyhow::Error::new(pipe).context("writing the table")),
            (ExitCode::from(EXIT_BROKEN_PIPE), String::new())
        );
        let (code, _) = report(&anyhow::anyhow!("EIO"));
        assert_eq!(code, ExitCode::from(1));
        let (code, _) = report(&anyhow::Error::new(Interrupted));
        assert_eq!(code, ExitCode::from(130));
    }
}
